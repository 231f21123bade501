"""Program and offer entities (pure values)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from partnerflow.core.ids import OfferId, ProgramId


class AttributionModel(enum.StrEnum):
    LAST_CLICK = "last_click"
    FIRST_CLICK = "first_click"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"


class OfferStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Program:
    id: ProgramId
    slug: str
    name: str
    brand: str
    currency: str
    timezone: str
    cookie_window_days: int
    attribution_model: AttributionModel
    lock_period_days: int
    postback_token: str
    fallback_url: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Offer:
    id: OfferId
    program_id: ProgramId
    name: str
    landing_url: str
    commission_plan: dict[str, str]
    status: OfferStatus
    created_at: datetime
    allowed_domains: tuple[str, ...] = field(default_factory=tuple)
    fallback_url: str | None = None
