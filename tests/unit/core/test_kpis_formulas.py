from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core import kpis


def test_conversion_rate_is_conversions_over_clicks_rounded_to_six_places() -> None:
    assert kpis.conversion_rate(3, 7) == Decimal("0.428571")
    assert kpis.conversion_rate(2, 3) == Decimal("0.666667")


def test_epc_is_commission_over_clicks_rounded_half_up_to_four_places() -> None:
    assert kpis.earnings_per_click(Decimal("10.00"), 3) == Decimal("3.3333")
    assert kpis.earnings_per_click(Decimal("0.00125"), 1) == Decimal("0.0013")


def test_zero_denominators_are_none_not_zero_or_nan() -> None:
    assert kpis.conversion_rate(0, 0) is None
    assert kpis.earnings_per_click(Decimal("5"), 0) is None
    assert kpis.click_through_rate(4, 0) is None
    assert kpis.average_order_value(Decimal(0), 0) is None
    assert kpis.return_on_ad_spend(Decimal(100), Decimal(0)) is None
    assert kpis.churn_rate(1, 0) is None


def test_zero_numerator_is_a_real_zero() -> None:
    assert kpis.conversion_rate(0, 10) == Decimal("0.000000")


def test_catalogue_formulas() -> None:
    assert kpis.click_through_rate(15, 1000) == Decimal("0.015000")
    assert kpis.unique_conversion_rate(2, 8) == Decimal("0.250000")
    assert kpis.revenue_per_click(Decimal("100"), 8) == Decimal("12.5000")
    assert kpis.average_order_value(Decimal("250.00"), 3) == Decimal("83.3333")
    assert kpis.refund_rate(1, 20) == Decimal("0.050000")
    assert kpis.cost_per_click(Decimal("40"), 400) == Decimal("0.1000")
    assert kpis.cost_per_lead(Decimal("25"), 10) == Decimal("2.5000")
    assert kpis.cost_per_acquisition(Decimal("90"), 4) == Decimal("22.5000")
    assert kpis.return_on_ad_spend(Decimal("400"), Decimal("100")) == Decimal("4.000000")
    assert kpis.profit(Decimal("400.10"), Decimal("100.05")) == Decimal("300.05")
    assert kpis.share(Decimal("30"), Decimal("120")) == Decimal("0.250000")
    assert kpis.churn_rate(5, 200) == Decimal("0.025000")


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_conversion_rate_never_raises_and_is_a_fraction_when_conversions_le_clicks(
    conversions: int, clicks: int
) -> None:
    rate = kpis.conversion_rate(conversions, clicks)
    if clicks == 0:
        assert rate is None
    else:
        assert rate is not None and rate.is_finite()
        if conversions <= clicks:
            assert Decimal(0) <= rate <= Decimal(1)


@given(
    st.decimals(min_value=-(10**6), max_value=10**6, places=6, allow_nan=False),
    st.integers(1, 10**7),
)
def test_epc_is_within_half_a_unit_of_the_exact_ratio(commission: Decimal, clicks: int) -> None:
    epc = kpis.earnings_per_click(commission, clicks)
    assert epc is not None
    assert abs(epc - commission / clicks) <= Decimal("0.00005")
