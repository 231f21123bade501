"""Cap rules, usage, reservations and changes (pure values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from partnerflow.caps.periods import Period
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.core.money import MICROS

CapId = int


class CapMetric(enum.StrEnum):
    CLICKS = "clicks"
    CONVERSIONS = "conversions"
    REVENUE = "revenue"  # order value the program takes in (program currency)
    PAYOUT = "payout"  # commission the program pays out (program currency)

    @property
    def is_money(self) -> bool:
        return self in (CapMetric.REVENUE, CapMetric.PAYOUT)

    @property
    def event(self) -> str:
        """Which tracked event charges this metric."""
        return "click" if self is CapMetric.CLICKS else "conversion"


class CapMode(enum.StrEnum):
    HARD = "hard"  # over-cap clicks go to the fallback URL; over-cap conversions not payable
    SOFT = "soft"  # alert only


class ScopeKind(enum.StrEnum):
    OFFER = "offer"
    PARTNER = "partner"
    PARTNER_OFFER = "partner_offer"


@dataclass(frozen=True, slots=True)
class CapScope:
    """What a cap counts: one offer (all partners), one partner (all offers), or one
    partner on one offer."""

    offer_id: OfferId | None = None
    partner_id: PartnerId | None = None

    @property
    def kind(self) -> ScopeKind:
        if self.offer_id is not None and self.partner_id is not None:
            return ScopeKind.PARTNER_OFFER
        if self.offer_id is not None:
            return ScopeKind.OFFER
        return ScopeKind.PARTNER

    def matches(self, offer_id: OfferId | None, partner_id: PartnerId | None) -> bool:
        if self.offer_id is not None and self.offer_id != offer_id:
            return False
        return self.partner_id is None or self.partner_id == partner_id

    def describe(self) -> str:
        if self.kind is ScopeKind.PARTNER_OFFER:
            return f"partner {self.partner_id} on offer {self.offer_id}"
        if self.kind is ScopeKind.OFFER:
            return f"offer {self.offer_id}"
        return f"partner {self.partner_id}"


@dataclass(frozen=True, slots=True)
class AdaptiveBounds:
    """Manager-set limits for automatic changes: the cap stays in [minimum, maximum] and
    moves at most `max_step_percent` per run."""

    minimum: Decimal
    maximum: Decimal
    max_step_percent: Decimal


@dataclass(frozen=True, slots=True)
class CapRule:
    id: CapId
    program_id: ProgramId
    scope: CapScope
    metric: CapMetric
    period: Period
    limit: Decimal  # a count, or an amount in the program currency
    mode: CapMode
    alert_thresholds: tuple[Decimal, ...] = (Decimal(90),)  # percent of the limit
    adaptive: AdaptiveBounds | None = None
    active: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def identity(self) -> tuple[Any, ...]:
        """Two active rules with the same identity would overlap (which one wins?)."""
        return (
            self.program_id,
            self.scope.offer_id,
            self.scope.partner_id,
            self.metric,
            self.period,
        )

    @property
    def limit_units(self) -> int:
        """The limit in counter units: a count, or micro-units of money."""
        return to_units(self.metric, self.limit)

    def describe(self) -> str:
        unit = "" if not self.metric.is_money else " (program currency)"
        return (
            f"{self.mode.value} cap #{self.id}: {format_amount(self.metric, self.limit)} "
            f"{self.metric.value}{unit} per {self.period.value.replace('_', ' ')} "
            f"for {self.scope.describe()}"
        )


def to_units(metric: CapMetric, value: Decimal) -> int:
    """Counters hold integers: counts as they are, money in micro-units (exact)."""
    return int(value * MICROS) if metric.is_money else int(value)


def from_units(metric: CapMetric, units: int) -> Decimal:
    return Decimal(units) / MICROS if metric.is_money else Decimal(units)


def format_amount(metric: CapMetric, value: Decimal) -> str:
    if metric.is_money:
        return f"{value.quantize(Decimal('0.01'))}"
    return f"{int(value)}"


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter to move: `key` names a cap's period ('cap:7:2026-03-02'); `limit` is None
    for a soft cap (counted, never refused)."""

    key: str
    amount: int
    limit: int | None
    cap_id: CapId
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """A granted reservation; `totals` are the counters after it (same order as charges).
    `id` is empty when it was not recorded for release."""

    id: str
    charges: tuple[Charge, ...]
    totals: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing was reserved: `charge` would have taken its counter past its limit."""

    charge: Charge
    used: int

    @property
    def cap_id(self) -> CapId:
        return self.charge.cap_id


@dataclass(frozen=True, slots=True)
class CapAlert:
    cap_id: CapId
    period_key: str
    threshold: Decimal  # percent
    used: Decimal
    limit: Decimal
    message: str


@dataclass(frozen=True, slots=True)
class CapDecision:
    """The outcome of checking an event against its caps."""

    allowed: bool
    reservation: Reservation | None
    refused_cap: CapRule | None = None
    reason: str | None = None
    fallback_url: str | None = None
    alerts: tuple[CapAlert, ...] = ()


@dataclass(frozen=True, slots=True)
class CapUsage:
    cap: CapRule
    period_key: str
    used: Decimal
    start: datetime | None
    end: datetime | None

    @property
    def percent(self) -> Decimal:
        if self.cap.limit == 0:
            return Decimal(100) if self.used > 0 else Decimal(0)
        return (self.used * 100 / self.cap.limit).quantize(Decimal("0.1"))

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.cap.limit - self.used)


class ChangeSource(enum.StrEnum):
    MANUAL = "manual"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True, slots=True)
class CapChange:
    """One change of a cap (or one adaptive evaluation that held it), with why."""

    id: int
    cap_id: CapId
    at: datetime
    actor: str
    source: ChangeSource
    old_limit: Decimal | None
    new_limit: Decimal
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    run_key: str | None = None

    @property
    def changed(self) -> bool:
        return self.old_limit != self.new_limit


@dataclass(frozen=True, slots=True)
class EventTotals:
    """What happened in a window, in the program currency. `conversions` counts every
    conversion not rejected (refunded ones included, as CR is gross); `refunds` the reversed
    ones; revenue and payout leave rejected and reversed conversions out."""

    clicks: int = 0
    impressions: int = 0
    conversions: int = 0
    sales: int = 0
    leads: int = 0
    refunds: int = 0
    revenue: Decimal = Decimal(0)
    payout: Decimal = Decimal(0)

    def __add__(self, other: EventTotals) -> EventTotals:
        return EventTotals(
            clicks=self.clicks + other.clicks,
            impressions=self.impressions + other.impressions,
            conversions=self.conversions + other.conversions,
            sales=self.sales + other.sales,
            leads=self.leads + other.leads,
            refunds=self.refunds + other.refunds,
            revenue=self.revenue + other.revenue,
            payout=self.payout + other.payout,
        )
