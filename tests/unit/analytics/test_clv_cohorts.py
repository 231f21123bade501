import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.analytics import cohorts
from partnerflow.core.errors import InvalidInput

UTC = dt.UTC


@dataclass(frozen=True)
class S:
    customer_id: str
    partner_id: int | None
    at: dt.datetime
    amount: Decimal | None


def _at(y: int, m: int, d: int, h: int = 12, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=UTC)


def _population() -> list[S]:
    """Varied buyers (one-time, short bursts, loyal) over 2025-01..06, partners 1 and 2."""
    out = []
    for i in range(16):
        start = dt.date(2025, 1, 1) + dt.timedelta(days=2 * i)
        gap, stop = 4 + 3 * i, (0, 40, 200, 90)[i % 4]
        k = 0
        while k * gap <= stop and (start - dt.date(2025, 1, 1)).days + k * gap <= 175:
            day = start + dt.timedelta(days=k * gap)
            amount = Decimal(20 + 3 * i + 2 * k)
            out.append(S(f"c{i:02d}", 1 + i % 2, _at(day.year, day.month, day.day), amount))
            k += 1
    return out


def test_acquiring_partner_is_the_partner_of_the_first_purchase() -> None:
    sales = [
        S("a", 2, _at(2025, 1, 5), Decimal(1)),
        S("a", 1, _at(2025, 1, 3), Decimal(1)),  # earlier, given later: still first
        S("b", None, _at(2025, 1, 1), Decimal(1)),
        S("b", 1, _at(2025, 1, 2), Decimal(1)),  # later credit does not move the cohort
        S("c", 3, _at(2025, 1, 1), None),  # an unpriced sale still acquires
        S("c", 4, _at(2025, 1, 1), Decimal(1)),  # same time: the first given wins
    ]
    assert cohorts.acquiring_partners(sales) == {"a": 1, "b": None, "c": 3}


def test_purchases_merge_per_local_day_of_the_program() -> None:
    base = _population()
    # Two purchases on the same Warsaw day (2025-03-01) but on two UTC days.
    extra = [
        S("z", 1, dt.datetime(2025, 2, 28, 23, 30, tzinfo=UTC), Decimal("10")),
        S("z", 1, _at(2025, 3, 1, 10), Decimal("5.5")),
        S("z", 1, _at(2025, 4, 1), Decimal("7")),
    ]
    warsaw = cohorts.predict_clv(
        base + extra, calibration_end=dt.date(2025, 6, 30), timezone="Europe/Warsaw"
    )
    utc = cohorts.predict_clv(base + extra, calibration_end=dt.date(2025, 6, 30), timezone="UTC")
    z_local = next(c for c in warsaw.customers if c.customer_id == "z")
    z_utc = next(c for c in utc.customers if c.customer_id == "z")
    assert (z_local.purchases, z_utc.purchases) == (2, 3)
    assert warsaw.transactions == utc.transactions - 1


def test_cohort_totals_are_exact_and_ordered() -> None:
    forecast = cohorts.predict_clv(
        [*_population(), S("u", None, _at(2025, 2, 1), Decimal("9.99"))],
        calibration_end=dt.date(2025, 6, 30),
        timezone="UTC",
        horizon_months=6,
        monthly_discount_rate=0.02,
    )
    assert forecast.spend_method == "gamma_gamma" and forecast.notes == ()
    rows = cohorts.by_cohort(forecast.customers)
    assert [(r.partner_id, r.customers) for r in rows][-1] == (None, 1)
    assert sorted(r.customers for r in rows) == [1, 8, 8]
    assert [r.clv_total for r in rows[:2]] == sorted((r.clv_total for r in rows[:2]), reverse=True)
    for row in rows:
        members = [c for c in forecast.customers if c.partner_id == row.partner_id]
        assert row.clv_total == sum((c.clv for c in members), Decimal(0))
        assert row.repeat_customers == sum(1 for c in members if c.frequency > 0)
        assert row.clv_mean == (row.clv_total / len(members)).quantize(Decimal("0.000001"))
    for c in forecast.customers:
        assert c.clv.as_tuple().exponent == -6 and c.clv >= 0
        assert math.isfinite(c.expected_purchases) and 0.0 <= c.p_alive <= 1.0


