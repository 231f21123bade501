"""What the caps capability needs from the outside: an atomic counter store, and
repositories for rules, changes, alerts, goals, spend and notices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Protocol, Self

from partnerflow.caps.goals import PartnerTarget, ProgramGoal
from partnerflow.caps.model import (
    CapAlert,
    CapChange,
    CapMetric,
    CapRule,
    Charge,
    EventTotals,
    Refused,
    Reservation,
)
from partnerflow.caps.spend import SpendRow
from partnerflow.core.audit import AuditLog
from partnerflow.core.events import EventSink
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.programs.ports import OfferRepository, ProgramRepository


class CapCounter(Protocol):
    """Shared counters with all-or-nothing reservations (SQL or Redis).

    `reserve` checks every hard charge (`used + amount <= limit`) and, only if all pass,
    adds every amount, atomically with respect to every other reservation in every process.
    """

    def reserve(self, charges: Sequence[Charge], *, record: bool = True) -> Reservation | Refused:
        """Reserve all charges or none. With `record`, the reservation can be released later
        by its id (exactly once)."""
        ...

    def release(self, reservation_id: str) -> bool:
        """Give a recorded reservation back (rejected or refunded event). Idempotent: True the
        first time, False afterwards or for an unknown id."""
        ...

    def usage(self, keys: Sequence[str]) -> dict[str, int]:
        """Current counter values (0 for unknown keys)."""
        ...

    def seed(self, key: str, units: int, ttl_seconds: int | None) -> None:
        """Set a counter that does not exist yet (a new cap picks up the period's past
        events); an existing counter is left alone."""
        ...


class CapRepository(Protocol):
    def add(self, rule: CapRule) -> CapRule: ...
    def update(self, rule: CapRule) -> CapRule: ...
    def get(self, cap_id: int) -> CapRule | None: ...
    def list(
        self,
        program_id: ProgramId | None = None,
        *,
        partner_id: PartnerId | None = None,
        active_only: bool = True,
    ) -> list[CapRule]: ...


class CapChangeRepository(Protocol):
    def add(self, change: CapChange, metric: CapMetric) -> CapChange: ...
    def has_run(self, cap_id: int, run_key: str) -> bool: ...
    def list(
        self, *, cap_ids: list[int] | None = None, changed_only: bool = True
    ) -> list[tuple[CapChange, CapRule]]: ...


class CapAlertRepository(Protocol):
    def add_once(self, alert: CapAlert, metric: CapMetric, at: datetime) -> bool: ...


class NoticeQueue(Protocol):
    def queue(
        self,
        *,
        program_id: ProgramId,
        partner_id: PartnerId,
        kind: str,
        ref: str,
        subject: str,
        body: str,
        at: datetime,
    ) -> bool: ...


class GoalRepository(Protocol):
    def upsert_goal(self, goal: ProgramGoal, at: datetime) -> ProgramGoal: ...
    def goals(self, program_id: ProgramId) -> list[ProgramGoal]: ...
    def upsert_target(self, target: PartnerTarget, at: datetime) -> PartnerTarget: ...
    def targets(
        self, program_id: ProgramId, partner_id: PartnerId | None = None
    ) -> list[PartnerTarget]: ...
    def record_achievement(
        self, target: PartnerTarget, period_key: str, actual: Decimal, goal: Decimal, at: datetime
    ) -> bool: ...


class SpendRepository(Protocol):
    def replace_rows(
        self, program_id: ProgramId, rows: list[SpendRow], batch_id: str, at: datetime
    ) -> int: ...
    def rows(self, program_id: ProgramId, start: date, end: date) -> list[SpendRow]: ...


class CapsUnitOfWork(Protocol):
    """One transaction over everything the caps use cases touch (read-only members, so
    concrete repositories satisfy it)."""

    @property
    def programs(self) -> ProgramRepository: ...
    @property
    def offers(self) -> OfferRepository: ...
    @property
    def partners(self) -> PartnerLookup: ...
    @property
    def caps(self) -> CapRepository: ...
    @property
    def cap_changes(self) -> CapChangeRepository: ...
    @property
    def cap_alerts(self) -> CapAlertRepository: ...
    @property
    def notices(self) -> NoticeQueue: ...
    @property
    def goals(self) -> GoalRepository: ...
    @property
    def spend(self) -> SpendRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    # Domain events (`cap.changed`), committed with the change that raised them.
    @property
    def events(self) -> EventSink: ...

    def totals(
        self,
        program_id: ProgramId,
        currency: str,
        start: datetime | None,
        end: datetime | None,
        *,
        offer_id: OfferId | None = None,
        partner_id: PartnerId | None = None,
        by_partner: bool = False,
        by_offer: bool = False,
    ) -> dict[tuple[int | None, int | None], EventTotals]: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PartnerLookup(Protocol):
    def get(self, partner_id: PartnerId) -> Partner | None: ...
    def list(
        self, program_id: ProgramId | None = None, status: PartnerStatus | None = None
    ) -> list[Partner]: ...
