from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import MAX_AMOUNT, Money, check_currency, parse_amount

amounts = st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, places=6, allow_nan=False)


def test_money_rounds_half_up_to_the_currency_minor_unit() -> None:
    assert Money.of("2.345", "EUR").rounded() == Money(Decimal("2.35"), "EUR")
    assert Money.of("2.344", "EUR").rounded() == Money(Decimal("2.34"), "EUR")
    assert Money.of("100.5", "JPY").rounded() == Money(Decimal("101"), "JPY")
    assert Money.of("1.2345", "KWD").rounded() == Money(Decimal("1.235"), "KWD")


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(0.1, "EUR")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        _ = Money.of("1", "EUR") + Money.of("1", "USD")
    with pytest.raises(TypeError):
        _ = Money.of("1", "EUR") * 1.5  # type: ignore[operator]


def test_format_shows_minor_units() -> None:
    assert Money.of("1234.5", "EUR").format() == "1234.50 EUR"
    assert Money.of("7", "JPY").format() == "7 JPY"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "1e400",
        "NaN",
        "-Infinity",
        "1.0000001",
        "2000000000",
        "-5",
        " ",
        "1" * 40,
        "1_000",
        "\u0661\u0662\u0663",
        "\uff11\uff12",  # underscores, non-ASCII digits
    ],
)
def test_parse_amount_refuses_bad_values(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_amount(raw)


@pytest.mark.parametrize("raw", ["1e1000000", "-1e1000000", Decimal("1E+999999999999999999")])
def test_parse_amount_refuses_huge_exponents_without_decimal_overflow(raw: str | Decimal) -> None:
    """abs() of a value past the context's Emax raises decimal.Overflow: checked first."""
    with pytest.raises(InvalidInput):
        parse_amount(raw, allow_negative=True)


def test_parse_amount_refuses_float_objects() -> None:
    with pytest.raises(InvalidInput):
        parse_amount(12.5)


def test_parse_amount_accepts_exact_decimals() -> None:
    assert parse_amount("19.99") == Decimal("19.99")
    assert parse_amount(" 0 ") == Decimal(0)
    assert parse_amount("-3.5", allow_negative=True) == Decimal("-3.5")


@pytest.mark.parametrize("code", ["eur", "USD", " pln "])
def test_check_currency_normalises(code: str) -> None:
    assert check_currency(code) == code.strip().upper()


@pytest.mark.parametrize("code", ["XXX", "EURO", "", "€", "US"])
def test_check_currency_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(InvalidInput):
        check_currency(code)


@given(amounts)
def test_micros_round_trip_is_exact(amount: Decimal) -> None:
    money = Money(amount, "EUR")
    assert Money.from_micros(money.to_micros(), "EUR").amount == amount


@given(amounts, amounts)
def test_addition_is_exact_and_commutative(a: Decimal, b: Decimal) -> None:
    x, y = Money(a, "USD"), Money(b, "USD")
    assert (x + y).amount == a + b
    assert x + y == y + x
    assert (x + y) - y == x


@given(st.text(max_size=40))
def test_parse_amount_never_raises_anything_but_invalid_input(raw: str) -> None:
    try:
        value = parse_amount(raw)
    except InvalidInput:
        return
    assert value.is_finite() and 0 <= value <= MAX_AMOUNT
