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

Statements take '?' placeholders and run through an `Execute` callable, so the writer's raw
DBAPI cursor and a SQLAlchemy connection (the use case) share one implementation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from partnerflow.caps.model import (
    CapAlert,
    CapDecision,
    CapRule,
    Charge,
    Refused,
    Reservation,
)
from partnerflow.caps.rules import CapEvent, EventKind, charges_for, decide
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.storage.cap_reservations import RESERVE_LUA, RedisCapCounter, SqlCapCounter
from partnerflow.tracking.conversions import ALLOWED, CapVerdict, cap_reservation_id

log = logging.getLogger(__name__)

#: Runs one statement ('?' placeholders) and returns its rows (empty for none).
Execute = Callable[[str, Sequence[Any]], list[Any]]
Rules = Callable[[ProgramId], Mapping[int, CapRule]]


def _expiry(now: datetime, charges: Sequence[Charge]) -> datetime | None:
    ttls = [c.ttl_seconds for c in charges]
    if not ttls or any(ttl is None for ttl in ttls):
        return None
    return now + timedelta(seconds=max(ttl for ttl in ttls if ttl is not None))


class ConversionCapStore:
    """Conversion reservations: SQL in the caller's transaction, or Redis."""

    def __init__(self, redis: RedisCapCounter | None = None) -> None:
        self.redis = redis
        self._script: Any = None

    def reserve(
        self,
        execute: Execute,
        ts: Callable[[datetime], Any],
        charges: Sequence[Charge],
        reservation_id: str,
        now: datetime,
    ) -> Reservation | Refused:
        if self.redis is not None:
            return self._reserve_redis(charges, reservation_id)
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

    def _reserve_redis(self, charges: Sequence[Charge], rid: str) -> Reservation | Refused:
        # `RedisCapCounter.reserve` with our own id (its script takes any id).
        redis = self.redis
        assert redis is not None
        if self._script is None:
            self._script = redis.client.register_script(RESERVE_LUA)
        keys = [redis.prefix + c.key for c in charges]
        ttls = [c.ttl_seconds for c in charges]
        res_ttl = 0 if any(x is None for x in ttls) else max(x or 0 for x in ttls)
        args: list[Any] = [rid, res_ttl, "\n".join(f"{c.key}\t{c.amount}" for c in charges)]
        for c in charges:
            args += [c.amount, -1 if c.limit is None else c.limit, c.ttl_seconds or 0]
        keys.append(redis.prefix + f"res:{rid}")
        result = self._script(keys=keys, args=args)
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
    appended to `alerts` for the caller to store after its commit."""
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
    outcome = store.reserve(execute, ts, charges, reservation_id, at)
    decision: CapDecision = decide(rules, outcome, event)
    if alerts is not None:
        alerts.extend((a, rules[a.cap_id]) for a in decision.alerts if a.cap_id in rules)
    if not decision.allowed:
        cap = decision.refused_cap
        return CapVerdict(False, decision.reason, int(cap.id) if cap else None)
    return CapVerdict(True, None, None, reserved=True)


class SqlConversionCaps:
    """`tracking.ports.ConversionCaps` on a unit of work's connection (the use case path)."""

    def __init__(
        self,
        conn: Any,
        rules: Rules,
        store: ConversionCapStore,
        timezone_of: Callable[[int], str],
        on_alerts: Callable[[list[tuple[CapAlert, CapRule]]], None] | None = None,
    ) -> None:
        self.conn = conn
        self.rules = rules
        self.store = store
        self.timezone_of = timezone_of
        self.on_alerts = on_alerts
        self._pg = conn.dialect.name != "sqlite"

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
        if alerts and self.on_alerts is not None:
            self.on_alerts(alerts)
        return verdict

    def release(self, reservation_id: str) -> bool:
        return self.store.release(self._execute, reservation_id)

    def release_conversion(self, conversion_id: int) -> bool:
        """`commissions.ports.ConversionCapReleases`: the reservation is stored under the id
        derived from the conversion's (program, order id)."""
        rows = self._execute(
            "SELECT program_id, order_id FROM conversions WHERE id = ?", (conversion_id,)
        )
        if not rows:
            return False
        return self.release(cap_reservation_id(int(rows[0][0]), str(rows[0][1])))


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
