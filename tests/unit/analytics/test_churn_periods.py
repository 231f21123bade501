import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.analytics.churn import (
    churn_rate,
    churn_series,
    churn_series_by_cohort,
    period_start,
    periods_between,
)
from partnerflow.core.errors import InvalidInput

D = dt.date


def test_calendar_periods_cover_the_range() -> None:
    assert periods_between(D(2024, 1, 31), D(2024, 3, 1), "month") == [
        (D(2024, 1, 1), D(2024, 2, 1)),
        (D(2024, 2, 1), D(2024, 3, 1)),
        (D(2024, 3, 1), D(2024, 4, 1)),
    ]
    # ISO weeks start on Monday; 2024-12-30 is a Monday.
    assert periods_between(D(2025, 1, 1), D(2025, 1, 6), "week") == [
        (D(2024, 12, 30), D(2025, 1, 6)),
        (D(2025, 1, 6), D(2025, 1, 13)),
    ]
    assert periods_between(D(2024, 11, 15), D(2025, 1, 1), "quarter") == [
        (D(2024, 10, 1), D(2025, 1, 1)),
        (D(2025, 1, 1), D(2025, 4, 1)),
    ]
    assert period_start(D(2024, 2, 29), "month") == D(2024, 2, 1)
    with pytest.raises(InvalidInput, match="ends before it starts"):
        periods_between(D(2024, 2, 1), D(2024, 1, 1), "month")
    with pytest.raises(InvalidInput, match="period must be one of"):
        period_start(D(2024, 2, 1), "year")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="more than 520 periods"):
        periods_between(D(2000, 1, 1), D(2024, 1, 1), "week")


def test_default_window_is_the_previous_period() -> None:
    activity = [
        ("a", D(2024, 1, 31)),  # January buyer, lost in February... bought again in March
        ("a", D(2024, 3, 2)),
        ("b", D(2024, 1, 1)),  # January buyer, buys in February
        ("b", D(2024, 2, 29)),
        ("c", D(2023, 12, 31)),  # December: not at the start of February
    ]
    series = churn_series(activity, period="month", first=D(2024, 2, 1), last=D(2024, 3, 31))
    assert [(r.period_start, r.customers_at_start, r.customers_lost) for r in series] == [
        (D(2024, 2, 1), 2, 1),  # window = January (31 days)
        (D(2024, 3, 1), 1, 1),  # window = February 2024 (29 days): b, who does not buy in March
    ]
    wide = churn_series(
        activity, period="month", first=D(2024, 2, 1), last=D(2024, 2, 1), lookback_days=62
    )
    assert (wide[0].customers_at_start, wide[0].customers_lost) == (3, 2)


def test_series_per_cohort() -> None:
    activity = [
        ("a", D(2024, 1, 5)),
        ("b", D(2024, 1, 6)),
        ("b", D(2024, 2, 6)),
        ("z", D(2024, 1, 7)),
    ]
    per = churn_series_by_cohort(
        activity, {"a": "1", "b": "2"}, period="month", first=D(2024, 2, 1), last=D(2024, 2, 29)
    )
    assert list(per) == ["1", "2"]
    assert per["1"][0].rate == 1.0 and per["2"][0].rate == 0.0


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefghij"), st.dates(D(2023, 11, 1), D(2024, 4, 30))),
        max_size=80,
    ),
    st.dictionaries(st.sampled_from("abcdefghij"), st.sampled_from(["p1", "p2", "p3"])),
)
def test_cohorts_partition_the_program_churn(
    activity: list[tuple[str, dt.date]], cohort_of: dict[str, str]
) -> None:
    # Every customer gets a cohort (missing ones go to "-"): cohort counts add up exactly.
    full = {c: cohort_of.get(c, "-") for c in "abcdefghij"}
    total = churn_series(activity, period="month", first=D(2024, 1, 1), last=D(2024, 4, 30))
    per = churn_series_by_cohort(
        activity, full, period="month", first=D(2024, 1, 1), last=D(2024, 4, 30)
    )
    for i, whole in enumerate(total):
        assert whole.customers_at_start == sum(s[i].customers_at_start for s in per.values())
        assert whole.customers_lost == sum(s[i].customers_lost for s in per.values())
        single = churn_rate(
            activity,
            period_start=whole.period_start,
            period_end=whole.period_end,
            lookback_days=(
                whole.period_start
                - period_start(whole.period_start - dt.timedelta(days=1), "month")
            ).days,
        )
        assert single == whole
