"""Caps where the tracker and the conversion use case meet them.

Clicks: `ClickCaps.check` (in a worker thread: it blocks on SQL or Redis) reserves through
the deployment's `CapCounter` — it only runs for programs that have active caps, which the
tracking snapshot knows, so a program without caps pays one dict lookup per click.

Conversions: `ConversionCapStore` reserves **inside the transaction that writes the
conversion** when the counters are in SQL (the group-commit writer holds SQLite's only write
lock during its batch: a second connection would wait for it forever), with the same guarded
`UPDATE .. WHERE used + n <= limit` as `storage.cap_reservations.SqlCapCounter`, and under a
reservation id derived from the conversion (`tracking.conversions.cap_reservation_id`), so a
refund or a rejection finds it again. A refusal undoes the charges it had applied in the same
transaction. With Redis the reservation is the counter's atomic script, under that same id.

Redis is not part of the SQL transaction, so in a unit of work (`SqlConversionCaps`) its side
effects follow the transaction by hand, as the tracker's writer does for its batches: a
release is only checked (is there a reservation?) and runs after the commit; a reservation
made in a transaction that rolls back is released before the rollback, while the transaction
still holds the conversion's row. Both paths write that row before they reserve, so a Redis
reservation found under its id then is a leftover of an attempt killed before its commit: it
is replaced, never counted twice (`conversion_verdict`). A reinstated conversion (fraud
review undone) takes its room back under the same id, counted even past a full hard cap:
the overshoot becomes a cap alert (`overshoot_alert`).

Statements take '?' placeholders and run through an `Execute` callable, so the writer's raw
DBAPI cursor and a SQLAlchemy connection (the use case) share one implementation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import func, select

from partnerflow.caps.model import (
    CapAlert,
    CapDecision,
    CapRule,
    Charge,
    Refused,
    Reservation,
    format_amount,
    from_units,
)
from partnerflow.caps.rules import CapEvent, EventKind, charges_for, decide
from partnerflow.commissions.model import EntryKind
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.core.money import MICROS, Money
from partnerflow.fraud.ports import CapRetake
from partnerflow.storage import tables as t
from partnerflow.storage.cap_reservations import RESERVE_LUA, RedisCapCounter, SqlCapCounter
from partnerflow.storage.rates import SqlRates
from partnerflow.tracking.conversions import ALLOWED, CapVerdict, cap_reservation_id, cap_revenue

log = logging.getLogger(__name__)

#: Runs one statement ('?' placeholders) and returns its rows (empty for none).
Execute = Callable[[str, Sequence[Any]], list[Any]]
Rules = Callable[[ProgramId], Mapping[int, CapRule]]


def _expiry(now: datetime, charges: Sequence[Charge]) -> datetime | None:
    ttls = [c.ttl_seconds for c in charges]
    if not ttls or any(ttl is None for ttl in ttls):
        return None
    return now + timedelta(seconds=max(ttl for ttl in ttls if ttl is not None))


# `RESERVE_LUA` unless the reservation key (the last key) already exists: then nothing is
# charged and the script answers {2}. Taking a reinstated conversion's room back must not
# count it twice if its reservation was never released.
RESERVE_ONCE_LUA = "if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {2} end\n" + RESERVE_LUA


class ConversionCapStore:
    """Conversion reservations: SQL in the caller's transaction, or Redis."""

    def __init__(self, redis: RedisCapCounter | None = None) -> None:
        self.redis = redis
        self._script: Any = None
        self._once_script: Any = None

    def reserve(
        self,
        execute: Execute,
        ts: Callable[[datetime], Any],
        charges: Sequence[Charge],
        reservation_id: str,
        now: datetime,
    ) -> Reservation | Refused:
        if self.redis is not None:
            outcome = self._reserve_redis(charges, reservation_id)
            assert outcome is not None  # only `once` answers None
            return outcome
        ordered = sorted(charges, key=lambda c: c.key)
        applied: list[Charge] = []
        totals: dict[str, int] = {}
        for charge in ordered:
            expires = now + timedelta(seconds=charge.ttl_seconds) if charge.ttl_seconds else None
            execute(
                "INSERT INTO cap_usage (key, cap_id, used, expires_at) VALUES (?, ?, 0, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (charge.key, charge.cap_id, ts(expires) if expires else None),
            )
            if charge.limit is None:
                rows = execute(
                    "UPDATE cap_usage SET used = used + ? WHERE key = ? RETURNING used",
                    (charge.amount, charge.key),
                )
            else:
                rows = execute(
                    "UPDATE cap_usage SET used = used + ? WHERE key = ? AND used + ? <= ?"
                    " RETURNING used",
                    (charge.amount, charge.key, charge.amount, charge.limit),
                )
            if not rows:
                used = execute("SELECT used FROM cap_usage WHERE key = ?", (charge.key,))
                for done in applied:  # all or nothing, in this same transaction
                    execute(
                        "UPDATE cap_usage SET used = used - ? WHERE key = ?",
                        (done.amount, done.key),
                    )
                return Refused(charge=charge, used=int(used[0][0]) if used else 0)
            applied.append(charge)
            totals[charge.key] = int(rows[0][0])
        if ordered:
            expires_at = _expiry(now, ordered)
            execute(
                "INSERT INTO cap_reservations (id, charges, created_at, expires_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    reservation_id,
                    json.dumps([[c.key, c.amount] for c in ordered]),
                    ts(now),
                    ts(expires_at) if expires_at else None,
                ),
            )
        return Reservation(
            id=reservation_id,
            charges=tuple(charges),
            totals=tuple(totals[c.key] for c in charges),
        )

    def reserve_once(
        self,
        execute: Execute,
        ts: Callable[[datetime], Any],
        charges: Sequence[Charge],
        reservation_id: str,
        now: datetime,
    ) -> Reservation | Refused | None:
        """`reserve`, unless a reservation under this id exists already (None: nothing
        charged). Atomic on Redis; in SQL the check and the charges share the caller's
        transaction."""
        if self.redis is not None:
            return self._reserve_redis(charges, reservation_id, once=True)
        if self.holds(execute, reservation_id):
            return None
        return self.reserve(execute, ts, charges, reservation_id, now)

    def holds(self, execute: Execute, reservation_id: str) -> bool:
        """Whether a reservation is stored under this id (now; Redis: outside any
        transaction)."""
        if self.redis is not None:
            return bool(self.redis.client.exists(self.redis.prefix + f"res:{reservation_id}"))
        return bool(execute("SELECT 1 FROM cap_reservations WHERE id = ?", (reservation_id,)))

    def _reserve_redis(
        self, charges: Sequence[Charge], rid: str, *, once: bool = False
    ) -> Reservation | Refused | None:
        # `RedisCapCounter.reserve` with our own id (its script takes any id).
        redis = self.redis
        assert redis is not None
        if once:
            if self._once_script is None:
                self._once_script = redis.client.register_script(RESERVE_ONCE_LUA)
            script = self._once_script
        else:
            if self._script is None:
                self._script = redis.client.register_script(RESERVE_LUA)
            script = self._script
        keys = [redis.prefix + c.key for c in charges]
        ttls = [c.ttl_seconds for c in charges]
        res_ttl = 0 if any(x is None for x in ttls) else max(x or 0 for x in ttls)
        args: list[Any] = [rid, res_ttl, "\n".join(f"{c.key}\t{c.amount}" for c in charges)]
        for c in charges:
            args += [c.amount, -1 if c.limit is None else c.limit, c.ttl_seconds or 0]
        keys.append(redis.prefix + f"res:{rid}")
        result = script(keys=keys, args=args)
        if int(result[0]) == 2:
            return None
        if int(result[0]) == 0:
            return Refused(charge=charges[int(result[1]) - 1], used=int(result[2]))
        return Reservation(id=rid, charges=tuple(charges), totals=tuple(int(x) for x in result[1:]))

    def release(self, execute: Execute, reservation_id: str) -> bool:
        if self.redis is not None:
            return self.redis.release(reservation_id)
        rows = execute("SELECT charges FROM cap_reservations WHERE id = ?", (reservation_id,))
        if not rows:
            return False
        execute("DELETE FROM cap_reservations WHERE id = ?", (reservation_id,))
        charges = rows[0][0]
        if isinstance(charges, str):
            charges = json.loads(charges)
        for key, amount in sorted(charges):
            execute(
                "UPDATE cap_usage SET used = CASE WHEN used < ? THEN 0 ELSE used - ? END"
                " WHERE key = ?",
                (int(amount), int(amount), key),
            )
        return True


