"""Conversion input (postback, pixel, order webhook), pure: parsing, attribution, pricing,
refund arithmetic.

The storage fast path (`storage.event_writer`) does the I/O and calls these functions, so
the rules that decide money live here, free of SQL, and are tested as plain functions. The
rule is the same as `tracking.services.record_conversion` (click id first, then coupon),
extended with the pf_click cookie and customer-id matching.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final
from urllib.parse import parse_qsl

from partnerflow.core.errors import Forbidden, InvalidInput
from partnerflow.core.ids import is_click_id
from partnerflow.core.money import check_currency, parse_amount
from partnerflow.tracking.model import AttributedBy, EventType
from partnerflow.tracking.rules import check_coupon_code, check_customer_id, check_order_id

MAX_TOKEN = 128
MAX_FORM_FIELDS = 64

# The parameters `parse_postback` reads. One of them given twice with different values (in
# the query and the body, or twice in either) is refused; any other parameter (a shop's own
# fields, `item=1&item=2`) is ignored, however often it comes.
POSTBACK_FIELDS: Final = frozenset(
    {"token", "order_id", "amount", "currency", "event", "event_type", "click_id", "coupon",
     "customer_id", "refund_id"}
)  # fmt: skip


class PostbackKind(enum.StrEnum):
    CONVERSION = "conversion"
    REFUND = "refund"
    CHARGEBACK = "chargeback"


@dataclass(frozen=True, slots=True)
class Postback:
    """A validated conversion or reversal request (token not yet checked against a program)."""

    kind: PostbackKind
    token: str
    order_id: str
    event_type: EventType = EventType.SALE
    amount: Decimal | None = None
    currency: str | None = None
    click_id: str | None = None
    cookie_click_id: str | None = None
    coupon: str | None = None
    customer_id: str | None = None
    refund_id: str | None = None


def _text(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string", field=key)
    value = value.strip()
    if not value:
        return None
    if value.startswith("{") and value.endswith("}"):
        raise InvalidInput(f"{key} is an unreplaced macro {value[:40]!r}", field=key)
    return value


def body_fields(body: bytes, ctype: str) -> list[tuple[str, Any]]:
    """Every (key, value) of a POST body, in order: a JSON object's members (numbers as
    Decimal, never binary floats) or a form's fields (UTF-8, at most 64)."""
    if ctype == "application/json":
        # The members of the top-level object as sent: json.loads keeps only the last of a
        # repeated key. The top-level object is the last one the decoder completes.
        top: list[list[tuple[str, Any]]] = [[]]

        def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            top[0] = pairs
            return dict(pairs)

        try:
            data = json.loads(body, parse_float=Decimal, object_pairs_hook=members)
        # ArithmeticError: decimal.InvalidOperation from parse_float, for a number whose
        # exponent is past what Decimal can hold (1e-9999999999999999999999, any field).
        except (ValueError, RecursionError, ArithmeticError):
            raise InvalidInput("body is not valid JSON", field="body") from None
        if not isinstance(data, dict):
            raise InvalidInput("JSON body must be an object", field="body")
        return top[0]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body is not a valid form (UTF-8)", field="body") from None
    try:
        return parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(
            "body is not a valid form (UTF-8, at most 64 fields)", field="body"
        ) from None


def _given(value: Any) -> Any:
    """What a value says, to compare two of them as `parse_postback` reads them: text
    without its surrounding whitespace, numbers as their text, blank as not given (None)."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        return value.strip() or None
    return value


def merge_fields(*sources: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The parameters of a conversion request from its sources (query, then body).

    A postback parameter given more than once must say the same thing each time: a body
    that silently replaced the query's `token` (or `order_id`, `amount`...) would let
    whoever fills one of them override what the other says — the conversion credited to
    another program, another order. Different values are refused (400, naming the
    parameter); the same value again, or a blank one beside a value, is not a conflict."""
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in source:
            if key in merged and key in POSTBACK_FIELDS:
                before, now = _given(merged[key]), _given(value)
                if now is None:
                    continue
                if before is not None:
                    if before != now:
                        raise InvalidInput(f"{key} given twice with different values", field=key)
                    continue
            merged[key] = value
    return merged


