"""The rest of the KPI catalogue: deltas, historical CLV, traffic per partner, activity,
cohort retention, leaderboards, channels."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from partnerflow.analytics.reports import (
    cohort_retention,
    leaderboard,
    partner_activity,
    previous_period,
    report_from_measures,
)
from partnerflow.core import kpis
from partnerflow.storage.channels import click_channel, conversion_channel, referrer_channel


def test_deltas_are_absolute_and_relative_and_undefined_from_zero() -> None:
    assert kpis.delta(150, 100) == Decimal(50)
    assert kpis.delta_ratio(150, 100) == Decimal("0.500000")
    assert kpis.delta_ratio(Decimal("0.5"), Decimal("2")) == Decimal("-0.750000")
    assert kpis.delta_ratio(5, 0) is None
    assert kpis.delta(None, 3) is None
    assert kpis.delta_ratio(3, None) is None


def test_historical_clv_traffic_per_partner_and_retention() -> None:
    assert kpis.historical_clv(Decimal("1000.00"), 3) == Decimal("333.3333")
    assert kpis.historical_clv(Decimal("5"), 0) is None
    assert kpis.traffic_per_partner(1000, 8) == Decimal("125.0000")
    assert kpis.retention_rate(3, 8) == Decimal("0.375000")
    assert kpis.retention_rate(0, 0) is None


def test_previous_period_has_equal_length_and_ends_the_day_before() -> None:
    assert previous_period(date(2026, 3, 1), date(2026, 3, 31)) == (
        date(2026, 1, 29),
        date(2026, 2, 28),
    )


def test_partner_activity_splits_on_the_last_n_days() -> None:
    seen = {1: date(2026, 3, 31), 2: date(2026, 3, 2), 3: date(2026, 3, 1), 4: None}
    activity = partner_activity(seen, date(2026, 3, 31), 30)
    assert activity.active == (1, 2)
    assert activity.inactive == (3, 4)
    assert activity.inactive_share == Decimal("0.500000")


def test_cohort_retention_counts_customers_still_buying_in_later_months() -> None:
    purchases = [
        ("c1", 7, date(2026, 1, 5)),
        ("c1", 0, date(2026, 2, 9)),
        ("c1", 9, date(2026, 3, 1)),
        ("c2", 7, date(2026, 1, 20)),
        ("c3", 7, date(2026, 2, 2)),
        ("c3", 7, date(2026, 2, 25)),
        ("c4", 9, date(2025, 12, 31)),
        ("c4", 7, date(2026, 1, 3)),  # acquired by 9, not 7
    ]
    cohorts = cohort_retention(purchases, months=2, last_month=date(2026, 3, 15))
    by = {(c.partner_id, c.month): c for c in cohorts}
    jan = by[(7, date(2026, 1, 1))]
    assert (jan.size, jan.retained) == (2, (2, 1, 1))
    assert jan.rates == (Decimal("1.000000"), Decimal("0.500000"), Decimal("0.500000"))
    feb = by[(7, date(2026, 2, 1))]
    assert (feb.size, feb.retained) == (1, (1, 0))  # April is not observed yet
    dec = by[(9, date(2025, 12, 1))]
    assert (dec.size, dec.retained) == (1, (1, 1, 0))


def _report(measures: dict[int, dict[str, int]]) -> object:
    return report_from_measures(
        dimension="partner",
        currency="EUR",
        timezone="UTC",
        first_day=date(2026, 3, 1),
        last_day=date(2026, 3, 31),
        measures=measures,
        names={1: "Ann", 2: "Bob", 3: "Cy"},
    )


def test_leaderboard_ranks_and_needs_min_clicks_for_ratio_metrics() -> None:
    now = _report(
        {
            1: {
                "clicks": 1000,
                "conversions": 20,
                "revenue_micros": 900_000_000,
                "commission_micros": 90_000_000,
            },
            2: {
                "clicks": 10,
                "conversions": 5,
                "revenue_micros": 500_000_000,
                "commission_micros": 50_000_000,
            },
            3: {
                "clicks": 500,
                "conversions": 20,
                "revenue_micros": 1_200_000_000,
                "commission_micros": 120_000_000,
            },
        }
    )
    before = _report({1: {"clicks": 5, "revenue_micros": 9_000_000}})
    board = leaderboard(now, "revenue", previous=before)  # type: ignore[arg-type]
    assert [(s.rank, s.label, s.value, s.previous_rank) for s in board] == [
        (1, "Cy", Decimal("1200"), None),
        (2, "Ann", Decimal("900"), 1),
        (3, "Bob", Decimal("500"), None),
    ]
    epc = leaderboard(now, "epc", min_clicks=100)  # type: ignore[arg-type]
    assert [(s.label, s.value) for s in epc] == [
        ("Cy", Decimal("0.2400")),
        ("Ann", Decimal("0.0900")),
    ]
    ties = leaderboard(now, "conversions", limit=2)  # type: ignore[arg-type]
    assert [s.key for s in ties] == ["1", "3"]


def test_report_rows_never_hold_nan_and_zero_denominators_are_none() -> None:
    rep = _report({1: {"commission_micros": 5_000_000}})
    row = rep.rows[0]  # type: ignore[attr-defined]
    for name in ("conversion_rate", "epc", "ctr", "aov", "refund_rate", "cpc", "cpl", "cpa"):
        assert getattr(row, name) is None, name
    assert row.roas == Decimal("0.000000")
    assert row.profit == Decimal("-5")


def test_channels_from_referrer_then_partner_network_then_direct() -> None:
    assert referrer_channel("https://m.tiktok.com/@x/video/1") == "tiktok"
    assert referrer_channel("https://l.instagram.com/?u=x") == "instagram"
    assert referrer_channel("https://t.co/abc") == "x"
    assert referrer_channel("https://www.google.de/") == "web"  # only google.com is listed
    assert referrer_channel("https://www.google.com/search?q=tent") == "search"
    assert referrer_channel("https://evil-tiktok.com/") == "web"
    assert referrer_channel("") is None
    assert click_channel(None, "instagram") == "instagram"
    assert click_channel(None, None) == "direct"
    assert click_channel("https://blog.example/post", "tiktok") == "web"
    assert conversion_channel("coupon", "https://www.tiktok.com/", "tiktok") == "coupon"


@given(st.text(max_size=60))
def test_any_referrer_text_gives_a_known_channel_or_none(referrer: str) -> None:
    from partnerflow.storage.channels import ALL_CHANNELS

    found = referrer_channel(referrer)
    assert found is None or found in ALL_CHANNELS
