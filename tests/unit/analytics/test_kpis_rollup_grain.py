"""Rollup grain: folding events in any batches and any order gives the same rollup as one
aggregation of all of them (the property the incremental rollup job relies on)."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.storage.rollup_grain import (
    CONVERSION_MEASURES,
    TRAFFIC_MEASURES,
    Filters,
    GrainBuilder,
    ProgramFacts,
    group_measures,
)

PROGRAMS = {1: ProgramFacts(1, "EUR", "Europe/Warsaw"), 2: ProgramFacts(2, "USD", "Asia/Kathmandu")}
BUCKET_2026_03_29 = 1_774_735_200 // 900  # around the Warsaw DST switch

click = st.tuples(
    st.sampled_from([1, 2]),
    st.integers(BUCKET_2026_03_29 - 200, BUCKET_2026_03_29 + 200),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(1, 4),
    st.sampled_from(["PL", "DE", ""]),
    st.sampled_from(["mobile", "desktop"]),
    st.sampled_from(["", "https://www.tiktok.com/", "https://blog.example/"]),
    st.just(""),
    st.sampled_from([0, 7, 8]),  # creative id (0: none)
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 2),
)
conversion = st.tuples(
    st.sampled_from([1, 2]),
    st.integers(BUCKET_2026_03_29 - 200, BUCKET_2026_03_29 + 200),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(0, 4),
    st.sampled_from(["PL", ""]),
    st.sampled_from(["mobile", ""]),
    st.sampled_from(["", "https://x.com/"]),
    st.sampled_from(["", "SAVE10"]),
    st.sampled_from(["click_id", "coupon"]),
    st.just(""),
    st.sampled_from([0, 7]),
    st.sampled_from(["sale", "lead"]),
    st.sampled_from(["pending", "reversed"]),
    st.sampled_from(["EUR", "USD"]),
    st.integers(1, 3),
    st.integers(0, 10**9),
)


def build(clicks: list[tuple[object, ...]], conversions: list[tuple[object, ...]]) -> GrainBuilder:
    grain = GrainBuilder(PROGRAMS, {2: "instagram"})
    grain.add_clicks(clicks)  # type: ignore[arg-type]
    grain.add_conversions(conversions)  # type: ignore[arg-type]
    return grain


def summed(parts: list[GrainBuilder]) -> tuple[dict[object, list[int]], dict[object, list[int]]]:
    traffic: dict[object, list[int]] = {}
    convs: dict[object, list[int]] = {}
    for part in parts:
        for target, source in ((traffic, part.traffic), (convs, part.conversions)):
            for key, values in source.items():
                slot = target.setdefault(key, [0] * len(values))
                for i, v in enumerate(values):
                    slot[i] += v
    return traffic, convs


@settings(max_examples=60, deadline=None)
@given(
    st.lists(click, max_size=30),
    st.lists(conversion, max_size=20),
    st.lists(st.integers(0, 3), min_size=50, max_size=50),
    st.randoms(use_true_random=False),
)
def test_folding_batches_in_any_order_equals_one_aggregation(
    clicks: list[tuple[object, ...]],
    conversions: list[tuple[object, ...]],
    assignment: list[int],
    rnd: object,
) -> None:
    whole = build(clicks, conversions)
    batches: list[tuple[list[tuple[object, ...]], list[tuple[object, ...]]]] = [
        ([], []) for _ in range(4)
    ]
    for i, row in enumerate(clicks):
        batches[assignment[i % 50]][0].append(row)
    for i, row in enumerate(conversions):
        batches[assignment[(i + 7) % 50]][1].append(row)
    rnd.shuffle(batches)  # type: ignore[attr-defined]
    parts = [build(c, v) for c, v in batches]
    traffic, convs = summed(parts)
    assert traffic == whole.traffic
    assert convs == whole.conversions
    for dimension in ("partner", "day", "week", "channel", "country", "creative"):
        total = group_measures(whole.traffic, TRAFFIC_MEASURES, dimension)
        assert total == group_measures(traffic, TRAFFIC_MEASURES, dimension)  # type: ignore[arg-type]


def test_buckets_map_to_local_days_across_the_dst_switch() -> None:
    grain = GrainBuilder(PROGRAMS)
    # 2026-03-28 22:45 UTC = 23:45 CET; 23:00 UTC = 00:00 CET on the 29th.
    assert grain.day(1, 1_774_737_900 // 900) == date(2026, 3, 28)
    assert grain.day(1, 1_774_738_800 // 900) == date(2026, 3, 29)
    # Kathmandu is UTC+05:45: 18:15 UTC is local midnight.
    assert grain.day(2, (1_774_738_800 - 4 * 3600 - 45 * 60) // 900) == date(2026, 3, 29)


def test_conversion_measures_follow_the_report_conventions() -> None:
    grain = GrainBuilder(PROGRAMS)
    row = (1, BUCKET_2026_03_29, 1, 1, 1, "PL", "mobile", "", "", "click_id", "", 0)
    grain.add_conversions(
        [
            (*row, "sale", "pending", "EUR", 2, 150_000_000),
            (*row, "sale", "reversed", "EUR", 1, 40_000_000),
            (*row, "lead", "pending", "EUR", 1, 0),
            (*row, "sale", "pending", "USD", 1, 99_000_000),
        ]
    )
    grain.add_ledger([(*row, "EUR", 15_000_000), (*row, "USD", 9_000_000)])
    [values] = grain.conversions.values()
    assert dict(zip(CONVERSION_MEASURES, values, strict=True)) == {
        "conversions": 5,
        "refunds": 1,
        "sales": 4,
        "leads": 1,
        "orders": 2,
        "revenue_micros": 150_000_000,
        "sale_revenue_micros": 150_000_000,
        "commission_micros": 15_000_000,
    }
    only_de = group_measures(
        grain.conversions, CONVERSION_MEASURES, "partner", Filters(countries=("DE",))
    )
    assert only_de == {}


def test_creatives_group_clicks_impressions_and_conversions_and_none_is_zero() -> None:
    grain = GrainBuilder(PROGRAMS)
    b = BUCKET_2026_03_29
    grain.add_clicks(
        [
            (1, b, 1, 1, 1, "PL", "mobile", "", "", 7, 3, 2, 1),
            (1, b, 1, 1, 1, "PL", "mobile", "", "", None, 2, 2, 0),
        ]
    )
    grain.add_impressions([(1, b, 1, 1, 1, 7, 100), (1, b, 1, 1, 1, 0, 50)])
    grain.add_conversions(
        [(1, b, 1, 1, 1, "PL", "mobile", "", "", "click_id", "", 7, "sale", "pending", "EUR", 1, 5)]
    )
    traffic = group_measures(grain.traffic, TRAFFIC_MEASURES, "creative")
    assert traffic == {
        7: {"clicks": 3, "unique_clicks": 2, "bot_clicks": 1, "impressions": 100},
        0: {"clicks": 2, "unique_clicks": 2, "bot_clicks": 0, "impressions": 50},
    }
    assert group_measures(grain.conversions, CONVERSION_MEASURES, "creative")[7]["sales"] == 1
