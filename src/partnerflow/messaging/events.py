"""How webhook endpoints filter the events partnerflow publishes.

The catalogue (`EVENT_TYPES`), the `EventSink` port and `money_text` live in
`partnerflow.core.events` so every capability can publish; they are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from partnerflow.core.errors import InvalidInput
from partnerflow.core.events import EVENT_TYPES, EventSink, money_text

__all__ = [
    "EVENT_TYPES",
    "EventSink",
    "check_event_filter",
    "check_event_type",
    "matches",
    "money_text",
]

_FILTER_RE = re.compile(r"\A(?:\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)\Z")


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
