"""The API's short free-text type (`Text200`) refuses what `core.text` refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from partnerflow.core.text import describe_character, unsafe_character
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


@pytest.mark.parametrize("value", ["Anna Müller", "顧客 42", "עמית", "مرحبا", "🙂 shop", ""])
def test_text_in_any_script_passes(value: str) -> None:
    assert TEXT200.validate_python(value) == value


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_text200_accepts_exactly_what_core_text_accepts(value: str) -> None:
    try:
        TEXT200.validate_python(value)
    except ValidationError as exc:
        [error] = exc.errors()
        ch = unsafe_character(value)
        assert ch is not None
        if error["type"] == UNSAFE_TEXT:
            assert error["msg"] == f"must not contain {describe_character(ch)}"
        else:  # C0 and DEL: the pattern the OpenAPI spec shows
            assert error["type"] == "string_pattern_mismatch"
            assert any(c < "\x20" or c == "\x7f" for c in value)
    else:
        assert unsafe_character(value) is None
