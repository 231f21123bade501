"""Composition root: the only place that picks concrete adapters.

`build(settings)` returns `Services`, which entry points (web, CLI, jobs) use. Nothing is
connected at import time; engines open lazily on first use, and the cap counters and rule
cache are made on first use too (a CLI command that never touches caps never opens Redis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from partnerflow.caps.model import CapAlert, CapRule
from partnerflow.caps.services import CachedCapRules, CapGuard
from partnerflow.config import Settings
from partnerflow.core.clock import Clock, SystemClock
from partnerflow.core.ids import ProgramId
from partnerflow.storage.cap_reservations import RedisCapCounter, SqlCapCounter, make_cap_counter
from partnerflow.storage.caps import load_active_caps, store_alerts
from partnerflow.storage.database import make_engine, read_only_connection, upgrade
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.storage.tracking_caps import ConversionCapStore
from partnerflow.storage.unit_of_work import SqlUnitOfWork

#: How long the cap rules of a program are cached outside the tracker (the tracker's own
#: snapshot refreshes on the same rhythm).
CAP_RULES_TTL = 5.0


@dataclass
class Services:
    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    _lazy: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def uow(self) -> SqlUnitOfWork:
        """A fresh unit of work (one transaction per `with`); conversions it records are
        held to the caps through the same counters as the tracker."""
        return SqlUnitOfWork(
            self.engine,
            self.clock,
            cap_rules=self.cap_rules(),
            cap_store=self.conversion_cap_store(),
        )

    def fraud_uow(self) -> SqlFraudUnitOfWork:
        """`uow()` plus the fraud repositories: a rejection releases, and a reinstatement
        takes back, the conversion's cap room in the deployment's counters (Redis too)."""
        return SqlFraudUnitOfWork(
            self.engine,
            self.clock,
            cap_rules=self.cap_rules(),
            cap_store=self.conversion_cap_store(),
        )

    def money_uow(self) -> SqlMoneyUnitOfWork:
        """`uow()` plus plans, rates and payouts (commission and payout use cases): a refund
        or rejection releases the conversion's cap room in the deployment's counters."""
        return SqlMoneyUnitOfWork(
            self.engine,
            self.clock,
            cap_rules=self.cap_rules(),
            cap_store=self.conversion_cap_store(),
        )

    def read(self) -> Connection:
        """A read-only connection (use as `with services.read() as conn:`)."""
        return read_only_connection(self.engine)

    # -- caps (made on first use) -------------------------------------------------------
    def cap_counter(self) -> SqlCapCounter | RedisCapCounter:
        """The deployment's cap counters: Redis when configured, else SQL."""
        if "cap_counter" not in self._lazy:
            self._lazy["cap_counter"] = make_cap_counter(
                self.engine, self.settings.redis_url, self.clock, self.settings.redis_prefix
            )
        counter: SqlCapCounter | RedisCapCounter = self._lazy["cap_counter"]
        return counter

    def cap_rules(self) -> CachedCapRules:
        """Active caps per program, cached `CAP_RULES_TTL` seconds."""
        if "cap_rules" not in self._lazy:
            engine = self.engine

            def load(program_id: ProgramId) -> list[CapRule]:
                # Called inside a unit of work: `load_active_caps` reads read-only.
                return load_active_caps(engine, program_id)

            self._lazy["cap_rules"] = CachedCapRules(load, ttl=CAP_RULES_TTL)
        rules: CachedCapRules = self._lazy["cap_rules"]
        return rules

    def cap_guard(self) -> CapGuard:
        """`caps.services.CapGuard` for jobs and pages that check events outside the tracker;
        the alerts it raises are stored at once."""
        if "cap_guard" not in self._lazy:
            engine, clock = self.engine, self.clock

            def on_alert(alert: CapAlert, rule: CapRule) -> None:
                store_alerts(engine, [(alert, rule.metric)], clock.now())

            self._lazy["cap_guard"] = CapGuard(self.cap_counter(), self.cap_rules(), on_alert)
        guard: CapGuard = self._lazy["cap_guard"]
        return guard

    def conversion_cap_store(self) -> ConversionCapStore:
        """Where conversions reserve their caps: in their own transaction (SQL), or Redis."""
        if "conversion_caps" not in self._lazy:
            counter = self.cap_counter()
            self._lazy["conversion_caps"] = ConversionCapStore(
                counter if isinstance(counter, RedisCapCounter) else None
            )
        store: ConversionCapStore = self._lazy["conversion_caps"]
        return store

    def migrate(self) -> None:
        upgrade(self.engine)

    def close(self) -> None:
        counter = self._lazy.pop("cap_counter", None)
        if isinstance(counter, RedisCapCounter):
            counter.client.close()
        self._lazy.clear()
        self.engine.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    engine = make_engine(settings.database_url, synchronous=settings.sqlite_synchronous)
    return Services(settings=settings, engine=engine, clock=clock or SystemClock())
