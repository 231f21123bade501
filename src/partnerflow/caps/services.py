"""Use cases: set and inspect caps, enforce them on the hot path, recompute adaptive caps,
goals and partner targets, ad-spend import and reports.

Every stored cap change (manual or adaptive) publishes `cap.changed` in its own transaction
through the unit of work's `events` sink (the outbox), so a change and its event commit
together."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from partnerflow.caps import adaptive, goals, spend
from partnerflow.caps.model import (
    CapAlert,
    CapChange,
    CapDecision,
    CapRule,
    CapScope,
    CapUsage,
    ChangeSource,
    EventTotals,
    format_amount,
    from_units,
)
from partnerflow.caps.periods import (
    Period,
    PeriodWindow,
    day_start,
    local_date,
    parse_period,
    parse_window_key,
    previous_window,
    ttl_seconds,
    window_at,
)
from partnerflow.caps.ports import CapCounter, CapsUnitOfWork
from partnerflow.caps.rules import (
    COUNTER_GRACE,
    CapEvent,
    EventKind,
    ProposedCap,
    charges_for,
    check_bounds,
    check_limit,
    counter_key,
    decide,
    parse_metric,
    parse_mode,
    parse_thresholds,
    validate_caps,
)
from partnerflow.core.clock import Clock
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.events import CAP_CHANGED
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.core.text import display_text
from partnerflow.programs.model import Program

# --- setting caps -------------------------------------------------------------------------


@dataclass(frozen=True)
class SetCap:
    """Create a cap, or change cap `cap_id`. Amounts are strings (exact decimals)."""

    program_id: ProgramId
    metric: str
    period: str
    limit: str
    mode: str = "hard"
    offer_id: int | None = None
    partner_id: int | None = None
    alerts: str = "90"
    adaptive_min: str | None = None
    adaptive_max: str | None = None
    adaptive_step_percent: str | None = None
    cap_id: int | None = None
    active: bool = True
    reason: str = ""


# A manager's reason is shown in the cap history and goes with `cap.changed` to the partners
# it concerns: one line of display text (the dashboard's field takes 500 characters).
MAX_REASON = 500


def _check_reason(reason: str) -> str:
    """Empty (the history then says "manual change"), or display text on one line."""
    return display_text(reason, field="reason", max_length=MAX_REASON) if reason.strip() else ""


def _program(uow: CapsUnitOfWork, program_id: ProgramId) -> Program:
    program = uow.programs.get(program_id)
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program")
    return program


def resolve_program(uow: CapsUnitOfWork, ref: str) -> Program:
    """A program by numeric id or slug."""
    ref = ref.strip()
    with uow:
        program = (
            uow.programs.get(ProgramId(int(ref))) if ref.isdigit() else uow.programs.by_slug(ref)
        )
    if program is None:
        raise NotFound(f"program {ref[:64]!r} not found", field="program")
    return program


def _usage_now(
    uow: CapsUnitOfWork,
    live: Mapping[str, int],
    program: Program,
    rule: CapRule,
    now: datetime,
) -> tuple[Decimal, PeriodWindow]:
    """Usage of the rule's current period: the live counter for a stored cap (read before
    the write transaction, see `set_caps`), the events already recorded for a new one."""
    window = window_at(rule.period, now, program.timezone)
    if rule.id:
        return from_units(rule.metric, live.get(counter_key(rule.id, window.key), 0)), window
    totals = _sum(
        uow.totals(
            program.id,
            program.currency,
            window.start,
            window.end,
            offer_id=rule.scope.offer_id,
            partner_id=rule.scope.partner_id,
        )
    )
    return _metric_value(rule, totals), window


def _metric_value(rule: CapRule, totals: EventTotals) -> Decimal:
    live_conversions = totals.conversions - totals.refunds
    return {
        "clicks": Decimal(totals.clicks),
        "conversions": Decimal(live_conversions),
        "revenue": totals.revenue,
        "payout": totals.payout,
    }[rule.metric.value]


def _sum(totals: Mapping[tuple[int | None, int | None], EventTotals]) -> EventTotals:
    out = EventTotals()
    for value in totals.values():
        out = out + value
    return out


def _build_rule(uow: CapsUnitOfWork, program: Program, cmd: SetCap, now: datetime) -> CapRule:
    metric = parse_metric(cmd.metric)
    period = parse_period(cmd.period)
    limit = check_limit(metric, cmd.limit)
    offer_id = OfferId(cmd.offer_id) if cmd.offer_id is not None else None
    partner_id = PartnerId(cmd.partner_id) if cmd.partner_id is not None else None
    if offer_id is None and partner_id is None:
        raise InvalidInput("a cap needs an offer, a partner, or both", field="scope")
    if offer_id is not None:
        offer = uow.offers.get(offer_id)
        if offer is None or offer.program_id != program.id:
            raise NotFound(f"offer {offer_id} not found in program {program.slug}", field="offer")
    if partner_id is not None:
        partner = uow.partners.get(partner_id)
        if partner is None or partner.program_id != program.id:
            raise NotFound(
                f"partner {partner_id} not found in program {program.slug}", field="partner"
            )
    bounds = None
    given = [cmd.adaptive_min, cmd.adaptive_max, cmd.adaptive_step_percent]
    if any(v is not None for v in given):
        if any(v is None for v in given):
            raise InvalidInput(
                "adaptive caps need a minimum, a maximum and a max step percent together",
                field="adaptive",
            )
        if partner_id is None or offer_id is None:
            raise InvalidInput(
                "adaptive bounds apply to partner x offer caps only", field="adaptive"
            )
        bounds = check_bounds(metric, cmd.adaptive_min, cmd.adaptive_max, cmd.adaptive_step_percent)
    return CapRule(
        id=cmd.cap_id or 0,
        program_id=program.id,
        scope=CapScope(offer_id=offer_id, partner_id=partner_id),
        metric=metric,
        period=period,
        limit=limit,
        mode=parse_mode(cmd.mode),
        alert_thresholds=parse_thresholds(cmd.alerts),
        adaptive=bounds,
        active=cmd.active,
        created_at=now,
        updated_at=now,
    )


def cap_payload(rule: CapRule, change: CapChange, currency: str) -> dict[str, Any]:
    """`cap.changed` data: the cap as it now is and the change with its reason."""

    def amount(value: Decimal | None) -> str | None:
        return None if value is None else format_amount(rule.metric, value)

    return {
        "cap": {
            "id": rule.id,
            "program_id": rule.program_id,
            "offer_id": rule.scope.offer_id,
            "partner_id": rule.scope.partner_id,
            "metric": rule.metric.value,
            "period": rule.period.value,
            "mode": rule.mode.value,
            "limit": amount(rule.limit),
            "currency": currency if rule.metric.is_money else None,
            "active": rule.active,
        },
        "change": {
            "id": change.id,
            "source": change.source.value,
            "old_limit": amount(change.old_limit),
            "new_limit": amount(change.new_limit),
            "reason": change.reason,
            "actor": change.actor,
            "at": change.at.isoformat(),
        },
    }


def _publish_cap(uow: CapsUnitOfWork, rule: CapRule, change: CapChange, currency: str) -> None:
    uow.events.publish(
        CAP_CHANGED,
        cap_payload(rule, change, currency),
        program_id=rule.program_id,
        partner_id=rule.scope.partner_id,
    )


def set_caps(
    uow: CapsUnitOfWork,
    counter: CapCounter,
    clock: Clock,
    commands: Sequence[SetCap],
    actor: str,
    *,
    force: bool = False,
) -> list[CapRule]:
    """Create or change caps, all or none: every command is validated (scope, limits, bounds,
    overlaps, usage already past the new limit) before anything is written."""
    if not commands:
        raise InvalidInput("no cap given", field="cap")
    commands = [replace(c, reason=_check_reason(c.reason)) for c in commands]
    now = clock.now()
    seeds: list[tuple[CapRule, Decimal, PeriodWindow]] = []
    stored: list[CapRule] = []
    # Live counters of the caps being changed, read outside the write transaction (the SQL
    # counter uses its own connection; SQLite allows one writer). The check is advisory:
    # enforcement itself stays exact whatever happens between this read and the commit.
    with uow:
        zones = {c.program_id: _program(uow, c.program_id).timezone for c in commands}
    keys = [
        counter_key(c.cap_id, window_at(parse_period(c.period), now, zones[c.program_id]).key)
        for c in commands
        if c.cap_id
    ]
    live = counter.usage(keys) if keys else {}
    with uow:
        proposed: list[ProposedCap] = []
        previous: dict[int, CapRule] = {}
        programs: dict[int, Program] = {}
        for cmd in commands:
            program = programs.setdefault(cmd.program_id, _program(uow, cmd.program_id))
            rule = _build_rule(uow, program, cmd, now)
            if rule.id:
                old = uow.caps.get(rule.id)
                if old is None or old.program_id != program.id:
                    raise NotFound(f"cap {rule.id} not found", field="cap")
                previous[rule.id] = old
                rule = replace(rule, created_at=old.created_at)
            used, window = _usage_now(uow, live, program, rule, now)
            proposed.append(ProposedCap(rule, used, window.key))
        existing = [c for pid in programs for c in uow.caps.list(ProgramId(pid))]
        validate_caps(proposed, existing, force=force)
        for item in proposed:
            rule = item.rule
            old = previous.get(rule.id)
            saved = uow.caps.update(rule) if old else uow.caps.add(rule)
            change = uow.cap_changes.add(
                CapChange(
                    id=0,
                    cap_id=saved.id,
                    at=now,
                    actor=actor,
                    source=ChangeSource.MANUAL,
                    old_limit=old.limit if old else None,
                    new_limit=saved.limit,
                    reason=cmd_reason(old, saved, item, force, commands),
                    inputs={"usage": str(item.current_usage), "period": item.period_key},
                ),
                saved.metric,
            )
            _publish_cap(uow, saved, change, programs[saved.program_id].currency)
            uow.audit.record(
                actor=actor,
                action="cap.changed" if old else "cap.created",
                entity_type="cap",
                entity_id=str(saved.id),
                detail={"rule": saved.describe(), "forced": force},
            )
            if not old and item.current_usage:
                program = programs[saved.program_id]
                seeds.append(
                    (saved, item.current_usage, window_at(saved.period, now, program.timezone))
                )
            stored.append(saved)
    # After commit: a new cap starts from the events its current period already has.
    for rule, used, window in seeds:
        units = int(used * 1_000_000) if rule.metric.is_money else int(used)
        counter.seed(
            counter_key(rule.id, window.key),
            units,
            ttl_seconds(window, now, grace=COUNTER_GRACE),
        )
    return stored


def cmd_reason(
    old: CapRule | None, new: CapRule, item: ProposedCap, force: bool, commands: Sequence[SetCap]
) -> str:
    given = next((c.reason for c in commands if (c.cap_id or 0) == (old.id if old else 0)), "")
    what = (
        f"set to {format_amount(new.metric, new.limit)}"
        if old is None
        else f"changed {format_amount(new.metric, old.limit)} → "
        f"{format_amount(new.metric, new.limit)}"
    )
    note = (
        " (forced below current usage)"
        if force and item.current_usage and (item.current_usage > new.limit)
        else ""
    )
    return f"{given.strip() or 'manual change'}: {what}{note}"


def list_caps(
    uow: CapsUnitOfWork, program_id: ProgramId, *, partner_id: PartnerId | None = None
) -> list[CapRule]:
    with uow:
        _program(uow, program_id)
        return uow.caps.list(program_id, partner_id=partner_id)


def cap_usage(
    uow: CapsUnitOfWork,
    counter: CapCounter,
    clock: Clock,
    program_id: ProgramId,
    *,
    partner_id: PartnerId | None = None,
    at: datetime | None = None,
) -> list[CapUsage]:
    now = at or clock.now()
    with uow:
        program = _program(uow, program_id)
        caps = uow.caps.list(program_id, partner_id=partner_id)
    windows = {c.id: window_at(c.period, now, program.timezone) for c in caps}
    keys = {c.id: counter_key(c.id, windows[c.id].key) for c in caps}
    used = counter.usage(list(keys.values()))
    return [
        CapUsage(
            cap=c,
            period_key=windows[c.id].key,
            used=from_units(c.metric, used[keys[c.id]]),
            start=windows[c.id].start,
            end=windows[c.id].end,
        )
        for c in caps
    ]


def cap_history(
    uow: CapsUnitOfWork,
    program_id: ProgramId,
    *,
    partner_id: PartnerId | None = None,
    cap_id: int | None = None,
    include_holds: bool = False,
) -> list[tuple[CapChange, CapRule]]:
    """Changes, oldest first: what a manager audits and what a partner sees as
    "why my cap changed" (pass partner_id)."""
    with uow:
        _program(uow, program_id)
        caps = uow.caps.list(program_id, partner_id=partner_id, active_only=False)
        ids = [c.id for c in caps if cap_id is None or c.id == cap_id]
        if cap_id is not None and not ids:
            raise NotFound(f"cap {cap_id} not found", field="cap")
        return uow.cap_changes.list(cap_ids=ids, changed_only=not include_holds)


# --- enforcement (hot path) --------------------------------------------------------------


class CachedCapRules:
    """Active caps per program, refreshed at most every `ttl` seconds: the tracker must not
    read the database per click. A cap change takes effect within `ttl`."""

    def __init__(self, load: Callable[[ProgramId], Sequence[CapRule]], ttl: float = 5.0) -> None:
        self._load = load
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[ProgramId, tuple[float, dict[int, CapRule]]] = {}

    def __call__(self, program_id: ProgramId) -> dict[int, CapRule]:
        now = time.monotonic()
        hit = self._cache.get(program_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        rules = {c.id: c for c in self._load(program_id)}
        with self._lock:
            self._cache[program_id] = (now, rules)
        return rules

    def invalidate(self, program_id: ProgramId | None = None) -> None:
        with self._lock:
            if program_id is None:
                self._cache.clear()
            else:
                self._cache.pop(program_id, None)


class CapGuard:
    """What the tracker calls at click and conversion time.

    `check_click` → allowed, or refused with the fallback URL to redirect to;
    `check_conversion` → allowed (payable), or refused: record the conversion as not payable
    with `decision.reason`. Alerts crossed by an allowed event are in `decision.alerts`
    (each crossing reported to exactly one caller); `on_alert` receives them too.
    """

    def __init__(
        self,
        counter: CapCounter,
        rules: Callable[[ProgramId], Mapping[int, CapRule]],
        on_alert: Callable[[CapAlert, CapRule], None] | None = None,
    ) -> None:
        self.counter = counter
        self.rules = rules
        self.on_alert = on_alert

    def check(self, event: CapEvent, tz: str, *, fallback_url: str | None = None) -> CapDecision:
        caps = self.rules(event.program_id)
        charges = charges_for(caps.values(), event, tz)
        if not charges:
            return CapDecision(allowed=True, reservation=None)
        # Clicks are not refunded: skip the reservation record on the busiest path.
        outcome = self.counter.reserve(charges, record=event.kind is EventKind.CONVERSION)
        decision = decide(caps, outcome, event, fallback_url=fallback_url)
        if self.on_alert is not None:
            for alert in decision.alerts:
                self.on_alert(alert, caps[alert.cap_id])
        return decision

    def check_click(
        self,
        *,
        program_id: ProgramId,
        tz: str,
        offer_id: OfferId,
        partner_id: PartnerId,
        at: datetime,
        fallback_url: str | None,
    ) -> CapDecision:
        event = CapEvent(EventKind.CLICK, program_id, offer_id, partner_id, at)
        return self.check(event, tz, fallback_url=fallback_url)

    def check_conversion(
        self,
        *,
        program_id: ProgramId,
        tz: str,
        offer_id: OfferId | None,
        partner_id: PartnerId | None,
        at: datetime,
        revenue: Decimal,
        payout: Decimal,
    ) -> CapDecision:
        event = CapEvent(
            EventKind.CONVERSION, program_id, offer_id, partner_id, at, revenue, payout
        )
        return self.check(event, tz)

    def release(self, reservation_id: str) -> bool:
        """A conversion was rejected or refunded: give its capacity back (once)."""
        return self.counter.release(reservation_id)


# --- adaptive caps -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdaptiveOutcome:
    cap: CapRule
    decision: adaptive.AdaptiveDecision
    applied: bool  # False when this run key was already evaluated (re-run)


def recompute_caps(
    uow: CapsUnitOfWork,
    clock: Clock,
    program_id: ProgramId,
    *,
    quality: Mapping[int, int] | Callable[[PartnerId], int | None] | None = None,
    window_days: int = 14,
    run_key: str | None = None,
    actor: str = "adaptive-caps",
    policy: adaptive.AdaptivePolicy | None = None,
) -> list[AdaptiveOutcome]:
    """Re-evaluate every adaptive partner x offer cap of a program from the last
    `window_days` full days. Idempotent per `run_key` (default: today's date in the program
    timezone): a re-run stores and announces nothing twice."""
    if not 1 <= window_days <= 365:
        raise InvalidInput("window_days must be 1-365", field="window_days")
    now = clock.now()
    outcomes: list[AdaptiveOutcome] = []
    with uow:
        program = _program(uow, program_id)
        today = local_date(now, program.timezone)
        key = run_key or f"adaptive:{today.isoformat()}"
        end = day_start(today, program.timezone)
        start = day_start(today - timedelta(days=window_days), program.timezone)
        per = uow.totals(program.id, program.currency, start, end, by_partner=True, by_offer=True)
        # Program baseline per offer: a partner is compared with the same offer's traffic.
        by_offer: dict[int | None, EventTotals] = {}
        for (_, offer), value in per.items():
            by_offer[offer] = by_offer.get(offer, EventTotals()) + value
        for cap in uow.caps.list(program.id):
            if cap.adaptive is None or cap.scope.partner_id is None:
                continue
            if uow.cap_changes.has_run(cap.id, key):
                continue
            mine = per.get((cap.scope.partner_id, cap.scope.offer_id), EventTotals())
            base = by_offer.get(cap.scope.offer_id, EventTotals())
            score = _quality(quality, cap.scope.partner_id)
            inputs = adaptive.PerformanceInputs(
                clicks=mine.clicks,
                conversions=mine.conversions,
                refunds=mine.refunds,
                earnings=mine.payout,
                program_clicks=base.clicks,
                program_conversions=base.conversions,
                program_refunds=base.refunds,
                program_earnings=base.payout,
                currency=program.currency,
                quality=score,
            )
            decision = adaptive.decide(cap.metric, cap.limit, cap.adaptive, inputs, policy)
            record = {
                **decision.inputs,
                "window": {"start": start.isoformat(), "end": end.isoformat()},
            }
            change = uow.cap_changes.add(
                CapChange(
                    id=0,
                    cap_id=cap.id,
                    at=now,
                    actor=actor,
                    source=ChangeSource.ADAPTIVE,
                    old_limit=decision.old_limit,
                    new_limit=decision.new_limit,
                    reason=decision.reason,
                    inputs=record,
                    run_key=key,
                ),
                cap.metric,
            )
            if decision.changed:
                updated = uow.caps.update(replace(cap, limit=decision.new_limit, updated_at=now))
                verb = "raised" if decision.new_limit > decision.old_limit else "lowered"
                uow.notices.queue(
                    program_id=program.id,
                    partner_id=cap.scope.partner_id,
                    kind="cap_changed",
                    ref=str(change.id),
                    subject=f"Your {cap.metric.value} cap on offer {cap.scope.offer_id} was {verb}",
                    body=(
                        f"Your {cap.metric.value} cap per {cap.period.value} on offer "
                        f"{cap.scope.offer_id} is now {format_amount(cap.metric, updated.limit)}"
                        f" (was {format_amount(cap.metric, decision.old_limit)}).\n"
                        f"Why: {decision.reason}"
                    ),
                    at=now,
                )
                uow.audit.record(
                    actor=actor,
                    action="cap.adapted",
                    entity_type="cap",
                    entity_id=str(cap.id),
                    detail={"reason": decision.reason, "run_key": key},
                )
                _publish_cap(uow, updated, change, program.currency)
                cap = updated
            outcomes.append(AdaptiveOutcome(cap, decision, True))
    return outcomes


def _quality(
    source: Mapping[int, int] | Callable[[PartnerId], int | None] | None, partner: PartnerId
) -> int | None:
    if source is None:
        return None
    value = source(partner) if callable(source) else source.get(partner)
    if value is None:
        return None
    if not 0 <= int(value) <= 100:
        raise InvalidInput(f"quality score {value} for partner {partner} is not 0-100")
    return int(value)


# --- goals and partner targets -------------------------------------------------------------


def _goal_actual(metric: goals.GoalMetric, totals: EventTotals) -> Decimal:
    return {
        goals.GoalMetric.SALES: Decimal(totals.sales),
        goals.GoalMetric.LEADS: Decimal(totals.leads),
        goals.GoalMetric.REVENUE: totals.revenue,
        goals.GoalMetric.CLICKS: Decimal(totals.clicks),
        goals.GoalMetric.IMPRESSIONS: Decimal(totals.impressions),
    }[metric]


def _period_key(period: Period, key: str | None, tz: str) -> str:
    if key is None or key == goals.EVERY_PERIOD:
        return goals.EVERY_PERIOD
    return parse_window_key(period, key, tz).key


def set_goal(
    uow: CapsUnitOfWork,
    clock: Clock,
    program_id: ProgramId,
    *,
    metric: str,
    period: str,
    target: str,
    period_key: str | None = None,
    actor: str,
) -> goals.ProgramGoal:
    gm = goals.parse_goal_metric(metric)
    per = parse_period(period)
    if per is Period.ALL_TIME:
        raise InvalidInput("goals are per day, week or month", field="period")
    value = goals.check_target(gm, target)
    with uow:
        program = _program(uow, program_id)
        goal = goals.ProgramGoal(
            0, program.id, gm, per, _period_key(per, period_key, program.timezone), value
        )
        saved = uow.goals.upsert_goal(goal, clock.now())
        uow.audit.record(
            actor=actor,
            action="goal.set",
            entity_type="goal",
            entity_id=str(saved.id),
            detail={"metric": gm.value, "period": per.value, "target": str(value)},
        )
        return saved


def set_partner_target(
    uow: CapsUnitOfWork,
    clock: Clock,
    program_id: ProgramId,
    *,
    partner_id: int,
    metric: str,
    period: str,
    target: str | None = None,
    growth_percent: str | None = None,
    period_key: str | None = None,
    bonus_id: str | None = None,
    actor: str,
) -> goals.PartnerTarget:
    gm = goals.parse_goal_metric(metric)
    per = parse_period(period)
    if per is Period.ALL_TIME:
        raise InvalidInput("targets are per day, week or month", field="period")
    if (target is None) == (growth_percent is None):
        raise InvalidInput("give either an absolute target or a growth percent", field="target")
    with uow:
        program = _program(uow, program_id)
        partner = uow.partners.get(PartnerId(partner_id))
        if partner is None or partner.program_id != program.id:
            raise NotFound(f"partner {partner_id} not found in program {program.slug}")
        item = goals.PartnerTarget(
            id=0,
            program_id=program.id,
            partner_id=partner.id,
            metric=gm,
            period=per,
            period_key=_period_key(per, period_key, program.timezone),
            kind=goals.TargetKind.ABSOLUTE if target is not None else goals.TargetKind.GROWTH,
            target=goals.check_target(gm, target) if target is not None else None,
            growth_percent=goals.check_growth(growth_percent)
            if growth_percent is not None
            else None,
            bonus_id=(bonus_id or None) and bonus_id.strip()[:64],
        )
        saved = uow.goals.upsert_target(item, clock.now())
        uow.audit.record(
            actor=actor,
            action="target.set",
            entity_type="partner_target",
            entity_id=str(saved.id),
            detail={"partner_id": partner.id, "target": saved.describe()},
        )
        return saved


@dataclass(frozen=True, slots=True)
class TargetProgress:
    target: goals.PartnerTarget
    progress: goals.Progress


def goal_progress(
    uow: CapsUnitOfWork, clock: Clock, program_id: ProgramId, *, at: datetime | None = None
) -> list[tuple[goals.ProgramGoal, goals.Progress]]:
    now = at or clock.now()
    out = []
    with uow:
        program = _program(uow, program_id)
        stored = uow.goals.goals(program.id)
        for period in (Period.DAY, Period.WEEK, Period.MONTH):
            window = window_at(period, now, program.timezone)
            chosen = goals.pick(stored, window)
            if not chosen:
                continue
            totals = _sum(uow.totals(program.id, program.currency, window.start, window.end))
            for goal in chosen:
                actual = _goal_actual(goal.metric, totals)
                out.append((goal, goals.progress(goal.metric, window, actual, goal.target, now)))
    return out


def target_progress(
    uow: CapsUnitOfWork,
    clock: Clock,
    program_id: ProgramId,
    *,
    partner_id: PartnerId | None = None,
    at: datetime | None = None,
) -> list[TargetProgress]:
    now = at or clock.now()
    with uow:
        program = _program(uow, program_id)
        return _target_progress(uow, program, partner_id, now)


def _target_progress(
    uow: CapsUnitOfWork, program: Program, partner_id: PartnerId | None, now: datetime
) -> list[TargetProgress]:
    out = []
    for target in uow.goals.targets(program.id, partner_id):
        window = window_at(target.period, now, program.timezone)
        if not goals.applies(target.period_key, window):
            continue
        actual = _goal_actual(
            target.metric,
            _sum(
                uow.totals(
                    program.id,
                    program.currency,
                    window.start,
                    window.end,
                    partner_id=target.partner_id,
                )
            ),
        )
        previous = Decimal(0)
        if target.kind is goals.TargetKind.GROWTH:
            before = previous_window(window, program.timezone)
            previous = _goal_actual(
                target.metric,
                _sum(
                    uow.totals(
                        program.id,
                        program.currency,
                        before.start,
                        before.end,
                        partner_id=target.partner_id,
                    )
                ),
            )
        value = goals.target_value(target, previous)
        out.append(
            TargetProgress(target, goals.progress(target.metric, window, actual, value, now))
        )
    return out


@dataclass(frozen=True, slots=True)
class TargetMet:
    """Emitted once per target and period: the hook commission-plan bonuses use
    (`target.bonus_id` names the bonus to pay)."""

    target: goals.PartnerTarget
    period_key: str
    actual: Decimal
    goal: Decimal


def report_met_targets(
    uow: CapsUnitOfWork,
    clock: Clock,
    program_id: ProgramId,
    *,
    at: datetime | None = None,
    on_met: Callable[[TargetMet], None] | None = None,
) -> list[TargetMet]:
    """Targets met so far in the current periods, each reported once (re-runs report only
    new ones). `on_met` runs inside the transaction, so a bonus entry it writes through the
    same database commits together with the achievement record."""
    now = at or clock.now()
    met: list[TargetMet] = []
    with uow:
        program = _program(uow, program_id)
        for item in _target_progress(uow, program, None, now):
            p = item.progress
            if not p.met:
                continue
            if uow.goals.record_achievement(item.target, p.period_key, p.actual, p.target, now):
                event = TargetMet(item.target, p.period_key, p.actual, p.target)
                met.append(event)
                if on_met is not None:
                    on_met(event)
    return met


# --- ad spend ----------------------------------------------------------------------------


def _partner_refs(uow: CapsUnitOfWork, program: Program) -> dict[str, PartnerId]:
    refs: dict[str, PartnerId] = {}
    for partner in uow.partners.list(program.id):
        refs[str(partner.id)] = partner.id
        refs[partner.email.lower()] = partner.id
    return refs


class SpendImportError(InvalidInput):
    code = "invalid_spend"

    def __init__(self, errors: Sequence[str]) -> None:
        shown = list(errors[:50])
        more = f"\n... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(
            f"nothing imported: {len(errors)} row(s) have errors\n" + "\n".join(shown) + more,
            field="spend",
        )
        self.errors = tuple(errors)


def import_spend_csv(
    uow: CapsUnitOfWork, clock: Clock, program_id: ProgramId, text: str, actor: str
) -> int:
    """Import a spend CSV (day,channel,campaign,partner,amount[,currency]); any bad row
    fails the whole file with a line-by-line report."""
    with uow:
        program = _program(uow, program_id)
        parsed = spend.parse_spend_csv(
            text,
            currency=program.currency,
            today=local_date(clock.now(), program.timezone),
            partners=_partner_refs(uow, program),
        )
        if parsed.errors:
            raise SpendImportError(parsed.errors)
        return _store_spend(uow, clock, program, list(parsed.rows), actor)


def record_spend(
    uow: CapsUnitOfWork,
    clock: Clock,
    program_id: ProgramId,
    rows: Sequence[Mapping[str, str | None]],
    actor: str,
) -> int:
    """The API form: a list of {day, channel, campaign, partner, amount, currency}."""
    with uow:
        program = _program(uow, program_id)
        refs = _partner_refs(uow, program)
        today = local_date(clock.now(), program.timezone)
        parsed: list[spend.SpendRow] = []
        errors: list[str] = []
        for index, raw in enumerate(rows, start=1):
            try:
                parsed.append(
                    spend.parse_spend_row(
                        raw, currency=program.currency, today=today, partners=refs
                    )
                )
            except (ValueError, InvalidInput) as exc:
                errors.append(f"row {index}: {exc}")
        if errors or not parsed:
            raise SpendImportError(errors or ["no rows given"])
        return _store_spend(uow, clock, program, parsed, actor)


def _store_spend(
    uow: CapsUnitOfWork, clock: Clock, program: Program, rows: list[spend.SpendRow], actor: str
) -> int:
    batch = secrets.token_hex(8)
    count = uow.spend.replace_rows(program.id, rows, batch, clock.now())
    uow.audit.record(
        actor=actor,
        action="spend.imported",
        entity_type="program",
        entity_id=str(program.id),
        detail={"batch": batch, "rows": count, "total": str(sum(r.amount for r in rows))},
    )
    return count


MAX_REPORT_DAYS = 366


def spend_report(
    uow: CapsUnitOfWork,
    program_id: ProgramId,
    start: date,
    end: date,
    dimension: str = "channel",
) -> list[spend.SpendKpis]:
    """KPIs for start <= day <= end (program-local days)."""
    try:
        dim = spend.Dimension(dimension)
    except ValueError:
        raise InvalidInput("dimension must be channel, campaign or partner", field="by") from None
    if end < start:
        raise InvalidInput("the end date is before the start date", field="to")
    if (end - start).days >= MAX_REPORT_DAYS:
        raise InvalidInput(f"report at most {MAX_REPORT_DAYS} days at once", field="to")
    with uow:
        program = _program(uow, program_id)
        rows = uow.spend.rows(program.id, start, end + timedelta(days=1))
        days = sorted({r.day for r in rows if r.partner_id is not None})
        outcomes: dict[tuple[PartnerId, date], spend.Outcome] = {}
        for day in days:
            per = uow.totals(
                program.id,
                program.currency,
                day_start(day, program.timezone),
                day_start(day + timedelta(days=1), program.timezone),
                by_partner=True,
            )
            for (partner, _), value in per.items():
                if partner is None:
                    continue
                outcomes[(PartnerId(partner), day)] = spend.Outcome(
                    clicks=Decimal(value.clicks),
                    leads=Decimal(value.leads),
                    sales=Decimal(value.sales),
                    revenue=value.revenue,
                    payout=value.payout,
                )
    return spend.report(rows, outcomes, dim)
