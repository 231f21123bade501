"""Text checks shared by every capability that stores identifiers from outside."""

from __future__ import annotations

import re

# Control characters (C0, DEL and the C1 range U+0080-U+009F) and lone surrogates: none
# belongs in a stored identifier, and a surrogate (JSON "\ud800") cannot even be encoded
# for the database or a response.
_UNSAFE_TEXT_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def has_unsafe_characters(value: str) -> bool:
    """True when `value` holds a control character or a lone surrogate."""
    return _UNSAFE_TEXT_RE.search(value) is not None