def test_discounting_lowers_clv_and_zero_rate_is_spend_times_purchases() -> None:
    sales = _population()
    flat = cohorts.predict_clv(
        sales, calibration_end=dt.date(2025, 6, 30), timezone="UTC", monthly_discount_rate=0.0
    )
    disc = cohorts.predict_clv(
        sales, calibration_end=dt.date(2025, 6, 30), timezone="UTC", monthly_discount_rate=0.05
    )
    for a, b in zip(flat.customers, disc.customers, strict=True):
        assert b.clv < a.clv
        product = a.expected_spend * Decimal(repr(a.expected_purchases))
        assert abs(product - a.clv) < Decimal("0.00001")


def test_purchases_after_calibration_and_unpriced_ones_are_noted_not_used() -> None:
    sales = [
        *_population(),
        S("c00", 1, _at(2025, 7, 2), Decimal(50)),
        S("c01", 2, _at(2025, 3, 3), None),
    ]
    forecast = cohorts.predict_clv(sales, calibration_end=dt.date(2025, 6, 30), timezone="UTC")
    assert forecast.notes == (
        "1 purchase(s) after the calibration end 2025-06-30 were not used for the fit",
        "1 purchase(s) without an exchange rate were left out",
    )
    assert forecast.transactions == len(_population())


def test_spend_falls_back_to_the_historical_mean_when_gamma_gamma_cannot_fit() -> None:
    sales = [S(s.customer_id, s.partner_id, s.at, Decimal("12.5")) for s in _population()]
    forecast = cohorts.predict_clv(sales, calibration_end=dt.date(2025, 6, 30), timezone="UTC")
    assert forecast.spend_method == "historical_mean" and forecast.spend_parameters is None
    assert forecast.historical_mean_spend == Decimal("12.500000")
    assert {c.expected_spend for c in forecast.customers} == {Decimal("12.500000")}
    assert forecast.notes[0].startswith("Gamma-Gamma could not be fitted (")


def test_every_model_predicts_finite_values() -> None:
    for model in cohorts.MODELS:
        forecast = cohorts.predict_clv(
            _population(), calibration_end=dt.date(2025, 6, 30), timezone="UTC", model=model
        )
        assert forecast.model == model
        assert all(math.isfinite(c.expected_purchases) for c in forecast.customers)


def test_bad_input_is_refused_with_the_reason() -> None:
    sales = _population()
    end = dt.date(2025, 6, 30)
    cases = [
        (dict(calibration_end=dt.date(2024, 1, 1)), "no purchases with a customer id"),
        (dict(horizon_months=0), "horizon must be 1 to 120"),
        (dict(horizon_months=121), "horizon must be 1 to 120"),
        (dict(monthly_discount_rate=1.0), "discount rate must be in [0, 1)"),
        (dict(monthly_discount_rate=float("nan")), "discount rate"),
        (dict(model="nbd"), "model must be one of"),
        (dict(timezone="Mars/Olympus"), "unknown timezone"),
        (dict(min_customers=17), "at least 17 customers"),
    ]
    for override, message in cases:
        kwargs = {"calibration_end": end, "timezone": "UTC", **override}
        with pytest.raises(InvalidInput) as info:
            cohorts.predict_clv(sales, **kwargs)  # type: ignore[arg-type]
        assert message in info.value.message


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, 1, 2, 3]),
            st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False),
            st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
            st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_by_cohort_sums_partition_the_customers(
    rows: list[tuple[int | None, Decimal, float, float]],
) -> None:
    customers = [
        cohorts.CustomerClv(
            customer_id=f"c{i}",
            partner_id=partner,
            purchases=1,
            frequency=0,
            recency=0.0,
            T=1.0,
            expected_purchases=purchases,
            p_alive=alive,
            expected_spend=Decimal(0),
            clv=value,
        )
        for i, (partner, value, purchases, alive) in enumerate(rows)
    ]
    grouped = cohorts.by_cohort(customers)
    assert sum(g.customers for g in grouped) == len(rows)
    assert sum((g.clv_total for g in grouped), Decimal(0)) == sum((r[1] for r in rows), Decimal(0))
    assert len({g.partner_id for g in grouped}) == len(grouped)
    totals = [g.clv_total for g in grouped]
    assert totals == sorted(totals, reverse=True)
