"""Pure parsing and validation for tracking requests."""

from __future__ import annotations

import re

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import unsafe_text_reason

LINK_CODE_RE = re.compile(r"\A[A-Za-z0-9_-]{3,64}\Z")
COUPON_CODE_RE = re.compile(r"\A[A-Za-z0-9_-]{2,64}\Z")
ORDER_ID_RE = re.compile(r"\A[\x21-\x7e]{1,128}\Z")  # printable ASCII, no spaces
SUB_ID_MAX = 255
CUSTOMER_ID_MAX = 128


def check_link_code(value: str) -> str:
    if not LINK_CODE_RE.match(value):
        raise InvalidInput("link code must be 3-64 letters, digits, '-' or '_'", field="code")
    return value


def check_coupon_code(value: str) -> str:
    """Coupon codes are case-insensitive; stored upper-case, without surrounding whitespace
    (" ann10 " is ANN10 on every path, as postbacks always read it)."""
    value = value.strip()
    if not COUPON_CODE_RE.match(value):
        raise InvalidInput("coupon code must be 2-64 letters, digits, '-' or '_'", field="code")
    return value.upper()


def check_order_id(value: str) -> str:
    """The shop's order id without surrounding whitespace (" A-1 " is order A-1 on every
    path — postback, REST API, CSV import — so idempotency holds across them), then 1-128
    printable ASCII characters."""
    value = value.strip()
    if not ORDER_ID_RE.match(value):
        raise InvalidInput("order_id must be 1-128 printable ASCII characters", field="order_id")
    return value


def check_sub_id(key: str, value: str) -> str:
    if len(value) > SUB_ID_MAX:
        raise InvalidInput(f"{key} must be at most {SUB_ID_MAX} characters", field=key)
    _check_text(key, value)
    return value


def check_customer_id(value: str) -> str:
    """The shop's customer id, as every conversion path stores it (postback, pixel, order
    webhook, REST API, CSV import, Shopify and Stripe): without its surrounding whitespace
    (" cust-1 " is customer cust-1, for the commission plan's new-customer rule and
    renewals as for the reports), then 1-128 characters, none of them control,
    bidirectional or invisible formatting characters (`core.text`)."""
    value = value.strip()
    if not 0 < len(value) <= CUSTOMER_ID_MAX:
        raise InvalidInput(
            f"customer_id must be 1-{CUSTOMER_ID_MAX} characters", field="customer_id"
        )
    _check_text("customer_id", value)
    return value


def _check_text(field: str, value: str) -> None:
    reason = unsafe_text_reason(field, value)
    if reason is not None:
        raise InvalidInput(reason, field=field)
