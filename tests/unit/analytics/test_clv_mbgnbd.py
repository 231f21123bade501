import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from partnerflow.analytics import clv
from partnerflow.core.errors import InvalidInput

DATA = Path(__file__).resolve().parents[2] / "data"


def _cdnow() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with (DATA / "cdnow_summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    x, t_x, T = (np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T"))
    return x, t_x, T


def test_mbgnbd_reproduces_the_btydplus_cdnow_parameters() -> None:
    # BTYDplus (Platzer) mbgnbd on CDNOW, as checked by lifetimes' test suite
    # (test_params_out_is_close_to_BTYDplus): r 0.525, alpha 6.183, a 0.891, b 1.614.
    x, t_x, T = _cdnow()
    m = clv.fit_mbgnbd(x, t_x, T)
    got = (round(m.r, 3), round(m.alpha, 3), round(m.a, 3), round(m.b, 3))
    assert got == (0.525, 6.183, 0.891, 1.614)
    assert m.customers == 2357
    # Nested-in-spirit models on the same data: the log-likelihoods are within one unit.
    bg = clv.fit_bgnbd(x, t_x, T)
    assert round(m.log_likelihood, 1) == -9582.1
    assert abs(m.log_likelihood - bg.log_likelihood) < 1.0


def test_mbgnbd_predictions_on_cdnow_are_close_to_bgnbd_and_consistent() -> None:
    x, t_x, T = _cdnow()
    m = clv.fit_mbgnbd(x, t_x, T)
    # FHL 2005's example customer: BG/NBD says 1.226; lifetimes accepts MBG/NBD within 0.05.
    e = float(m.expected_purchases(39.0, [2], [30.43], [38.86])[0])
    assert abs(e - 1.226) < 0.05
    # A one-time buyer may already be gone (the point of MBG/NBD); BG/NBD says 1.
    alive = m.p_alive([0, 0, 2], [0.0, 0.0, 30.43], [1.0, 38.86, 38.86])
    assert 0.0 < alive[1] < alive[0] < 1.0 and 0.0 < alive[2] < 1.0
    # At T = 0 the conditional expectation is the unconditional one (Batislam et al. eq. 9).
    for t in (1.0, 13.0, 52.0):
        conditional = float(m.expected_purchases(t, [0], [0.0], [0.0])[0])
        assert conditional == pytest.approx(m.expected_purchases_new_customer(t), rel=1e-10)


def _simulate_mbgnbd(
    n: int, r: float, alpha: float, a: float, b: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers bought at time 0 and are observed for T weeks (uniform 20-52); after every
    purchase, the first one included, they drop out with probability p ~ Beta(a, b)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(20.0, 52.0, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    alive = rng.random(n) >= p  # may drop out right after the first purchase
    while alive.any():
        now = now + rng.exponential(1.0, n) / lam
        alive &= now < T
        x[alive] += 1
        t_x[alive] = now[alive]
        alive &= rng.random(n) >= p
    return x, t_x, T


def test_mbgnbd_recovers_the_parameters_of_simulated_data() -> None:
    true = {"r": 0.8, "alpha": 4.0, "a": 1.2, "b": 3.0}
    x, t_x, T = _simulate_mbgnbd(6000, *true.values(), seed=11)
    m = clv.fit_mbgnbd(x, t_x, T)
    assert abs(m.r - true["r"]) / true["r"] < 0.10
    assert abs(m.alpha - true["alpha"]) / true["alpha"] < 0.15
    # The drop-out mixing distribution is identified less sharply: compare its mean.
    assert abs(m.a / (m.a + m.b) - 1.2 / 4.2) < 0.04
    # The true model explains its own data better than BG/NBD, which cannot drop at time 0.
    assert m.log_likelihood > clv.fit_bgnbd(x, t_x, T).log_likelihood


def test_mbgnbd_refuses_data_it_cannot_fit() -> None:
    with pytest.raises(InvalidInput, match="at least two customers"):
        clv.fit_mbgnbd([3], [10.0], [20.0])
    with pytest.raises(InvalidInput, match="repeat purchase"):
        clv.fit_mbgnbd([0, 0, 0], [0.0, 0.0, 0.0], [10.0, 20.0, 30.0])


def test_customers_who_all_behave_alike_are_a_fit_error_that_names_the_parameters() -> None:
    # Every customer buys in a short burst at a steady pace and then stops, so nobody differs
    # in drop-out: a, b -> infinity along a ridge of the BG/NBD likelihood (a/(a+b) fixed).
    ids, days, amounts = [], [], []
    for i in range(12):
        first = dt.date(2025, 1, 1 + i)
        for k in range(i % 5 + 1):
            ids.append(f"a{i}")
            days.append(first + dt.timedelta(days=k * (7 + i)))
            amounts.append(10.0)
    for i in range(8):
        first = dt.date(2025, 2, 1 + 2 * i)
        for k in range(i % 3 + 1):
            ids.append(f"b{i}")
            days.append(first + dt.timedelta(days=10 * k))
            amounts.append(10.0)
    for i in range(6):
        ids.append(f"u{i}")
        days.append(dt.date(2025, 3, 3 + i))
        amounts.append(15.0)
    extra = (("u0", (4, 20)), ("x0", (1, 9)), ("x0", (2, 9)), ("b0", (5, 20)), ("b1", (5, 25)))
    for customer, day in extra:
        ids.append(customer)
        days.append(dt.date(2025, *day))
        amounts.append(40.0)
    s = clv.summarize_transactions(ids, days, amounts, calibration_end=dt.date(2025, 6, 30))
    with pytest.raises(clv.FitError, match=r"parameter\(s\) a, b keep drifting"):
        clv.fit_bgnbd(s.frequency, s.recency, s.T)
