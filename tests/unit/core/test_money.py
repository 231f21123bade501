from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.currencies import MINOR_UNITS
from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import (
    MAX_AMOUNT,
    Money,
    check_currency,
    check_minor_units,
    decimal_places,
    parse_amount,
)

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


@pytest.mark.parametrize(
    ("raw", "currency"),
    [("1000.00", "JPY"), ("1000", "JPY"), ("10.50", "USD"), ("10.5", "USD"), ("1.234", "KWD"),
     ("1.2340", "KWD"), ("0", "JPY"), ("0.000", "USD"), ("1E+3", "JPY"), ("5.000000", "EUR")],
)  # fmt: skip
def test_check_minor_units_accepts_trailing_zeros(raw: str, currency: str) -> None:
    assert check_minor_units(parse_amount(raw), currency) == Decimal(raw)


@pytest.mark.parametrize(
    ("raw", "currency", "reason"),
    [
        ("10.5", "JPY", "10.5 has more decimal places than JPY allows (0)"),
        ("0.000001", "USD", "0.000001 has more decimal places than USD allows (2)"),
        ("19.999", "EUR", "19.999 has more decimal places than EUR allows (2)"),
        ("1.2345", "KWD", "1.2345 has more decimal places than KWD allows (3)"),
        ("1000.10", "ISK", "1000.10 has more decimal places than ISK allows (0)"),
    ],
)
def test_check_minor_units_refuses_digits_past_the_minor_unit(
    raw: str, currency: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_minor_units(parse_amount(raw), currency, field="amount")
    assert refused.value.to_dict() == {
        "error": "invalid_input",
        "reason": reason,
        "field": "amount",
    }


@given(
    amount=st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, places=6, allow_nan=False),
    zeros=st.integers(0, 6),
    currency=st.sampled_from(sorted(MINOR_UNITS)),
)
def test_check_minor_units_accepts_exactly_what_the_currency_can_pay(
    amount: Decimal, zeros: int, currency: str
) -> None:
    """Accepted iff the amount is a whole number of the currency's minor unit (an oracle by
    integer arithmetic, not by the exponent the rule reads), however many trailing zeros
    it was written with; what is accepted is unchanged by rounding to the minor unit."""
    written = Decimal(f"{amount:f}{'0' * zeros if '.' in f'{amount:f}' else ''}")
    minor = amount * 10 ** MINOR_UNITS[currency]
    payable = minor == int(minor)
    try:
        check_minor_units(written, currency)
    except InvalidInput:
        assert not payable
    else:
        assert payable
        assert Money(written, currency).rounded().amount == written


@given(
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=40),
        st.integers(-60, 20),
    )
)
def test_decimal_places_ignores_trailing_zeros(value: Decimal) -> None:
    """The fewest places that write `value` exactly: shifted by them it is whole, shifted by
    one fewer it is not (with the precision to shift 40 digits exactly)."""
    places = decimal_places(value)
    assert places >= 0
    with localcontext(prec=200):
        scaled = value.scaleb(places)
        assert scaled == scaled.to_integral_value()
        if places:
            fewer = value.scaleb(places - 1)
            assert fewer != fewer.to_integral_value()
