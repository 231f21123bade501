"""Inbound order shapes mapped to `RecordConversion`: Shopify orders and Stripe invoices.

Where the click id travels: partnerflow's landing script stores it as a cart/note attribute
(`pf_click_id`, Shopify) or as metadata (`click_id`, Stripe customer or invoice). A discount
code is passed as the coupon so coupon attribution works when there is no click.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from partnerflow.core.currencies import MINOR_UNITS
from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import check_currency, check_minor_units, parse_amount
from partnerflow.tracking.services import RecordConversion

CLICK_KEYS = ("pf_click_id", "click_id", "pf_click")

# Stripe's API amounts are integers in Stripe's own minor unit, which is ISO 4217's except
# here (docs.stripe.com/currencies): ISK stays two-decimal in Stripe's API (100 = 1 krona;
# only multiples of 100 since April 2023, support.stripe.com "Deprecation of fractional ISK
# charges") though ISO gives it none; MGA is zero-decimal at Stripe, two-decimal in ISO.
STRIPE_MINOR_UNITS: dict[str, int] = {"ISK": 2, "MGA": 0}


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be an object", field=field)
    return value


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def shopify_order(data: Any, token: str) -> RecordConversion:
    """A Shopify `orders/paid` (or `orders/create`) webhook body."""
    order = _obj(data, "body")
    order_id = _str_or_none(order.get("id"))
    if order_id is None:
        raise InvalidInput("order id is missing", field="id")
    raw_total = order.get("total_price")
    if not isinstance(raw_total, str | int) or isinstance(raw_total, bool):
        raise InvalidInput("total_price must be a decimal string", field="total_price")
    amount = parse_amount(raw_total, field="total_price")
    currency = check_currency(str(order.get("currency", "")), field="currency")
    # Shopify sends prices rounded to the currency ("1000" or "1000.00" JPY): more digits
    # than that is not an amount anyone paid.
    check_minor_units(amount, currency, field="total_price")
    click_id = None
    for attribute in order.get("note_attributes") or []:
        if isinstance(attribute, dict) and attribute.get("name") in CLICK_KEYS:
            click_id = _str_or_none(attribute.get("value"))
    landing = order.get("landing_site")
    if click_id is None and isinstance(landing, str):
        query = parse_qs(urlsplit(landing).query)
        for key in CLICK_KEYS:
            if query.get(key):
                click_id = query[key][0]
                break
    coupon = None
    codes = order.get("discount_codes") or []
    if isinstance(codes, list) and codes and isinstance(codes[0], dict):
        coupon = _str_or_none(codes[0].get("code"))
    customer = order.get("customer")
    customer_id = _str_or_none(customer.get("id")) if isinstance(customer, dict) else None
    return RecordConversion(
        token=token,
        order_id=f"shopify-{order_id}",
        amount=str(amount),
        currency=currency,
        click_id=click_id,
        coupon=coupon,
        customer_id=customer_id,
    )


def stripe_invoice(data: Any, token: str) -> RecordConversion | None:
    """A Stripe event whose object is an invoice (`invoice.paid`, `invoice.payment_succeeded`).
    Other event types return None: acknowledged and ignored, as Stripe expects."""
    event = _obj(data, "body")
    if event.get("type") not in {"invoice.paid", "invoice.payment_succeeded"}:
        return None
    invoice = _obj(_obj(event.get("data"), "data").get("object"), "data.object")
    invoice_id = _str_or_none(invoice.get("id"))
    if invoice_id is None:
        raise InvalidInput("invoice id is missing", field="data.object.id")
    currency = check_currency(str(invoice.get("currency", "")), field="data.object.currency")
    paid = invoice.get("amount_paid")
    if not isinstance(paid, int) or isinstance(paid, bool) or paid < 0:
        raise InvalidInput(
            "amount_paid must be a non-negative integer (minor units)",
            field="data.object.amount_paid",
        )
    # Stripe amounts are integers in the currency's smallest unit (as Stripe counts it).
    amount = Decimal(paid).scaleb(-STRIPE_MINOR_UNITS.get(currency, MINOR_UNITS[currency]))
    check_minor_units(amount, currency, field="data.object.amount_paid")
    metadata = invoice.get("metadata") if isinstance(invoice.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    click_id = next((_str_or_none(metadata.get(k)) for k in CLICK_KEYS if metadata.get(k)), None)
    coupon = None
    discount = invoice.get("discount")
    if isinstance(discount, dict):
        promo = discount.get("promotion_code")
        coupon_obj = discount.get("coupon")
        if isinstance(promo, dict):
            coupon = _str_or_none(promo.get("code"))
        elif isinstance(coupon_obj, dict):
            coupon = _str_or_none(coupon_obj.get("name") or coupon_obj.get("id"))
    return RecordConversion(
        token=token,
        order_id=f"stripe-{invoice_id}",
        amount=str(parse_amount(amount, field="data.object.amount_paid")),
        currency=currency,
        click_id=click_id,
        coupon=coupon,
        customer_id=_str_or_none(invoice.get("customer")),
    )
