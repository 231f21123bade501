"""Text checks shared by every capability that stores identifiers from outside.

One rule for every free-text identifier (sub-ids, customer ids, plan ids): no character
that is invisible or changes how the text around it is shown. That is Unicode's
categories

* Cc: control characters (C0, DEL and C1 U+0080-U+009F: NUL breaks PostgreSQL, CR/LF break
  headers and CSV rows);
* Cs: lone surrogates (a JSON "\\ud800" cannot be encoded for the database or a response);
* Cf: format characters — the bidirectional controls U+202A-U+202E, U+2066-U+2069,
  U+200E/U+200F and U+061C that reorder what a dashboard or a CSV export shows (the
  "Trojan Source" trick, CVE-2021-42574), and the invisible ones (U+200B-U+200D, U+2060,
  U+FEFF, U+00AD, tag characters) that make two different ids look the same;
* Zl, Zp: U+2028 and U+2029, line breaks to many readers.

Spaces, letters, marks (accents, emoji variation selectors) and symbols of any script pass.
Display text (`unsafe_display_character`: names, subjects) may also hold the zero-width
joiner and non-joiner, which some scripts and emoji sequences need.
"""

from __future__ import annotations

import re
import unicodedata

from partnerflow.core.errors import InvalidInput

# The characters of categories Cc, Cs, Cf, Zl and Zp as one class (Unicode 15.1; a test
# checks it against `unicodedata` code point by code point). The click path checks every
# sub-id and UTM value a request sends: on 255 non-printable characters this search costs
# ~7 µs where a `unicodedata.category` loop cost ~35 µs.
_UNSAFE_TEXT_RE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    r"\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    r"\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    r"\U000e0001\U000e0020-\U000e007f]"
)
_KINDS = {
    "Cc": "a control character",
    "Cs": "an unpaired surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
_FORMAT = "an invisible or bidirectional formatting character"


def unsafe_character(value: str) -> str | None:
    """The first character of `value` no stored identifier may hold, or None."""
    # isprintable() (C, ~0.3 µs) is True for every string without these characters (they
    # are all non-printable, as are unassigned ones): the usual value never pays the search.
    if value.isprintable():
        return None
    found = _UNSAFE_TEXT_RE.search(value)
    return found.group() if found else None


# Display text (names, subjects, reasons) may also join: the zero-width non-joiner and joiner
# are how Persian and the Indic scripts are spelt ("می‌خواهم") and how emoji sequences are
# built (👨‍👩‍👧). Every other character the identifier rule refuses stays refused there.
_JOINERS = frozenset("\u200c\u200d")


def unsafe_display_character(value: str) -> str | None:
    """The first character of `value` that display text may not hold (`unsafe_character`
    less the two joiners), or None."""
    if value.isprintable():
        return None
    for found in _UNSAFE_TEXT_RE.finditer(value):
        if found.group() not in _JOINERS:
            return found.group()
    return None


def without_unsafe_characters(value: str) -> str:
    """`value` less every character `unsafe_character` refuses: for text kept as it came
    (a user agent, a referrer) where refusing the request would be wrong."""
    if value.isprintable():
        return value
    return _UNSAFE_TEXT_RE.sub("", value)


def has_unsafe_characters(value: str) -> bool:
    """True when `value` holds a control, format (bidirectional, invisible) or separator
    character, or a lone surrogate."""
    return unsafe_character(value) is not None


def describe_character(ch: str) -> str:
    """`U+202E (an invisible or bidirectional formatting character)`: what a refusal says
    (never the character itself, which would do in the message what it does in the data)."""
    # Cf for the format characters newer than this Python's Unicode data (unassigned here).
    return f"U+{ord(ch):04X} ({_KINDS.get(unicodedata.category(ch), _FORMAT)})"


def unsafe_text_reason(field: str, value: str) -> str | None:
    """The refusal of `value` for `field` ("customer_id must not contain U+202E (...)"),
    or None when it is safe."""
    ch = unsafe_character(value)
    if ch is None:
        return None
    return f"{field} must not contain {describe_character(ch)}"


# What multi-line display text (a message body, a note) may hold besides display text.
_LAYOUT = frozenset("\n\t")


def display_text(
    value: str,
    *,
    field: str,
    max_length: int = 200,
    multiline: bool = False,
    label: str | None = None,
) -> str:
    """A name, title, subject, reason or note as stored: stripped, 1 to `max_length`
    characters, and nothing `unsafe_display_character` refuses — on one line, or with
    `multiline` also line breaks (CRLF kept as LF) and tabs. Raises InvalidInput naming
    `field` (the one check for every way in: the web forms, the CLI, the API, imports), or
    `label` when the message should say more than the field's name."""
    said = label or field
    if multiline:
        value = value.replace("\r\n", "\n")
    value = value.strip()
    if not value or len(value) > max_length:
        raise InvalidInput(f"{said} must be 1-{max_length} characters", field=field)
    if not value.isprintable():
        for found in _UNSAFE_TEXT_RE.finditer(value):
            ch = found.group()
            if ch not in _JOINERS and not (multiline and ch in _LAYOUT):
                raise InvalidInput(f"{said} must not contain {describe_character(ch)}", field=field)
    return value
