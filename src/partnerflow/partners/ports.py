"""What the partners capability needs from storage."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from partnerflow.core.audit import AuditLog
from partnerflow.core.events import EventSink
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.programs.ports import ProgramRepository


class PartnerRepository(Protocol):
    def add(self, partner: Partner) -> Partner: ...
    def get(self, partner_id: PartnerId) -> Partner | None: ...
    def by_email(self, program_id: ProgramId, email: str) -> Partner | None: ...
    def list(
        self, program_id: ProgramId | None = None, status: PartnerStatus | None = None
    ) -> list[Partner]: ...
    def set_status(self, partner_id: PartnerId, status: PartnerStatus) -> None: ...


class PartnersUnitOfWork(Protocol):
    @property
    def programs(self) -> ProgramRepository: ...
    @property
    def partners(self) -> PartnerRepository: ...
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
