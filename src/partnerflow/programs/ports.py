"""What the programs capability needs from storage."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from partnerflow.core.audit import AuditLog
from partnerflow.core.ids import OfferId, ProgramId
from partnerflow.programs.model import Offer, Program


class ProgramRepository(Protocol):
    def add(self, program: Program) -> Program: ...
    def get(self, program_id: ProgramId) -> Program | None: ...
    def by_slug(self, slug: str) -> Program | None: ...
    def by_token(self, token: str) -> Program | None: ...
    def list(self) -> list[Program]: ...


class OfferRepository(Protocol):
    def add(self, offer: Offer) -> Offer: ...
    def get(self, offer_id: OfferId) -> Offer | None: ...
    def list(self, program_id: ProgramId | None = None) -> list[Offer]: ...


class ProgramsUnitOfWork(Protocol):
    """One transaction: everything done inside `with uow:` commits together or not at all."""

    programs: ProgramRepository
    offers: OfferRepository
    audit: AuditLog

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
