"""Program goals and per-partner targets: progress, linear run-rate projection, and which
targets were met (the hook commission-plan bonuses hang on).

Projection: `projected = actual / elapsed`, where `elapsed` is the share of the period gone
(0..1, by wall-clock time in the program's timezone). It assumes the rest of the period runs
at the pace so far; before 5% of the period has passed the projection is withheld (None),
because a few early events extrapolate wildly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from partnerflow.caps.periods import Period, PeriodWindow
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.core.money import parse_amount

MIN_ELAPSED_FOR_PROJECTION = 0.05
EVERY_PERIOD = "*"


class GoalMetric(enum.StrEnum):
    SALES = "sales"
    LEADS = "leads"  # leads and sign-ups
    REVENUE = "revenue"  # program currency
    CLICKS = "clicks"
    IMPRESSIONS = "impressions"

    @property
    def is_money(self) -> bool:
        return self is GoalMetric.REVENUE


class TargetKind(enum.StrEnum):
    ABSOLUTE = "absolute"
    GROWTH = "growth"  # +X% over the previous period's actual


def parse_goal_metric(value: str) -> GoalMetric:
    try:
        return GoalMetric(value.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in GoalMetric)
        raise InvalidInput(f"metric must be one of {allowed}", field="metric") from None


def check_target(metric: GoalMetric, raw: object) -> Decimal:
    if isinstance(raw, str) and raw.strip().startswith("-"):
        raise InvalidInput("target must not be negative", field="target")
    value = parse_amount(raw, field="target")
    if not metric.is_money and value != value.to_integral_value():
        raise InvalidInput(f"target for {metric.value} must be a whole number", field="target")
    return value


def check_growth(raw: object) -> Decimal:
    value = parse_amount(raw, field="growth_percent", allow_negative=True)
    if value <= -100:
        raise InvalidInput("growth_percent must be above -100", field="growth_percent")
    return value


@dataclass(frozen=True, slots=True)
class ProgramGoal:
    id: int
    program_id: ProgramId
    metric: GoalMetric
    period: Period
    period_key: str  # '*' = every period
    target: Decimal


@dataclass(frozen=True, slots=True)
class PartnerTarget:
    id: int
    program_id: ProgramId
    partner_id: PartnerId
    metric: GoalMetric
    period: Period
    period_key: str
    kind: TargetKind
    target: Decimal | None = None
    growth_percent: Decimal | None = None
    bonus_id: str | None = None

    def describe(self) -> str:
        if self.kind is TargetKind.GROWTH:
            return f"+{self.growth_percent}% {self.metric.value} over the previous {self.period}"
        return f"{self.target} {self.metric.value} per {self.period}"


@dataclass(frozen=True, slots=True)
class Progress:
    metric: GoalMetric
    period_key: str
    actual: Decimal
    target: Decimal
    percent: Decimal  # actual / target, in percent (100 when the target is 0)
    projected: Decimal | None  # linear run-rate end-of-period value
    met: bool
    on_track: bool | None  # projected >= target; None when not projected
    closed: bool  # the period is over


def applies(key: str, window: PeriodWindow) -> bool:
    return key in (EVERY_PERIOD, window.key)


def pick(items: list[ProgramGoal], window: PeriodWindow) -> list[ProgramGoal]:
    """Per metric, a goal set for this very period wins over the every-period one."""
    chosen: dict[GoalMetric, ProgramGoal] = {}
    for goal in items:
        if goal.period is not window.period or not applies(goal.period_key, window):
            continue
        if goal.metric not in chosen or goal.period_key == window.key:
            chosen[goal.metric] = goal
    return list(chosen.values())


def growth_target(previous_actual: Decimal, growth_percent: Decimal) -> Decimal:
    return previous_actual * (100 + growth_percent) / 100


def target_value(target: PartnerTarget, previous_actual: Decimal) -> Decimal:
    if target.kind is TargetKind.GROWTH:
        assert target.growth_percent is not None
        value = growth_target(previous_actual, target.growth_percent)
        if not target.metric.is_money:
            # "+10% over 15 sales" is 16.5: the partner needs 17 to have met it.
            value = value.to_integral_value(rounding="ROUND_CEILING")
        return value
    assert target.target is not None
    return target.target


def project(actual: Decimal, elapsed: float) -> Decimal | None:
    """Linear run-rate: what the period ends at if the pace so far continues."""
    if elapsed >= 1:
        return actual
    if elapsed < MIN_ELAPSED_FOR_PROJECTION:
        return None
    return (actual / Decimal(str(elapsed))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def progress(
    metric: GoalMetric, window: PeriodWindow, actual: Decimal, target: Decimal, now: datetime
) -> Progress:
    elapsed = window.elapsed_fraction(now)
    projected = project(actual, elapsed)
    percent = (
        Decimal(100)
        if target == 0
        else (actual * 100 / target).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    )
    return Progress(
        metric=metric,
        period_key=window.key,
        actual=actual,
        target=target,
        percent=percent,
        projected=projected,
        met=actual >= target,
        on_track=None if projected is None else projected >= target,
        closed=elapsed >= 1,
    )
