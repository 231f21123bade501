"""Goal projection and ad-spend parsing, KPIs and suggestions."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.caps.goals import (
    GoalMetric,
    PartnerTarget,
    TargetKind,
    progress,
    project,
    target_value,
)
from partnerflow.caps.periods import Period, window_at
from partnerflow.caps.spend import (
    MAX_TARGET_ROAS,
    BudgetPolicy,
    Dimension,
    Outcome,
    SpendKpis,
    SpendRow,
    Verdict,
    parse_spend_csv,
    parse_target_roas,
    report,
    suggest,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import PartnerId, ProgramId

PARTNERS = {"1": PartnerId(1), "ann@blog.example": PartnerId(1), "2": PartnerId(2)}
TODAY = date(2026, 3, 10)


def test_linear_projection_from_the_run_rate() -> None:
    window = window_at(Period.MONTH, datetime(2026, 4, 10, tzinfo=UTC), "UTC")  # 30 days
    p = progress(
        GoalMetric.SALES, window, Decimal(30), Decimal(100), datetime(2026, 4, 10, tzinfo=UTC)
    )
    assert p.projected == Decimal("100.00")  # 30 sales in 9 of 30 days -> 100
    assert (p.percent, p.met, p.on_track, p.closed) == (Decimal("30.0"), False, True, False)
    assert project(Decimal(3), 0.01) is None  # too early to extrapolate


def test_growth_target_rounds_up_for_counts() -> None:
    t = PartnerTarget(
        1,
        ProgramId(1),
        PartnerId(1),
        GoalMetric.SALES,
        Period.MONTH,
        "*",
        TargetKind.GROWTH,
        growth_percent=Decimal(10),
    )
    assert target_value(t, Decimal(15)) == Decimal(17)


def test_spend_csv_reports_every_bad_row_and_imports_none() -> None:
    text = (
        "day,channel,campaign,partner,amount\n"
        "2026-03-01,TikTok,spring,ann@blog.example,120.50\n"
        "2026-03-02,tiktok,spring,bob@x.example,10\n"
        "2026-03-11,meta,spring,1,5\n"
        "2026-03-01,tiktok,spring,1,7\n"
        "2026-03-03,meta,spring,2,-4\n"
    )
    parsed = parse_spend_csv(text, currency="EUR", today=TODAY, partners=PARTNERS)
    assert parsed.errors == (
        "line 3: unknown partner 'bob@x.example'",
        "line 4: day 2026-03-11 is in the future (today is 2026-03-10)",
        "line 5: duplicates line 2 (same day, channel, campaign and partner)",
        "line 6: amount '-4' must be a non-negative number",
    )


def test_spend_amounts_with_underscores_or_non_ascii_digits_are_refused() -> None:
    text = (
        "day,channel,campaign,amount\n"
        "2026-03-01,meta,spring,1_000\n"
        "2026-03-02,meta,spring,\u0661\u0662\n"
    )
    parsed = parse_spend_csv(text, currency="EUR", today=TODAY, partners=PARTNERS)
    assert parsed.errors == (
        "line 2: amount '1_000' is not a number",
        "line 3: amount '\u0661\u0662' is not a number",
    )


def test_spend_channels_and_campaigns_refuse_bidi_and_invisible_characters() -> None:
    """The API's schema refused them; a CSV import (dashboard, CLI) stored them and the
    spend report showed them."""
    text = (
        "day,channel,campaign,amount\n"
        "2026-03-01,meta\u202e,spring,1\n"
        "2026-03-02,meta,spring\u200b,1\n"
        "2026-03-03,meta,fr\u00fchling \U0001f331\u200d,1\n"
    )
    parsed = parse_spend_csv(text, currency="EUR", today=TODAY, partners=PARTNERS)
    assert parsed.errors == (
        "line 2: channel must not contain U+202E (an invisible or bidirectional formatting "
        "character)",
        "line 3: campaign must not contain U+200B (an invisible or bidirectional formatting "
        "character)",
    )
    assert [r.campaign for r in parsed.rows] == ["fr\u00fchling \U0001f331\u200d"]


def test_spend_csv_with_a_field_over_the_csv_limit_is_a_row_error_not_a_crash() -> None:
    big = "x" * 200_000  # the csv module refuses fields over 128 KiB with csv.Error
    header = "day,channel,campaign,partner,amount\n"
    row = parse_spend_csv(
        f"{header}2026-03-01,{big},spring,,1\n", currency="EUR", today=TODAY, partners=PARTNERS
    )
    assert row.rows == ()
    assert row.errors == ("line 2: field larger than field limit (131072)",)
    head = parse_spend_csv(f"{big}\n", currency="EUR", today=TODAY, partners=PARTNERS)
    assert head.errors == ("line 1: field larger than field limit (131072)",)


def test_spend_csv_parses_good_rows() -> None:
    text = "day,channel,campaign,partner,amount,currency\n2026-03-01,Meta,b2b,,99.9,eur\n"
    parsed = parse_spend_csv(text, currency="EUR", today=TODAY, partners=PARTNERS)
    assert parsed.errors == ()
    assert parsed.rows == (SpendRow(date(2026, 3, 1), "meta", "b2b", None, Decimal("99.9"), "EUR"),)


def test_kpis_split_shared_partner_days_by_spend() -> None:
    day = date(2026, 3, 1)
    rows = [
        SpendRow(day, "tiktok", "a", PartnerId(1), Decimal(300), "EUR"),
        SpendRow(day, "meta", "b", PartnerId(1), Decimal(100), "EUR"),
    ]
    outcomes = {
        (PartnerId(1), day): Outcome(
            clicks=Decimal(1000),
            leads=Decimal(40),
            sales=Decimal(20),
            revenue=Decimal(2000),
            payout=Decimal(200),
        )
    }
    by_channel = {k.key: k for k in report(rows, outcomes, Dimension.CHANNEL)}
    tiktok = by_channel["tiktok"]
    assert (tiktok.cpc, tiktok.cpl, tiktok.cpa, tiktok.roas, tiktok.profit) == (
        Decimal("0.4000"),
        Decimal("10.00"),
        Decimal("20.00"),
        Decimal("5.00"),
        Decimal("1050.00"),
    )
    assert by_channel["meta"].outcome.sales == Decimal(5)


def _three_channels() -> list[SpendKpis]:
    """tiktok well above a ROAS of 2, meta losing money, x without data."""
    day = date(2026, 3, 1)
    rows = [
        SpendRow(day, "tiktok", "a", PartnerId(1), Decimal(300), "EUR"),
        SpendRow(day, "meta", "b", PartnerId(2), Decimal(500), "EUR"),
        SpendRow(day, "x", "c", None, Decimal(10), "EUR"),
    ]
    outcomes = {
        (PartnerId(1), day): Outcome(
            Decimal(1000), Decimal(0), Decimal(20), Decimal(1500), Decimal(100)
        ),
        (PartnerId(2), day): Outcome(
            Decimal(800), Decimal(0), Decimal(6), Decimal(400), Decimal(40)
        ),
    }
    return report(rows, outcomes, Dimension.CHANNEL)


def test_suggestions_scale_hold_and_cut_with_reasons() -> None:
    out = {s.key: s for s in suggest(_three_channels(), "EUR")}
    assert out["tiktok"].verdict is Verdict.SCALE
    assert out["tiktok"].reason == "ROAS 5.00 >= 2.5 (1.25 x target 2) and profit 1100.00 EUR"
    assert out["meta"].verdict is Verdict.CUT
    assert out["meta"].reason == (
        "ROAS 0.80 and profit -140.00 EUR: revenue does not cover spend and commissions"
    )
    assert out["x"].verdict is Verdict.HOLD
    assert out["x"].reason.startswith("not enough data yet (0 clicks < 100")


@pytest.mark.parametrize(
    "text",
    ["0", "0.0", "1000.0001", "1001", "-2", "+2", "NaN", "Infinity", "1e3", "1e999999999",
     "1e-999999999", "", " 2", "1_000", "\u0662", "1..2", ".",
     "0.000000000000001"],
)  # fmt: skip
def test_a_target_roas_outside_0_to_1000_or_not_a_plain_decimal_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_target_roas(text, "--target-roas")
    assert (refused.value.message, refused.value.field) == (
        "--target-roas must be a decimal number above 0 and at most 1000 (e.g. 2 or 1.5)",
        "target_roas",
    )


@given(st.decimals(min_value=Decimal("0.01"), max_value=MAX_TARGET_ROAS, places=2))
def test_a_target_roas_up_to_1000_is_read_exactly(goal: Decimal) -> None:
    assert parse_target_roas(f"{goal:f}") == goal
    assert parse_target_roas("0.00000000000001") == Decimal("1e-14")  # the API's 16 characters
    assert parse_target_roas("1000") == MAX_TARGET_ROAS


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=24), st.text(alphabet="0123456789.eE+-_ ", max_size=24)))
def test_what_a_target_roas_parses_to_is_what_the_api_schema_allows_and_suggest_can_use(
    text: str,
) -> None:
    """Accepted text is what the API's `target_roas` query schema allows (digits and dots,
    at most 16 characters); the value is in (0, 1000] and every suggestion's reason stays a
    sentence (an unbounded target overflowed Decimal or printed a billion zeros)."""
    try:
        goal = parse_target_roas(text)
    except InvalidInput as exc:
        assert exc.field == "target_roas"
        return
    assert re.fullmatch(r"[0-9.]+", text) and len(text) <= 16
    assert goal.is_finite() and 0 < goal <= MAX_TARGET_ROAS
    lines = suggest(_three_channels(), "EUR", BudgetPolicy(target_roas=goal))
    assert [line.key for line in lines] == ["meta", "tiktok", "x"]
    assert all(len(line.reason) < 200 for line in lines)
