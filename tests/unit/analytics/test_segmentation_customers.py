import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.analytics.segmentation import (
    MIN_CUSTOMERS,
    Purchase,
    name_cluster,
    segment_customers,
)
from partnerflow.core.errors import InvalidInput

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def buys(cid: str, days_ago: list[int], amount: int) -> list[Purchase]:
    return [Purchase(cid, NOW - timedelta(days=d), Decimal(amount)) for d in days_ago]


def three_groups() -> list[Purchase]:
    out: list[Purchase] = []
    for i in range(10):
        # loyal: ten recent purchases of ~100
        out += buys(f"loyal{i}", [1 + i % 3 + 7 * j for j in range(10)], 100 + i)
        # new: one purchase of ~10 in the last days
        out += buys(f"new{i}", [2 + i % 4], 10 + i)
        # lapsed big spenders: six purchases of ~300, the last one ~200 days ago
        out += buys(f"lapsed{i}", [200 + i + 10 * j for j in range(6)], 300 + i)
    return out


def test_three_clear_groups_are_found_and_named() -> None:
    result = segment_customers(three_groups(), as_of=NOW, currency="EUR", predict_clv=False)
    assert result.k == 3
    assert result.customers == 30
    assert result.purchases == 170
    assert result.criterion == "highest mean silhouette over k = 2..8"
    assert max(result.silhouette_by_k, key=lambda k: result.silhouette_by_k[k]) == 3
    by_name = {s.name: s for s in result.segments}
    # Names are relative (quintiles): the lapsed group out-spent the loyal one, so only it has
    # a high M score, and the loyal group is named for its frequency.
    assert list(by_name) == ["At risk big spenders", "Active frequent buyers", "New low spenders"]
    assert by_name["Active frequent buyers"].customers == 10
    assert by_name["Active frequent buyers"].revenue == Decimal(
        10 * sum(100 + i for i in range(10))
    )
    assert by_name["At risk big spenders"].revenue == Decimal(6 * sum(300 + i for i in range(10)))
    assert by_name["New low spenders"].revenue == Decimal(sum(10 + i for i in range(10)))
    assert by_name["New low spenders"].median_frequency == Decimal(1)
    assert by_name["New low spenders"].customer_share == Decimal("0.3333")
    members = {m.customer_id: m for m in result.members}
    assert members["loyal3"].segment == "Active frequent buyers"
    assert members["new0"].segment == "New low spenders"
    assert members["lapsed9"].rfm_cell == "125"
    assert members["lapsed9"].rfm_segment == "At Risk"


def test_historical_clv_is_revenue_to_date() -> None:
    result = segment_customers(three_groups(), as_of=NOW, currency="EUR", predict_clv=False)
    assert result.clv_method == "historical"
    for s in result.segments:
        assert s.clv_total == s.revenue
        assert s.clv_mean == (s.revenue / s.customers).quantize(Decimal("0.01"))


def test_segmentation_is_deterministic() -> None:
    a = segment_customers(three_groups(), as_of=NOW, currency="EUR", predict_clv=False)
    b = segment_customers(
        list(reversed(three_groups())), as_of=NOW, currency="EUR", predict_clv=False
    )
    assert a == b


def random_shop(n: int = 120, seed: int = 7) -> list[Purchase]:
    """Customers with exponential gaps, finite lifetimes and three spend levels."""
    rng = random.Random(seed)
    out: list[Purchase] = []
    for c in range(n):
        start = rng.randint(30, 360)
        rate, life, spend = (
            rng.choice([0.01, 0.03, 0.08]),
            rng.randint(10, 400),
            rng.choice([20, 60, 200]),
        )
        day = start
        while day >= 0 and start - day <= life:
            out.append(
                Purchase(
                    f"c{c:03d}", NOW - timedelta(days=day), Decimal(spend + rng.randint(0, 40))
                )
            )
            day -= int(rng.expovariate(rate)) + 1
    return out


def test_predicted_clv_when_the_models_fit() -> None:
    result = segment_customers(random_shop(), as_of=NOW, currency="EUR")
    assert result.clv_method == "predicted"
    assert (
        result.clv_note == "predicted CLV over 12 months, BG/NBD + Gamma-Gamma, 1% monthly discount"
    )
    by_customer = {m.customer_id: m for m in result.members}
    for s in result.segments:
        member_clv = [m.clv for m in by_customer.values() if m.segment == s.name]
        assert s.clv_total == sum(member_clv, Decimal(0))
        assert s.clv_mean > 0
    assert sum(s.customers for s in result.segments) == 120


def test_falls_back_to_historical_clv_with_the_reason() -> None:
    # Nobody bought twice: Gamma-Gamma has nothing to fit.
    purchases = [Purchase(f"c{i}", NOW - timedelta(days=i * 9), Decimal(10 + i)) for i in range(12)]
    result = segment_customers(purchases, as_of=NOW, currency="EUR")
    assert result.clv_method == "historical"
    assert result.clv_note.startswith(
        "historical CLV: revenue to date (the CLV models did not fit:"
    )
    assert sum(s.clv_total for s in result.segments) == sum(p.amount for p in purchases)


def test_too_few_customers_is_a_clear_error() -> None:
    purchases = [Purchase(f"c{i}", NOW, Decimal(i + 1)) for i in range(MIN_CUSTOMERS - 1)]
    with pytest.raises(InvalidInput, match="at least 10 customers with purchases; got 9"):
        segment_customers(purchases, as_of=NOW, currency="EUR")
    with pytest.raises(InvalidInput, match="got 0"):
        segment_customers([], as_of=NOW, currency="EUR")


def test_identical_customers_cannot_be_clustered() -> None:
    purchases = [Purchase(f"c{i}", NOW - timedelta(days=3), Decimal(50)) for i in range(12)]
    with pytest.raises(InvalidInput, match="too alike to cluster"):
        segment_customers(purchases, as_of=NOW, currency="EUR", predict_clv=False)


def test_purchases_after_as_of_and_naive_times_are_refused() -> None:
    late = [*three_groups(), Purchase("x", NOW + timedelta(hours=1), Decimal(1))]
    with pytest.raises(InvalidInput, match="after the as-of time"):
        segment_customers(late, as_of=NOW, currency="EUR")
    with pytest.raises(InvalidInput, match="timezone-aware"):
        segment_customers(three_groups(), as_of=NOW.replace(tzinfo=None), currency="EUR")


def test_cluster_names_follow_the_rfm_profile() -> None:
    assert name_cluster(4.6, 4.2, 4.8) == "High-value loyal"
    assert name_cluster(1.3, 3.9, 4.4) == "At risk loyal big spenders"
    assert name_cluster(1.3, 2.0, 4.4) == "At risk big spenders"
    assert name_cluster(4.5, 1.0, 1.2) == "New low spenders"
    assert name_cluster(4.5, 1.0, 4.0) == "New big spenders"
    assert name_cluster(4.0, 4.0, 3.0) == "Active frequent buyers"
    assert name_cluster(3.0, 3.0, 3.0) == "Cooling mid-value customers"
    assert name_cluster(1.0, 1.5, 1.5) == "Lost low spenders"


scores = st.floats(min_value=1.0, max_value=5.0, allow_nan=False)


@given(scores, scores, scores)
def test_every_profile_gets_a_name_and_recent_is_never_lost_or_at_risk(
    r: float, f: float, m: float
) -> None:
    name = name_cluster(r, f, m)
    assert name
    if r >= 3.5:
        assert not name.startswith(("Lost", "At risk", "Cooling"))
