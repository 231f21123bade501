"""The vectorised `clv predict` path gives exactly what the plain per-sale loop gives.

`cohorts.day_totals` (numpy on integer micro-units, offsets looked up per UTC day) is checked
against `cohorts.day_totals_reference` (one sale at a time, Decimal sums, `astimezone`) and
against the loop `predict_clv` used before it was vectorised; the likelihoods that evaluate
their Γ/B terms once per distinct frequency are checked bit for bit against the per-row
formulas.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from partnerflow.analytics import clv, cohorts

ZONES = ("UTC", "Europe/Warsaw", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe")
END = dt.date(2025, 3, 31)


@dataclass(frozen=True, slots=True)
class Sale:
    customer_id: str
    partner_id: int | None
    at: dt.datetime
    amount: Decimal | None


def loop_summary(
    sales: list[Sale], timezone: str, end: dt.date, unit: clv.TimeUnit
) -> tuple[clv.RFMSummary, Decimal, int, int, dict[str, int | None]]:
    """What `predict_clv` computed before it was vectorised: a dict of Decimal day totals
    filled one sale at a time, then `summarize_transactions` on lists."""
    zone = ZoneInfo(timezone)
    totals: dict[tuple[str, dt.date], Decimal] = {}
    later = unpriced = 0
    for sale in sales:
        day = sale.at.astimezone(zone).date()
        if day > end:
            later += 1
            continue
        if sale.amount is None:
            unpriced += 1
            continue
        key = (sale.customer_id, day)
        totals[key] = totals.get(key, Decimal(0)) + sale.amount
    keys = list(totals)
    summary = clv.summarize_transactions(
        [c for c, _ in keys],
        [d for _, d in keys],
        [float(totals[k]) for k in keys],
        calibration_end=end,
        time_unit=unit,
    )
    first: dict[str, tuple[dt.datetime, int | None]] = {}
    for sale in sales:
        seen = first.get(sale.customer_id)
        if seen is None or sale.at < seen[0]:
            first[sale.customer_id] = (sale.at, sale.partner_id)
    cohort = {c: p for c, (_, p) in first.items()}
    return summary, sum(totals.values(), Decimal(0)), later, unpriced, cohort


amounts = st.one_of(
    st.none(),
    st.decimals(min_value=0, max_value=5000, places=2),
    st.decimals(min_value=0, max_value=5000, places=6),
    st.decimals(min_value=0, max_value=50, places=11),  # a converted currency
    st.integers(0, 10**6).map(Decimal),
)
sale_lists = st.lists(
    st.builds(
        Sale,
        customer_id=st.sampled_from(["a", "b", "c", "Ä", "d-1", "e e", "10", "9"]),
        partner_id=st.one_of(st.none(), st.integers(1, 4)),
        # Around the 2025 DST changes and New Year, to the microsecond, in several offsets.
        at=st.one_of(
            st.datetimes(
                dt.datetime(2024, 12, 30),
                dt.datetime(2025, 4, 3),
                timezones=st.sampled_from([dt.UTC, ZoneInfo("Europe/Warsaw")]),
            ),
            st.sampled_from(
                [
                    dt.datetime(2025, 3, 30, 0, 59, 59, 999999, tzinfo=dt.UTC),
                    dt.datetime(2025, 3, 30, 1, 0, tzinfo=dt.UTC),
                    dt.datetime(2025, 3, 31, 22, 0, tzinfo=dt.UTC),
                    dt.datetime(2025, 3, 9, 5, 30, tzinfo=dt.UTC),
                ]
            ),
        ),
        amount=amounts,
    ),
    max_size=80,
)


def _same_days(fast: cohorts.DayTotals, slow: cohorts.DayTotals) -> None:
    assert fast.customer_ids == slow.customer_ids
    assert fast.acquired_by == slow.acquired_by
    assert np.array_equal(fast.customer, slow.customer)
    assert np.array_equal(fast.day, slow.day)
    assert fast.amount.tobytes() == slow.amount.tobytes()  # bit for bit
    assert fast.total == slow.total
    assert (fast.later, fast.unpriced) == (slow.later, slow.unpriced)


@settings(max_examples=300, deadline=None)
@given(sale_lists, st.sampled_from(ZONES), st.sampled_from(["day", "week"]))
def test_vectorised_summary_equals_the_per_sale_loop(
    sales: list[Sale], timezone: str, unit: clv.TimeUnit
) -> None:
    zone = ZoneInfo(timezone)
    # The numpy path itself (`day_totals` would quietly fall back on what it cannot do).
    fast = cohorts._day_totals_fast(sales, zone, END)
    _same_days(fast, cohorts.day_totals_reference(sales, zone, END))
    if not fast.transactions:
        return
    summary, total, later, unpriced, cohort = loop_summary(sales, timezone, END, unit)
    got = clv.summarize_indexed(
        fast.customer_ids,
        fast.customer,
        fast.day,
        fast.amount,
        calibration_end=END,
        time_unit=unit,
    )
    assert got.customer_ids == summary.customer_ids
    for name in ("frequency", "recency", "T", "monetary_value"):
        assert getattr(got, name).tobytes() == getattr(summary, name).tobytes(), name
    assert got.transactions == summary.transactions
    assert (fast.total, fast.later, fast.unpriced) == (total, later, unpriced)
    assert fast.acquired_by == tuple(cohort[c] for c in fast.customer_ids)


def test_unusual_amounts_take_the_reference_path_with_the_same_result() -> None:
    at = dt.datetime(2025, 1, 10, 12, tzinfo=dt.UTC)
    zone = ZoneInfo("UTC")
    for odd in (Decimal("0.1234567890123456789012"), Decimal("1E+30"), Decimal("-1.5")):
        sales = [
            Sale("a", 1, at, odd),
            Sale("a", 1, at, Decimal("2.25")),
            Sale("b", None, at, None),
        ]
        _same_days(
            cohorts.day_totals(sales, zone, END), cohorts.day_totals_reference(sales, zone, END)
        )


def _random_sales(n_customers: int, seed: int) -> list[Sale]:
    rng = np.random.default_rng(seed)
    out = []
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for c in range(n_customers):
        first = rng.uniform(0, 400)
        rate = rng.gamma(1.0, 1 / 20)
        stop = first + rng.exponential(200)
        t = first
        while t < min(stop, 460):
            cents = int(rng.integers(100, 20_000))
            amount = None if rng.random() < 0.02 else Decimal(cents).scaleb(-2)
            at = start + dt.timedelta(seconds=float(t) * 86_400)
            out.append(Sale(f"c{c}", None if c % 5 == 0 else c % 5, at, amount))
            t += rng.exponential(1 / max(rate, 1e-3))
    return out


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_predict_clv_is_identical_to_the_reference_path(
    model: cohorts.ModelName, monkeypatch: pytest.MonkeyPatch
) -> None:
    sales = _random_sales(400, seed=11)
    kwargs = {
        "calibration_end": dt.date(2025, 2, 28),
        "timezone": "Europe/Warsaw",
        "model": model,
    }
    fast = cohorts.predict_clv(sales, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(cohorts, "day_totals", cohorts.day_totals_reference)
    slow = cohorts.predict_clv(sales, **kwargs)  # type: ignore[arg-type]
    assert fast == slow  # every customer's Decimal CLV, to the micro-unit
    assert fast.notes and "after the calibration end" in fast.notes[0]


params = st.tuples(*(st.floats(-6.0, 6.0) for _ in range(4))).map(
    lambda t: np.exp(np.array(t, dtype=np.float64))
)


def _rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 12, 300).astype(np.float64)
    T = rng.uniform(1.0, 50.0, 300)
    t_x = np.where(x > 0, rng.uniform(0.1, 1.0, 300) * T, 0.0)
    m = rng.uniform(1.0, 80.0, 300)
    return x, t_x, T, m


@settings(max_examples=60, deadline=None)
@given(params, st.integers(0, 3))
def test_likelihoods_per_distinct_frequency_are_bit_identical(p: np.ndarray, seed: int) -> None:
    x, t_x, T, m = _rows(seed)
    r, alpha, a, b = p
    with np.errstate(all="ignore"):
        head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        head = head - special.betaln(a, b)
        dropped = np.full_like(x, -np.inf)
        rep = x > 0
        dropped[rep] = special.betaln(a + 1.0, b + x[rep] - 1.0) - (r + x[rep]) * np.log(
            alpha + t_x[rep]
        )
        bg = head + np.logaddexp(special.betaln(a, b + x) - (r + x) * np.log(alpha + T), dropped)
        mbg = head + np.logaddexp(
            special.betaln(a, b + x + 1.0) - (r + x) * np.log(alpha + T),
            special.betaln(a + 1.0, b + x) - (r + x) * np.log(alpha + t_x),
        )
        q, v = a, b
        px = r * x
        gg = (
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * math.log(v)
            + (px - 1.0) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(v + x * m)
        )
        assert clv._bgnbd_loglik(p, x, t_x, T).tobytes() == bg.tobytes()
        assert clv._mbgnbd_loglik(p, x, t_x, T).tobytes() == mbg.tobytes()
        keep = x > 0
        got = clv._gamma_gamma_loglik((r, q, v), x[keep], m[keep])
        assert got.tobytes() == gg[keep].tobytes()
