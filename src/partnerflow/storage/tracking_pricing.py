"""What the tracker's writer needs to price conversions through the commission engine
(`commissions.services.commission_for_conversion`), cached like the tracking snapshot.

A conversion is priced the same way on every path; the batch path only differs in where the
inputs come from: each program's stored plans (parsed once into a `PlanBook`) and the rate
table are loaded at most every `ttl` seconds on a read-only connection of their own (on
SQLite it never waits for the writer's write lock; a plan or rate change reaches the tracker
within `ttl`), and the two counts a tiered plan or a
new-vs-returning bonus needs are read on the writer's own cursor (`CursorFacts`), so they see
the conversions written earlier in the same batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine

from partnerflow.commissions.plans import SUBSCRIPTION_EVENTS
from partnerflow.commissions.ports import ConversionFactsRepository, StoredPlan
from partnerflow.commissions.rates import RateTable
from partnerflow.commissions.services import PlanBook
from partnerflow.storage.database import read_only_connection
from partnerflow.storage.plans import SqlPlans
from partnerflow.storage.rates import SqlRates

# The SQL list of a subscription's payment events (constants, never user input).
_PAYMENT_EVENTS = ", ".join(f"'{event}'" for event in sorted(SUBSCRIPTION_EVENTS))


class LoadedPlans:
    """`PlanRepository.current` over plans loaded once (the only method a `PlanBook` uses)."""

    def __init__(self, plans: Mapping[tuple[int, str], StoredPlan]) -> None:
        self._plans = dict(plans)

    def current(self, program_id: int, scope: str) -> StoredPlan | None:
        return self._plans.get((program_id, scope))

    def revisions(self, program_id: int, scope: str) -> list[StoredPlan]:
        found = self.current(program_id, scope)
        return [found] if found else []

    def scopes(self, program_id: int) -> list[str]:
        return sorted(s for p, s in self._plans if p == program_id)

    def add(self, plan: Any, versions: Any) -> None:  # pragma: no cover - read-only
        raise RuntimeError("the tracker's plan cache is read-only")


class PricingCache:
    """Plan books per program and the rate table, each reloaded after `ttl` seconds."""

    def __init__(self, engine: Engine, *, ttl: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._books: dict[int, tuple[float, PlanBook]] = {}
        self._rates: tuple[float, RateTable] | None = None
        self._lock = threading.Lock()

    def book(self, program_id: int) -> PlanBook:
        now = time.monotonic()
        hit = self._books.get(program_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with read_only_connection(self.engine) as conn:
            repo = SqlPlans(conn)
            loaded = {}
            for scope in repo.scopes(program_id):
                stored = repo.current(program_id, scope)
                if stored is not None:
                    loaded[(program_id, scope)] = stored
        book = PlanBook(LoadedPlans(loaded), program_id)
        with self._lock:
            self._books[program_id] = (now, book)
        return book

    def rates(self) -> RateTable:
        now = time.monotonic()
        hit = self._rates
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with read_only_connection(self.engine) as conn:
            table = SqlRates(conn).table()
        self._rates = (now, table)
        return table

    def invalidate(self) -> None:
        with self._lock:
            self._books.clear()
            self._rates = None


class CursorFacts:
    """The counts the plan engine asks for, on the writer's cursor ('?' placeholders
    turned into the driver's by `sql`; timestamps in the stored form by `ts`)."""

    def __init__(self, cur: Any, sql: Callable[[str], str], ts: Callable[[datetime], Any]) -> None:
        self.cur = cur
        self.sql = sql
        self.ts = ts

    def _count(self, query: str, params: Sequence[Any]) -> int:
        self.cur.execute(self.sql(query), tuple(params))
        row = self.cur.fetchone()
        return int(row[0]) if row else 0

    def period_count(
        self,
        program_id: int,
        partner_id: int,
        event_type: str,
        start: datetime,
        at: datetime,
        before_id: int | None,
    ) -> int:
        before, params = self._before(at, before_id)
        return self._count(
            "SELECT COUNT(*) FROM conversions WHERE program_id = ? AND partner_id = ?"
            " AND event_type = ? AND created_at >= ? AND " + before,
            (program_id, partner_id, event_type, self.ts(start), *params),
        )

    def customer_purchases(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int:
        return self._customer_count(program_id, customer_id, at, before_id, "")

    def subscription_payments(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int:
        also = f"event_type IN ({_PAYMENT_EVENTS}) AND "
        return self._customer_count(program_id, customer_id, at, before_id, also)

    def _customer_count(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None, also: str
    ) -> int:
        before, params = self._before(at, before_id)
        return self._count(
            "SELECT COUNT(*) FROM conversions WHERE program_id = ? AND customer_id = ? AND "
            + also
            + before,
            (program_id, customer_id, *params),
        )

    def _before(self, at: datetime, before_id: int | None) -> tuple[str, tuple[Any, ...]]:
        # Same rule as storage.plans.SqlConversionFacts: earlier in time, or at the same
        # instant with a smaller id; a conversion not stored yet counts up to `at` included.
        if before_id is None:
            return "created_at <= ?", (self.ts(at),)
        stamp = self.ts(at)
        return "(created_at < ? OR (created_at = ? AND id < ?))", (stamp, stamp, before_id)

    def as_repository(self) -> ConversionFactsRepository:
        # `commission_for_conversion` only calls the three counts.
        return cast(ConversionFactsRepository, self)
