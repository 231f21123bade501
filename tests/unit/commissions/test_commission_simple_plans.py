"""An offer's simple plan prices a conversion the same way however often it is used: the
parsed plan is kept per plan data and currency, never across different data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest

from partnerflow.commissions.ports import ConversionFactsRepository, ProgramTerms
from partnerflow.commissions.rates import RateTable
from partnerflow.commissions.services import (
    ConversionInput,
    PlanBook,
    Priced,
    commission_for_conversion,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import Money

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class _NoFacts:
    """A simple plan counts nothing: any question to the facts is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a simple plan asked the facts for {name}")


def _price(plan: dict[str, Any], amount: str = "49.90", currency: str = "EUR",
           event: str = "sale") -> Priced:  # fmt: skip
    return commission_for_conversion(
        PlanBook(None, 1),
        cast(ConversionFactsRepository, _NoFacts()),
        RateTable(),
        ProgramTerms(1, "shop", currency, 30, "last_click", 30),
        ConversionInput(1, 7, event, Money(Decimal(amount), currency), AT),
        simple_plan=plan,
    )


def test_a_simple_plan_prices_alike_every_time() -> None:
    first = [_price({"type": "cps", "percent": "10"}) for _ in range(3)]
    assert (
        first
        == [
            Priced(
                Money(Decimal("4.99"), "EUR"),
                "offer 7's simple plan (CPS 10% of sale): rule cps (cps): 49.90 EUR x 10% = 4.99;"
                " total 4.99 -> 4.99 EUR (rounded half-up once)",
                "offer simple plan",
                rule_id="cps",
            )
        ]
        * 3
    )
    other = _price({"type": "cps", "percent": "12.5"}, amount="80")
    assert other.amount == Money(Decimal("10.00"), "EUR")
    assert other.explanation.startswith("offer 7's simple plan (CPS 12.5% of sale)")
    assert _price({"type": "cps", "percent": "10"}) == first[0]


def test_a_plan_value_equal_to_a_cached_one_but_of_another_type_is_still_refused() -> None:
    # 10 == 10.0 and 1 == True hash alike: a float or a bool must not borrow the parsed int.
    assert _price({"type": "cps", "percent": 10}).amount == Money(Decimal("4.99"), "EUR")
    with pytest.raises(InvalidInput, match="not a float"):
        _price({"type": "cps", "percent": 10.0})
    assert _price({"type": "cpa", "amount": 1}).amount == Money(Decimal("1.00"), "EUR")
    with pytest.raises(InvalidInput, match="not a float"):
        _price({"type": "cpa", "amount": True})


def test_unhashable_or_invalid_plans_are_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidInput, match="not a number"):
            _price({"type": "cps", "percent": ["10"]})
        with pytest.raises(InvalidInput, match="unknown field"):
            _price({"type": "cps", "percent": "10", "cap": "5"})


def test_a_flat_plan_in_another_currency_keeps_its_old_pricing_each_time() -> None:
    for _ in range(2):
        priced = _price({"type": "cpa", "amount": "5", "currency": "USD"})
        assert (priced.amount, priced.source) == (Money(Decimal("5"), "USD"), "offer simple plan")
        assert priced.explanation.startswith("offer 7's simple plan (CPA 5.00 USD flat): ")
        refused = _price({"type": "cpa", "amount": "5", "currency": "USD"}, event="lead")
        assert (refused.amount, refused.source) == (None, "none")
        assert refused.explanation == (
            "offer 7's simple plan (CPA 5.00 USD flat) does not pay for lead"
        )
