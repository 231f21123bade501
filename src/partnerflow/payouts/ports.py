"""What the payout use cases need from storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from partnerflow.commissions.ports import ConversionFactsRepository, LedgerRepository
from partnerflow.core.audit import AuditLog
from partnerflow.core.events import EventSink
from partnerflow.payouts.batches import Payee, PayoutBatch


@dataclass(frozen=True, slots=True)
class StoredBatch:
    batch: PayoutBatch
    status: str  # open | paid | superseded
    created_by: str
    created_at: datetime
    paid_by: str | None = None
    paid_at: datetime | None = None


class PayoutRepository(Protocol):
    def get(self, batch_id: str) -> StoredBatch | None: ...
    def list(self, program_id: int | None = None) -> list[StoredBatch]: ...
    def add(self, batch: PayoutBatch, created_by: str, at: datetime) -> None: ...
    def supersede_open(self, program_id: int) -> int: ...
    def reopen(self, batch_id: str) -> bool:
        """Move a superseded batch back to open; False when it was not superseded."""
        ...

    def mark_paid(self, batch_id: str, paid_by: str, at: datetime) -> bool:
        """Move an open batch to paid; False when it was not open (paid meanwhile)."""
        ...

    def paid_ids(self, program_id: int) -> set[str]: ...


class PayeeRepository(Protocol):
    def payees(self, program_id: int) -> dict[int, Payee]: ...


class PayoutsUnitOfWork(Protocol):
    @property
    def payouts(self) -> PayoutRepository: ...
    @property
    def payees(self) -> PayeeRepository: ...
    @property
    def ledger(self) -> LedgerRepository: ...
    @property
    def facts(self) -> ConversionFactsRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def events(self) -> EventSink: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
