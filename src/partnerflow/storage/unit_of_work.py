"""One database transaction with every repository bound to it.

`with uow:` begins; leaving the block normally commits, an exception rolls back, so a use
case that raises leaves nothing half-written — including the domain events it published
(`events`, the transactional outbox). Satisfies each capability's UnitOfWork port.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, select

from partnerflow.caps.model import CapRule
from partnerflow.core.clock import Clock
from partnerflow.core.ids import ProgramId
from partnerflow.storage import tables as t
from partnerflow.storage.audit import SqlAudit
from partnerflow.storage.caps import SqlCaps
from partnerflow.storage.catalog import SqlCoupons, SqlLinks, SqlOffers, SqlPartners, SqlPrograms
from partnerflow.storage.events import SqlClicks, SqlConversions
from partnerflow.storage.ledger import SqlLedger
from partnerflow.storage.outbox import SqlOutbox
from partnerflow.storage.plans import SqlConversionFacts, SqlPlans
from partnerflow.storage.rates import SqlRates
from partnerflow.storage.tracking_caps import ConversionCapStore, Rules, SqlConversionCaps


class SqlUnitOfWork:
    programs: SqlPrograms
    offers: SqlOffers
    partners: SqlPartners
    links: SqlLinks
    coupons: SqlCoupons
    clicks: SqlClicks
    conversions: SqlConversions
    ledger: SqlLedger
    audit: SqlAudit
    # Domain events go to the outbox on this same connection: published iff committed.
    events: SqlOutbox
    # What pricing a conversion needs (the commission engine) and its caps.
    plans: SqlPlans
    facts: SqlConversionFacts
    rates: SqlRates
    conversion_caps: SqlConversionCaps

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        cap_rules: Rules | None = None,
        cap_store: ConversionCapStore | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        # Without a cache (direct construction, tests) caps are read in the transaction;
        # without a store, counters are SQL (Services passes Redis when configured).
        self._cap_rules = cap_rules
        self._cap_store = cap_store or ConversionCapStore()
        self._conn: Connection | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        # Re-entrant: a use case may call another inside the same transaction.
        self._depth += 1
        if self._depth > 1:
            return self
        conn = self.engine.connect()
        conn.begin()
        self._conn = conn
        self.programs = SqlPrograms(conn)
        self.offers = SqlOffers(conn)
        self.partners = SqlPartners(conn, self.clock.now)
        self.links = SqlLinks(conn)
        self.coupons = SqlCoupons(conn)
        self.clicks = SqlClicks(conn)
        self.conversions = SqlConversions(conn)
        self.ledger = SqlLedger(conn)
        self.audit = SqlAudit(conn, self.clock.now)
        self.events = SqlOutbox(conn, self.clock)
        self.plans = SqlPlans(conn)
        self.facts = SqlConversionFacts(conn)
        self.rates = SqlRates(conn)
        self.conversion_caps = SqlConversionCaps(
            conn, self._cap_rules or self._caps_in_transaction, self._cap_store, self._timezone
        )
        return self

    def _caps_in_transaction(self, program_id: ProgramId) -> dict[int, CapRule]:
        return {c.id: c for c in SqlCaps(self.connection).list(program_id)}

    def _timezone(self, program_id: int) -> str:
        tz = self.connection.execute(
            select(t.programs.c.timezone).where(t.programs.c.id == program_id)
        ).scalar_one_or_none()
        return str(tz or "UTC")

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

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("use the unit of work inside 'with uow:'")
        return self._conn
