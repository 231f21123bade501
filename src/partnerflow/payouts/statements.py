"""Partner statements: what moved through a partner's payable (approved) balance in a period.

The statement reads ledger entries through a Protocol so this package stays independent of
`commissions`; `commissions.ledger.Entry` satisfies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Protocol

from partnerflow.core.money import Money
from partnerflow.payouts.batches import Period


class LedgerItem(Protocol):
    @property
    def partner_id(self) -> int: ...

    @property
    def conversion_id(self) -> int | None: ...

    @property
    def kind(self) -> str: ...

    @property
    def bucket(self) -> str: ...

    @property
    def amount(self) -> Money: ...

    @property
    def reason(self) -> str: ...

    @property
    def author(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class StatementLine:
    at: datetime
    kind: str
    conversion_id: int | None
    description: str
    amount: Money
    balance: Money  # running payable balance after this line


@dataclass(frozen=True, slots=True)
class Statement:
    partner_id: int
    period: Period
    currency: str
    opening: Money
    lines: tuple[StatementLine, ...]
    closing: Money
    pending: Money  # still inside the lock period at the end of the statement


def _bounds(period: Period) -> tuple[datetime, datetime]:
    start = datetime.combine(period.start, time(0), tzinfo=UTC)
    end = datetime.combine(period.end + timedelta(days=1), time(0), tzinfo=UTC)
    return start, end


def statement(
    partner_id: int, period: Period, currency: str, items: Iterable[LedgerItem]
) -> Statement:
    """Opening payable balance, each movement in the period with its reason, closing balance."""
    start, end = _bounds(period)
    opening = Money.zero(currency)
    pending = Money.zero(currency)
    movements: list[LedgerItem] = []
    for e in items:
        if e.partner_id != partner_id or e.amount.currency != currency or e.created_at >= end:
            continue
        if str(e.bucket) == "pending":
            pending = pending + e.amount
        elif str(e.bucket) == "approved":
            if e.created_at < start:
                opening = opening + e.amount
            else:
                movements.append(e)
    running = opening
    lines = []
    for e in sorted(movements, key=lambda x: x.created_at):
        running = running + e.amount
        who = f" by {e.author}" if str(e.kind) == "adjustment" else ""
        lines.append(
            StatementLine(
                e.created_at, str(e.kind), e.conversion_id, f"{e.reason}{who}", e.amount, running
            )
        )
    return Statement(partner_id, period, currency, opening, tuple(lines), running, pending)
