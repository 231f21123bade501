"""What the fraud use cases need from storage, as Protocols and plain values.

`fraud` sits below tracking in the layering, so the conversion facts it acts on travel as
the small `ConversionState` value; the storage adapter fills it from the conversions table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from partnerflow.commissions.ledger import Entry
from partnerflow.commissions.ports import ConversionCapReleases
from partnerflow.core.audit import AuditLog
from partnerflow.core.events import EventSink
from partnerflow.fraud.policy import Action, FraudPolicy, Subject
from partnerflow.partners.ports import PartnerRepository
from partnerflow.programs.ports import ProgramRepository


class ReviewStatus(StrEnum):
    """open: the automated action is in force. approved: a person cleared the traffic and
    the action was undone. rejected: a person confirmed the fraud. reversed: a decision
    that was taken back; the finding was re-opened as a new item."""

    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class NewReview:
    """A finding to queue, with the automated action it triggers and why."""

    program_id: int
    subject: Subject
    subject_id: str
    action: Action
    score: int
    reasons: tuple[str, ...]
    partner_id: int | None = None
    detail: dict[str, Any] | None = None
    scan_key: str | None = None
    reopened_from: int | None = None


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    program_id: int
    partner_id: int | None
    subject: Subject
    subject_id: str
    action: Action
    score: int
    reasons: tuple[str, ...]
    detail: dict[str, Any]
    status: ReviewStatus
    scan_key: str | None
    reopened_from: int | None
    created_by: str
    created_at: datetime
    decided_by: str | None = None
    note: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReviewFilter:
    program_id: int | None = None
    status: ReviewStatus | None = None
    action: Action | None = None
    partner_id: int | None = None
    subject: Subject | None = None
    limit: int = 500


@dataclass(frozen=True, slots=True)
class ConversionState:
    """The parts of a stored conversion that fraud decisions read or change."""

    id: int
    program_id: int
    partner_id: int | None
    status: str  # pending | approved | rejected | reversed
    is_flagged: bool
    flags: str | None


@dataclass(frozen=True, slots=True)
class CapRetake:
    """What counting a reinstated conversion against its caps again did. `reserved`: its cap
    room is held again (False when nothing was to take: no matching cap, or it was still
    held). `over`: the hard caps it was counted past (a manager's reinstatement is never
    refused by a cap), one sentence each."""

    reserved: bool
    over: tuple[str, ...] = ()


class ConversionCaps(ConversionCapReleases, Protocol):
    """A conversion's cap reservation: released when fraud review rejects it, taken back
    when the rejection is undone."""

    def retake_conversion(self, conversion_id: int) -> CapRetake:
        """Reserve the conversion's caps again under its own reservation id, even past a
        full hard cap (counted, and reported in `over`); no-op if still reserved."""
        ...


class ReviewRepository(Protocol):
    def add(self, review: NewReview, actor: str, at: datetime) -> Review | None:
        """The stored review, or None when its `scan_key` is already queued."""
        ...

    def get(self, review_id: int) -> Review | None: ...
    def find(self, query: ReviewFilter) -> list[Review]: ...
    def for_subject(self, subject: Subject, subject_id: str) -> list[Review]: ...
    def decide(
        self, review_id: int, status: ReviewStatus, actor: str, note: str | None, at: datetime
    ) -> None:
        """Record a decision, only if the review is still in the status the caller read
        (guards two people deciding at once); raises Conflict otherwise."""
        ...


class ConversionMarks(Protocol):
    def get(self, conversion_id: int) -> ConversionState | None: ...
    def set_status(self, conversion_id: int, status: str) -> None: ...
    def mark(self, conversion_id: int, flags: Sequence[str]) -> None:
        """Set `is_flagged` and merge `flags` into the conversion's flags."""
        ...


class FraudLedger(Protocol):
    def entries(self, *, conversion_ids: Sequence[int]) -> list[Entry]: ...
    def append_entries(self, entries: Sequence[Entry]) -> None: ...


class PolicyRepository(Protocol):
    def get(self, program_id: int) -> FraudPolicy: ...
    def set(self, program_id: int, policy: FraudPolicy, actor: str, at: datetime) -> None: ...


class FraudUnitOfWork(Protocol):
    """One transaction over everything a fraud decision touches. It is also a
    `PartnersUnitOfWork`, so suspending a partner goes through the partners use case
    (audited) inside the same transaction."""

    @property
    def programs(self) -> ProgramRepository: ...
    @property
    def partners(self) -> PartnerRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def reviews(self) -> ReviewRepository: ...
    @property
    def conversion_marks(self) -> ConversionMarks: ...
    @property
    def fraud_ledger(self) -> FraudLedger: ...
    @property
    def fraud_policies(self) -> PolicyRepository: ...
    @property
    def events(self) -> EventSink: ...
    @property
    def conversion_caps(self) -> ConversionCaps: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
