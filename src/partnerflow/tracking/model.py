"""Tracking entities and events (pure values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from partnerflow.core.ids import (
    ClickId,
    ConversionId,
    CouponId,
    LinkId,
    OfferId,
    PartnerId,
    ProgramId,
)

SUB_ID_KEYS = ("sub1", "sub2", "sub3", "sub4", "sub5")


class EventType(enum.StrEnum):
    SALE = "sale"
    LEAD = "lead"
    SIGNUP = "signup"
    CUSTOM = "custom"
    # A subscription's later payment (needs the customer id): what `recurring` commission
    # rules pay, numbered by the customer's earlier sale and renewal conversions.
    RENEWAL = "renewal"


class ConversionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVERSED = "reversed"


class AttributedBy(enum.StrEnum):
    CLICK_ID = "click_id"
    COOKIE = "cookie"
    COUPON = "coupon"
    CUSTOMER = "customer"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class TrackingLink:
    id: LinkId
    code: str
    program_id: ProgramId
    partner_id: PartnerId
    offer_id: OfferId
    created_at: datetime
    sub_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Coupon:
    id: CouponId
    code: str
    program_id: ProgramId
    partner_id: PartnerId
    offer_id: OfferId
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Click:
    id: ClickId
    link_id: LinkId
    program_id: ProgramId
    partner_id: PartnerId
    offer_id: OfferId
    created_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    referrer: str | None = None
    sub_ids: dict[str, str] = field(default_factory=dict)
    country: str | None = None
    device: str | None = None
    is_unique: bool = True
    is_bot: bool = False
    fraud_score: int = 0  # fraud.scoring.score_click at the click (0 clean .. 100)
    flags: str | None = None  # short codes: dropped parameters and the score's signals


@dataclass(frozen=True, slots=True)
class Conversion:
    id: ConversionId
    program_id: ProgramId
    offer_id: OfferId | None
    partner_id: PartnerId | None
    order_id: str
    event_type: EventType
    amount: Decimal
    currency: str
    status: ConversionStatus
    attributed_by: AttributedBy
    created_at: datetime
    click_id: ClickId | None = None
    customer_id: str | None = None
    coupon_code: str | None = None
    is_flagged: bool = False  # fraud: the commission stays pending until reviewed
    flags: str | None = None  # short codes: fraud signals, `cap:<id>` when over a hard cap
