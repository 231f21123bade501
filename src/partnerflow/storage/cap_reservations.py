"""The two `CapCounter` stores: SQL (a guarded UPDATE per counter, one transaction) and Redis
(one Lua script). Both reserve every charge or none, atomically across processes.

Why there is no overshoot:
- SQL: `UPDATE cap_usage SET used = used + :n WHERE key = :k AND used + :n <= :limit` takes
  the row lock and re-checks the guard on the locked row (PostgreSQL re-evaluates the WHERE
  on the newest row version under READ COMMITTED; SQLite runs one writer at a time because
  our engine opens every transaction with BEGIN IMMEDIATE). A guard that matches no row means
  "full": the whole transaction rolls back, so earlier charges of the same reservation are
  undone. Counters are locked in key order, so two reservations never deadlock.
- Redis: the script reads every counter, refuses if any hard charge would pass its limit,
  then increments all; Redis runs a script without interleaving any other command.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from partnerflow.caps.model import Charge, Refused, Reservation
from partnerflow.core.clock import Clock, SystemClock
from partnerflow.storage import tables as t

_u = t.cap_usage


def _expiry(now: datetime, charges: Sequence[Charge]) -> datetime | None:
    ttls = [c.ttl_seconds for c in charges]
    if not ttls or any(ttl is None for ttl in ttls):
        return None
    return now + timedelta(seconds=max(ttl for ttl in ttls if ttl is not None))


class SqlCapCounter:
    """Counters in the `cap_usage` table (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def _insert_missing(
        self, conn: Connection, charge: Charge, now: datetime, used: int = 0
    ) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        expires = now + timedelta(seconds=charge.ttl_seconds) if charge.ttl_seconds else None
        stmt = dialect.insert(_u).values(
            key=charge.key, cap_id=charge.cap_id, used=used, expires_at=expires
        )
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))

    def reserve_in(
        self, conn: Connection, charges: Sequence[Charge], *, record: bool = True
    ) -> Reservation | Refused:
        """Reserve inside the caller's transaction (e.g. together with the conversion row).
        On Refused the caller must roll back: earlier charges are already applied in it."""
        now = self.clock.now()
        ordered = sorted(charges, key=lambda c: c.key)
        totals: dict[str, int] = {}
        for charge in ordered:
            self._insert_missing(conn, charge, now)
            stmt = update(_u).where(_u.c.key == charge.key).values(used=_u.c.used + charge.amount)
            if charge.limit is not None:
                stmt = stmt.where(_u.c.used + charge.amount <= charge.limit)
            total = conn.execute(stmt.returning(_u.c.used)).scalar_one_or_none()
            if total is None:
                used = conn.execute(select(_u.c.used).where(_u.c.key == charge.key)).scalar_one()
                return Refused(charge=charge, used=int(used))
            totals[charge.key] = int(total)
        rid = ""
        if record and ordered:
            rid = secrets.token_hex(12)
            conn.execute(
                t.cap_reservations.insert().values(
                    id=rid,
                    charges=[[c.key, c.amount] for c in ordered],
                    created_at=now,
                    expires_at=_expiry(now, ordered),
                )
            )
        return Reservation(
            id=rid, charges=tuple(charges), totals=tuple(totals[c.key] for c in charges)
        )

    def reserve(self, charges: Sequence[Charge], *, record: bool = True) -> Reservation | Refused:
        if not charges:
            return Reservation(id="", charges=(), totals=())
        with self.engine.connect() as conn:
            tx = conn.begin()
            try:
                outcome = self.reserve_in(conn, charges, record=record)
            except BaseException:
                tx.rollback()
                raise
            if isinstance(outcome, Refused):
                tx.rollback()
            else:
                tx.commit()
            return outcome

    def release(self, reservation_id: str) -> bool:
        if not reservation_id:
            return False
        with self.engine.begin() as conn:
            return self.release_in(conn, reservation_id)

    def release_in(self, conn: Connection, reservation_id: str) -> bool:
        res = t.cap_reservations
        row = conn.execute(select(res.c.charges).where(res.c.id == reservation_id)).first()
        if row is None:
            return False
        # Deleting first makes a concurrent second release find nothing to delete.
        if conn.execute(delete(res).where(res.c.id == reservation_id)).rowcount != 1:
            return False
        for key, amount in sorted(row.charges):
            conn.execute(
                update(_u)
                .where(_u.c.key == key)
                .values(used=_u.c.used - min_(_u.c.used, int(amount)))
            )
        return True

    def usage(self, keys: Sequence[str]) -> dict[str, int]:
        out = dict.fromkeys(keys, 0)
        if keys:
            with self.engine.connect() as conn:
                for row in conn.execute(select(_u.c.key, _u.c.used).where(_u.c.key.in_(keys))):
                    out[row.key] = int(row.used)
        return out

    def seed(self, key: str, units: int, ttl_seconds: int | None) -> None:
        cap_id = int(key.split(":")[1])
        with self.engine.begin() as conn:
            charge = Charge(key=key, amount=0, limit=None, cap_id=cap_id, ttl_seconds=ttl_seconds)
            self._insert_missing(conn, charge, self.clock.now(), used=units)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete counters and reservations whose period (plus grace) is over."""
        at = now or self.clock.now()
        with self.engine.begin() as conn:
            gone = conn.execute(delete(_u).where(_u.c.expires_at < at)).rowcount
            res = t.cap_reservations
            gone += conn.execute(delete(res).where(res.c.expires_at < at)).rowcount
        return int(gone)


def min_(column: Any, value: int) -> Any:
    """SQL min(column, value) on both engines (never let a release go below zero)."""
    return case((column < value, column), else_=value)


# KEYS: counter keys, then the reservation key when recording.
# ARGV: reservation id ('' = do not record), reservation ttl (0 = none), payload, then per
# counter: amount, limit (-1 = soft), ttl (0 = none).
RESERVE_LUA = """
local rid = ARGV[1]
local n = #KEYS
if rid ~= '' then n = n - 1 end
for i = 1, n do
  local amount = tonumber(ARGV[3 + 3 * i - 2])
  local limit = tonumber(ARGV[3 + 3 * i - 1])
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if limit >= 0 and used + amount > limit then
    return {0, i, used}
  end
