"""Partner entity (pure value)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from partnerflow.core.ids import PartnerId, ProgramId


class PartnerStatus(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    BANNED = "banned"


@dataclass(frozen=True, slots=True)
class Partner:
    id: PartnerId
    program_id: ProgramId
    name: str
    email: str
    status: PartnerStatus
    created_at: datetime
    website: str | None = None
    country: str | None = None
    social: dict[str, str] = field(default_factory=dict)
