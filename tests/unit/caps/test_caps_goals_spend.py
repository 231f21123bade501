"""Goal projection and ad-spend parsing, KPIs and suggestions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

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
    Dimension,
    Outcome,
    SpendRow,
    Verdict,
    parse_spend_csv,
    report,
    suggest,
)
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


def test_suggestions_scale_hold_and_cut_with_reasons() -> None:
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
    out = {s.key: s for s in suggest(report(rows, outcomes, Dimension.CHANNEL), "EUR")}
    assert out["tiktok"].verdict is Verdict.SCALE
    assert out["tiktok"].reason == "ROAS 5.00 >= 2.5 (1.25 x target 2) and profit 1100.00 EUR"
    assert out["meta"].verdict is Verdict.CUT
    assert out["meta"].reason == (
        "ROAS 0.80 and profit -140.00 EUR: revenue does not cover spend and commissions"
    )
    assert out["x"].verdict is Verdict.HOLD
    assert out["x"].reason.startswith("not enough data yet (0 clicks < 100")
