from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.commissions.model import FlatPlan, PercentPlan, PlanType
from partnerflow.commissions.rules import (
    commission_for,
    flat_commission,
    parse_plan,
    percent_commission,
    plan_to_data,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import Money


def test_cps_is_a_percentage_rounded_half_up() -> None:
    result = percent_commission(Money.of("99.95", "EUR"), Decimal("10"))
    assert result.amount == Money(Decimal("10.00"), "EUR")
    assert "9.995" in result.explanation


def test_cps_on_zero_decimal_currency() -> None:
    assert percent_commission(Money.of("1999", "JPY"), Decimal("7.5")).amount == Money(
        Decimal("150"), "JPY"
    )


def test_flat_cpa_ignores_order_value() -> None:
    plan = parse_plan({"type": "cpa", "amount": "25"}, "EUR")
    assert commission_for(plan, "sale", Money.of("1", "EUR")) is not None
    result = commission_for(plan, "sale", Money.of("5000", "EUR"))
    assert result is not None and result.amount == Money(Decimal("25.00"), "EUR")


def test_plans_pay_only_for_their_events() -> None:
    cpl = parse_plan({"type": "cpl", "amount": "2.50"}, "USD")
    cps = parse_plan({"type": "cps", "percent": "8"}, "USD")
    assert commission_for(cpl, "sale", Money.of("10", "USD")) is None
    assert commission_for(cps, "lead", Money.of("0", "USD")) is None
    lead = commission_for(cpl, "lead", Money.of("0", "USD"))
    assert lead is not None and lead.amount == Money(Decimal("2.50"), "USD")


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": "cpx"},
        {"type": "cps", "percent": "101"},
        {"type": "cps", "percent": "-1"},
        {"type": "cps", "percent": "ten"},
        {"type": "cps", "percent": "10", "amount": "5"},
        {"type": "cpa", "amount": "-5"},
        {"type": "cpa", "amount": "5", "currency": "ZZZ"},
        {"type": "cpa"},
    ],
)
def test_invalid_plans_are_refused_with_the_field(data: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_plan(data, "EUR")
    assert info.value.field is not None and info.value.field.startswith("commission_plan")


def test_plan_round_trips_through_data() -> None:
    for plan in (PercentPlan(Decimal("12.5")), FlatPlan(PlanType.CPL, Money.of("3", "PLN"))):
        assert parse_plan(plan_to_data(plan), "EUR") == plan


@given(
    st.decimals(min_value=0, max_value=100000, places=2),
    st.decimals(min_value=0, max_value=100, places=2),
)
def test_cps_is_within_half_a_cent_of_the_exact_value(amount: Decimal, percent: Decimal) -> None:
    result = percent_commission(Money(amount, "EUR"), percent)
    exact = amount * percent / 100
    assert abs(result.amount.amount - exact) <= Decimal("0.005")
    assert result.amount.amount == result.amount.amount.quantize(Decimal("0.01"))
    assert Decimal(0) <= result.amount.amount <= amount


def test_flat_commission_is_rounded() -> None:
    assert flat_commission(Money.of("2.499", "EUR")).amount == Money(Decimal("2.50"), "EUR")
