"""The catalogue of events partnerflow publishes, and how endpoints filter them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from partnerflow.core.errors import InvalidInput

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "partner.applied",
        "partner.approved",
        "partner.status_changed",
        "click.flagged",
        "conversion.created",
        "conversion.approved",
        "conversion.reversed",
        "commission.created",
        "commission.approved",
        "commission.reversed",
        "commission.paid",
        "payout.created",
        "payout.paid",
        "payout.failed",
        "cap.changed",
    }
)
_FILTER_RE = re.compile(r"\A(?:\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)\Z")


class EventSink(Protocol):
    """Where a use case appends an event; the storage adapter writes it to the outbox in
    the caller's transaction."""

    def publish(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        program_id: int | None = None,
        partner_id: int | None = None,
    ) -> str: ...


def check_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise InvalidInput(f"unknown event type {value[:64]!r}", field="event_type")
    return value


def check_event_filter(values: Iterable[str]) -> list[str]:
    """A webhook endpoint's event filter: exact types, 'family.*' or '*'."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not _FILTER_RE.match(value):
            raise InvalidInput(f"not an event filter: {str(value)[:64]!r}", field="events")
        if value.endswith(".*"):
            family = value[:-2]
            if not any(e.startswith(family + ".") for e in EVENT_TYPES):
                raise InvalidInput(f"no events match {value!r}", field="events")
        elif value != "*":
            check_event_type(value)
        if value not in out:
            out.append(value)
    if not out:
        raise InvalidInput("subscribe to at least one event", field="events")
    return out


def matches(filters: Iterable[str], event_type: str) -> bool:
    for f in filters:
        if f == "*" or f == event_type:
            return True
        if f.endswith(".*") and event_type.startswith(f[:-1]):
            return True
    return False


def money_text(value: Decimal) -> str:
    """Money in payloads is a decimal string: JSON numbers are floats to most parsers."""
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)
