"""Partner segment rules: stars, rising, steady, dormant, risky — explainable, pure.

Rules are checked in this order and the first match wins:

1. risky   — quality score below `risky_quality_below`, or refund rate at or above
             `risky_refund_rate` on at least `risky_min_conversions` conversions;
2. dormant — no click or conversion for `dormant_after_days` days (or never);
3. stars   — the period's performance metric in the program's top fifth (at or above the
             `star_percentile`th percentile of partners with any) and at least
             `star_min_conversions` conversions;
4. rising  — the metric up by `rising_growth` or more on the previous period (with at least
             `rising_min_conversions` conversions), or clicks up by as much on at least
             `rising_min_clicks` clicks;
5. steady  — everyone else.

Risk comes first because a partner whose traffic is suspect must be looked at whatever its
volume; dormancy before performance because a partner with no recent activity cannot be a
star of the current period. The metric is revenue; a program without any revenue in the
period (lead or sign-up programs) is judged on conversions instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from partnerflow.core.errors import InvalidInput
from partnerflow.segments.model import (
    PartnerPeriodFeatures,
    PartnerSegment,
    PartnerSegmentAssignment,
)


@dataclass(frozen=True, slots=True)
class PartnerSegmentPolicy:
    """Thresholds (see docs/segmentation.md for where each number comes from)."""

    risky_quality_below: int = 50
    risky_refund_rate: Decimal = Decimal("0.25")
    risky_min_conversions: int = 10
    dormant_after_days: int = 30
    star_percentile: Decimal = Decimal(80)
    star_min_conversions: int = 5
    rising_growth: Decimal = Decimal("0.5")
    rising_min_conversions: int = 3
    rising_min_clicks: int = 100

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.star_percentile <= Decimal(100):
            raise InvalidInput("star percentile must be between 0 and 100")
        if self.dormant_after_days < 1:
            raise InvalidInput("dormant_after_days must be at least 1")
        if self.rising_growth <= 0:
            raise InvalidInput("rising growth must be positive")
        if not Decimal(0) < self.risky_refund_rate <= Decimal(1):
            raise InvalidInput("risky refund rate must be in (0, 1]")


DEFAULT_PARTNER_POLICY = PartnerSegmentPolicy()


def percentile(values: Sequence[Decimal], q: Decimal) -> Decimal:
    """The q-th percentile with linear interpolation (numpy's default), exact in Decimal."""
    if not values:
        raise InvalidInput("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / Decimal(100)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def _money(amount: Decimal, currency: str | None) -> str:
    text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
    return f"{text} {currency}" if currency else text


def _pct(rate: Decimal) -> str:
    return f"{(rate * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


@dataclass(frozen=True, slots=True)
class _Context:
    """What a rule needs to know about the whole program: the star line and the metric."""

    by_revenue: bool
    star_line: Decimal | None
    currency: str | None

    def metric(self, f: PartnerPeriodFeatures) -> Decimal:
        return f.revenue if self.by_revenue else Decimal(f.conversions)

    def previous_metric(self, f: PartnerPeriodFeatures) -> Decimal:
        return f.previous_revenue if self.by_revenue else Decimal(f.previous_conversions)

    def show(self, value: Decimal) -> str:
        return _money(value, self.currency) if self.by_revenue else f"{value:g}"

    @property
    def metric_name(self) -> str:
        return "revenue" if self.by_revenue else "conversions"


def _context(
    features: Sequence[PartnerPeriodFeatures], policy: PartnerSegmentPolicy, currency: str | None
) -> _Context:
    by_revenue = any(f.revenue > 0 for f in features)
    ctx = _Context(by_revenue=by_revenue, star_line=None, currency=currency)
    positive = [m for m in (ctx.metric(f) for f in features) if m > 0]
    line = percentile(positive, policy.star_percentile) if positive else None
    return replace(ctx, star_line=line)


def _risky(f: PartnerPeriodFeatures, policy: PartnerSegmentPolicy) -> tuple[str, str] | None:
    if f.quality_score is not None and f.quality_score < policy.risky_quality_below:
        return (
            "risky.quality",
            f"traffic quality score {f.quality_score} is below {policy.risky_quality_below}",
        )
    rate = f.refund_rate
    if (
        rate is not None
        and f.conversions >= policy.risky_min_conversions
        and rate >= policy.risky_refund_rate
    ):
        return (
            "risky.refund_rate",
            f"{f.refunds} of {f.conversions} conversions refunded ({_pct(rate)}), at or above "
            f"{_pct(policy.risky_refund_rate)}",
        )
    return None


def _dormant(f: PartnerPeriodFeatures, policy: PartnerSegmentPolicy) -> tuple[str, str] | None:
    days = f.days_since_last_activity
    if days is None:
        return "dormant.never_active", "no click or conversion has ever been recorded"
    if days >= policy.dormant_after_days:
        return (
            "dormant.inactive",
            f"last click or conversion {days} days ago "
            f"(dormant after {policy.dormant_after_days} days)",
        )
    return None


def _star(
    f: PartnerPeriodFeatures, policy: PartnerSegmentPolicy, ctx: _Context
) -> tuple[str, str] | None:
    value = ctx.metric(f)
    if ctx.star_line is None or value <= 0 or value < ctx.star_line:
        return None
    if f.conversions < policy.star_min_conversions:
        return None
    return (
        "stars.top_performer",
        f"{ctx.metric_name} {ctx.show(value)} is at or above the program's "
        f"{policy.star_percentile:g}th percentile ({ctx.show(ctx.star_line)}) with "
        f"{f.conversions} conversions",
    )


def _growth(current: Decimal, previous: Decimal, needed: Decimal) -> bool:
    return current > previous and current >= previous * (1 + needed)


def _rising(
    f: PartnerPeriodFeatures, policy: PartnerSegmentPolicy, ctx: _Context
) -> tuple[str, str] | None:
    value, before = ctx.metric(f), ctx.previous_metric(f)
    if f.conversions >= policy.rising_min_conversions and _growth(
        value, before, policy.rising_growth
    ):
        change = "from nothing" if before == 0 else f"up {_pct((value - before) / before)} on"
        return (
            "rising.metric_growth",
            f"{ctx.metric_name} {ctx.show(value)} is {change} the previous period "
            f"({ctx.show(before)})",
        )
    clicks, clicks_before = Decimal(f.clicks), Decimal(f.previous_clicks)
    if f.clicks >= policy.rising_min_clicks and _growth(
        clicks, clicks_before, policy.rising_growth
    ):
        change = (
            "from none"
            if clicks_before == 0
            else f"up {_pct((clicks - clicks_before) / clicks_before)} on"
        )
        return (
            "rising.click_growth",
            f"{f.clicks} clicks, {change} the previous period ({f.previous_clicks})",
        )
    return None


def _steady(f: PartnerPeriodFeatures, ctx: _Context) -> tuple[str, str]:
    return (
        "steady.active",
        f"active {f.days_since_last_activity} day(s) ago with {ctx.metric_name} "
        f"{ctx.show(ctx.metric(f))} (previous period {ctx.show(ctx.previous_metric(f))}); "
        "no risk, star or growth rule applies",
    )


def _assign(
    f: PartnerPeriodFeatures,
    ctx: _Context,
    policy: PartnerSegmentPolicy = DEFAULT_PARTNER_POLICY,
) -> PartnerSegmentAssignment:
    checks = (
        (PartnerSegment.RISKY, _risky(f, policy)),
        (PartnerSegment.DORMANT, _dormant(f, policy)),
        (PartnerSegment.STARS, _star(f, policy, ctx)),
        (PartnerSegment.RISING, _rising(f, policy, ctx)),
    )
    for segment, hit in checks:
        if hit is not None:
            return PartnerSegmentAssignment(f.partner_id, segment, rule=hit[0], reason=hit[1])
    rule, reason = _steady(f, ctx)
    return PartnerSegmentAssignment(f.partner_id, PartnerSegment.STEADY, rule, reason)


def segment_partners(
    features: Iterable[PartnerPeriodFeatures],
    policy: PartnerSegmentPolicy = DEFAULT_PARTNER_POLICY,
    *,
    quality_scores: Mapping[int, int] | None = None,
    currency: str | None = None,
) -> list[PartnerSegmentAssignment]:
    """One assignment per partner, in input order.

    `quality_scores` (partner id -> 0-100, from fraud scoring) overrides the features'
    own `quality_score` where given; partners missing from it keep theirs.
    """
    rows = list(features)
    seen: set[int] = set()
    for f in rows:
        if f.partner_id in seen:
            raise InvalidInput(f"partner {f.partner_id} appears twice")
        seen.add(f.partner_id)
    if quality_scores:
        rows = [
            replace(f, quality_score=quality_scores[f.partner_id])
            if f.partner_id in quality_scores
            else f
            for f in rows
        ]
    ctx = _context(rows, policy, currency)
    return [_assign(f, ctx, policy) for f in rows]
