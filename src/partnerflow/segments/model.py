"""Partner segment values: the features a rule reads and the assignment it produces."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from partnerflow.core.errors import InvalidInput


class PartnerSegment(enum.StrEnum):
    RISKY = "risky"
    DORMANT = "dormant"
    STARS = "stars"
    RISING = "rising"
    STEADY = "steady"


@dataclass(frozen=True, slots=True)
class PartnerPeriodFeatures:
    """One partner's activity in the current period and the period just before it.

    `refunds` counts the current period's conversions that were refunded (reversed), the
    same definition as the refund-rate KPI. `days_since_last_activity` is None when the
    partner never had a click or conversion. `quality_score` (0-100, from fraud scoring)
    is optional: without it, risk is judged on the refund rate alone.
    """

    partner_id: int
    clicks: int = 0
    conversions: int = 0
    refunds: int = 0
    revenue: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    previous_clicks: int = 0
    previous_conversions: int = 0
    previous_revenue: Decimal = Decimal(0)
    previous_commission: Decimal = Decimal(0)
    days_since_last_activity: int | None = None
    quality_score: int | None = None

    def __post_init__(self) -> None:
        counts = (self.clicks, self.conversions, self.refunds)
        previous = (self.previous_clicks, self.previous_conversions)
        if any(c < 0 for c in (*counts, *previous)):
            raise InvalidInput(f"partner {self.partner_id}: counts must not be negative")
        if self.refunds > self.conversions:
            raise InvalidInput(f"partner {self.partner_id}: more refunds than conversions")
        for amount in (self.revenue, self.previous_revenue):
            if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
                raise InvalidInput(
                    f"partner {self.partner_id}: revenue must be a non-negative Decimal"
                )
        if self.days_since_last_activity is not None and self.days_since_last_activity < 0:
            raise InvalidInput(f"partner {self.partner_id}: days since last activity < 0")
        if self.quality_score is not None and not 0 <= self.quality_score <= 100:
            raise InvalidInput(f"partner {self.partner_id}: quality score must be 0-100")

    @property
    def refund_rate(self) -> Decimal | None:
        """Refunded ÷ all conversions of the current period; None without conversions."""
        if self.conversions == 0:
            return None
        return Decimal(self.refunds) / Decimal(self.conversions)


@dataclass(frozen=True, slots=True)
class PartnerSegmentAssignment:
    partner_id: int
    segment: PartnerSegment
    rule: str
    """Stable code of the rule that decided, e.g. ``risky.refund_rate``."""
    reason: str
    """The same decision in a sentence, with the numbers compared."""
