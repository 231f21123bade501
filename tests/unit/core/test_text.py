"""The one rule for stored identifiers (`core.text`): no control, format or separator
characters, no lone surrogates."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.text import (
    describe_character,
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
