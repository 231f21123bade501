"""What the tracking capability needs from storage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Protocol, Self

from partnerflow.commissions.model import LedgerEntry
from partnerflow.commissions.ports import ConversionFactsRepository, PlanRepository, RateRepository
from partnerflow.core.audit import AuditLog
from partnerflow.core.ids import ClickId, ConversionId, PartnerId, ProgramId
from partnerflow.partners.ports import PartnerRepository
from partnerflow.programs.ports import OfferRepository, ProgramRepository
from partnerflow.tracking.conversions import CapVerdict
from partnerflow.tracking.model import Click, Conversion, Coupon, TrackingLink


class LinkRepository(Protocol):
    def add(self, link: TrackingLink) -> TrackingLink: ...
    def by_code(self, code: str) -> TrackingLink | None: ...
    def list(
        self, program_id: ProgramId | None = None, partner_id: PartnerId | None = None
    ) -> list[TrackingLink]: ...


class CouponRepository(Protocol):
    def add(self, coupon: Coupon) -> Coupon: ...
    def by_code(self, program_id: ProgramId, code: str) -> Coupon | None: ...
    def list(
        self, program_id: ProgramId | None = None, partner_id: PartnerId | None = None
    ) -> list[Coupon]: ...


class ClickRepository(Protocol):
    def get(self, click_id: ClickId) -> Click | None: ...


class ConversionRepository(Protocol):
    def by_order(self, program_id: ProgramId, order_id: str) -> Conversion | None: ...
    def last_attributed_to_customer(
        self, program_id: ProgramId, customer_id: str
    ) -> Conversion | None:
        """The program's latest conversion of this customer that a partner brought."""
        ...

    def add(self, conversion: Conversion) -> Conversion | None:
        """Store a new conversion; None when the program already has this order id (a
        concurrent record of the same order committed first). The row stays this
        transaction's until it ends: a second one adding the same order waits for it."""
        ...

    def reject(self, conversion_id: ConversionId, flags: str | None) -> Conversion:
        """Mark a conversion added in this transaction rejected (over a hard cap)."""
        ...


class LedgerRepository(Protocol):
    def append(self, entries: list[LedgerEntry], txn_id: str) -> None: ...
    def for_partner(self, partner_id: PartnerId) -> list[LedgerEntry]: ...


class ConversionCaps(Protocol):
    """Hard and soft caps on conversions, in the unit of work's transaction where the store
    allows it (SQL), so a refused conversion and its counters commit together."""

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
        """Reserve the conversion's share of every matching cap (all or none), under
        `reservation_id` (derived from the program and `order_id`). Call it once the
        conversion's row is added in this transaction: a reservation then found under
        that id can only be left by an attempt that never committed (a process killed
        between its reservation and its commit), and is replaced, not counted twice."""
        ...

    def release(self, reservation_id: str) -> bool:
        """Give a conversion's reservation back (refund, rejection); True the first time."""
        ...


class TrackingUnitOfWork(Protocol):
    @property
    def programs(self) -> ProgramRepository: ...
    @property
    def offers(self) -> OfferRepository: ...
    @property
    def partners(self) -> PartnerRepository: ...
    @property
    def links(self) -> LinkRepository: ...
    @property
    def coupons(self) -> CouponRepository: ...
    @property
    def clicks(self) -> ClickRepository: ...
    @property
    def conversions(self) -> ConversionRepository: ...
    @property
    def ledger(self) -> LedgerRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    # Pricing goes through the commission engine (versioned plans, stored rates).
    @property
    def plans(self) -> PlanRepository: ...
    @property
    def facts(self) -> ConversionFactsRepository: ...
    @property
    def rates(self) -> RateRepository: ...
    @property
    def conversion_caps(self) -> ConversionCaps: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Counters(Protocol):
    """Short-lived counters shared by the tracker processes of one deployment (Redis) or
    private to one process (in memory). Keys are opaque strings; windows are seconds."""

    def seen_recently(self, key: str, window_s: int) -> bool:
        """True when `key` was already seen within the window; marks it seen either way."""
        ...

    def incr(self, key: str, window_s: int) -> int:
        """Add one to a counter that resets `window_s` after its first increment."""
        ...
