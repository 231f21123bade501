"""Time source. Domain code takes a `Clock` so tests can pin 'now'."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from partnerflow.core.errors import InvalidInput

# The calendar days any input may name (report periods, rates, spend, API dates). Past them
# a day's local bounds overflow `datetime` (the end of 9999-12-31; a default first day 29
# days before 0001-01-01), and no affiliate program has data there.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2200, 12, 31)


def check_day(day: date, field: str) -> date:
    """`day` when it lies in FIRST_DAY..LAST_DAY, else InvalidInput naming `field`."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput("dates must be in 2000-2200", field=field)
    return day


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, simulations, the demo seeder)."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def set(self, at: datetime) -> None:
        self._at = ensure_utc(at)


def ensure_utc(value: datetime) -> datetime:
    """Refuse naive datetimes; convert aware ones to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: every time in partnerflow is tz-aware")
    return value.astimezone(UTC)