end
local out = {1}
for i = 1, n do
  local total = redis.call('INCRBY', KEYS[i], tonumber(ARGV[3 + 3 * i - 2]))
  local ttl = tonumber(ARGV[3 + 3 * i])
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  out[#out + 1] = total
end
if rid ~= '' then
  local rttl = tonumber(ARGV[2])
  if rttl > 0 then
    redis.call('SET', KEYS[n + 1], ARGV[3], 'EX', rttl)
  else
    redis.call('SET', KEYS[n + 1], ARGV[3])
  end
end
return out
"""

# KEYS: reservation key, then counter keys; ARGV: amounts. Deleting the reservation key is
# the once-only guard; a counter that already expired is not recreated.
RELEASE_LUA = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local v = redis.call('DECRBY', KEYS[i], tonumber(ARGV[i - 1]))
    if v < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 1
"""

SEED_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') and tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""


class RedisCapCounter:
    """Counters in Redis under `prefix` (one primary; in a cluster every key of a reservation
    would have to share a hash slot, which we do not arrange)."""

    def __init__(self, client: Any, prefix: str = "pf:") -> None:
        self.client = client
        self.prefix = prefix
        self._reserve = client.register_script(RESERVE_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._seed = client.register_script(SEED_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str = "pf:") -> RedisCapCounter:
        import redis

        return cls(redis.Redis.from_url(url), prefix)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def reserve(self, charges: Sequence[Charge], *, record: bool = True) -> Reservation | Refused:
        if not charges:
            return Reservation(id="", charges=(), totals=())
        rid = secrets.token_hex(12) if record else ""
        keys = [self._k(c.key) for c in charges]
        ttls = [c.ttl_seconds for c in charges]
        res_ttl = 0 if any(x is None for x in ttls) else max(x or 0 for x in ttls)
        payload = "\n".join(f"{c.key}\t{c.amount}" for c in charges)
        args: list[Any] = [rid, res_ttl, payload]
        for c in charges:
            args += [c.amount, -1 if c.limit is None else c.limit, c.ttl_seconds or 0]
        if rid:
            keys.append(self._k(f"res:{rid}"))
        result = self._reserve(keys=keys, args=args)
        if int(result[0]) == 0:
            return Refused(charge=charges[int(result[1]) - 1], used=int(result[2]))
        return Reservation(id=rid, charges=tuple(charges), totals=tuple(int(x) for x in result[1:]))

    def release(self, reservation_id: str) -> bool:
        if not reservation_id:
            return False
        res_key = self._k(f"res:{reservation_id}")
        payload = self.client.get(res_key)
        if payload is None:
            return False
        pairs = [line.split("\t") for line in payload.decode().splitlines() if line]
        keys = [res_key] + [self._k(k) for k, _ in pairs]
        return bool(self._release(keys=keys, args=[int(a) for _, a in pairs]))

    def usage(self, keys: Sequence[str]) -> dict[str, int]:
        if not keys:
            return {}
        values = self.client.mget([self._k(k) for k in keys])
        return {k: int(v) if v is not None else 0 for k, v in zip(keys, values, strict=True)}

    def seed(self, key: str, units: int, ttl_seconds: int | None) -> None:
        self._seed(keys=[self._k(key)], args=[units, ttl_seconds or 0])


def make_cap_counter(
    engine: Engine, redis_url: str | None, clock: Clock | None = None, prefix: str = "pf:"
) -> SqlCapCounter | RedisCapCounter:
    """Redis when configured (shared by every tracker process), SQL otherwise."""
    if redis_url:
        return RedisCapCounter.from_url(redis_url, prefix)
    return SqlCapCounter(engine, clock)
