"""Page cursors (`web.api.queries`) are opaque to clients but hostile to the server: whatever
a client sends is an id or offset it could have been given, or a 400 `invalid_cursor`."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.web.api.errors import ApiError
from partnerflow.web.api.queries import decode_cursor, encode_cursor


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("kind", ["id", "at"])
@pytest.mark.parametrize("digits", ["²", "1²", "٣", "１", "𝟗"])  # superscript, Arabic-Indic, …
def test_only_ascii_digits_make_a_cursor(kind: str, digits: str) -> None:
    with pytest.raises(ApiError) as refused:
        decode_cursor(_cursor(f"{kind}:{digits}"), kind)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


@given(st.sampled_from(["id", "at"]), st.sampled_from(["id", "at", "", "x"]), st.text(max_size=14))
def test_any_decoded_text_is_an_offset_or_a_400(kind: str, sent_kind: str, value: str) -> None:
    try:
        decoded = decode_cursor(_cursor(f"{sent_kind}:{value}"), kind)
    except ApiError as exc:
        assert (exc.status, exc.code) == (400, "invalid_cursor")
    else:
        assert sent_kind == kind and value.isascii() and int(value) == decoded >= 0


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_a_cursor_the_api_made_reads_back(last_id: int) -> None:
    assert decode_cursor(encode_cursor(last_id)) == last_id