def conversion_verdict(
    store: ConversionCapStore,
    rules: Mapping[int, CapRule],
    execute: Execute,
    ts: Callable[[datetime], Any],
    *,
    program_id: int,
    tz: str,
    offer_id: int | None,
    partner_id: int | None,
    at: datetime,
    revenue: Decimal,
    payout: Decimal,
    reservation_id: str,
    alerts: list[tuple[CapAlert, CapRule]] | None = None,
) -> CapVerdict:
    """Reserve a conversion against `rules` (the program's active caps); alerts crossed are
    appended to `alerts` for the caller to store after its commit.

    The caller has just inserted the conversion's row in its open transaction (the tracker's
    writer, `record_conversion`), and holds it until the transaction ends: a concurrent
    attempt at the same order waits on that row and then finds it, so it never reserves.
    A Redis reservation already under `reservation_id` (outside any transaction) can thus
    only be a leftover of an attempt that never committed: a process killed between its
    reservation and its commit. Its sender retries, and reserving again would count the
    order twice (and leak the first charge, which no refund gives back): the leftover is
    given back first. (SQL reservations went with the killed attempt's transaction.)"""
    if not rules:
        return ALLOWED
    event = CapEvent(
        EventKind.CONVERSION,
        ProgramId(program_id),
        OfferId(offer_id) if offer_id is not None else None,
        PartnerId(partner_id) if partner_id is not None else None,
        at,
        revenue,
        payout,
    )
    charges = charges_for(rules.values(), event, tz)
    if not charges:
        return ALLOWED
    if store.redis is not None:
        store.release(execute, reservation_id)  # a killed attempt's leftover, if any
    outcome = store.reserve(execute, ts, charges, reservation_id, at)
    decision: CapDecision = decide(rules, outcome, event)
    if alerts is not None:
        alerts.extend((a, rules[a.cap_id]) for a in decision.alerts if a.cap_id in rules)
    if not decision.allowed:
        cap = decision.refused_cap
        return CapVerdict(False, decision.reason, int(cap.id) if cap else None)
    return CapVerdict(True, None, None, reserved=True)


