"""One database transaction with every repository bound to it.

`with uow:` begins; leaving the block normally commits, an exception rolls back, so a use
case that raises leaves nothing half-written — including the domain events it published
(`events`, the transactional outbox). Satisfies each capability's UnitOfWork port.

Cap counters in Redis live outside the transaction: when it ends, `conversion_caps` gives
back what a committed transaction released, or what a rolled-back one reserved (before the
rollback, while the transaction still holds its rows); cap alerts raised in it are stored
after the commit (see `storage.tracking_caps`). A commit that fails leaves Redis as a killed
process would.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, select

from partnerflow.caps.model import CapAlert, CapRule
from partnerflow.core.clock import Clock
from partnerflow.core.ids import ProgramId
from partnerflow.storage import tables as t
from partnerflow.storage.audit import SqlAudit
from partnerflow.storage.caps import SqlCaps, store_alerts
from partnerflow.storage.catalog import SqlCoupons, SqlLinks, SqlOffers, SqlPartners, SqlPrograms
from partnerflow.storage.events import SqlClicks, SqlConversions
from partnerflow.storage.ledger import SqlLedger
from partnerflow.storage.outbox import SqlOutbox
from partnerflow.storage.plans import SqlConversionFacts, SqlPlans
from partnerflow.storage.rates import SqlRates
from partnerflow.storage.tracking_caps import ConversionCapStore, Rules, SqlConversionCaps

log = logging.getLogger(__name__)


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
        self._cap_alerts: list[tuple[CapAlert, CapRule]] = []

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
        self._cap_alerts = []
        self.conversion_caps = SqlConversionCaps(
            conn,
            self._cap_rules or self._caps_in_transaction,
            self._cap_store,
            self._timezone,
            self._cap_alerts.extend,
            now=self.clock.now,
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
        if exc_type is not None:
            try:
                # Redis first, while this transaction still holds the rows it wrote: an
                # attempt at the same order waits on its conversion row and reserves under
                # the same id once the row is gone; undone after the rollback, ours could
                # take that attempt's reservation with it.
                self._settle_caps(committed=False)
            finally:
                try:
                    conn.rollback()
                finally:
                    conn.close()
            return
        try:
            conn.commit()
        except BaseException:
            # Did it commit? A lost connection cannot say, and the rows may already be free
            # for another attempt. Leave Redis as a killed process would: a reservation
            # kept is right if it committed, and replaced by the retry if not.
            self._cap_alerts = []
            self.conversion_caps.abandoned()
            conn.close()
            raise
        try:
            conn.close()
        finally:
            self._settle_caps(committed=True)

    def _settle_caps(self, committed: bool) -> None:
        """What the transaction did to caps outside the database follows its outcome."""
        alerts, self._cap_alerts = self._cap_alerts, []
        if not committed:
            self.conversion_caps.rolled_back()
            return
        self.conversion_caps.committed()
        if alerts:
            try:
                store_alerts(
                    self.engine, [(a, rule.metric) for a, rule in alerts], self.clock.now()
                )
            except Exception:
                log.exception("could not store %d cap alerts", len(alerts))

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("use the unit of work inside 'with uow:'")
        return self._conn
