"""What the commission use cases need from storage, as Protocols and plain values.

`commissions` sits below programs, partners and tracking in the layering, so the facts it
needs about them travel as the small values defined here (`ProgramTerms`,
`ConversionFacts`); the storage adapters fill them from their tables. The unit of work
exposes its repositories as read-only properties so any object with those attributes fits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, Self

from partnerflow.commissions.ledger import Entry
from partnerflow.commissions.model import LedgerEntry
from partnerflow.commissions.rates import Rate, RateTable
from partnerflow.core.audit import AuditLog
from partnerflow.core.events import EventSink
from partnerflow.core.ids import ConversionId
from partnerflow.core.money import Money


@dataclass(frozen=True, slots=True)
class ProgramTerms:
    """The program settings commissions depend on."""

    id: int
    slug: str
    currency: str
    lock_period_days: int
    attribution_model: str
    cookie_window_days: int


@dataclass(frozen=True, slots=True)
class ConversionFacts:
    """A stored conversion with what is known about its source (click or coupon)."""

    id: int
    program_id: int
    offer_id: int | None
    partner_id: int | None
    order_id: str
    event_type: str
    amount: Money  # the order value in its original currency
    created_at: datetime
    status: str
    attributed_by: str
    refunded: Money  # refunds and chargebacks so far, in the order currency
    click_id: str | None = None
    click_at: datetime | None = None
    click_country: str | None = None
    coupon_code: str | None = None
    customer_id: str | None = None
    is_flagged: bool = False
    flags: str | None = None
    partner_status: str | None = None


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """One revision of a plan document for a scope ('program' or 'offer:<id>')."""

    program_id: int
    scope: str
    offer_id: int | None
    revision: int
    plan_id: str
    currency: str
    document: Mapping[str, Any]
    author: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredVersion:
    version: int
    effective_from: datetime
    effective_to: datetime | None
    document: Mapping[str, Any]


class PlanRepository(Protocol):
    def current(self, program_id: int, scope: str) -> StoredPlan | None: ...
    def revisions(self, program_id: int, scope: str) -> list[StoredPlan]: ...
    def scopes(self, program_id: int) -> list[str]: ...
    def add(self, plan: StoredPlan, versions: Sequence[StoredVersion]) -> None: ...


class RateRepository(Protocol):
    def table(self) -> RateTable: ...
    def existing(self) -> dict[tuple[str, str, date], Decimal]: ...
    def add(self, rates: Sequence[Rate], import_id: str, at: datetime) -> None: ...


class ConversionFactsRepository(Protocol):
    def program(self, program_id: int) -> ProgramTerms | None: ...
    def programs(self) -> list[ProgramTerms]: ...
    def offer_ids(self, program_id: int) -> list[int]: ...
    def offer_plan(self, offer_id: int) -> tuple[int, Mapping[str, Any]] | None:
        """(program id, simple plan data) of an offer."""
        ...

    def partner_program(self, partner_id: int) -> int | None: ...
    def get(self, conversion_id: int) -> ConversionFacts | None: ...
    def by_order(self, program_id: int, order_id: str) -> ConversionFacts | None: ...
    def in_range(self, program_id: int, start: datetime, end: datetime) -> list[ConversionFacts]:
        """Attributed conversions with start <= created_at < end, oldest first."""
        ...

    def period_count(
        self,
        program_id: int,
        partner_id: int,
        event_type: str,
        start: datetime,
        at: datetime,
        before_id: int | None,
    ) -> int:
        """The partner's conversions of this type in [start, at] that came before this one."""
        ...

    def customer_purchases(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int: ...
    def subscription_payments(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int:
        """The customer's sale and renewal conversions (`plans.SUBSCRIPTION_EVENTS`) that
        came before this one, whatever their status: a renewal is payment number this + 1."""
        ...

    def flagged(self, program_id: int) -> set[int]: ...
    def record_refund(self, conversion_id: int, refunded: Money, fully: bool) -> None: ...
    def cap_description(self, cap_id: int) -> str | None:
        """A cap as a sentence (which cap, limit, metric, period, scope), for explaining a
        conversion a cap held; None when the cap is gone."""
        ...


class LedgerRepository(Protocol):
    def lock_program(self, program_id: int) -> None:
        """Serialise the program's ledger writers until the transaction ends: a use case
        that reads balances and then appends (approval, refund, adjustment, payout) must
        not interleave with another one."""
        ...

    def entries(
        self,
        *,
        program_id: int | None = None,
        partner_id: int | None = None,
        conversion_ids: Iterable[int] | None = None,
    ) -> list[Entry]: ...

    def for_conversion(self, conversion_id: ConversionId) -> list[LedgerEntry]:
        """Every entry of a conversion with its details (rate used, refund)."""
        ...

    def append_entries(
        self,
        entries: Sequence[Entry],
        *,
        fx_rate: Decimal | None = None,
        fx_rate_date: date | None = None,
    ) -> None: ...


class ConversionCapReleases(Protocol):
    """Gives a conversion's cap reservation back when the conversion stops counting (full
    refund, fraud rejection), so the cap room returns. The reservation is found from the
    conversion itself; idempotent: True only the first time."""

    def release_conversion(self, conversion_id: int) -> bool: ...


class CommissionsUnitOfWork(Protocol):
    @property
    def plans(self) -> PlanRepository: ...
    @property
    def rates(self) -> RateRepository: ...
    @property
    def facts(self) -> ConversionFactsRepository: ...
    @property
    def ledger(self) -> LedgerRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def events(self) -> EventSink: ...
    @property
    def conversion_caps(self) -> ConversionCapReleases: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
