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
is replaced, never counted twice (`conversion_verdict`); one that is never retried is given
back by `reconcile_unsettled` (the reservations noted as `UNSETTLED` until their
transaction's end is seen). A reinstated conversion (fraud review undone) takes its room
back under the same id, counted even past a full hard cap: the overshoot becomes a cap alert
(`overshoot_alert`).

Statements take '?' placeholders and run through an `Execute` callable, so the writer's raw
DBAPI cursor and a SQLAlchemy connection (the use case) share one implementation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import Engine, func, select

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

# Conversion reservations in Redis are noted, in the same script, in one hash until the
# transaction that made them has ended (`ConversionCapStore.settled`): field the reservation
# id, value "<unix seconds>\t<program id>\t<order id>". A note still there long after is a
# reservation whose commit failed or whose process was killed before it — the conversion
# may or may not exist — and `reconcile_unsettled` decides it from the database.
UNSETTLED = "unsettled-reservations"


def _noting(script: str) -> str:
    """A reserve script that takes one more key (the unsettled hash, last) and argument (the
    note, last) and notes the reservation when it is made."""
    return (
        "local unsettled = table.remove(KEYS)\nlocal note = table.remove(ARGV)\n"
        f"local function reserve()\n{script}\nend\n"
        "local out = reserve()\n"
        "if out[1] == 1 then redis.call('HSET', unsettled, ARGV[1], note) end\n"
        "return out\n"
    )


# KEYS: the unsettled hash; ARGV: reservation id, the note read. Drops the note only while
# it is the one read (a reinstatement may have reserved again and noted it meanwhile).
SETTLE_UNSETTLED_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""

# KEYS: the unsettled hash, the reservation key; ARGV: reservation id, the note read, the
# key prefix. Releases the reservation only while its note is the one read: a retry of the
# same order that reserved again meanwhile wrote a newer one.
RELEASE_UNSETTLED_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
local payload = redis.call('GET', KEYS[2])
if not payload then return 0 end
redis.call('DEL', KEYS[2])
for line in string.gmatch(payload, '[^\\n]+') do
  local key, amount = string.match(line, '^(.*)\\t(%-?%d+)$')
  if key then
    local counter = ARGV[3] .. key
    if redis.call('EXISTS', counter) == 1 then
      local v = redis.call('DECRBY', counter, tonumber(amount))
      if v < 0 then redis.call('SET', counter, 0, 'KEEPTTL') end
    end
  end
end
return 1
"""


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
        owner: tuple[int, str],
    ) -> Reservation | Refused:
        """Charge every counter or none, under `reservation_id`; `owner` is the conversion's
        (program id, order id)."""
        if self.redis is not None:
            outcome = self._reserve_redis(charges, reservation_id, owner)
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
        owner: tuple[int, str],
    ) -> Reservation | Refused | None:
        """`reserve`, unless a reservation under this id exists already (None: nothing
        charged). Atomic on Redis; in SQL the check and the charges share the caller's
        transaction."""
        if self.redis is not None:
            return self._reserve_redis(charges, reservation_id, owner, once=True)
        if self.holds(execute, reservation_id):
            return None
        return self.reserve(execute, ts, charges, reservation_id, now, owner)

    def holds(self, execute: Execute, reservation_id: str) -> bool:
        """Whether a reservation is stored under this id (now; Redis: outside any
        transaction)."""
        if self.redis is not None:
            return bool(self.redis.client.exists(self.redis.prefix + f"res:{reservation_id}"))
        return bool(execute("SELECT 1 FROM cap_reservations WHERE id = ?", (reservation_id,)))

    def _reserve_redis(
        self, charges: Sequence[Charge], rid: str, owner: tuple[int, str], *, once: bool = False
    ) -> Reservation | Refused | None:
        # `RedisCapCounter.reserve` with our own id (its script takes any id), noted as
        # unsettled (`UNSETTLED`) in the same script.
        redis = self.redis
        assert redis is not None
        if once:
            if self._once_script is None:
                self._once_script = redis.client.register_script(_noting(RESERVE_ONCE_LUA))
            script = self._once_script
        else:
            if self._script is None:
                self._script = redis.client.register_script(_noting(RESERVE_LUA))
            script = self._script
        keys = [redis.prefix + c.key for c in charges]
        ttls = [c.ttl_seconds for c in charges]
        res_ttl = 0 if any(x is None for x in ttls) else max(x or 0 for x in ttls)
        args: list[Any] = [rid, res_ttl, "\n".join(f"{c.key}\t{c.amount}" for c in charges)]
        for c in charges:
            args += [c.amount, -1 if c.limit is None else c.limit, c.ttl_seconds or 0]
        keys += [redis.prefix + f"res:{rid}", redis.prefix + UNSETTLED]
        program_id, order_id = owner
        args.append(f"{int(time.time())}\t{program_id}\t{order_id}")
        result = script(keys=keys, args=args)
        if int(result[0]) == 2:
            return None
        if int(result[0]) == 0:
            return Refused(charge=charges[int(result[1]) - 1], used=int(result[2]))
        return Reservation(id=rid, charges=tuple(charges), totals=tuple(int(x) for x in result[1:]))

    def settled(self, reservation_ids: Sequence[str]) -> None:
        """The transactions that made these Redis reservations have ended (committed, or
        rolled back and the reservations released): their notes go."""
        if self.redis is not None and reservation_ids:
            self.redis.client.hdel(self.redis.prefix + UNSETTLED, *reservation_ids)

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
    order_id: str,
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
    outcome = store.reserve(execute, ts, charges, reservation_id, at, (program_id, order_id))
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
        order_id: str,
    ) -> CapVerdict:
        rules = self.rules(ProgramId(program_id))
        if not rules:
            return ALLOWED
        alerts: list[tuple[CapAlert, CapRule]] = []
        verdict = conversion_verdict(
            self.store, rules, self._execute, self._ts,
            program_id=program_id, tz=self.timezone_of(program_id), offer_id=offer_id,
            partner_id=partner_id, at=at, revenue=revenue, payout=payout,
            reservation_id=reservation_id, order_id=order_id, alerts=alerts,
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
            self._execute, self._ts, [replace(ch, limit=None) for ch in charges], rid, now,
            (row.program_id, row.order_id),
        )  # fmt: skip
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
        """Give back in Redis what the committed transaction released; its reservations are
        settled."""
        releases, self._releases = self._releases, []
        reserved, self._reserved = self._reserved, []
        self._release_redis(releases)
        self._settle(reserved)

    def rolled_back(self) -> None:
        """Undo in Redis what the rolled-back transaction reserved (its releases never
        happen)."""
        reserved, self._reserved, self._releases = self._reserved, [], []
        self._release_redis(reserved)
        self._settle(reserved)

    def abandoned(self) -> None:
        """The commit failed, its outcome unknown: Redis stays as a killed process leaves it,
        its reservations noted as unsettled. A reservation kept is right if the transaction
        did commit; if not, it is a leftover that the retry of the same order replaces
        (`conversion_verdict`), a reinstatement retried finds held (`reserve_once`), and
        `reconcile_unsettled` gives back once nothing retried it. Its releases never
        happen."""
        self._reserved, self._releases = [], []

    def _settle(self, reservation_ids: list[str]) -> None:
        try:
            self.store.settled(reservation_ids)
        except Exception:  # the reconciliation job settles what is left noted
            log.exception("could not settle %d cap reservations", len(reservation_ids))

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


#: How old an unsettled note must be before `reconcile_unsettled` decides it: far longer
#: than any transaction that reserves (a writer batch, a use case) stays open.
RECONCILE_GRACE_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one `reconcile_unsettled` pass found among the unsettled notes."""

    young: int = 0  # newer than the grace period: left for a later pass
    settled: int = 0  # the conversion exists, or the reservation is gone: note dropped
    released: int = 0  # no conversion: the reservation's room given back
    skipped: int = 0  # a retry reserved again meanwhile, or an unreadable note

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def reconcile_unsettled(
    engine: Engine,
    store: ConversionCapStore,
    *,
    grace_seconds: int = RECONCILE_GRACE_SECONDS,
    now: float | None = None,
) -> Reconciled:
    """Decide the Redis conversion reservations whose transaction's end was never seen (a
    failed commit, a process killed between reserving and committing) and that no retry
    replaced within `grace_seconds`: a conversion stored under its program and order id
    keeps its reservation; without one, the room is given back — otherwise it stays taken
    until the counter expires, never for an all-time cap. Idempotent; runs as the
    `cap-reservations` job and `partnerflow caps reconcile`."""
    redis = store.redis
    if redis is None:
        return Reconciled()
    client, prefix = redis.client, redis.prefix
    now = time.time() if now is None else now
    release = client.register_script(RELEASE_UNSETTLED_LUA)
    settle = client.register_script(SETTLE_UNSETTLED_LUA)
    young = settled = released = skipped = 0
    for raw_rid, raw_note in client.hscan_iter(prefix + UNSETTLED):
        rid, note = raw_rid.decode(), raw_note.decode()
        parts = note.split("\t", 2)
        try:
            at, program_id, order_id = float(parts[0]), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            log.error("unreadable unsettled cap reservation %s: %r", rid, note[:200])
            skipped += 1
            continue
        if now - at < grace_seconds:
            young += 1
            continue
        with engine.connect() as conn:
            stored = conn.execute(
                select(t.conversions.c.id).where(
                    t.conversions.c.program_id == program_id,
                    t.conversions.c.order_id == order_id,
                )
            ).first()
        if stored is not None:
            # Committed (its note outlived a lost settle): the reservation is the order's.
            if int(settle(keys=[prefix + UNSETTLED], args=[rid, note])):
                settled += 1
            else:
                skipped += 1  # noted again meanwhile: a later pass decides the new note
            continue
        outcome = int(release(keys=[prefix + UNSETTLED, prefix + f"res:{rid}"],
                              args=[rid, note, prefix]))  # fmt: skip
        if outcome == 1:
            log.warning(
                "gave back the cap reservation of order %r (program %d): reserved %.0f s ago,"
                " never committed",
                order_id, program_id, now - at,
            )  # fmt: skip
            released += 1
        elif outcome == 0:
            settled += 1  # released already (a refund, a retry), only the note was left
        else:
            skipped += 1  # a retry of the order reserved again meanwhile
    return Reconciled(young, settled, released, skipped)
