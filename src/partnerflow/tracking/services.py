"""Tracking use cases on the admin side (links, coupons) and conversion recording.

`record_conversion` is the whole postback rule in one transaction: find the program by its
postback token, attribute (click id, then coupon), refuse duplicates by order id, price it
with the commission engine (the versioned plan in force, else the offer's simple plan;
order values in another currency converted with the stored rate), score it for fraud
(a flagged conversion's commission stays pending), write it, reserve it against the
program's caps (over a hard cap: rejected, no commission) and append the pending ledger
entry. The row comes before the reservation so that a retry after a crash, or the same order
recorded twice at once, leaves one conversion holding one reservation (`ConversionCaps`).
The tracker's batched writer applies the same rules (`tracking.conversions`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from partnerflow.commissions.model import EntryKind, LedgerBucket, LedgerEntry
from partnerflow.commissions.ports import ProgramTerms
from partnerflow.commissions.services import ConversionInput, Priced, commission_for_conversion
from partnerflow.core.clock import Clock
from partnerflow.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from partnerflow.core.ids import (
    ClickId,
    ConversionId,
    CouponId,
    LinkId,
    OfferId,
    PartnerId,
    is_click_id,
)
from partnerflow.core.money import Money, check_currency, check_minor_units, parse_amount
from partnerflow.partners.rules import EARNING_STATUSES
from partnerflow.programs.model import Program
from partnerflow.tracking.conversions import (
    ClickEvidence,
    cap_reservation_id,
    cap_revenue,
    flags_text,
    score_attributed,
    score_flags,
)
from partnerflow.tracking.model import (
    SUB_ID_KEYS,
    AttributedBy,
    Click,
    Conversion,
    ConversionStatus,
    Coupon,
    EventType,
    TrackingLink,
)
from partnerflow.tracking.ports import TrackingUnitOfWork
from partnerflow.tracking.rules import (
    check_coupon_code,
    check_customer_id,
    check_link_code,
    check_order_id,
    check_sub_id,
)


@dataclass(frozen=True)
class CreateLink:
    partner_id: PartnerId
    offer_id: OfferId
    code: str | None = None
    sub_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateCoupon:
    partner_id: PartnerId
    offer_id: OfferId
    code: str


def create_link(uow: TrackingUnitOfWork, clock: Clock, cmd: CreateLink, actor: str) -> TrackingLink:
    code = check_link_code(cmd.code) if cmd.code else secrets.token_urlsafe(6)
    for key, value in cmd.sub_ids.items():
        if key not in SUB_ID_KEYS:
            raise InvalidInput(f"unknown sub-id {key[:16]!r} (use sub1..sub5)", field="sub_ids")
        check_sub_id(key, value)
    with uow:
        partner = uow.partners.get(cmd.partner_id)
        offer = uow.offers.get(cmd.offer_id)
        if partner is None:
            raise NotFound(f"partner {cmd.partner_id} not found", field="partner_id")
        if offer is None:
            raise NotFound(f"offer {cmd.offer_id} not found", field="offer_id")
        if partner.program_id != offer.program_id:
            raise InvalidInput("partner and offer belong to different programs", field="offer_id")
        if uow.links.by_code(code) is not None:
            raise Conflict(f"link code {code!r} is taken", field="code")
        link = uow.links.add(
            TrackingLink(
                id=LinkId(0),
                code=code,
                program_id=offer.program_id,
                partner_id=partner.id,
                offer_id=offer.id,
                created_at=clock.now(),
                sub_ids=dict(cmd.sub_ids),
            )
        )
        uow.audit.record(
            actor=actor,
            action="link.created",
            entity_type="link",
            entity_id=str(link.id),
            detail={"code": code, "partner_id": partner.id, "offer_id": offer.id},
        )
    return link


def create_coupon(uow: TrackingUnitOfWork, clock: Clock, cmd: CreateCoupon, actor: str) -> Coupon:
    code = check_coupon_code(cmd.code)
    with uow:
        partner = uow.partners.get(cmd.partner_id)
        offer = uow.offers.get(cmd.offer_id)
        if partner is None:
            raise NotFound(f"partner {cmd.partner_id} not found", field="partner_id")
        if offer is None:
            raise NotFound(f"offer {cmd.offer_id} not found", field="offer_id")
        if partner.program_id != offer.program_id:
            raise InvalidInput("partner and offer belong to different programs", field="offer_id")
        if uow.coupons.by_code(offer.program_id, code) is not None:
            raise Conflict(f"coupon {code!r} exists in this program", field="code")
        coupon = uow.coupons.add(
            Coupon(
                id=CouponId(0),
                code=code,
                program_id=offer.program_id,
                partner_id=partner.id,
                offer_id=offer.id,
                created_at=clock.now(),
            )
        )
        uow.audit.record(
            actor=actor,
            action="coupon.created",
            entity_type="coupon",
            entity_id=str(coupon.id),
            detail={"code": code, "partner_id": partner.id, "offer_id": offer.id},
        )
    return coupon


@dataclass(frozen=True)
class RecordConversion:
    token: str
    order_id: str
    amount: str | None = None
    currency: str | None = None
    click_id: str | None = None
    coupon: str | None = None
    customer_id: str | None = None
    event_type: str = EventType.SALE.value


@dataclass(frozen=True)
class ConversionRecorded:
    conversion: Conversion
    duplicate: bool
    commission: Money | None
    explanation: str


def _terms(program: Program) -> ProgramTerms:
    return ProgramTerms(
        program.id,
        program.slug,
        program.currency,
        program.lock_period_days,
        str(program.attribution_model),
        program.cookie_window_days,
    )


def record_conversion(
    uow: TrackingUnitOfWork, clock: Clock, cmd: RecordConversion
) -> ConversionRecorded:
    if not cmd.token:
        raise Forbidden("missing postback token", field="token")
    order_id = check_order_id(cmd.order_id or "")
    try:
        event_type = EventType(cmd.event_type)
    except ValueError:
        raise InvalidInput(
            "event_type must be one of sale, lead, signup, custom, renewal", field="event_type"
        ) from None
    if cmd.click_id is not None and not is_click_id(cmd.click_id):
        raise InvalidInput("click_id is malformed", field="click_id")
    # Stripped as the postback path strips it, so both store (and price) the same id.
    customer_id = check_customer_id(cmd.customer_id) if cmd.customer_id is not None else None
    if event_type is EventType.RENEWAL and not customer_id:
        raise InvalidInput("a renewal needs the subscriber's customer_id", field="customer_id")
    now = clock.now()
    with uow:
        program = uow.programs.by_token(cmd.token)
        if program is None:
            raise Forbidden("unknown postback token", field="token")
        amount = parse_amount(cmd.amount if cmd.amount is not None else "0")
        currency = check_currency(cmd.currency) if cmd.currency else program.currency
        check_minor_units(amount, currency)
        existing = uow.conversions.by_order(program.id, order_id)
        if existing is not None:
            return ConversionRecorded(existing, True, None, "duplicate order id: already recorded")

        offer_id: OfferId | None = None
        partner_id: PartnerId | None = None
        click_id: ClickId | None = None
        attributed_by = AttributedBy.NONE
        notes: list[str] = []
        click: Click | None = None
        if cmd.click_id:
            click = uow.clicks.get(ClickId(cmd.click_id))
            window = timedelta(days=program.cookie_window_days)
            if click is None or click.program_id != program.id:
                notes.append("click id not found in this program")
            elif now - click.created_at > window:
                notes.append(f"click older than the {program.cookie_window_days}-day window")
            else:
                offer_id, partner_id, click_id = click.offer_id, click.partner_id, click.id
                attributed_by = AttributedBy.CLICK_ID
                notes.append(f"click {click.id} at {click.created_at.isoformat()}")
        coupon_code = check_coupon_code(cmd.coupon) if cmd.coupon else None
        if coupon_code and attributed_by is AttributedBy.NONE:
            coupon = uow.coupons.by_code(program.id, coupon_code)
            if coupon is None:
                notes.append(f"coupon {coupon_code} unknown")
            else:
                offer_id, partner_id = coupon.offer_id, coupon.partner_id
                attributed_by = AttributedBy.COUPON
                notes.append(f"coupon {coupon_code}")
        if customer_id and attributed_by is AttributedBy.NONE:
            # As the tracker does (`attribute`, last candidate): the partner who last brought
            # this customer — a subscription's renewal, a repeat order without a click.
            earlier = uow.conversions.last_attributed_to_customer(program.id, customer_id)
            if earlier is not None and earlier.partner_id is not None:
                offer_id, partner_id = earlier.offer_id, earlier.partner_id
                click_id = earlier.click_id
                attributed_by = AttributedBy.CUSTOMER
                notes.append(f"customer {customer_id} last brought by partner {partner_id}")

        commission: Money | None = None
        priced: Priced | None = None
        status = ConversionStatus.PENDING
        flags: str | None = None
        flagged = False
        if partner_id is not None and offer_id is not None:
            partner = uow.partners.get(partner_id)
            offer = uow.offers.get(offer_id)
            if partner is None or offer is None or partner.status not in EARNING_STATUSES:
                status = ConversionStatus.REJECTED
                notes.append("partner is not approved or active: no commission")
            else:
                # The one pricing path (the tracker's writer calls it the same way).
                priced = commission_for_conversion(
                    uow.plans,
                    uow.facts,
                    uow.rates,
                    _terms(program),
                    ConversionInput(
                        partner_id=partner_id,
                        offer_id=offer_id,
                        event_type=event_type.value,
                        amount=Money(amount, currency),
                        at=now,
                        customer_id=customer_id,
                        country=click.country if click is not None else None,
                    ),
                    simple_plan=offer.commission_plan,
                )
                commission = priced.amount
                notes.append(priced.explanation)
            evidence = (
                ClickEvidence(click.created_at, click.fraud_score, click.flags)
                if click is not None and attributed_by is AttributedBy.CLICK_ID
                else None
            )
            score = score_attributed(now, evidence)
            flags, flagged = score_flags(score), score.flagged
            if flagged:
                notes.append(
                    f"fraud score {score.score} ({'; '.join(score.reasons)}): "
                    "the commission stays pending until reviewed"
                )
        else:
            notes.append("not attributed to a partner")

        # The row first, then the caps (as the tracker's writer does): a concurrent record
        # of the same order waits on the row and then finds it, so it never reserves; and a
        # reservation under this order's id found now can only be a leftover of an attempt
        # killed before its commit, which the reservation replaces.
        conversion = uow.conversions.add(
            Conversion(
                id=ConversionId(0),
                program_id=program.id,
                offer_id=offer_id,
                partner_id=partner_id,
                order_id=order_id,
                event_type=event_type,
                amount=amount,
                currency=currency,
                status=status,
                attributed_by=attributed_by,
                created_at=now,
                click_id=click_id,
                customer_id=customer_id,
                coupon_code=coupon_code,
                is_flagged=flagged,
                flags=flags,
            )
        )
        if conversion is None:
            existing = uow.conversions.by_order(program.id, order_id)
            assert existing is not None  # committed by the transaction we waited for
            return ConversionRecorded(existing, True, None, "duplicate order id: already recorded")

        if partner_id is not None and status is ConversionStatus.PENDING:
            converted = priced.fx.converted.amount if priced and priced.fx else None
            verdict = uow.conversion_caps.reserve(
                program_id=program.id,
                offer_id=offer_id,
                partner_id=partner_id,
                at=now,
                revenue=cap_revenue(amount, currency, program.currency, converted),
                payout=commission.amount
                if commission is not None and commission.currency == program.currency
                else Decimal(0),
                reservation_id=cap_reservation_id(program.id, order_id),
                order_id=order_id,
            )
            if not verdict.allowed:
                commission = None
                conversion = uow.conversions.reject(conversion.id, flags_text(flags, verdict.flag))
                notes.append(verdict.reason or "over a hard cap: not payable")

        explanation = "; ".join(notes)
        if commission is not None and partner_id is not None:
            key = f"commission:{conversion.id}"
            uow.ledger.append(
                [
                    LedgerEntry(
                        id=0,
                        program_id=program.id,
                        partner_id=partner_id,
                        conversion_id=conversion.id,
                        kind=EntryKind.COMMISSION,
                        bucket=LedgerBucket.PENDING,
                        amount=commission,
                        reason=explanation,
                        author="system:postback",
                        created_at=now,
                        txn_key=key,
                        fx_rate=priced.fx_rate if priced else None,
                        fx_rate_date=priced.fx_rate_date if priced else None,
                    )
                ],
                txn_id=key,
            )
    return ConversionRecorded(conversion, False, commission, explanation)
