"""Pure cap rules: validation, which caps an event charges, threshold alerts, decisions."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from partnerflow.caps.model import (
    AdaptiveBounds,
    CapAlert,
    CapDecision,
    CapMetric,
    CapMode,
    CapRule,
    Charge,
    Refused,
    Reservation,
    format_amount,
    from_units,
    to_units,
)
from partnerflow.caps.periods import ttl_seconds, window_at
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.core.money import parse_amount

# Counters outlive their period by this much so late releases (refunds) and reports find them.
COUNTER_GRACE = timedelta(days=2)
MAX_COUNT = 10**12


class EventKind(enum.StrEnum):
    CLICK = "click"
    CONVERSION = "conversion"


@dataclass(frozen=True, slots=True)
class CapEvent:
    """What the tracker knows when it asks the caps: a click, or a conversion with its
    order value and commission in the program currency."""

    kind: EventKind
    program_id: ProgramId
    offer_id: OfferId | None
    partner_id: PartnerId | None
    at: datetime
    revenue: Decimal = Decimal(0)
    payout: Decimal = Decimal(0)


def parse_metric(value: str) -> CapMetric:
    try:
        return CapMetric(value.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in CapMetric)
        raise InvalidInput(f"metric must be one of {allowed}", field="metric") from None


def parse_mode(value: str) -> CapMode:
    try:
        return CapMode(value.strip().lower())
    except ValueError:
        raise InvalidInput("mode must be hard or soft", field="mode") from None


def parse_thresholds(raw: str | Iterable[object]) -> tuple[Decimal, ...]:
    """'80,90' -> (80, 90): percents of the limit in (0, 100], sorted, no duplicates."""
    items = [p for p in raw.split(",") if p.strip()] if isinstance(raw, str) else list(raw)
    out: set[Decimal] = set()
    for item in items:
        try:
            value = Decimal(str(item).strip().rstrip("%"))
        except InvalidOperation:
            raise InvalidInput(
                f"alert threshold {str(item)[:16]!r} is not a number", field="alerts"
            ) from None
        if not value.is_finite() or value <= 0 or value > 100:
            raise InvalidInput(
                f"alert threshold {value} must be a percent in (0, 100]", field="alerts"
            )
        out.add(value)
    return tuple(sorted(out))


def check_limit(metric: CapMetric, raw: object, *, field: str = "limit") -> Decimal:
    """A cap limit: never negative; counts are whole numbers; money has at most 6 decimals."""
    if isinstance(raw, str) and raw.strip().startswith("-"):
        raise InvalidInput(f"{field} must not be negative (got {raw.strip()[:32]})", field=field)
    value = parse_amount(raw, field=field)
    if not metric.is_money:
        if value != value.to_integral_value():
            raise InvalidInput(f"{field} for {metric.value} must be a whole number", field=field)
        if value > MAX_COUNT:
            raise InvalidInput(f"{field} is out of range (max {MAX_COUNT})", field=field)
        return Decimal(int(value))
    return value


def check_bounds(
    metric: CapMetric, minimum: object, maximum: object, step: object
) -> AdaptiveBounds:
    low = check_limit(metric, minimum, field="adaptive_min")
    high = check_limit(metric, maximum, field="adaptive_max")
    pct = parse_amount(step, field="max_step_percent")
    if low > high:
        raise InvalidInput(
            f"adaptive minimum {format_amount(metric, low)} is above the maximum "
            f"{format_amount(metric, high)}",
            field="adaptive_min",
        )
    if pct <= 0 or pct > 100:
        raise InvalidInput("max_step_percent must be in (0, 100]", field="max_step_percent")
    return AdaptiveBounds(minimum=low, maximum=high, max_step_percent=pct)


@dataclass(frozen=True, slots=True)
class ProposedCap:
    """A rule to create or update, with the usage of its current period (None if unknown)."""

    rule: CapRule
    current_usage: Decimal | None
    period_key: str


def validate_caps(
    proposed: Sequence[ProposedCap], existing: Sequence[CapRule], *, force: bool = False
) -> None:
    """Check every proposed rule against the others and the stored ones; raise one error
    naming every problem, so a batch is applied whole or not at all."""
    problems: list[str] = []
    conflicts: list[str] = []
    replaced = {p.rule.id for p in proposed if p.rule.id}
    others = [r for r in existing if r.active and r.id not in replaced]
    seen: dict[tuple[object, ...], int] = {}
    for index, item in enumerate(proposed, start=1):
        rule = item.rule
        label = f"cap {index}" if len(proposed) > 1 else "cap"
        if rule.limit < 0:
            problems.append(f"{label}: limit must not be negative")
        if rule.scope.offer_id is None and rule.scope.partner_id is None:
            problems.append(f"{label}: give an offer, a partner, or both")
        bounds = rule.adaptive
        if bounds is not None:
            if bounds.minimum < 0 or bounds.maximum < 0:
                problems.append(f"{label}: adaptive bounds must not be negative")
            if not bounds.minimum <= rule.limit <= bounds.maximum:
                problems.append(
                    f"{label}: limit {format_amount(rule.metric, rule.limit)} is outside the "
                    f"adaptive bounds {format_amount(rule.metric, bounds.minimum)}.."
                    f"{format_amount(rule.metric, bounds.maximum)}"
                )
        if not rule.active:
            continue
        for other in others:
            if other.identity == rule.identity:
                conflicts.append(
                    f"{label} overlaps cap #{other.id} ({other.scope.describe()}, "
                    f"{other.metric.value} per {other.period.value}): change that cap instead"
                )
        if rule.identity in seen:
            conflicts.append(f"{label} overlaps cap {seen[rule.identity]} in the same request")
        seen.setdefault(rule.identity, index)
        used = item.current_usage
        if used is not None and used > rule.limit and not force:
            problems.append(
                f"{label}: limit {format_amount(rule.metric, rule.limit)} is below the usage "
                f"already counted this period ({format_amount(rule.metric, used)} "
                f"{rule.metric.value} in {item.period_key}); every further "
                f"{rule.metric.event} would be refused until the period ends. "
                "Use force to apply it anyway"
            )
    if conflicts:
        raise Conflict("; ".join(conflicts + problems), field="cap")
    if problems:
        raise InvalidInput("; ".join(problems), field="cap")


def metrics_for(kind: EventKind) -> frozenset[CapMetric]:
    if kind is EventKind.CLICK:
        return frozenset({CapMetric.CLICKS})
    return frozenset({CapMetric.CONVERSIONS, CapMetric.REVENUE, CapMetric.PAYOUT})


def matching_caps(caps: Iterable[CapRule], event: CapEvent) -> list[CapRule]:
    """The active caps this event counts against."""
    metrics = metrics_for(event.kind)
    return [
        c
        for c in caps
        if c.active
        and c.program_id == event.program_id
        and c.metric in metrics
        and c.scope.matches(event.offer_id, event.partner_id)
    ]


def event_units(metric: CapMetric, event: CapEvent) -> int:
    if metric is CapMetric.REVENUE:
        return to_units(metric, max(Decimal(0), event.revenue))
    if metric is CapMetric.PAYOUT:
        return to_units(metric, max(Decimal(0), event.payout))
    return 1


def counter_key(cap_id: int, key: str) -> str:
    return f"cap:{cap_id}:{key}"


def charges_for(caps: Iterable[CapRule], event: CapEvent, tz: str) -> list[Charge]:
    """One charge per matching cap, ordered by key (SQL locks rows in that order, so two
    reservations never wait on each other in a cycle)."""
    out: list[Charge] = []
    for cap in matching_caps(caps, event):
        amount = event_units(cap.metric, event)
        if amount == 0 and cap.metric.is_money:
            continue  # a zero-value event cannot take a money cap over
        window = window_at(cap.period, event.at, tz)
        out.append(
            Charge(
                key=counter_key(cap.id, window.key),
                amount=amount,
                limit=cap.limit_units if cap.mode is CapMode.HARD else None,
                cap_id=cap.id,
                ttl_seconds=ttl_seconds(window, event.at, grace=COUNTER_GRACE),
            )
        )
    return sorted(out, key=lambda c: c.key)


def crossed_alerts(cap: CapRule, period: str, before: int, after: int) -> list[CapAlert]:
    """Thresholds this increment crossed (before < threshold <= after). Because increments
    are atomic, exactly one reservation sees each crossing. A soft cap also alerts at 100%."""
    thresholds = set(cap.alert_thresholds)
    if cap.mode is CapMode.SOFT:
        thresholds.add(Decimal(100))
    limit = cap.limit_units
    alerts: list[CapAlert] = []
    for pct in sorted(thresholds):
        line = limit * pct / 100
        if before < line <= after:
            used = from_units(cap.metric, after)
            what = "reached" if pct < 100 else "exceeded" if after > limit else "reached"
            alerts.append(
                CapAlert(
                    cap_id=cap.id,
                    period_key=period,
                    threshold=pct,
                    used=used,
                    limit=cap.limit,
                    message=(
                        f"{cap.describe()} {what} {pct.normalize():f}% in {period}: "
                        f"{format_amount(cap.metric, used)} of "
                        f"{format_amount(cap.metric, cap.limit)}"
                    ),
                )
            )
    return alerts


def decide(
    caps: Mapping[int, CapRule],
    outcome: Reservation | Refused,
    event: CapEvent,
    *,
    fallback_url: str | None = None,
) -> CapDecision:
    """Turn a counter outcome into what the tracker does: a refused click goes to the
    fallback URL; a refused conversion is recorded but not payable."""
    if isinstance(outcome, Refused):
        cap = caps[outcome.cap_id]
        period = outcome.charge.key.rsplit(":", 1)[-1]
        used = from_units(cap.metric, outcome.used)
        consequence = (
            "sent to the fallback URL"
            if event.kind is EventKind.CLICK
            else "recorded but not payable"
        )
        return CapDecision(
            allowed=False,
            reservation=None,
            refused_cap=cap,
            reason=(
                f"{cap.describe()} is full for {period} ({format_amount(cap.metric, used)} "
                f"of {format_amount(cap.metric, cap.limit)}): {event.kind.value} {consequence}"
            ),
            fallback_url=fallback_url if event.kind is EventKind.CLICK else None,
        )
    alerts: list[CapAlert] = []
    for charge, total in zip(outcome.charges, outcome.totals, strict=True):
        charged = caps.get(charge.cap_id)
        if charged is not None:
            period = charge.key.rsplit(":", 1)[-1]
            alerts.extend(crossed_alerts(charged, period, total - charge.amount, total))
    return CapDecision(allowed=True, reservation=outcome, alerts=tuple(alerts))
