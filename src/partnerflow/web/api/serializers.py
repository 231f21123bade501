"""Domain objects and rows to response models."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from partnerflow.commissions.model import LedgerEntry
from partnerflow.core.money import MICROS
from partnerflow.messaging.events import money_text

__all__ = ["money_text"]
from partnerflow.partners.model import Partner
from partnerflow.programs.model import Offer, Program
from partnerflow.tracking.model import Conversion, Coupon, TrackingLink
from partnerflow.web.api import schemas as s


def program_out(p: Program) -> s.ProgramOut:
    return s.ProgramOut(
        id=p.id,
        slug=p.slug,
        name=p.name,
        brand=p.brand,
        currency=p.currency,
        timezone=p.timezone,
        cookie_window_days=p.cookie_window_days,
        attribution_model=p.attribution_model.value,
        lock_period_days=p.lock_period_days,
        fallback_url=p.fallback_url,
        postback_token=p.postback_token,
        created_at=p.created_at,
    )


def offer_out(o: Offer) -> s.OfferOut:
    return s.OfferOut(
        id=o.id,
        program_id=o.program_id,
        name=o.name,
        landing_url=o.landing_url,
        commission_plan=dict(o.commission_plan),
        status=o.status.value,
        allowed_domains=list(o.allowed_domains),
        fallback_url=o.fallback_url,
        created_at=o.created_at,
    )


def partner_out(p: Partner | Any) -> s.PartnerOut:
    return s.PartnerOut(
        id=p.id,
        program_id=p.program_id,
        name=p.name,
        email=p.email,
        status=str(p.status.value if hasattr(p.status, "value") else p.status),
        website=p.website,
        country=p.country,
        social=dict(p.social or {}),
        created_at=p.created_at,
    )


def link_out(link: TrackingLink | Any, base_url: str) -> s.LinkOut:
    return s.LinkOut(
        id=link.id,
        code=link.code,
        url=f"{base_url}/c/{link.code}",
        program_id=link.program_id,
        partner_id=link.partner_id,
        offer_id=link.offer_id,
        sub_ids=dict(link.sub_ids or {}),
        created_at=link.created_at,
    )


def coupon_out(c: Coupon | Any) -> s.CouponOut:
    return s.CouponOut(
        id=c.id,
        code=c.code,
        program_id=c.program_id,
        partner_id=c.partner_id,
        offer_id=c.offer_id,
        created_at=c.created_at,
    )


def _enum(value: Any) -> str:
    return str(value.value if hasattr(value, "value") else value)


def conversion_out(c: Conversion) -> s.ConversionOut:
    return s.ConversionOut(
        id=c.id,
        program_id=c.program_id,
        offer_id=c.offer_id,
        partner_id=c.partner_id,
        order_id=c.order_id,
        event_type=_enum(c.event_type),
        amount=money_text(c.amount),
        currency=c.currency,
        status=_enum(c.status),
        attributed_by=_enum(c.attributed_by),
        click_id=c.click_id,
        coupon_code=c.coupon_code,
        customer_id=c.customer_id,
        created_at=c.created_at,
    )


def conversion_row_out(r: Any) -> s.ConversionOut:
    return s.ConversionOut(
        id=r.id,
        program_id=r.program_id,
        offer_id=r.offer_id,
        partner_id=r.partner_id,
        order_id=r.order_id,
        event_type=r.event_type,
        amount=money_text(Decimal(r.amount_micros) / MICROS),
        currency=r.currency,
        status=r.status,
        attributed_by=r.attributed_by,
        click_id=r.click_id,
        coupon_code=r.coupon_code,
        customer_id=r.customer_id,
        created_at=r.created_at,
    )


def entry_out(e: LedgerEntry) -> s.LedgerEntryOut:
    return s.LedgerEntryOut(
        id=e.id,
        program_id=e.program_id,
        partner_id=e.partner_id,
        conversion_id=e.conversion_id,
        kind=e.kind.value,
        bucket=e.bucket.value,
        amount=money_text(e.amount.amount),
        currency=e.amount.currency,
        reason=e.reason,
        author=e.author,
        created_at=e.created_at,
    )


def explanation(c: Conversion, entries: list[LedgerEntry]) -> list[str]:
    reasons = list(dict.fromkeys(e.reason for e in entries if e.reason))
    if reasons:
        return reasons
    if c.partner_id is None:
        return ["not attributed to a partner: no commission"]
    return [f"{_enum(c.status)}: no commission entry"]


def balances_out(partner_id: int, entries: list[LedgerEntry]) -> s.BalancesOut:
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for e in entries:
        sums[e.amount.currency][e.bucket.value] += e.amount.amount
    return s.BalancesOut(
        partner_id=partner_id,
        balances=[
            s.BalanceOut(
                currency=currency,
                pending=money_text(b["pending"]),
                approved=money_text(b["approved"]),
                paid=money_text(b["paid"]),
            )
            for currency, b in sorted(sums.items())
        ],
    )


def money_text_micros(micros: int) -> str:
    return money_text(Decimal(micros) / MICROS)
