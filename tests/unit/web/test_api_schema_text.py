"""The API's short free-text type (`Text200`) refuses what `core.text` refuses in display
text: bidirectional controls and invisible characters, but not the zero-width joiners some
scripts and emoji need."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from partnerflow.core.text import describe_character, unsafe_character, unsafe_display_character
from partnerflow.web.api.schemas import UNSAFE_TEXT, Text200

TEXT200: TypeAdapter[str] = TypeAdapter(Text200)


@pytest.mark.parametrize(
    ("value", "code_point"),
    [("Ann\u202eevil", "U+202E"), ("A\u200bnn", "U+200B"), ("\u2066Ann\u2069", "U+2066")],
)
def test_bidirectional_and_invisible_characters_are_refused(value: str, code_point: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TEXT200.validate_python(value)
    [error] = refused.value.errors()
    assert (error["type"], error["msg"]) == (
        UNSAFE_TEXT,
        f"must not contain {code_point} (an invisible or bidirectional formatting character)",
    )


@pytest.mark.parametrize(
    "value",
    [
        "Anna Müller", "顧客 42", "עמית", "مرحبا", "🙂 shop", "",
        "می\u200cخواهم",  # Persian: a zero-width non-joiner inside the word
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",  # an emoji ZWJ sequence
        "क्\u200dष",  # Devanagari: a joiner selects the half form
    ],
)  # fmt: skip
def test_text_in_any_script_passes(value: str) -> None:
    assert TEXT200.validate_python(value) == value


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_text200_accepts_exactly_what_core_text_accepts(value: str) -> None:
    try:
        TEXT200.validate_python(value)
    except ValidationError as exc:
        [error] = exc.errors()
        ch = unsafe_display_character(value)
        assert ch is not None
        if error["type"] == UNSAFE_TEXT:
            assert error["msg"] == f"must not contain {describe_character(ch)}"
        else:  # C0 and DEL: the pattern the OpenAPI spec shows
            assert error["type"] == "string_pattern_mismatch"
            assert any(c < "\x20" or c == "\x7f" for c in value)
    else:
        assert unsafe_display_character(value) is None
        # Display text is the identifier rule less the two joiners.
        assert unsafe_character(value.replace("\u200c", "").replace("\u200d", "")) is None


@settings(max_examples=300)
@given(
    st.text(alphabet=st.sampled_from("ab \u200c\u200d\u200b\u202e\u2066\x85\u2028"), max_size=12)
)
def test_display_text_differs_from_identifiers_only_by_the_joiners(value: str) -> None:
    expected = next(
        (c for c in value if unsafe_character(c) is not None and c not in "\u200c\u200d"), None
    )
    assert unsafe_display_character(value) == expected