def parse_postback(
    params: Mapping[str, Any], *, token: str | None = None, cookie_click_id: str | None = None
) -> Postback:
    """Validate postback / pixel / webhook fields. `token` (from a header) wins over the
    parameters; `cookie_click_id` is the pf_click cookie (ignored when malformed)."""
    token = token or _text(params, "token")
    if not token:
        raise Forbidden("missing postback token", field="token")
    if len(token) > MAX_TOKEN:
        raise Forbidden("unknown postback token", field="token")
    event, event_alias = _text(params, "event"), _text(params, "event_type")
    if event and event_alias and event.lower() != event_alias.lower():
        raise InvalidInput("event and event_type disagree: give one of them", field="event")
    event_raw = (event or event_alias or "sale").lower()
    order_id = check_order_id(_text(params, "order_id") or "")
    amount_raw = params.get("amount")
    if isinstance(amount_raw, float):
        # JSON numbers: accept them only when their text is exact (no binary-float damage).
        amount_raw = repr(amount_raw)
    amount_text = amount_raw if not isinstance(amount_raw, str) else _text(params, "amount")
    amount = parse_amount(amount_text) if amount_text not in (None, "") else None
    currency_text = _text(params, "currency")
    currency = check_currency(currency_text) if currency_text else None
    if event_raw in {PostbackKind.REFUND, PostbackKind.CHARGEBACK}:
        if amount is not None and not amount:
            # Without `amount` a refund takes the rest of the order; a zero one is a
            # sender's bug (an unfilled field), not a refund of nothing.
            raise InvalidInput(
                "a refund amount must be positive (leave amount out to refund the rest of "
                "the order)",
                field="amount",
            )
        refund_id = _text(params, "refund_id")
        if refund_id is not None:
            refund_id = check_order_id(refund_id)
        return Postback(
            kind=PostbackKind(event_raw),
            token=token,
            order_id=order_id,
            amount=amount,
            currency=currency,
            refund_id=refund_id,
        )
    try:
        event_type = EventType(event_raw)
    except ValueError:
        raise InvalidInput(
            "event must be one of sale, lead, signup, custom, renewal, refund, chargeback",
            field="event",
        ) from None
    click_id = _text(params, "click_id")
    if click_id is not None and not is_click_id(click_id):
        raise InvalidInput("click_id is malformed", field="click_id")
    coupon_text = _text(params, "coupon")
    coupon = check_coupon_code(coupon_text) if coupon_text else None
    customer_id = _text(params, "customer_id")
    if customer_id is not None:
        customer_id = check_customer_id(customer_id)
    if event_type is EventType.RENEWAL and customer_id is None:
        raise InvalidInput(
            "a renewal needs the subscriber's customer_id (it is attributed and numbered by it)",
            field="customer_id",
        )
    return Postback(
        kind=PostbackKind.CONVERSION,
        token=token,
        order_id=order_id,
        event_type=event_type,
        amount=amount,
        currency=currency,
        click_id=click_id,
        cookie_click_id=cookie_click_id
        if cookie_click_id and is_click_id(cookie_click_id)
        else None,
        coupon=coupon,
        customer_id=customer_id,
    )


@dataclass(frozen=True, slots=True)
class Touch:
    """A candidate source of a conversion: a click, a coupon or an earlier conversion."""

    by: AttributedBy
    program_id: int
    offer_id: int
    partner_id: int
    click_id: str | None = None
    at: datetime | None = None
    label: str = ""


# The program of a touch that matched nothing (an unknown click id or coupon): never used,
# and its label alone says why ("click X not found").
NO_PROGRAM: Final = -1


