"""Typed ids.

Entities stored by the admin side use integer ids (typed with NewType so a PartnerId can't
be passed where an OfferId is meant). Events created on the hot path (clicks) use random,
time-ordered string ids: unguessable, URL-safe, generated without a database round trip.
"""

from __future__ import annotations

import os
import re
import time
from typing import NewType

ProgramId = NewType("ProgramId", int)
OfferId = NewType("OfferId", int)
PartnerId = NewType("PartnerId", int)
LinkId = NewType("LinkId", int)
CouponId = NewType("CouponId", int)
ConversionId = NewType("ConversionId", int)
UserId = NewType("UserId", int)
ClickId = NewType("ClickId", str)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
CLICK_ID_LENGTH = 24
_CLICK_ID_RE = re.compile(r"\A[0-9a-hjkmnp-tv-z]{24}\Z")


def new_click_id(now_ms: int | None = None) -> ClickId:
    """24 chars: 48-bit millisecond timestamp (10 chars) + 70 random bits (14 chars)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms & ((1 << 50) - 1)) << 70 | int.from_bytes(os.urandom(9), "big") >> 2
    chars = []
    for _ in range(CLICK_ID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return ClickId("".join(reversed(chars)))


def is_click_id(value: str) -> bool:
    return bool(_CLICK_ID_RE.match(value))


def click_id_time_ms(click_id: str) -> int:
    """The millisecond timestamp embedded in a click id."""
    value = 0
    for ch in click_id[:10]:
        value = value * 32 + _ALPHABET.index(ch)
    return value
