from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.clock import FixedClock, SystemClock, ensure_utc
from partnerflow.core.ids import CLICK_ID_LENGTH, click_id_time_ms, is_click_id, new_click_id


def test_click_ids_are_unique_url_safe_and_valid() -> None:
    ids = {new_click_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == CLICK_ID_LENGTH and is_click_id(i) for i in ids)


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_click_id_carries_its_timestamp(ms: int) -> None:
    assert click_id_time_ms(new_click_id(now_ms=ms)) == ms


def test_click_ids_sort_by_time() -> None:
    earlier, later = new_click_id(now_ms=1_700_000_000_000), new_click_id(now_ms=1_700_000_000_001)
    assert earlier < later


@pytest.mark.parametrize(
    "value",
    [
        "",
        "u" * 24,
        "01m84dfy76rzjse1j7ra3w4",
        "01M84DFY76RZJSE1J7RA3W4H",
        "01m84dfy76rzjse1j7ra3w4h\n",
    ],
)
def test_is_click_id_refuses_malformed_ids(value: str) -> None:
    assert not is_click_id(value)


def test_clocks_are_utc_aware() -> None:
    assert SystemClock().now().tzinfo is UTC
    clock = FixedClock(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(datetime(2026, 1, 1))
