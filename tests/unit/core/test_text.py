"""The one rule for stored identifiers (`core.text`): no control, format or separator
characters, no lone surrogates."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import (
    describe_character,
    display_text,
    has_unsafe_characters,
    unsafe_character,
    unsafe_text_reason,
    without_unsafe_characters,
)

REFUSED = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def test_the_class_is_exactly_the_refused_categories_of_this_pythons_unicode() -> None:
    """Every code point of the five categories is refused and nothing else is — except
    format characters newer than this Python's Unicode data, unassigned (Cn) here."""
    wrong = [
        (f"U+{cp:04X}", unicodedata.category(chr(cp)))
        for cp in range(sys.maxunicode + 1)
        if has_unsafe_characters(chr(cp)) != (unicodedata.category(chr(cp)) in REFUSED)
        and not (has_unsafe_characters(chr(cp)) and unicodedata.category(chr(cp)) == "Cn")
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("cust\u202e1", "U+202E (an invisible or bidirectional formatting character)"),
        ("\u2066cust\u2069", "U+2066 (an invisible or bidirectional formatting character)"),
        ("cu\u200bst", "U+200B (an invisible or bidirectional formatting character)"),
        ("\ufeffcust", "U+FEFF (an invisible or bidirectional formatting character)"),
        ("cust\U000e0041", "U+E0041 (an invisible or bidirectional formatting character)"),
        ("a\x00b", "U+0000 (a control character)"),
        ("a\x85b", "U+0085 (a control character)"),
        ("a\ud800", "U+D800 (an unpaired surrogate)"),
        ("a\u2028b", "U+2028 (a line separator)"),
        ("a\u2029b", "U+2029 (a paragraph separator)"),
    ],
)
def test_refusals_name_the_first_unsafe_character_by_code_point(value: str, reason: str) -> None:
    ch = unsafe_character(value)
    assert ch is not None
    assert describe_character(ch) == reason
    assert unsafe_text_reason("customer_id", value) == f"customer_id must not contain {reason}"


@pytest.mark.parametrize(
    "value",
    [
        "cus_9",
        "anna.müller@example.de",
        "顧客-42",
        "עמית 7",  # right-to-left letters are text, not overrides
        "a\xa0b",  # a no-break space is not printable to Python, but it is shown
        "\u2764\ufe0f",  # a variation selector is a mark (Mn), not a format character
        "e\u0301",
    ],
)
def test_ordinary_text_of_any_script_passes(value: str) -> None:
    assert unsafe_character(value) is None
    assert unsafe_text_reason("customer_id", value) is None


# Surrogates and controls included; unassigned code points left out (a format character of
# a newer Unicode is refused though unassigned here: the exhaustive test covers those).
@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cn",)), max_size=40))
def test_any_text_is_refused_exactly_when_it_holds_a_refused_category(value: str) -> None:
    expected = next((ch for ch in value if unicodedata.category(ch) in REFUSED), None)
    assert unsafe_character(value) == expected


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_without_unsafe_characters_keeps_everything_else_in_order(value: str) -> None:
    cleaned = without_unsafe_characters(value)
    assert not has_unsafe_characters(cleaned)
    assert cleaned == "".join(c for c in value if not has_unsafe_characters(c))


def test_without_unsafe_characters_removes_bidi_and_invisible_characters() -> None:
    assert without_unsafe_characters("https://a.example/\u202egnp.exe\u200b") == (
        "https://a.example/gnp.exe"
    )
    assert without_unsafe_characters("Mozilla/5.0 \x85(X11)\xad") == "Mozilla/5.0 (X11)"


# -- display text: names, titles, subjects, reasons, notes --------------------------------

LAYOUT = "\n\t"
JOINERS = "\u200c\u200d"


def _display_refusal(value: str, multiline: bool) -> str | None:
    """The reference reading: the first character of a refused category, less the joiners
    (and line breaks and tabs in multi-line text), after CRLF -> LF and stripping."""
    text = value.replace("\r\n", "\n") if multiline else value
    for ch in text.strip():
        allowed = ch in JOINERS or (multiline and ch in LAYOUT)
        if unicodedata.category(ch) in REFUSED and not allowed:
            return ch
    return None


@settings(max_examples=400)
@given(st.text(max_size=40), st.booleans())
def test_display_text_refuses_exactly_what_the_reference_reading_refuses(
    value: str, multiline: bool
) -> None:
    expected = _display_refusal(value, multiline)
    text = value.replace("\r\n", "\n") if multiline else value
    try:
        stored = display_text(value, field="name", multiline=multiline)
    except InvalidInput as exc:
        assert exc.field == "name"
        if not text.strip():
            assert "must be 1-200 characters" in str(exc)
        else:
            assert expected is not None
            assert str(exc) == f"name must not contain {describe_character(expected)}"
    else:
        assert expected is None
        assert stored == text.strip()


@pytest.mark.parametrize(
    ("value", "multiline", "refused"),
    [
        ("Ana\u202e gnp.exe", False, "U+202E"),
        ("Shop\u200b One", False, "U+200B"),
        ("line\nbreak", False, "U+000A"),
        ("a\u2028b", True, "U+2028"),
        ("bell\x07", True, "U+0007"),
        ("lone\rcr", True, "U+000D"),
    ],
)
def test_display_text_refusals_name_the_code_point(
    value: str, multiline: bool, refused: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(f"name must not contain {refused} (")):
        display_text(value, field="name", multiline=multiline)


@pytest.mark.parametrize(
    "value",
    ["Zoë & Søn GmbH", "می\u200cخواهم", "👨\u200d👩\u200d👧 family", "東京ストア", "  padded  "],
)
def test_display_text_keeps_names_of_any_script_stripped(value: str) -> None:
    assert display_text(value, field="name") == value.strip()


def test_multiline_display_text_keeps_line_breaks_and_tabs_as_lf() -> None:
    assert display_text("Hi,\r\n\tthanks\n", field="body", multiline=True) == "Hi,\n\tthanks"


def test_display_text_length_is_counted_after_stripping() -> None:
    assert display_text(" " + "x" * 200 + " ", field="name") == "x" * 200
    with pytest.raises(InvalidInput, match="name must be 1-200 characters"):
        display_text("x" * 201, field="name")
    with pytest.raises(InvalidInput, match="twitter handle must be 1-5 characters"):
        display_text("abcdef", field="social", max_length=5, label="twitter handle")
