"""Calendar periods (day, ISO week, month, all time) in a program's IANA timezone.

A period starts at the first instant whose local date is its first day, so a day that
starts at 01:00 because of a DST jump at midnight (America/Santiago, Asia/Beirut, ...)
still starts at its real first instant and the previous day ends there: periods tile time
without gaps or overlaps. Bounds are returned in UTC, half-open `[start, end)`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from partnerflow.core.clock import ensure_utc
from partnerflow.core.errors import InvalidInput

_ONE_US = timedelta(microseconds=1)
# No zone's offset changes by more than a day in one step (Samoa skipped 2011-12-30 whole),
# so the first instant of a local date is within this distance of its naive midnight.
_SEARCH = timedelta(hours=50)


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, Monday first
    MONTH = "month"
    ALL_TIME = "all_time"


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """One period: `key` is stable and human-readable ('2026-03-02', 'W2026-03-02' for the
    week starting that Monday, '2026-03', 'all'); start/end are UTC, None for all time."""

    period: Period
    key: str
    start: datetime | None
    end: datetime | None
    first_day: date | None

    def contains(self, instant: datetime) -> bool:
        at = ensure_utc(instant)
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def elapsed_fraction(self, instant: datetime) -> float:
        """Share of the period elapsed at `instant` (0..1); 1 for all time."""
        if self.start is None or self.end is None:
            return 1.0
        total = (self.end - self.start).total_seconds()
        done = (ensure_utc(instant) - self.start).total_seconds()
        return min(1.0, max(0.0, done / total))


def parse_period(value: str) -> Period:
    try:
        return Period(value.strip().lower().replace("-", "_"))
    except ValueError:
        allowed = ", ".join(p.value for p in Period)
        raise InvalidInput(f"period must be one of {allowed}", field="period") from None


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown IANA timezone {name[:64]!r}", field="timezone") from None


def local_date(instant: datetime, tz: str) -> date:
    return ensure_utc(instant).astimezone(zone(tz)).date()


def first_day(period: Period, day: date) -> date:
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    raise ValueError("all time has no first day")


def next_first_day(period: Period, first: date) -> date:
    if period is Period.DAY:
        return first + timedelta(days=1)
    if period is Period.WEEK:
        return first + timedelta(days=7)
    if period is Period.MONTH:
        return date(first.year + first.month // 12, first.month % 12 + 1, 1)
    raise ValueError("all time has no next period")


def previous_first_day(period: Period, first: date) -> date:
    return first_day(period, first - timedelta(days=1))


@lru_cache(maxsize=4096)
def day_start(day: date, tz: str) -> datetime:
    """The first instant (UTC) whose local date in `tz` is `day` or later."""
    zi = zone(tz)
    guess = datetime.combine(day, time(0), tzinfo=zi).astimezone(UTC)
    if _is_first_instant(guess, day, zi):
        return guess
    # Rare: midnight does not exist or is ambiguous in a way fold=0 misses; search.
    low = datetime.combine(day, time(0), tzinfo=UTC) - _SEARCH  # local date < day
    high = datetime.combine(day, time(0), tzinfo=UTC) + _SEARCH  # local date >= day
    while high - low > _ONE_US:
        mid = low + (high - low) // 2
        if mid.astimezone(zi).date() >= day:
            high = mid
        else:
            low = mid
    return high


def _is_first_instant(candidate: datetime, day: date, zi: ZoneInfo) -> bool:
    return (
        candidate.astimezone(zi).date() >= day and (candidate - _ONE_US).astimezone(zi).date() < day
    )


def window_key(period: Period, first: date | None) -> str:
    if period is Period.ALL_TIME or first is None:
        return "all"
    if period is Period.DAY:
        return first.isoformat()
    if period is Period.WEEK:
        return f"W{first.isoformat()}"
    return f"{first.year:04d}-{first.month:02d}"


def window_for_day(period: Period, day: date, tz: str) -> PeriodWindow:
    if period is Period.ALL_TIME:
        return PeriodWindow(period, "all", None, None, None)
    first = first_day(period, day)
    return PeriodWindow(
        period=period,
        key=window_key(period, first),
        start=day_start(first, tz),
        end=day_start(next_first_day(period, first), tz),
        first_day=first,
    )


def window_at(period: Period, instant: datetime, tz: str) -> PeriodWindow:
    """The period containing `instant`, in the timezone `tz`."""
    return window_for_day(period, local_date(instant, tz), tz)


def period_key(period: Period, instant: datetime, tz: str) -> str:
    """Only the key (cheap: no bounds), for the hot path."""
    if period is Period.ALL_TIME:
        return "all"
    return window_key(period, first_day(period, local_date(instant, tz)))


def previous_window(window: PeriodWindow, tz: str) -> PeriodWindow:
    if window.first_day is None:
        raise InvalidInput("all time has no previous period", field="period")
    return window_for_day(window.period, previous_first_day(window.period, window.first_day), tz)


def parse_window_key(period: Period, key: str, tz: str) -> PeriodWindow:
    """The window named by a key ('2026-03-02', 'W2026-03-02', '2026-03' or 'all')."""
    text = key.strip()
    try:
        if period is Period.ALL_TIME:
            if text != "all":
                raise ValueError
            return window_for_day(period, date(1970, 1, 1), tz)
        if period is Period.MONTH:
            year, month = text.split("-")
            day = date(int(year), int(month), 1)
        else:
            day = date.fromisoformat(text.removeprefix("W"))
    except ValueError:
        raise InvalidInput(
            f"{text[:32]!r} is not a {period.value} period", field="period"
        ) from None
    # Any day names the period that contains it ('2026-03-04' for a week means that week).
    return window_for_day(period, day, tz)


def ttl_seconds(window: PeriodWindow, now: datetime, *, grace: timedelta) -> int | None:
    """How long a counter for this window must live: until its end plus a grace period (late
    releases, reports), or None for all time."""
    if window.end is None:
        return None
    return max(1, int((window.end + grace - ensure_utc(now)).total_seconds()) + 1)
