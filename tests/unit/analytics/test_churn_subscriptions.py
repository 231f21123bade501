"""Subscription cohorts (survivor counts from payments) and the sBG fitted to them."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.analytics.churn import (
    Period,
    ShiftedBetaGeometric,
    _sbg_loglik,
    fit_sbg,
    fit_sbg_cohorts,
    period_number,
    subscription_cohorts,
)
from partnerflow.core.errors import InvalidInput

D = dt.date
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]


def test_survivors_count_consecutive_paid_months_and_stop_at_the_first_gap() -> None:
    payments = [
        ("a", D(2025, 1, 5)),
        ("a", D(2025, 2, 3)),
        ("a", D(2025, 3, 30)),
        ("b", D(2025, 1, 20)),  # misses February: churned at 1, even though it pays in March
        ("b", D(2025, 3, 1)),
        ("c", D(2025, 1, 31)),
        ("c", D(2025, 2, 28)),
        ("c", D(2025, 2, 1)),  # twice in one month is one paid month
        ("d", D(2025, 2, 10)),
        ("d", D(2025, 3, 10)),
        ("d", D(2025, 4, 2)),  # April is not over on 2025-04-15: not counted
        ("e", D(2025, 4, 3)),  # its cohort (April) is not complete: left out
    ]
    cohorts = subscription_cohorts(payments, period="month", until=D(2025, 4, 15))
    assert [(c.start, c.survivors, c.returned) for c in cohorts] == [
        (D(2025, 1, 1), (3, 2, 1), 1),
        (D(2025, 2, 1), (1, 1), 0),
    ]
    assert cohorts[0].size == 3 and cohorts[0].observed_periods == 2
    # `until` is the first day not observed: on 2025-04-01 March is over, April not begun.
    same = subscription_cohorts(payments, period="month", until=D(2025, 4, 1))
    assert [c.survivors for c in same] == [(3, 2, 1), (1, 1)]
    earlier = subscription_cohorts(payments, period="month", until=D(2025, 3, 31))
    assert [c.survivors for c in earlier] == [(3, 2), (1,)]


def test_weeks_are_iso_weeks_and_quarters_calendar_quarters() -> None:
    payments = [("a", D(2025, 1, 5)), ("a", D(2025, 1, 6)), ("b", D(2024, 12, 30))]
    weekly = subscription_cohorts(payments, period="week", until=D(2025, 1, 20))
    # Sunday 5 Jan is in the week of Monday 30 Dec 2024; Monday 6 Jan starts the next one.
    assert [(c.start, c.survivors) for c in weekly] == [(D(2024, 12, 30), (2, 1, 0))]
    quarterly = subscription_cohorts(
        [("a", D(2025, 3, 31)), ("a", D(2025, 4, 1))], period="quarter", until=D(2025, 7, 1)
    )
    assert [(c.start, c.survivors) for c in quarterly] == [(D(2025, 1, 1), (1, 1))]
    assert period_number(D(2025, 1, 6), "week") - period_number(D(2025, 1, 5), "week") == 1
    with pytest.raises(InvalidInput, match="period must be one of"):
        period_number(D(2025, 1, 1), "year")  # type: ignore[arg-type]


def reference(
    payments: list[tuple[str, dt.date]], period: Period, until: dt.date
) -> dict[int, list[int]]:
    """Brute force: for every cohort and k, count the customers paid in each of 1..k."""
    paid: dict[str, set[int]] = {}
    for customer, day in payments:
        paid.setdefault(customer, set()).add(period_number(day, period))
    last = period_number(until, period) - 1
    out: dict[int, list[int]] = {}
    for first in sorted({min(p) for p in paid.values() if min(p) <= last}):
        members = [p for p in paid.values() if min(p) == first]
        out[first] = [
            sum(1 for p in members if all(first + j in p for j in range(1, k + 1)))
            for k in range(last - first + 1)
        ]
    return out


payment_lists = st.lists(
    st.tuples(st.sampled_from("abcdefghij"), st.dates(D(2024, 10, 1), D(2025, 6, 30))),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    payment_lists,
    st.sampled_from(["week", "month", "quarter"]),
    st.dates(D(2024, 10, 1), D(2025, 8, 1)),
    st.randoms(use_true_random=False),
)
def test_survivor_counts_match_a_brute_force_count(
    payments: list[tuple[str, dt.date]], period: Period, until: dt.date, rnd: object
) -> None:
    cohorts = subscription_cohorts(payments, period=period, until=until)
    expected = reference(payments, period, until)
    assert [period_number(c.start, period) for c in cohorts] == list(expected)
    assert [list(c.survivors) for c in cohorts] == list(expected.values())
    for c in cohorts:
        assert all(b <= a for a, b in itertools.pairwise(c.survivors))
        assert 0 <= c.returned <= c.size - c.survivors[-1]
        assert c.start.day == 1 or period == "week"
    # Order and repeated payments do not matter.
    shuffled = payments * 2
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert subscription_cohorts(shuffled, period=period, until=until) == cohorts
    # Every customer whose first payment is in a complete period is in exactly one cohort.
    firsts: dict[str, dt.date] = {}
    for customer, day in payments:
        firsts[customer] = min(firsts.get(customer, day), day)
    last = period_number(until, period) - 1
    assert sum(c.size for c in cohorts) == sum(
        1 for d in firsts.values() if period_number(d, period) <= last
    )


def _simulated_payments(
    alpha: float, beta: float, per_cohort: int, months: int, seed: int
) -> list[tuple[str, dt.date]]:
    """Monthly subscribers joining over `months` months: each pays on the same day of every
    month until they cancel with their own θ ~ Beta(α, β)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, dt.date]] = []
    n = 0
    for joined in range(months):
        for _ in range(per_cohort):
            theta = rng.beta(alpha, beta)
            lifetime = int(rng.geometric(theta))  # periods paid, the first included
            day = int(rng.integers(1, 29))
            for k in range(min(lifetime, months - joined + 1)):
                year, month = divmod(joined + k, 12)
                out.append((f"s{n}", D(2024 + year, month + 1, day)))
            n += 1
    return out


