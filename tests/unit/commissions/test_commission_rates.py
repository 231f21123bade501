from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.commissions.rates import Rate, RateTable, RowError, parse_rates_csv
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import Money

CSV = """date,from,to,rate
2024-03-01,USD,EUR,0.92
2024-03-15,usd,eur,0.9150
2024-03-01,GBP,EUR,1.17
"""


def table():
    imported = parse_rates_csv(CSV.splitlines())
    assert imported.errors == ()
    return RateTable(imported.rates)


def test_conversion_uses_the_latest_rate_on_or_before_the_day_and_records_it():
    c = table().convert(Money.of("100.00", "USD"), "EUR", datetime(2024, 3, 20, tzinfo=UTC))
    assert c.converted == Money(Decimal("91.500000"), "EUR")
    assert (c.rate, c.rate_date) == (Decimal("0.9150"), date(2024, 3, 15))
    assert c.explanation() == "100.00 USD at 0.9150 (2024-03-15) = 91.50 EUR"
    early = table().convert(Money.of("10", "USD"), "EUR", datetime(2024, 3, 14, tzinfo=UTC))
    assert early.rate == Decimal("0.92")


def test_same_currency_needs_no_rate_and_missing_rates_are_errors():
    c = table().convert(Money.of("5", "EUR"), "EUR", datetime(2024, 3, 1, tzinfo=UTC))
    assert (c.converted, c.rate_date) == (Money.of("5", "EUR"), None)
    with pytest.raises(NotFound):
        table().convert(Money.of("5", "USD"), "EUR", datetime(2024, 2, 1, tzinfo=UTC))
    with pytest.raises(NotFound):
        table().convert(Money.of("5", "JPY"), "EUR", datetime(2024, 3, 2, tzinfo=UTC))


def test_inverse_pair_is_used_when_only_the_other_direction_is_stored():
    t = RateTable((Rate("EUR", "USD", Decimal("1.25"), date(2024, 1, 1)),))
    c = t.convert(Money.of("10", "USD"), "EUR", datetime(2024, 2, 1, tzinfo=UTC))
    assert c.rate == Decimal("0.8")
    assert c.converted == Money(Decimal("8.0"), "EUR")


def test_csv_import_reports_each_bad_row_with_its_line_number():
    text = """date,from,to,rate
2024-03-01,USD,EUR,0.92
2024-13-01,USD,EUR,0.92
2024-03-02,USD,XXX,1
2024-03-02,USD,EUR,-1
2024-03-02,USD,EUR,abc
2024-03-02,USD,EUR
2024-03-01,USD,EUR,0.93
2024-03-02,EUR,EUR,1
"""
    result = parse_rates_csv(text.splitlines())
    assert len(result.rates) == 1
    assert [e.line for e in result.errors] == [3, 4, 5, 6, 7, 8, 9]
    assert result.errors[0] == RowError(3, "date '2024-13-01' is not YYYY-MM-DD")
    assert result.errors[5].message == "duplicate USD->EUR rate for 2024-03-01"


def test_csv_import_takes_the_days_the_api_takes():
    text = "date,from,to,rate\n0001-01-01,USD,EUR,1\n9999-12-31,USD,EUR,1\n2000-01-01,USD,EUR,1\n"
    result = parse_rates_csv(text.splitlines())
    assert result.errors == (
        RowError(2, "date must be in 2000-2200"),
        RowError(3, "date must be in 2000-2200"),
    )
    assert [r.valid_from for r in result.rates] == [date(2000, 1, 1)]


def test_csv_import_refuses_absurd_rates():
    text = "date,from,to,rate\n2024-03-01,USD,EUR,1e999999\n2024-03-02,USD,EUR,1000000000\n"
    result = parse_rates_csv(text.splitlines())
    assert result.errors == (RowError(2, "rate must be at most 1000000000"),)
    assert [r.rate for r in result.rates] == [Decimal(1_000_000_000)]


def test_csv_import_refuses_underscores_and_non_ascii_digits():
    """Decimal() reads '1_000' as 1000 and '٠٫٩' style digits as numbers: not rates."""
    text = "date,from,to,rate\n2024-03-01,USD,EUR,1_000\n2024-03-02,USD,EUR,\u0661\n"
    result = parse_rates_csv(text.splitlines())
    assert result.errors == (
        RowError(2, "rate '1_000' is not a number"),
        RowError(3, "rate '\u0661' is not a number"),
    )
    assert result.rates == ()


def test_csv_import_with_a_field_over_the_csv_limit_is_a_row_error_not_a_crash():
    big = "9" * 200_000
    result = parse_rates_csv(["date,from,to,rate", "2024-03-01,USD,EUR,0.92", f"x,{big}"])
    assert result.errors == (RowError(3, "field larger than field limit (131072)"),)
    assert parse_rates_csv([big]).errors == (RowError(1, "field larger than field limit (131072)"),)


def test_csv_import_needs_the_header():
    result = parse_rates_csv(["2024-03-01,USD,EUR,0.92"])
    assert result.errors == (RowError(1, "header must be date,from,to,rate"),)


def test_two_rates_for_one_pair_and_day_are_refused_in_the_table():
    r = Rate("USD", "EUR", Decimal(1), date(2024, 1, 1))
    with pytest.raises(InvalidInput):
        RateTable((r, r))


@settings(max_examples=100, deadline=None)
@given(
    st.decimals(min_value=0, max_value=10**6, places=2),
    st.decimals(min_value=Decimal("0.0001"), max_value=1000, places=4),
)
def test_conversion_is_exact_amount_times_rate(amount, rate):
    t = RateTable((Rate("USD", "EUR", rate, date(2024, 1, 1)),))
    c = t.convert(Money(amount, "USD"), "EUR", datetime(2024, 6, 1, tzinfo=UTC))
    assert c.converted.amount == amount * rate
    assert c.original == Money(amount, "USD")
