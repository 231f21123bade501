"""Pure parsing and validation for tracking requests."""

from __future__ import annotations

import re

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import has_unsafe_characters

LINK_CODE_RE = re.compile(r"\A[A-Za-z0-9_-]{3,64}\Z")
COUPON_CODE_RE = re.compile(r"\A[A-Za-z0-9_-]{2,64}\Z")
ORDER_ID_RE = re.compile(r"\A[\x21-\x7e]{1,128}\Z")  # printable ASCII, no spaces
SUB_ID_MAX = 255


def check_link_code(value: str) -> str:
    if not LINK_CODE_RE.match(value):
        raise InvalidInput("link code must be 3-64 letters, digits, '-' or '_'", field="code")
    return value


def check_coupon_code(value: str) -> str:
    """Coupon codes are case-insensitive; stored upper-case."""
    if not COUPON_CODE_RE.match(value):
        raise InvalidInput("coupon code must be 2-64 letters, digits, '-' or '_'", field="code")
    return value.upper()


def check_order_id(value: str) -> str:
    if not ORDER_ID_RE.match(value):
        raise InvalidInput("order_id must be 1-128 printable ASCII characters", field="order_id")
    return value


def check_sub_id(key: str, value: str) -> str:
    if len(value) > SUB_ID_MAX or has_unsafe_characters(value):
        raise InvalidInput(
            f"{key} must be at most {SUB_ID_MAX} characters without control characters",
            field=key,
        )
    return value