@dataclass(frozen=True, slots=True)
class Attribution:
    touch: Touch | None
    notes: tuple[str, ...]

    @property
    def by(self) -> AttributedBy:
        return self.touch.by if self.touch else AttributedBy.NONE


def attribute(
    program_id: int,
    window_days: int,
    now: datetime,
    candidates: list[Touch | None],
) -> Attribution:
    """The first usable candidate, in the order given (click id, cookie, coupon, customer).

    Clicks must belong to the program and be inside its cookie window; coupons and
    customer matches have no window (the code or the customer *is* the evidence)."""
    notes: list[str] = []
    window = timedelta(days=window_days)
    for touch in candidates:
        if touch is None:
            continue
        if touch.program_id != program_id:
            unmatched = touch.program_id == NO_PROGRAM
            notes.append(touch.label if unmatched else f"{touch.label} belongs to another program")
            continue
        clicked = touch.by in {AttributedBy.CLICK_ID, AttributedBy.COOKIE}
        if clicked and touch.at is not None and now - touch.at > window:
            notes.append(f"{touch.label} older than the {window_days}-day window")
            continue
        notes.append(touch.label)
        return Attribution(touch, tuple(notes))
    notes.append("not attributed to a partner")
    return Attribution(None, tuple(notes))


@dataclass(frozen=True, slots=True)
class Reversal:
    """How much of a refund to take back, and from which ledger buckets."""

    refund_micros: int
    fully_refunded: bool
    entries: tuple[tuple[str, int], ...]  # (bucket, negative micros)


BUCKET_ORDER = ("paid", "approved", "pending")
ZERO_ORDER_REFUND = (
    "the order's amount is zero (a lead or signup): there is nothing to refund; leave "
    "amount out to reverse its commission"
)


def reversal_for(
    order_micros: int,
    refunded_micros: int,
    refund_micros: int | None,
    commission_micros: int,
    net_by_bucket: Mapping[str, int],
    minor_units: int,
) -> Reversal:
    """Pro-rata reversal of a commission for a (partial) refund.

    `refund_micros` None means "the rest of the order". A refund beyond what is left of the
    order is refused. The last refund takes back whatever commission is still standing, so
    rounding never leaves a cent behind; earlier ones take commission x refund / order,
    rounded half-up to the currency's minor unit. Money comes back out of the bucket it sits
    in now (pending, approved or already paid — a clawback).

    An order of amount zero (a lead, a signup paid a fixed commission) has nothing to
    refund but can still be reversed: without an amount it takes its whole commission back
    (none standing: no entry), as `commissions.services.reverse_conversion` does; an
    amount is refused, there being nothing to refund."""
    if order_micros == 0:
        if refund_micros is not None:
            raise InvalidInput(ZERO_ORDER_REFUND, field="amount")
        amount = 0
    else:
        remaining = order_micros - refunded_micros
        amount = remaining if refund_micros is None else refund_micros
        if amount <= 0:
            raise InvalidInput("refund amount must be positive", field="amount")
        if amount > remaining:
            raise InvalidInput(
                "refund exceeds what is left of the order "
                f"({Decimal(remaining) / Decimal(1_000_000)} left)",
                field="amount",
            )
    fully = amount == order_micros - refunded_micros
    standing = sum(v for v in net_by_bucket.values() if v > 0)
    if fully or order_micros == 0:
        to_take = standing
    else:
        exact = Decimal(commission_micros) * Decimal(amount) / Decimal(order_micros)
        quantum = Decimal(10) ** (6 - minor_units)
        to_take = int((exact / quantum).to_integral_value(rounding=ROUND_HALF_UP) * quantum)
        to_take = min(to_take, standing)
    entries: list[tuple[str, int]] = []
    for bucket in BUCKET_ORDER:
        if to_take <= 0:
            break
        available = net_by_bucket.get(bucket, 0)
        if available <= 0:
            continue
        take = min(available, to_take)
        entries.append((bucket, -take))
        to_take -= take
    return Reversal(amount, fully, tuple(entries))
