"""Commission plan and ledger values (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from partnerflow.core.ids import ConversionId, PartnerId, ProgramId
from partnerflow.core.money import Money


class PlanType(enum.StrEnum):
    CPA = "cpa"  # flat amount per sale/acquisition
    CPS = "cps"  # percentage of the sale amount
    CPL = "cpl"  # flat amount per lead or sign-up


@dataclass(frozen=True, slots=True)
class FlatPlan:
    """CPA or CPL: a fixed amount per qualifying conversion."""

    type: PlanType
    amount: Money


@dataclass(frozen=True, slots=True)
class PercentPlan:
    """CPS: a percentage (0-100) of the sale amount."""

    percent: Decimal
    type: PlanType = PlanType.CPS


CommissionPlan = FlatPlan | PercentPlan


class LedgerBucket(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PAID = "paid"


class EntryKind(enum.StrEnum):
    COMMISSION = "commission"
    APPROVAL = "approval"
    PAYMENT = "payment"
    REVERSAL = "reversal"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True)
class Commission:
    """The outcome of applying a plan to a conversion, with the arithmetic spelled out."""

    amount: Money
    explanation: str


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    program_id: ProgramId
    partner_id: PartnerId
    conversion_id: ConversionId | None
    kind: EntryKind
    bucket: LedgerBucket
    amount: Money
    reason: str
    author: str
    created_at: datetime
    # Optional details (all default to "not recorded", so older callers keep working):
    # the ledger's readable transaction key (`commission:12`), the order amount a reversal
    # refunded, and the exchange rate a commission was computed with.
    txn_key: str | None = None
    refund: Money | None = None
    fx_rate: Decimal | None = None
    fx_rate_date: date | None = None
