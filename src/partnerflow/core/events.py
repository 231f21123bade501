"""Domain events: the names partnerflow publishes and the port use cases publish through.

Invariant: a use case publishes an event through its unit of work's `events` sink, which the
storage adapter writes to the outbox in the use case's own transaction — so an event exists
if and only if the change it announces committed, and a refused change publishes nothing.
The port lives in the kernel because every capability (even the lowest, commissions) may
publish. Money in payloads is a decimal string next to its currency, never a JSON number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, Protocol

from partnerflow.core.money import Money

PARTNER_APPLIED: Final = "partner.applied"
PARTNER_APPROVED: Final = "partner.approved"
PARTNER_STATUS_CHANGED: Final = "partner.status_changed"
CLICK_FLAGGED: Final = "click.flagged"
CONVERSION_CREATED: Final = "conversion.created"
CONVERSION_APPROVED: Final = "conversion.approved"
CONVERSION_REVERSED: Final = "conversion.reversed"
CONVERSION_FLAGGED: Final = "conversion.flagged"
COMMISSION_CREATED: Final = "commission.created"
COMMISSION_APPROVED: Final = "commission.approved"
COMMISSION_REVERSED: Final = "commission.reversed"
COMMISSION_ADJUSTED: Final = "commission.adjusted"
COMMISSION_PAID: Final = "commission.paid"
PAYOUT_CREATED: Final = "payout.created"
PAYOUT_PAID: Final = "payout.paid"
PAYOUT_FAILED: Final = "payout.failed"
CAP_CHANGED: Final = "cap.changed"

EVENT_TYPES: frozenset[str] = frozenset(
    {
        PARTNER_APPLIED,
        PARTNER_APPROVED,
        PARTNER_STATUS_CHANGED,
        CLICK_FLAGGED,
        CONVERSION_CREATED,
        CONVERSION_APPROVED,
        CONVERSION_REVERSED,
        CONVERSION_FLAGGED,
        COMMISSION_CREATED,
        COMMISSION_APPROVED,
        COMMISSION_REVERSED,
        COMMISSION_ADJUSTED,
        COMMISSION_PAID,
        PAYOUT_CREATED,
        PAYOUT_PAID,
        PAYOUT_FAILED,
        CAP_CHANGED,
    }
)


class EventSink(Protocol):
    """Where a use case appends an event; the storage adapter writes it to the outbox in
    the caller's transaction. Returns the event id."""

    def publish(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        program_id: int | None = None,
        partner_id: int | None = None,
    ) -> str: ...


def money_text(value: Decimal) -> str:
    """Money in payloads is a decimal string: JSON numbers are floats to most parsers."""
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def money_fields(money: Money) -> dict[str, str]:
    """`{"amount": "12.5", "currency": "EUR"}` — the shape of every amount in a payload."""
    return {"amount": money_text(money.amount), "currency": money.currency}
