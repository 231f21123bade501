"""Period boundaries in the program's timezone, across DST and odd transitions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.caps.periods import (
    Period,
    local_date,
    parse_window_key,
    period_key,
    previous_window,
    window_at,
)

ZONES = sorted(
    z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))
)
# Zones with DST or midnight transitions that broke naive implementations.
TRICKY = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
    "Pacific/Apia",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Asia/Tehran",
    "UTC",
]
zones = st.one_of(st.sampled_from(TRICKY), st.sampled_from(ZONES))
instants = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)
periods = st.sampled_from([Period.DAY, Period.WEEK, Period.MONTH])


@settings(max_examples=300, deadline=None)
@given(instant=instants, tz=zones, period=periods)
def test_an_instant_is_inside_the_period_returned(
    instant: datetime, tz: str, period: Period
) -> None:
    window = window_at(period, instant, tz)
    assert window.start is not None and window.end is not None
    assert window.start <= instant < window.end
    assert window.contains(instant)
    assert window.key == period_key(period, instant, tz)
    # The start's local date is the period's first day; the instant before it is earlier.
    assert local_date(window.start, tz) == window.first_day
    assert local_date(window.start - timedelta(microseconds=1), tz) < window.first_day


@settings(max_examples=200, deadline=None)
@given(instant=instants, tz=zones, period=periods)
def test_consecutive_periods_tile_time(instant: datetime, tz: str, period: Period) -> None:
    window = window_at(period, instant, tz)
    assert window.end is not None and window.start is not None
    following = window_at(period, window.end, tz)
    before = window_at(period, window.start - timedelta(microseconds=1), tz)
    assert following.start == window.end  # no gap, no overlap
    assert before.end == window.start
    assert following.key != window.key != before.key
    assert previous_window(window, tz) == before


def test_berlin_spring_forward_day_lasts_23_hours() -> None:
    window = window_at(Period.DAY, datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Berlin")
    assert window.key == "2026-03-29"
    assert window.start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_new_york_fall_back_day_lasts_25_hours() -> None:
    window = window_at(Period.DAY, datetime(2026, 11, 1, 12, tzinfo=UTC), "America/New_York")
    assert window.start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 2, 5, tzinfo=UTC)


def test_santiago_day_that_starts_at_one_am() -> None:
    # Chile moved clocks from 00:00 to 01:00 on 2022-09-11: that day has no midnight.
    window = window_at(Period.DAY, datetime(2022, 9, 11, 12, tzinfo=UTC), "America/Santiago")
    assert window.start == datetime(2022, 9, 11, 4, tzinfo=UTC)  # 01:00 -03
    assert window.end == datetime(2022, 9, 12, 3, tzinfo=UTC)


def test_samoa_skipped_day_belongs_to_no_period() -> None:
    # Samoa skipped 2011-12-30 entirely; the 29th ends where the 31st starts.
    before = window_at(Period.DAY, datetime(2011, 12, 30, 9, tzinfo=UTC), "Pacific/Apia")
    assert before.key == "2011-12-29"
    after = window_at(Period.DAY, before.end or before.start, "Pacific/Apia")  # type: ignore[arg-type]
    assert after.key == "2011-12-31"


def test_week_starts_monday_and_month_on_the_first() -> None:
    at = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)  # Thursday 00:30 in Berlin
    week = window_at(Period.WEEK, at, "Europe/Berlin")
    assert week.key == "W2026-03-02"
    assert week.first_day == date(2026, 3, 2)
    month = window_at(Period.MONTH, at, "Europe/Berlin")
    assert month.key == "2026-03"
    assert month.end == datetime(2026, 3, 31, 22, tzinfo=UTC)  # DST starts on the 29th


def test_all_time_is_one_unbounded_period() -> None:
    window = window_at(Period.ALL_TIME, datetime(2026, 3, 4, tzinfo=UTC), "Asia/Tokyo")
    assert (window.key, window.start, window.end) == ("all", None, None)


def test_window_keys_parse_back() -> None:
    assert parse_window_key(Period.MONTH, "2026-02", "UTC").end == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_window_key(Period.WEEK, "2026-03-04", "UTC").key == "W2026-03-02"