#: The threshold an overshoot alert of a zero limit (or a huge overshoot) is stored with
#: (`cap_alerts.threshold` is 8 characters).
_MAX_PERCENT = Decimal("99999.9")


def overshoot_alert(cap: CapRule, period: str, used_units: int) -> CapAlert:
    """A hard cap counted past its limit (a conversion reinstated by a manager). Its threshold
    is the percent now used, rounded up to 0.1 — above 100, and a new value for every further
    overshoot in the period, so each one is stored (alerts are unique per cap, period and
    threshold)."""
    limit = cap.limit_units
    raw = Decimal(used_units) * 100 / limit if limit else _MAX_PERCENT
    percent = min(_MAX_PERCENT, raw).quantize(Decimal("0.1"), ROUND_CEILING)
    used = from_units(cap.metric, used_units)
    return CapAlert(
        cap_id=cap.id,
        period_key=period,
        threshold=percent,
        used=used,
        limit=cap.limit,
        message=(
            f"{cap.describe()} exceeded in {period}: {format_amount(cap.metric, used)} of "
            f"{format_amount(cap.metric, cap.limit)} (a conversion reinstated after fraud "
            "review is counted past the limit)"
        ),
    )


class SqlConversionCaps:
    """`tracking.ports.ConversionCaps` (and `fraud.ports.ConversionCaps`) on a unit of work's
    connection (the use case path).

    SQL counters change in the unit of work's transaction. Redis ones cannot, so the unit of
    work calls `committed()`, `rolled_back()` (before the database rollback) or
    `abandoned()` (a failed commit) when its transaction ends: releases asked for run only
    after a commit, reservations made in a transaction that rolls back are released."""

    def __init__(
        self,
        conn: Any,
        rules: Rules,
        store: ConversionCapStore,
        timezone_of: Callable[[int], str],
        on_alerts: Callable[[list[tuple[CapAlert, CapRule]]], None] | None = None,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.conn = conn
        self.rules = rules
        self.store = store
        self.timezone_of = timezone_of
        self.on_alerts = on_alerts
        self.now = now or (lambda: datetime.now(UTC))
        self._pg = conn.dialect.name != "sqlite"
        # Redis reservation ids this transaction reserved (undone on rollback) and those it
        # released (given back after the commit).
        self._reserved: list[str] = []
        self._releases: list[str] = []

    def _execute(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._pg:
            sql = sql.replace("?", "%s")
        result = self.conn.exec_driver_sql(sql, tuple(params))
        return list(result.fetchall()) if result.returns_rows else []

    def _ts(self, value: datetime) -> Any:
        if self._pg:
            return value
        from partnerflow.storage.event_writer import sqlite_timestamp

        return sqlite_timestamp(value)

    def reserve(
        self,
        *,
        program_id: int,
        offer_id: int | None,
        partner_id: int | None,
        at: datetime,
        revenue: Decimal,
        payout: Decimal,
        reservation_id: str,
    ) -> CapVerdict:
        rules = self.rules(ProgramId(program_id))
        if not rules:
            return ALLOWED
        alerts: list[tuple[CapAlert, CapRule]] = []
        verdict = conversion_verdict(
            self.store, rules, self._execute, self._ts,
            program_id=program_id, tz=self.timezone_of(program_id), offer_id=offer_id,
            partner_id=partner_id, at=at, revenue=revenue, payout=payout,
            reservation_id=reservation_id, alerts=alerts,
        )  # fmt: skip
        if verdict.reserved and self.store.redis is not None:
            self._reserved.append(reservation_id)  # outside the transaction: undone by hand
        if alerts and self.on_alerts is not None:
            self.on_alerts(alerts)
        return verdict

    def release(self, reservation_id: str) -> bool:
        """True when a reservation is held under this id (and not already released in this
        transaction). SQL releases it in the transaction; Redis after the commit."""
        if self.store.redis is None:
            return self.store.release(self._execute, reservation_id)
        if not reservation_id or reservation_id in self._releases:
            return False
        if not self.store.holds(self._execute, reservation_id):
            return False
        self._releases.append(reservation_id)
        return True

    def release_conversion(self, conversion_id: int) -> bool:
        """`commissions.ports.ConversionCapReleases`: the reservation is stored under the id
        derived from the conversion's (program, order id)."""
        rows = self._execute(
            "SELECT program_id, order_id FROM conversions WHERE id = ?", (conversion_id,)
        )
        if not rows:
            return False
        return self.release(cap_reservation_id(int(rows[0][0]), str(rows[0][1])))

    def retake_conversion(self, conversion_id: int) -> CapRetake:
        """`fraud.ports.ConversionCaps`: count a reinstated conversion against the program's
        active caps again, in the periods it was recorded in, under its own reservation id.
        Forced (a manager's decision is not refused by a cap): each hard cap it takes past
        its limit is reported and raises an overshoot alert. Periods whose counters expired
        (period end plus grace) are not recreated, as a release does not recreate them."""
        c, p = t.conversions.c, t.programs.c
        row = self.conn.execute(
            select(
                c.program_id, c.order_id, c.offer_id, c.partner_id, c.created_at,
                c.amount_micros, c.currency, p.currency.label("program_currency"), p.timezone,
            )
            .join_from(t.conversions, t.programs, p.id == c.program_id)
            .where(c.id == conversion_id)
        ).first()  # fmt: skip
        if row is None or row.partner_id is None:
            return CapRetake(False)
        rid = cap_reservation_id(row.program_id, row.order_id)
        if rid in self._releases:
            # Released earlier in this transaction, not yet given back: keep it instead.
            self._releases.remove(rid)
            return CapRetake(True)
        rules = self.rules(ProgramId(row.program_id))
        if not rules:
            return CapRetake(False)
        event = CapEvent(
            EventKind.CONVERSION,
            ProgramId(row.program_id),
            OfferId(row.offer_id) if row.offer_id is not None else None,
            PartnerId(row.partner_id),
            row.created_at,
            self._revenue(row),
            self._payout(conversion_id, row.program_currency),
        )
        now = self.now()
        charges = _live_charges(charges_for(rules.values(), event, row.timezone), event.at, now)
        if not charges:
            return CapRetake(False)
        outcome = self.store.reserve_once(
            self._execute, self._ts, [replace(ch, limit=None) for ch in charges], rid, now
        )
        if outcome is None:
            return CapRetake(False)  # still held: it was never released
        assert isinstance(outcome, Reservation)  # no limits: never refused
        if self.store.redis is not None:
            self._reserved.append(rid)
        alerts = [(a, rules[a.cap_id]) for a in decide(rules, outcome, event).alerts]
        over: list[str] = []
        for charge, total in zip(charges, outcome.totals, strict=True):
            if charge.limit is not None and total > charge.limit:
                rule = rules[charge.cap_id]
                alert = overshoot_alert(rule, charge.key.rsplit(":", 1)[-1], total)
                alerts.append((alert, rule))
                over.append(alert.message)
        if alerts and self.on_alerts is not None:
            self.on_alerts(alerts)
        return CapRetake(True, tuple(over))

    def _revenue(self, row: Any) -> Decimal:
        """The order value its reservation counted: converted with the rate of its day."""
        amount = Decimal(row.amount_micros) / MICROS
        converted: Decimal | None = None
        if row.currency != row.program_currency:
            try:
                converted = (
                    SqlRates(self.conn)
                    .table()
                    .convert(Money(amount, row.currency), row.program_currency, row.created_at)
                    .converted.amount
                )
            except NotFound:
                converted = None
        return cap_revenue(amount, row.currency, row.program_currency, converted)

    def _payout(self, conversion_id: int, currency: str) -> Decimal:
        """The commission its reservation counted (the original entries, before any
        reversal)."""
        e = t.commission_entries.c
        micros = self.conn.execute(
            select(func.coalesce(func.sum(e.amount_micros), 0)).where(
                e.conversion_id == conversion_id,
                e.kind == EntryKind.COMMISSION.value,
                e.currency == currency,
            )
        ).scalar_one()
        return Decimal(int(micros)) / MICROS

    # -- the end of the unit of work's transaction ------------------------------------------
    def committed(self) -> None:
        """Give back in Redis what the committed transaction released."""
        releases, self._releases, self._reserved = self._releases, [], []
        self._release_redis(releases)

    def rolled_back(self) -> None:
        """Undo in Redis what the rolled-back transaction reserved (its releases never
        happen)."""
        reserved, self._reserved, self._releases = self._reserved, [], []
        self._release_redis(reserved)

    def abandoned(self) -> None:
        """The commit failed, its outcome unknown: Redis stays as a killed process leaves it.
        A reservation kept is right if the transaction did commit; if not, it is a leftover
        that the retry of the same order replaces (`conversion_verdict`), and a reinstatement
        retried finds held (`reserve_once`). Its releases never happen."""
        self._reserved, self._releases = [], []

    def _release_redis(self, reservation_ids: list[str]) -> None:
        redis = self.store.redis
        if redis is None:
            return
        for rid in dict.fromkeys(reservation_ids):
            try:
                redis.release(rid)
            except Exception:
                log.exception("could not release cap reservation %s", rid)


def _live_charges(charges: Sequence[Charge], at: datetime, now: datetime) -> list[Charge]:
    """Charges computed for an event at `at`, with their expiry counted from `now`; those
    whose counter has expired by now are left out."""
    elapsed = max(0, int((now - at).total_seconds()))
    out: list[Charge] = []
    for charge in charges:
        if charge.ttl_seconds is None:
            out.append(charge)
        elif charge.ttl_seconds - elapsed > 0:
            out.append(replace(charge, ttl_seconds=charge.ttl_seconds - elapsed))
    return out


class ClickCaps:
    """Click caps through the deployment's counter (SQL in its own short transaction, or
    Redis). Blocking: the tracker calls it in a worker thread, only for programs with caps."""

    def __init__(self, counter: SqlCapCounter | RedisCapCounter) -> None:
        self.counter = counter

    def check(
        self,
        rules: Mapping[int, CapRule],
        *,
        program_id: int,
        tz: str,
        offer_id: int,
        partner_id: int,
        at: datetime,
        fallback_url: str | None,
    ) -> CapDecision:
        event = CapEvent(
            EventKind.CLICK, ProgramId(program_id), OfferId(offer_id), PartnerId(partner_id), at
        )
        charges = charges_for(rules.values(), event, tz)
        if not charges:
            return CapDecision(allowed=True, reservation=None)
        # Clicks are never refunded: no reservation record on the busiest path.
        outcome = self.counter.reserve(charges, record=False)
        return decide(rules, outcome, event, fallback_url=fallback_url)
