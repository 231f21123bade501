"""Reports from rollups, raw SQL and DuckDB on a small hand-made dataset (SQLite and
PostgreSQL): exact numbers, every dimension, filters, previous-period comparison, CSV, and
rollups that equal a from-scratch aggregation however the events are folded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from tests.factories import make_link, make_offer, make_partner, make_program
from tests.integration.reports.report_events import LATER, add_click, add_entry, utc

from partnerflow.analytics.reports import (
    Report,
    compare,
    from_csv,
    previous_period,
    report_from_measures,
    row_values,
    to_csv,
)
from partnerflow.bootstrap import Services
from partnerflow.storage import tables as t
from partnerflow.storage.duckdb_events import DuckDBEvents
from partnerflow.storage.reports import Dimension, ReportQuery, report_sums
from partnerflow.storage.rollup_grain import NO_FILTERS, Filters, ProgramFacts
from partnerflow.storage.rollups import (
    builder,
    fold_new_events,
    raw_measures,
    rebuild,
    rollup_measures,
    rollup_tables_snapshot,
)


def facts(program: Any) -> ProgramFacts:
    return ProgramFacts(program.id, program.currency, program.timezone)


def fold(svc: Services, **kw: Any) -> Any:
    with svc.engine.connect() as conn:
        return fold_new_events(conn, now=LATER, **kw)


def measures(
    svc: Services,
    program: Any,
    by: str,
    first: date,
    last: date,
    filters: Filters = NO_FILTERS,
    engine: str = "rollup",
) -> dict[Any, dict[str, int]]:
    with svc.engine.connect() as conn:
        if engine == "rollup":
            return rollup_measures(conn, facts(program), by, first, last, filters)
        if engine == "raw":
            return raw_measures(conn, facts(program), by, first, last, filters)
        grain = builder(conn, program.id)
        with DuckDBEvents.load(conn, program.id, first, last, program.timezone) as events:
            return events.measures(grain, by, filters, first, last)


def report(svc: Services, program: Any, by: str, first: date, last: date, **kw: Any) -> Report:
    return report_from_measures(
        dimension=by,
        currency="EUR",
        timezone=program.timezone,
        first_day=first,
        last_day=last,
        measures=measures(svc, program, by, first, last, **kw),
        names={},
    )


D = date(2026, 3, 10)


def test_partner_report_from_rollups_has_exact_kpis(
    services: Services, world: dict[str, Any]
) -> None:
    fold(services)
    rep = report(services, world["program"], "partner", D, D)
    ann, bob = rep.rows
    assert ann.key == str(world["ann"].id)
    assert (ann.clicks, ann.unique_clicks, ann.impressions) == (3, 2, 100)
    assert (ann.conversions, ann.sales, ann.orders, ann.refunds) == (3, 3, 3, 0)
    assert (ann.revenue, ann.commission) == (Decimal("180.00"), Decimal("18.00"))
    assert ann.conversion_rate == Decimal("1.000000")
    assert ann.ctr == Decimal("0.030000")
    assert ann.aov == Decimal("60.0000")
    assert ann.epc == Decimal("6.0000")
    assert (bob.clicks, bob.conversions, bob.leads, bob.sales) == (2, 1, 1, 0)
    assert bob.cpl == Decimal("2.0000")
    assert bob.cpa is None and bob.aov is None and bob.ctr is None
    assert rep.totals.refund_rate == Decimal("0.000000")


def test_every_engine_gives_the_same_groups(services: Services, world: dict[str, Any]) -> None:
    fold(services)
    program = world["program"]
    for by in (
        "partner",
        "offer",
        "link",
        "day",
        "week",
        "month",
        "country",
        "device",
        "channel",
        "coupon",
    ):
        rollup = measures(services, program, by, D - timedelta(days=1), D)
        assert rollup == measures(services, program, by, D - timedelta(days=1), D, engine="raw"), by
        duck = measures(services, program, by, D - timedelta(days=1), D, engine="duckdb")
        assert rollup == duck, by


def test_channel_country_device_coupon_and_sub_id_breakdowns(
    services: Services, world: dict[str, Any]
) -> None:
    fold(services)
    program = world["program"]
    channel = measures(services, program, "channel", D, D)
    assert {k: (v.get("clicks", 0), v.get("conversions", 0)) for k, v in channel.items()} == {
        "web": (1, 1),
        "search": (1, 1),
        "coupon": (0, 1),
        "tiktok": (2, 1),
        "direct": (1, 0),
    }
    country = measures(services, program, "country", D, D)
    assert {k: v.get("clicks", 0) for k, v in country.items()} == {"PL": 4, "DE": 1, "": 0} or {
        k: v.get("clicks", 0) for k, v in country.items()
    } == {"PL": 4, "DE": 1, "": 0}
    assert country[""] == {
        "clicks": 0,
        "unique_clicks": 0,
        "bot_clicks": 0,
        "conversions": 1,
        "refunds": 0,
        "sales": 1,
        "leads": 0,
        "orders": 1,
        "revenue_micros": 30_000_000,
        "sale_revenue_micros": 30_000_000,
        "commission_micros": 3_000_000,
    }
    coupon = measures(services, program, "coupon", D, D)
    assert coupon["ANN10"]["revenue_micros"] == 30_000_000
    sub1 = measures(services, program, "sub1", D, D, engine="raw")
    assert {k: v.get("clicks", 0) for k, v in sub1.items()} == {"review": 2, "sidebar": 1, "": 2}
    assert sub1 == measures(services, program, "sub1", D, D, engine="duckdb")


def test_filters_restrict_every_engine(services: Services, world: dict[str, Any]) -> None:
    fold(services)
    program = world["program"]
    only = Filters(partner_ids=(world["ann"].id,), countries=("PL",), devices=("mobile",))
    for engine in ("rollup", "raw", "duckdb"):
        got = measures(services, program, "day", D, D, only, engine=engine)
        assert got[D]["clicks"] == 1, engine
        assert got[D]["revenue_micros"] == 100_000_000, engine
        assert "impressions" not in got[D] or got[D]["impressions"] == 0


def test_fold_is_idempotent_and_chunking_does_not_change_the_rollups(
    services: Services, world: dict[str, Any]
) -> None:
    first = fold(services, max_rows=2)
    assert (first.clicks, first.impressions) == (7, 100)
    again = fold(services)
    assert (again.clicks, again.impressions) == (0, 0)
    pid = world["program"].id
    with services.engine.connect() as conn:
        chunked = rollup_tables_snapshot(conn, pid)
        conn.rollback()
        with conn.begin():
            rebuild(conn, pid, date(2026, 3, 1), date(2026, 3, 31))
        rebuilt = rollup_tables_snapshot(conn, pid)
    assert chunked == rebuilt
    assert len(chunked["rollup_traffic"]) > 0


def _refund(
    services: Services, world: dict[str, Any], refunded: str, reversal: str, **values: str
) -> None:
    """`refunded` of the "refunded" order taken back, and `reversal` of its commission (late:
    after the fold), as a refund writes them."""
    with services.engine.begin() as conn:
        conn.execute(
            update(t.conversions)
            .where(t.conversions.c.id == world["refunded"])
            .values(refunded_micros=int(Decimal(refunded) * 1_000_000), **values)
        )
        add_entry(
            conn, world["ann_link"], world["refunded"], "reversal", reversal,
            datetime(2029, 12, 31, 23, 59, tzinfo=UTC),
        )  # fmt: skip


def test_refund_after_a_fold_shows_up_at_the_next_fold(
    services: Services, world: dict[str, Any]
) -> None:
    fold(services)
    _refund(services, world, "50.00", "-5.00", status="reversed")
    fold(services)
    ann = measures(services, world["program"], "partner", D, D)[world["ann"].id]
    assert (ann["refunds"], ann["revenue_micros"], ann["commission_micros"]) == (
        1,
        130_000_000,
        13_000_000,
    )
    assert (
        ann == measures(services, world["program"], "partner", D, D, engine="raw")[world["ann"].id]
    )


def test_a_partial_refund_lowers_revenue_as_it_lowers_commission(
    services: Services, world: dict[str, Any]
) -> None:
    # 20.00 of Ann's 50.00 order is refunded: the order stays counted (status unchanged),
    # 2.00 of its 5.00 commission is reversed pro rata, and its revenue is the 30.00 kept.
    # Revenue once stayed gross (50.00) while commission was net, inflating ROAS, AOV and
    # profit; the REST API's report_sums did the same.
    fold(services)
    _refund(services, world, "20.00", "-2.00")
    fold(services)
    program = world["program"]
    ann_id = world["ann"].id
    for engine in ("rollup", "raw", "duckdb"):
        ann = measures(services, program, "partner", D, D, engine=engine)[ann_id]
        assert (ann["refunds"], ann["orders"], ann["revenue_micros"]) == (
            0,
            3,
            160_000_000,
        ), engine
        assert ann["commission_micros"] == 16_000_000, engine
    row = next(r for r in report(services, program, "partner", D, D).rows if r.key == str(ann_id))
    assert (row.revenue, row.aov, row.roas) == (
        Decimal(160),
        Decimal("53.3333"),
        Decimal("10.000000"),
    )
    with services.engine.connect() as conn:
        api = report_sums(
            conn, ReportQuery(program.id, "EUR", program.timezone, Dimension.PARTNER, D, D)
        )
    assert next(g for g in api if g.key == ann_id).revenue == Decimal(160)


def test_clicks_not_yet_folded_are_read_from_the_tail(
    services: Services, world: dict[str, Any]
) -> None:
    fold(services)
    add_click(services, world["ann_link"], utc(2026, 3, 10, 12), country="PL", device="mobile")
    program = world["program"]
    assert measures(services, program, "partner", D, D)[world["ann"].id]["clicks"] == 4
    assert measures(services, program, "partner", D, D) == measures(
        services, program, "partner", D, D, engine="raw"
    )


def test_previous_period_comparison_and_spend_kpis(
    services: Services, world: dict[str, Any]
) -> None:
    fold(services)
    program = world["program"]
    spend = {world["bob"].id: Decimal("8")}
    now = report_from_measures(
        dimension="partner",
        currency="EUR",
        timezone=program.timezone,
        first_day=D,
        last_day=D,
        measures=measures(services, program, "partner", D, D),
        names={},
        spend=spend,
        total_spend=Decimal("8"),
    )
    p_first, p_last = previous_period(D, D)
    assert (p_first, p_last) == (date(2026, 3, 9), date(2026, 3, 9))
    before = report(services, program, "partner", p_first, p_last)
    cmp = compare(now, before)
    ann = cmp.rows[0].changes
    assert (ann["clicks"].previous, ann["clicks"].delta, ann["clicks"].delta_ratio) == (
        1,
        Decimal(2),
        Decimal("2.000000"),
    )
    assert ann["revenue"].delta == Decimal("140.00")
    assert ann["revenue"].delta_ratio == Decimal("3.500000")
    bob = cmp.rows[1].changes
    assert bob["clicks"].previous == 0 and bob["clicks"].delta_ratio is None
    bob_row = now.rows[1]
    assert (bob_row.ad_spend, bob_row.cost) == (Decimal("8"), Decimal("10.00"))
    assert bob_row.roas == Decimal("0.000000")
    assert bob_row.profit == Decimal("-10.00")
    assert now.totals.cost == Decimal("28.00")
    assert now.totals.roas == Decimal("6.428571")


def test_csv_round_trip_keeps_every_value_and_empty_means_none(
    services: Services, world: dict[str, Any]
) -> None:
    fold(services)
    program = world["program"]
    rep = report(services, program, "partner", D, D)
    before = report(services, program, "partner", *previous_period(D, D))
    text = to_csv(rep, compare(rep, before))
    back = from_csv(text)
    assert len(back) == 3
    for row, parsed in zip((*rep.rows, rep.totals), back, strict=True):
        expected = {k: None if v is None else str(v) for k, v in row_values(row).items()}
        assert {k: parsed[k] for k in expected} == expected
    assert back[1]["cpa"] is None  # Bob: no sales -> undefined, an empty cell
    assert back[0]["clicks_delta_pct"] == "2.000000"
    assert "nan" not in text.lower()


# Events around local midnights and DST switches: (UTC instant, local day, ISO week start).
_EDGES = {
    "America/New_York": [
        (utc(2026, 3, 8, 4, 59, 59), date(2026, 3, 7)),  # 23:59:59 EST, Saturday
        (utc(2026, 3, 8, 5, 0, 0), date(2026, 3, 8)),  # 00:00 EST, DST starts 02:00
        (utc(2026, 3, 9, 3, 59, 59), date(2026, 3, 8)),  # 23:59:59 EDT (a 23-hour day)
        (utc(2026, 3, 9, 4, 0, 0), date(2026, 3, 9)),  # 00:00 EDT, Monday: a new ISO week
        (utc(2026, 4, 1, 3, 59, 59), date(2026, 3, 31)),  # last second of March, EDT
        (utc(2026, 4, 1, 4, 0, 0), date(2026, 4, 1)),
    ],
    "Europe/Warsaw": [
        (utc(2026, 3, 28, 22, 59, 59), date(2026, 3, 28)),  # 23:59:59 CET
        (utc(2026, 3, 28, 23, 0, 0), date(2026, 3, 29)),  # 00:00 CET, DST starts 02:00
        (utc(2026, 3, 29, 21, 59, 59), date(2026, 3, 29)),  # 23:59:59 CEST, Sunday
        (utc(2026, 3, 29, 22, 0, 0), date(2026, 3, 30)),  # Monday: a new ISO week
        (utc(2026, 3, 31, 21, 59, 59), date(2026, 3, 31)),
        (utc(2026, 3, 31, 22, 0, 0), date(2026, 4, 1)),  # April in Warsaw
    ],
}


@pytest.mark.parametrize("timezone", sorted(_EDGES))
def test_days_weeks_and_months_follow_the_program_timezone_across_dst(
    services: Services, timezone: str
) -> None:
    program = make_program(services, slug="tz", timezone=timezone)
    offer = make_offer(services, program)
    partner = make_partner(services, program)
    link = make_link(services, partner, offer, code="tz-link")
    for at, _day in _EDGES[timezone]:
        add_click(services, link, at)
    fold(services)
    first, last = date(2026, 3, 1), date(2026, 4, 30)
    days = measures(services, program, "day", first, last)
    expected: dict[date, int] = {}
    for _at, day in _EDGES[timezone]:
        expected[day] = expected.get(day, 0) + 1
    assert {k: v["clicks"] for k, v in days.items()} == expected
    weeks = measures(services, program, "week", first, last)
    monday = {d: d - timedelta(days=d.weekday()) for d in expected}
    want_weeks: dict[date, int] = {}
    for d, n in expected.items():
        want_weeks[monday[d]] = want_weeks.get(monday[d], 0) + n
    assert {k: v["clicks"] for k, v in weeks.items()} == want_weeks
    months = measures(services, program, "month", first, last)
    assert {k: v["clicks"] for k, v in months.items()} == {date(2026, 3, 1): 5, date(2026, 4, 1): 1}
    assert days == measures(services, program, "day", first, last, engine="raw")
    assert days == measures(services, program, "day", first, last, engine="duckdb")
