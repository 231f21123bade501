import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.analytics.churn import (
    _geometric_loglik,
    _sbg_loglik,
    churn_by_cohort,
    churn_rate,
    fit_sbg,
)
from partnerflow.analytics.clv import FitError
from partnerflow.core.errors import InvalidInput

# Fader & Hardie (2007), "How to project customer retention", Table 1 (years 0-12).
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]

D = dt.date


def test_sbg_reproduces_published_parameters_on_the_first_seven_years() -> None:
    regular = fit_sbg(REGULAR[:8])
    high_end = fit_sbg(HIGH_END[:8])
    assert (round(regular.alpha, 3), round(regular.beta, 3)) == (0.704, 1.182)
    assert (round(high_end.alpha, 3), round(high_end.beta, 3)) == (0.668, 3.806)
    assert (round(regular.log_likelihood, 1), round(high_end.log_likelihood, 1)) == (
        -1680.3,
        -1611.2,
    )


def test_sbg_forecast_tracks_the_holdout_years() -> None:
    model = fit_sbg(HIGH_END[:8])
    forecast = model.expected_survivors(12)
    assert forecast[0] == 1000.0
    # Years 8-12 were not used for the fit; the paper reports errors of a few percent.
    for got, actual in zip(forecast[8:], HIGH_END[8:], strict=True):
        assert abs(got - actual) / actual < 0.05
    retention = model.retention(12)
    assert all(a < b for a, b in itertools.pairwise(retention))


def test_sbg_refuses_bad_survivor_series() -> None:
    with pytest.raises(InvalidInput):
        fit_sbg([1000, 900])
    with pytest.raises(InvalidInput, match="cannot increase"):
        fit_sbg([1000, 900, 950])
    with pytest.raises(InvalidInput, match="nobody churned"):
        fit_sbg([10, 10, 10])
    with pytest.raises(InvalidInput, match="empty"):
        fit_sbg([0, 0, 0])


def test_sbg_constant_churn_has_no_heterogeneity_and_is_a_fit_error() -> None:
    # Exactly geometric survival: Beta variance -> 0, alpha and beta run to infinity.
    with pytest.raises(FitError):
        fit_sbg([1024, 512, 256, 128, 64, 32, 16, 8])


@settings(max_examples=40, deadline=None)  # a fit on a ridge takes up to ~1 s
@given(
    size=st.integers(min_value=20, max_value=5000),
    keep=st.sampled_from([0.3, 0.5, 0.6, 0.75, 0.9]),
    periods=st.integers(min_value=2, max_value=8),
)
def test_sbg_on_geometric_survival_is_a_fit_error_wherever_the_optimiser_stops(
    size: int, keep: float, periods: int
) -> None:
    # Survivors that decay at one rate (rounded, as counts are) carry no heterogeneity: the
    # optimiser walks up the ridge towards alpha, beta -> infinity and stops wherever the
    # platform's floating point lets it (126/125 on one build, the bound on another). Every
    # such fit is no better than the geometric model, and is refused the same way.
    survivors = [round(size * keep**t) for t in range(periods + 1)]
    if survivors[-1] == survivors[0] or len(set(survivors)) < 3:
        return
    try:
        model = fit_sbg(survivors)
    except FitError as exc:
        assert "0 or infinity" in str(exc)
        return
    # Rounding can leave a little heterogeneity: then the fit must beat the geometric one.
    assert model.log_likelihood > _geometric_loglik([survivors])


def test_geometric_loglik_is_the_sbg_limit() -> None:
    survivors = [1000, 700, 480, 300, 200]
    best = _geometric_loglik([survivors])
    # alpha / (alpha + beta) = theta held, both large: the sBG approaches the geometric.
    lost = sum(a - b for a, b in itertools.pairwise(survivors))
    stayed = sum(i * (a - b) for i, (a, b) in enumerate(itertools.pairwise(survivors)))
    theta = lost / (lost + stayed + survivors[-1] * (len(survivors) - 1))
    near = _sbg_loglik(theta * 1e7, (1 - theta) * 1e7, survivors)
    assert abs(near - best) < 1e-3
    assert best > _sbg_loglik(theta * 10, (1 - theta) * 10, survivors)


def test_churn_rate_counts_customers_lost_over_customers_at_start() -> None:
    activity = [
        ("a", D(2024, 1, 10)),
        ("a", D(2024, 2, 5)),
        ("b", D(2024, 1, 20)),
        ("c", D(2024, 1, 31)),
        ("c", D(2024, 2, 28)),
        ("d", D(2024, 2, 3)),  # new in the period: not at start, not lost
        ("e", D(2023, 11, 1)),  # outside the lookback window
    ]
    rate = churn_rate(
        activity, period_start=D(2024, 2, 1), period_end=D(2024, 3, 1), lookback_days=31
    )
    assert (rate.customers_at_start, rate.customers_lost) == (3, 1)
    assert rate.rate == pytest.approx(1 / 3)


def test_churn_rate_of_an_empty_period_is_none_not_nan() -> None:
    rate = churn_rate([], period_start=D(2024, 2, 1), period_end=D(2024, 3, 1), lookback_days=30)
    assert rate.rate is None
    with pytest.raises(InvalidInput):
        churn_rate([], period_start=D(2024, 2, 1), period_end=D(2024, 2, 1), lookback_days=30)


def test_churn_by_partner_cohort() -> None:
    activity = [
        ("a", D(2024, 1, 10)),
        ("b", D(2024, 1, 12)),
        ("b", D(2024, 2, 2)),
        ("z", D(2024, 1, 5)),
    ]
    cohorts = churn_by_cohort(
        activity,
        {"a": "p1", "b": "p2"},
        period_start=D(2024, 2, 1),
        period_end=D(2024, 3, 1),
        lookback_days=60,
    )
    assert list(cohorts) == ["p1", "p2"]
    assert cohorts["p1"].rate == 1.0 and cohorts["p2"].rate == 0.0


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.dates(D(2023, 12, 1), D(2024, 3, 31))),
        max_size=60,
    )
)
def test_churn_rate_is_a_proportion_or_none(activity: list[tuple[str, dt.date]]) -> None:
    rate = churn_rate(
        activity, period_start=D(2024, 2, 1), period_end=D(2024, 3, 1), lookback_days=31
    )
    assert 0 <= rate.customers_lost <= rate.customers_at_start
    assert rate.rate is None or 0.0 <= rate.rate <= 1.0
