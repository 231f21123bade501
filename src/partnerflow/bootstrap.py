"""Composition root: the only place that picks concrete adapters.

`build(settings)` returns `Services`, which entry points (web, CLI, jobs) use. Nothing is
connected at import time; engines open lazily on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from partnerflow.config import Settings
from partnerflow.core.clock import Clock, SystemClock
from partnerflow.storage.database import make_engine, read_only_connection, upgrade
from partnerflow.storage.unit_of_work import SqlUnitOfWork


@dataclass
class Services:
    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)

    def uow(self) -> SqlUnitOfWork:
        """A fresh unit of work (one transaction per `with`)."""
        return SqlUnitOfWork(self.engine, self.clock)

    def read(self) -> Connection:
        """A read-only connection (use as `with services.read() as conn:`)."""
        return read_only_connection(self.engine)

    def migrate(self) -> None:
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    engine = make_engine(settings.database_url, synchronous=settings.sqlite_synchronous)
    return Services(settings=settings, engine=engine, clock=clock or SystemClock())
