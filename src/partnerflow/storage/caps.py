"""Repositories for caps, cap changes, alerts, partner notices, goals, partner targets and
ad spend, and the event totals they are measured against."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    select,
    update,
)

from partnerflow.caps.goals import GoalMetric, PartnerTarget, ProgramGoal, TargetKind
from partnerflow.caps.model import (
    AdaptiveBounds,
    CapAlert,
    CapChange,
    CapMetric,
    CapMode,
    CapRule,
    CapScope,
    ChangeSource,
    EventTotals,
    from_units,
    to_units,
)
from partnerflow.caps.periods import Period
from partnerflow.caps.spend import SpendRow
from partnerflow.core.clock import Clock
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.core.money import MICROS
from partnerflow.storage import tables as t
from partnerflow.storage.audit import SqlAudit
from partnerflow.storage.catalog import SqlOffers, SqlPartners, SqlPrograms
from partnerflow.storage.database import read_only_connection
from partnerflow.storage.outbox import SqlOutbox
from partnerflow.storage.reports import EARNING_KINDS


def scope_key(rule: CapRule) -> str | None:
    if not rule.active:
        return None
    return (
        f"o{rule.scope.offer_id or ''}|p{rule.scope.partner_id or ''}|{rule.metric}|{rule.period}"
    )


def _cap(row: Row[Any]) -> CapRule:
    metric = CapMetric(row.metric)
    adaptive = None
    if row.adaptive:
        adaptive = AdaptiveBounds(
            minimum=Decimal(row.adaptive["min"]),
            maximum=Decimal(row.adaptive["max"]),
            max_step_percent=Decimal(row.adaptive["step"]),
        )
    return CapRule(
        id=row.id,
        program_id=ProgramId(row.program_id),
        scope=CapScope(
            offer_id=OfferId(row.offer_id) if row.offer_id is not None else None,
            partner_id=PartnerId(row.partner_id) if row.partner_id is not None else None,
        ),
        metric=metric,
        period=Period(row.period),
        limit=from_units(metric, row.limit_units),
        mode=CapMode(row.mode),
        alert_thresholds=tuple(Decimal(x) for x in row.alert_thresholds),
        adaptive=adaptive,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _cap_values(rule: CapRule) -> dict[str, Any]:
    bounds = rule.adaptive
    return {
        "program_id": rule.program_id,
        "offer_id": rule.scope.offer_id,
        "partner_id": rule.scope.partner_id,
        "metric": rule.metric.value,
        "period": rule.period.value,
        "mode": rule.mode.value,
        "limit_units": rule.limit_units,
        "alert_thresholds": [str(x) for x in rule.alert_thresholds],
        "adaptive": None
        if bounds is None
        else {
            "min": str(bounds.minimum),
            "max": str(bounds.maximum),
            "step": str(bounds.max_step_percent),
        },
        "active": rule.active,
        "scope_key": scope_key(rule),
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


class SqlCaps:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, rule: CapRule) -> CapRule:
        new_id = self.conn.execute(
            t.caps.insert().values(_cap_values(rule)).returning(t.caps.c.id)
        ).scalar_one()
        found = self.get(new_id)
        assert found is not None
        return found

    def update(self, rule: CapRule) -> CapRule:
        values = _cap_values(rule)
        values.pop("created_at")
        self.conn.execute(update(t.caps).where(t.caps.c.id == rule.id).values(values))
        found = self.get(rule.id)
        assert found is not None
        return found

    def get(self, cap_id: int) -> CapRule | None:
        row = self.conn.execute(select(t.caps).where(t.caps.c.id == cap_id)).first()
        return _cap(row) if row else None

    def list(
        self,
        program_id: ProgramId | None = None,
        *,
        partner_id: PartnerId | None = None,
        active_only: bool = True,
    ) -> list[CapRule]:
        query = select(t.caps).order_by(t.caps.c.id)
        if program_id is not None:
            query = query.where(t.caps.c.program_id == program_id)
        if partner_id is not None:
            query = query.where(t.caps.c.partner_id == partner_id)
        if active_only:
            query = query.where(t.caps.c.active.is_(True))
        return [_cap(r) for r in self.conn.execute(query)]


def _change(row: Row[Any], metric: CapMetric) -> CapChange:
    return CapChange(
        id=row.id,
        cap_id=row.cap_id,
        at=row.at,
        actor=row.actor,
        source=ChangeSource(row.source),
        old_limit=None if row.old_limit_units is None else from_units(metric, row.old_limit_units),
        new_limit=from_units(metric, row.new_limit_units),
        reason=row.reason,
        inputs=dict(row.inputs),
        run_key=row.run_key,
    )


class SqlCapChanges:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, change: CapChange, metric: CapMetric) -> CapChange:
        values = {
            "cap_id": change.cap_id,
            "at": change.at,
            "actor": change.actor,
            "source": change.source.value,
            "old_limit_units": None
            if change.old_limit is None
            else to_units(metric, change.old_limit),
            "new_limit_units": to_units(metric, change.new_limit),
            "reason": change.reason,
            "inputs": change.inputs,
            "run_key": change.run_key,
        }
        new_id = self.conn.execute(
            t.cap_changes.insert().values(values).returning(t.cap_changes.c.id)
        ).scalar_one()
        return replace(change, id=new_id)

    def has_run(self, cap_id: int, run_key: str) -> bool:
        c = t.cap_changes.c
        row = self.conn.execute(
            select(c.id).where(c.cap_id == cap_id, c.run_key == run_key)
        ).first()
        return row is not None

    def list(
        self, *, cap_ids: list[int] | None = None, changed_only: bool = True
    ) -> list[tuple[CapChange, CapRule]]:
        c = t.cap_changes.c
        query = (
            select(t.cap_changes, t.caps.c.metric)
            .join(t.caps, t.caps.c.id == c.cap_id)
            .order_by(c.at, c.id)
        )
        if cap_ids is not None:
            query = query.where(c.cap_id.in_(cap_ids))
        if changed_only:
            query = query.where(
                (c.old_limit_units.is_(None)) | (c.old_limit_units != c.new_limit_units)
            )
        caps = SqlCaps(self.conn)
        out = []
        for row in self.conn.execute(query):
            cap = caps.get(row.cap_id)
            assert cap is not None
            out.append((_change(row, CapMetric(row.metric)), cap))
        return out


class SqlCapAlerts:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_once(self, alert: CapAlert, metric: CapMetric, at: datetime) -> bool:
        """Store an alert unless this cap already alerted at this threshold this period."""
        c = t.cap_alerts.c
        exists = self.conn.execute(
            select(c.id).where(
                c.cap_id == alert.cap_id,
                c.period_key == alert.period_key,
                c.threshold == str(alert.threshold),
            )
        ).first()
        if exists:
            return False
        self.conn.execute(
            t.cap_alerts.insert().values(
                cap_id=alert.cap_id,
                period_key=alert.period_key,
                threshold=str(alert.threshold),
                used_units=to_units(metric, alert.used),
                limit_units=to_units(metric, alert.limit),
                message=alert.message,
                created_at=at,
            )
        )
        return True

    def list(self, program_id: ProgramId) -> list[dict[str, Any]]:
        query = (
            select(t.cap_alerts)
            .join(t.caps, t.caps.c.id == t.cap_alerts.c.cap_id)
            .where(t.caps.c.program_id == program_id)
            .order_by(t.cap_alerts.c.id)
        )
        return [
            {
                "cap_id": r.cap_id,
                "period": r.period_key,
                "threshold": r.threshold,
                "message": r.message,
                "at": r.created_at,
            }
            for r in self.conn.execute(query)
        ]


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    program_id: int
    partner_id: int
    kind: str
    ref: str
    subject: str
    body: str
    status: str
    created_at: datetime


class SqlCapNotices:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def queue(
        self,
        *,
        program_id: ProgramId,
        partner_id: PartnerId,
        kind: str,
        ref: str,
        subject: str,
        body: str,
        at: datetime,
    ) -> bool:
        c = t.cap_notices.c
        exists = self.conn.execute(
            select(c.id).where(c.kind == kind, c.ref == ref, c.partner_id == partner_id)
        ).first()
        if exists:
            return False
        self.conn.execute(
            t.cap_notices.insert().values(
                program_id=program_id,
                partner_id=partner_id,
                kind=kind,
                ref=ref,
                subject=subject[:200],
                body=body,
                status="queued",
                created_at=at,
            )
        )
        return True

    def list(
        self, *, program_id: ProgramId | None = None, partner_id: PartnerId | None = None
    ) -> list[Notice]:
        c = t.cap_notices.c
        query = select(t.cap_notices).order_by(c.id)
        if program_id is not None:
            query = query.where(c.program_id == program_id)
        if partner_id is not None:
            query = query.where(c.partner_id == partner_id)
        return [
            Notice(
                id=r.id,
                program_id=r.program_id,
                partner_id=r.partner_id,
                kind=r.kind,
                ref=r.ref,
                subject=r.subject,
                body=r.body,
                status=r.status,
                created_at=r.created_at,
            )
            for r in self.conn.execute(query)
        ]


# --- goals and partner targets ------------------------------------------------------------


def _goal_units(metric: GoalMetric, value: Decimal) -> int:
    return int(value * MICROS) if metric.is_money else int(value)


def _goal_value(metric: GoalMetric, units: int) -> Decimal:
    return Decimal(units) / MICROS if metric.is_money else Decimal(units)


class SqlGoals:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def upsert_goal(self, goal: ProgramGoal, at: datetime) -> ProgramGoal:
        c = t.goals.c
        where = and_(
            c.program_id == goal.program_id,
            c.metric == goal.metric.value,
            c.period == goal.period.value,
            c.period_key == goal.period_key,
        )
        units = _goal_units(goal.metric, goal.target)
        row = self.conn.execute(select(c.id).where(where)).first()
        if row:
            self.conn.execute(update(t.goals).where(c.id == row.id).values(target_units=units))
            goal_id = row.id
        else:
            goal_id = self.conn.execute(
                insert(t.goals)
                .values(
                    program_id=goal.program_id,
                    metric=goal.metric.value,
                    period=goal.period.value,
                    period_key=goal.period_key,
                    target_units=units,
                    created_at=at,
                )
                .returning(c.id)
            ).scalar_one()
        return ProgramGoal(
            id=goal_id,
            program_id=goal.program_id,
            metric=goal.metric,
            period=goal.period,
            period_key=goal.period_key,
            target=goal.target,
        )

    def goals(self, program_id: ProgramId) -> list[ProgramGoal]:
        c = t.goals.c
        rows = self.conn.execute(select(t.goals).where(c.program_id == program_id).order_by(c.id))
        out = []
        for r in rows:
            metric = GoalMetric(r.metric)
            out.append(
                ProgramGoal(
                    id=r.id,
                    program_id=ProgramId(r.program_id),
                    metric=metric,
                    period=Period(r.period),
                    period_key=r.period_key,
                    target=_goal_value(metric, r.target_units),
                )
            )
        return out

    def upsert_target(self, target: PartnerTarget, at: datetime) -> PartnerTarget:
        c = t.partner_targets.c
        where = and_(
            c.partner_id == target.partner_id,
            c.metric == target.metric.value,
            c.period == target.period.value,
            c.period_key == target.period_key,
        )
        values = {
            "program_id": target.program_id,
            "partner_id": target.partner_id,
            "metric": target.metric.value,
            "period": target.period.value,
            "period_key": target.period_key,
            "kind": target.kind.value,
            "target_units": None
            if target.target is None
            else _goal_units(target.metric, target.target),
            "growth_percent": None if target.growth_percent is None else str(target.growth_percent),
            "bonus_id": target.bonus_id,
        }
        row = self.conn.execute(select(c.id).where(where)).first()
        if row:
            self.conn.execute(update(t.partner_targets).where(c.id == row.id).values(values))
            target_id = row.id
        else:
            target_id = self.conn.execute(
                insert(t.partner_targets).values({**values, "created_at": at}).returning(c.id)
            ).scalar_one()
        return replace(target, id=target_id)

    def targets(
        self, program_id: ProgramId, partner_id: PartnerId | None = None
    ) -> list[PartnerTarget]:
        c = t.partner_targets.c
        query = select(t.partner_targets).where(c.program_id == program_id).order_by(c.id)
        if partner_id is not None:
            query = query.where(c.partner_id == partner_id)
        out = []
        for r in self.conn.execute(query):
            metric = GoalMetric(r.metric)
            out.append(
                PartnerTarget(
                    id=r.id,
                    program_id=ProgramId(r.program_id),
                    partner_id=PartnerId(r.partner_id),
                    metric=metric,
                    period=Period(r.period),
                    period_key=r.period_key,
                    kind=TargetKind(r.kind),
                    target=None if r.target_units is None else _goal_value(metric, r.target_units),
                    growth_percent=None if r.growth_percent is None else Decimal(r.growth_percent),
                    bonus_id=r.bonus_id,
                )
            )
        return out

    def record_achievement(
        self, target: PartnerTarget, period_key: str, actual: Decimal, goal: Decimal, at: datetime
    ) -> bool:
        """True the first time this target is recorded as met for this period."""
        c = t.target_achievements.c
        exists = self.conn.execute(
            select(c.id).where(c.target_id == target.id, c.period_key == period_key)
        ).first()
        if exists:
            return False
        self.conn.execute(
            t.target_achievements.insert().values(
                target_id=target.id,
                period_key=period_key,
                actual_units=_goal_units(target.metric, actual),
                target_units=_goal_units(target.metric, goal),
                met_at=at,
            )
        )
        return True


# --- ad spend ---------------------------------------------------------------------------------


class SqlAdSpend:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def replace_rows(
        self, program_id: ProgramId, rows: list[SpendRow], batch_id: str, at: datetime
    ) -> int:
        """Insert rows; an existing row for the same day, channel, campaign and partner is
        replaced (re-importing a corrected file is safe)."""
        c = t.ad_spend.c
        for row in rows:
            partner_match = (
                c.partner_id.is_(None) if row.partner_id is None else c.partner_id == row.partner_id
            )
            self.conn.execute(
                delete(t.ad_spend).where(
                    c.program_id == program_id,
                    c.day == row.day,
                    c.channel == row.channel,
                    c.campaign == row.campaign,
                    partner_match,
                )
            )
            self.conn.execute(
                t.ad_spend.insert().values(
                    program_id=program_id,
                    day=row.day,
                    channel=row.channel,
                    campaign=row.campaign,
                    partner_id=row.partner_id,
                    amount_micros=int(row.amount * MICROS),
                    currency=row.currency,
                    batch_id=batch_id,
                    imported_at=at,
                )
            )
        return len(rows)

    def rows(self, program_id: ProgramId, start: date, end: date) -> list[SpendRow]:
        """Spend rows with start <= day < end."""
        c = t.ad_spend.c
        query = (
            select(t.ad_spend)
            .where(c.program_id == program_id, c.day >= start, c.day < end)
            .order_by(c.day, c.channel, c.campaign, c.id)
        )
        return [
            SpendRow(
                day=r.day,
                channel=r.channel,
                campaign=r.campaign,
                partner_id=PartnerId(r.partner_id) if r.partner_id is not None else None,
                amount=Decimal(r.amount_micros) / MICROS,
                currency=r.currency,
            )
            for r in self.conn.execute(query)
        ]


# --- event totals ---------------------------------------------------------------------------


GroupKey = tuple[int | None, int | None]  # (partner_id, offer_id)


def event_totals(
    conn: Connection,
    program_id: ProgramId,
    currency: str,
    start: datetime | None,
    end: datetime | None,
    *,
    offer_id: OfferId | None = None,
    partner_id: PartnerId | None = None,
    by_partner: bool = False,
    by_offer: bool = False,
) -> dict[GroupKey, EventTotals]:
    """Totals in [start, end) grouped by (partner, offer) (None where not grouped)."""
    raw: dict[GroupKey, dict[str, Any]] = {}

    def bucket(row: Row[Any]) -> dict[str, Any]:
        key = (
            row.partner_id if by_partner else None,
            row.offer_id if by_offer else None,
        )
        return raw.setdefault(key, {})

    def scoped(table: Any, query: Any) -> Any:
        query = query.where(table.c.program_id == program_id)
        if start is not None:
            query = query.where(table.c.created_at >= start)
        if end is not None:
            query = query.where(table.c.created_at < end)
        if offer_id is not None:
            query = query.where(table.c.offer_id == offer_id)
        if partner_id is not None:
            query = query.where(table.c.partner_id == partner_id)
        return query.group_by(table.c.partner_id, table.c.offer_id)

    for table, name in ((t.clicks, "clicks"), (t.impressions, "impressions")):
        # Human traffic only, as every report counts it: bots neither click nor view.
        q = scoped(
            table,
            select(table.c.partner_id, table.c.offer_id, func.count().label("n")).where(
                table.c.is_bot == false()
            ),
        )
        for row in conn.execute(q):
            b = bucket(row)
            b[name] = b.get(name, 0) + int(row.n)

    cv = t.conversions
    live = cv.c.status.notin_(("rejected", "reversed"))
    q = scoped(
        cv,
        select(
            cv.c.partner_id,
            cv.c.offer_id,
            func.count().label("n"),
            func.sum(_when(cv.c.status == "reversed")).label("refunds"),
            func.sum(_when(and_(live, cv.c.event_type == "sale"))).label("sales"),
            func.sum(_when(and_(live, cv.c.event_type.in_(("lead", "signup"))))).label("leads"),
            func.sum(
                _when(
                    and_(live, cv.c.currency == currency),
                    cv.c.amount_micros - cv.c.refunded_micros,  # net of partial refunds
                )
            ).label("revenue"),
        ).where(cv.c.status != "rejected"),
    )
    for row in conn.execute(q):
        b = bucket(row)
        b["conversions"] = b.get("conversions", 0) + int(row.n)
        b["refunds"] = b.get("refunds", 0) + int(row.refunds or 0)
        b["sales"] = b.get("sales", 0) + int(row.sales or 0)
        b["leads"] = b.get("leads", 0) + int(row.leads or 0)
        b["revenue"] = b.get("revenue", 0) + int(row.revenue or 0)

    ce = t.commission_entries
    q = (
        select(cv.c.partner_id, cv.c.offer_id, func.sum(ce.c.amount_micros).label("payout"))
        .select_from(ce.join(cv, cv.c.id == ce.c.conversion_id))
        # Net earnings (commission, reversals, adjustments), as reports count commission.
        .where(ce.c.kind.in_(EARNING_KINDS), live, ce.c.currency == currency)
    )
    q = scoped(cv, q)
    for row in conn.execute(q):
        b = bucket(row)
        b["payout"] = b.get("payout", 0) + int(row.payout or 0)

    return {
        key: EventTotals(
            clicks=v.get("clicks", 0),
            impressions=v.get("impressions", 0),
            conversions=v.get("conversions", 0),
            sales=v.get("sales", 0),
            leads=v.get("leads", 0),
            refunds=v.get("refunds", 0),
            revenue=Decimal(v.get("revenue", 0)) / MICROS,
            payout=Decimal(v.get("payout", 0)) / MICROS,
        )
        for key, v in raw.items()
    }


def _when(condition: Any, value: Any = 1) -> Any:
    return case((condition, value), else_=0)


def total(totals: dict[GroupKey, EventTotals]) -> EventTotals:
    out = EventTotals()
    for value in totals.values():
        out = out + value
    return out


class SqlCapsUnitOfWork:
    """One transaction with every repository the caps use cases need (satisfies
    `caps.ports.CapsUnitOfWork`)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._conn: Connection | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        self._depth += 1
        if self._depth > 1:
            return self
        conn = self.engine.connect()
        conn.begin()
        self._conn = conn
        self.programs = SqlPrograms(conn)
        self.offers = SqlOffers(conn)
        self.partners = SqlPartners(conn, self.clock.now)
        self.caps = SqlCaps(conn)
        self.cap_changes = SqlCapChanges(conn)
        self.cap_alerts = SqlCapAlerts(conn)
        self.notices = SqlCapNotices(conn)
        self.goals = SqlGoals(conn)
        self.spend = SqlAdSpend(conn)
        self.audit = SqlAudit(conn, self.clock.now)
        # Domain events (`cap.changed`) on the same connection: published iff committed.
        self.events = SqlOutbox(conn, self.clock)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        conn, self._conn = self._conn, None
        assert conn is not None
        try:
            if exc_type is None:
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()

    def totals(
        self,
        program_id: ProgramId,
        currency: str,
        start: datetime | None,
        end: datetime | None,
        *,
        offer_id: OfferId | None = None,
        partner_id: PartnerId | None = None,
        by_partner: bool = False,
        by_offer: bool = False,
    ) -> dict[GroupKey, EventTotals]:
        assert self._conn is not None, "use inside 'with uow:'"
        return event_totals(
            self._conn,
            program_id,
            currency,
            start,
            end,
            offer_id=offer_id,
            partner_id=partner_id,
            by_partner=by_partner,
            by_offer=by_offer,
        )


def load_active_caps(engine: Engine, program_id: ProgramId | None = None) -> list[CapRule]:
    """Active caps for the tracker's rule cache (one short read transaction). Read-only, so
    it may be called inside a unit of work, which on SQLite holds the write lock: a deferred
    read never waits for it."""
    with read_only_connection(engine) as conn:
        return SqlCaps(conn).list(program_id)


def store_alerts(engine: Engine, alerts: list[tuple[CapAlert, CapMetric]], at: datetime) -> int:
    """Persist alerts raised on the hot path (once per cap, period and threshold)."""
    if not alerts:
        return 0
    with engine.begin() as conn:
        repo = SqlCapAlerts(conn)
        return sum(1 for alert, metric in alerts if repo.add_once(alert, metric, at))