def test_fit_on_data_from_known_parameters_recovers_them() -> None:
    payments = _simulated_payments(1.4, 3.5, per_cohort=2500, months=8, seed=5)
    cohorts = subscription_cohorts(payments, period="month", until=D(2024, 9, 1))
    assert [c.observed_periods for c in cohorts] == [7, 6, 5, 4, 3, 2, 1, 0]
    pooled = fit_sbg_cohorts([c.survivors for c in cohorts])
    assert pooled.alpha == pytest.approx(1.4, rel=0.15)
    assert pooled.beta == pytest.approx(3.5, rel=0.15)
    # The mean churn of a new customer, α/(α+β), is pinned down much better.
    assert pooled.alpha / (pooled.alpha + pooled.beta) == pytest.approx(1.4 / 4.9, abs=0.01)
    assert pooled.cohort_size == 2500 * 7  # the last cohort has no later period: not used
    oldest = fit_sbg(cohorts[0].survivors)
    assert oldest.alpha == pytest.approx(1.4, rel=0.3) and oldest.beta == pytest.approx(
        3.5, rel=0.3
    )


def test_pooled_fit_of_one_cohort_is_the_single_fit_and_adds_log_likelihoods() -> None:
    single = fit_sbg(REGULAR)
    assert fit_sbg_cohorts([REGULAR, [40]]) == single  # a cohort with no later period: ignored
    series = [REGULAR, REGULAR[:4], [500, 300, 220]]
    pooled = fit_sbg_cohorts(series)
    assert pooled.cohort_size == 2500
    assert pooled.log_likelihood == pytest.approx(
        sum(_sbg_loglik(pooled.alpha, pooled.beta, s) for s in series), rel=1e-12
    )
    for bad, message in (
        ([], "no cohort"),
        ([[10, 5]], "at least two periods"),
        ([[10, 12, 3]], "cannot increase"),
        ([[10, 10, 10], [5, 5]], "nobody churned"),
        ([[0, 0, 0]], "a customer and a later period"),
    ):
        with pytest.raises(InvalidInput, match=message):
            fit_sbg_cohorts(bad)


def test_lifetimes_follow_from_the_survival_curve() -> None:
    model = ShiftedBetaGeometric(alpha=3.0, beta=5.0, log_likelihood=-1.0, cohort_size=100)
    # E[T] = E[1/θ] = (α+β−1)/(α−1) = 3.5 periods, and Σ S(t) converges to it (tail ~ t^-α).
    assert model.expected_lifetime == pytest.approx(3.5)
    assert math.fsum(model.survival(20_000)) == pytest.approx(3.5, rel=1e-6)
    median = model.median_lifetime()
    assert median is not None
    survival = model.survival(median)
    assert survival[median] <= 0.5 < survival[median - 1]
    assert model.expected_periods_within(1) == 1.0
    assert model.expected_periods_within(12) == pytest.approx(math.fsum(model.survival(11)))
    regular = fit_sbg(REGULAR)  # α = 0.704 <= 1: the mean lifetime is infinite
    assert regular.expected_lifetime is None
    assert regular.median_lifetime() == 2
    assert math.isfinite(regular.expected_periods_within(1000))
