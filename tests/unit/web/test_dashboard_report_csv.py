"""The dashboard's report CSV (`/admin/reports?format=csv`): a key or label that starts a
formula (a coupon code such as `-SUMMER`, a partner name such as `@annsblog`) is written
after an apostrophe, so a spreadsheet shows it instead of running it."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

from partnerflow.web.dashboard.manage import report_csv


def _row(key: object, label: str) -> SimpleNamespace:
    return SimpleNamespace(key=key, label=label, clicks=1, unique_clicks=1, impressions=0,
                           conversions=0, refunds=0, revenue="0.00", commission="-1.00",
                           conversion_rate=None, epc=None)  # fmt: skip


def test_keys_and_labels_never_start_a_formula() -> None:
    rows = [_row("-SUMMER", "-SUMMER"), _row("=1+1", "@annsblog"), _row(3, "Ann")]
    [_header, *lines] = list(csv.reader(io.StringIO(report_csv(rows))))
    assert [line[:2] for line in lines] == [
        ["'-SUMMER", "'-SUMMER"],
        ["'=1+1", "'@annsblog"],
        ["3", "Ann"],
    ]
    assert lines[0][8] == "-1.00"  # numbers stay numbers
