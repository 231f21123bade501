"""Dashboard numbers read through the rollups equal the same numbers read from raw events.

The pages read traffic from the daily rollups plus the raw events of the partial days at
a period's edges and of the tail past the fold's mark (`storage.web_queries.traffic`).
These tests build traffic over two months — bots, repeat visitors, impressions, events on
both edges of "the last 30 days", events after the fold — and compare every page figure
with `source="raw"` (every event read raw), in UTC and in a timezone with a DST change
inside the period, before any fold, after a fold, and with a tail after the fold.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select
from tests.factories import make_link, make_offer, make_partner, make_program
from tests.integration.web.web_world import convert

from partnerflow.bootstrap import Services
from partnerflow.core.ids import new_click_id
from partnerflow.storage import tables as t
from partnerflow.storage import web_queries as q
from partnerflow.storage.reports import Dimension, ReportQuery, report_sums
from partnerflow.storage.rollups import fold_new_events
from partnerflow.storage.segment_queries import partner_period_features
from partnerflow.tracking.model import TrackingLink
from partnerflow.tracking.services import RecordConversion, record_conversion

TIMEZONES = ["UTC", "America/Los_Angeles"]


def _traffic(
    services: Services, link: TrackingLink, start: datetime, hours: int, rng: random.Random
) -> list[str]:
    """Clicks and impressions spread over `hours` from `start`: about a tenth bots, half
    unique, a few impressions per click."""
    clicks, impressions = [], []
    for h in range(hours):
        for n in range(rng.randint(0, 3)):
            at = start + timedelta(hours=h, minutes=rng.randint(0, 59), seconds=n)
            ms = int(at.timestamp() * 1000)
            clicks.append(
                {
                    "id": new_click_id(ms),
                    "created_at": at,
                    "program_id": link.program_id,
                    "offer_id": link.offer_id,
                    "partner_id": link.partner_id,
                    "link_id": link.id,
                    "is_unique": rng.random() < 0.5,
                    "is_bot": rng.random() < 0.1,
                    "is_qr": False,
                    "fraud_score": 0,
                }
            )
            impressions.append(
                {
                    "id": new_click_id(ms - 1000),
                    "created_at": at - timedelta(seconds=1),
                    "program_id": link.program_id,
                    "offer_id": link.offer_id,
                    "partner_id": link.partner_id,
                    "link_id": link.id,
                    "is_bot": rng.random() < 0.1,
                }
            )
    with services.engine.begin() as conn:
        if clicks:
            conn.execute(insert(t.clicks), clicks)
        if impressions:
            conn.execute(insert(t.impressions), impressions)
    return [
        c["id"]
        for c in clicks
        if not c["is_bot"] and c["created_at"] < start + timedelta(hours=hours - 2)
    ]


def _world(services: Services, timezone: str) -> tuple[q.Scope, list[int], list[int]]:
    rng = random.Random(7)
    program = make_program(services, timezone=timezone)
    offer = make_offer(services, program)
    partners, links = [], []
    for i in range(3):
        partner = make_partner(services, program, f"p{i}@rollup.example")
        link = make_link(services, partner, offer, code=f"roll-{i}")
        partners.append(partner.id)
        links.append(link)
        # 65 days back to an hour ahead of the clock: both edges of the last 30 and
        # the previous 30 days fall mid-day, in UTC and in local time.
        now = services.clock.now()
        click_ids = _traffic(services, link, now - timedelta(days=65), 65 * 24, rng)
        for n, click_id in enumerate(click_ids[::40]):
            convert(services, program, f"R-{i}-{n}", f"{10 + n}.00", click_id=click_id)
    scope = q.Scope(program.id, program.currency, program.timezone)
    return scope, partners, [link.id for link in links]


def _page_numbers(
    services: Services, scope: q.Scope, partners: list[int], links: list[int], source: str
) -> dict[str, object]:
    now = services.clock.now()
    current = q.Period.last_days(now, 30)
    partner_scope = q.Scope(scope.program_id, scope.currency, scope.timezone, partners[0])
    with services.read() as conn:
        return {
            "totals": q.totals(conn, scope, current, impressions=True, source=source),
            "previous": q.totals(conn, scope, current.previous(), source=source),
            "all_time": q.totals(conn, scope, q.Period.until(now), source=source),
            "summary": q.summary(conn, scope, current, impressions=True, source=source),
            "partner": q.summary(conn, partner_scope, current, impressions=True, source=source),
            "metrics": q.partner_metrics(conn, scope, current, partners, source=source),
            "links": q.link_stats(conn, partner_scope, current, source=source),
            "by_link": q.traffic(conn, scope, current, "link", links, source=source),
        }


@pytest.mark.parametrize("timezone", TIMEZONES)
def test_page_numbers_from_rollups_equal_raw_numbers(services: Services, timezone: str) -> None:
    scope, partners, links = _world(services, timezone)
    raw = _page_numbers(services, scope, partners, links, q.RAW)
    assert raw["totals"].clicks > 1000  # type: ignore[attr-defined]
    # Nothing folded yet: every full day is read from the tail.
    assert _page_numbers(services, scope, partners, links, q.ROLLUP) == raw
    now = services.clock.now()
    with services.engine.connect() as conn:
        fold_new_events(conn, now=now - timedelta(days=3))
    # Folded up to three days ago: rollups, then a three-day tail.
    assert _page_numbers(services, scope, partners, links, q.ROLLUP) == raw
    with services.engine.connect() as conn:
        fold_new_events(conn, now=now + timedelta(hours=2))
    # Everything folded, today's events included (today is still read raw, once).
    assert _page_numbers(services, scope, partners, links, q.ROLLUP) == raw


def _four_clicks(services: Services) -> tuple[q.Scope, TrackingLink, list[str]]:
    """One link with four clicks two days ago, one of each (is_bot, is_unique): the gross
    count is four, the human count two, the unique count one (the human unique one)."""
    program = make_program(services)
    offer = make_offer(services, program)
    partner = make_partner(services, program, "solo@rollup.example")
    link = make_link(services, partner, offer, code="solo")
    at = services.clock.now() - timedelta(days=2)
    rows = [(False, True), (False, False), (True, True), (True, False)]  # (is_bot, is_unique)
    ids = [new_click_id(int(at.timestamp() * 1000) + i) for i in range(len(rows))]
    with services.engine.begin() as conn:
        conn.execute(
            insert(t.clicks),
            [
                {
                    "id": ids[i],
                    "created_at": at + timedelta(milliseconds=i),
                    "program_id": program.id,
                    "offer_id": offer.id,
                    "partner_id": partner.id,
                    "link_id": link.id,
                    "is_unique": unique,
                    "is_bot": bot,
                    "is_qr": False,
                    "fraud_score": 0,
                }
                for i, (bot, unique) in enumerate(rows)
            ],
        )
    return q.Scope(program.id, program.currency, program.timezone), link, ids


def test_traffic_counts_gross_clicks_and_human_unique_clicks(services: Services) -> None:
    scope, _link, _ids = _four_clicks(services)
    period = q.Period.last_days(services.clock.now(), 30)
    for folded in (False, True):
        if folded:
            with services.engine.connect() as conn:
                fold_new_events(conn, now=services.clock.now())
        with services.read() as conn:
            seen = q.traffic(conn, scope, period)[None]
        assert (seen.clicks, seen.unique_clicks, seen.human_clicks) == (4, 1, 2)


def test_pages_count_clicks_as_the_reports_do_with_bots_apart(services: Services) -> None:
    """The dashboard's and the portal's clicks leave bot-flagged clicks out, as the reports
    do, and conversion rate and EPC divide by them; the bots are counted apart."""
    scope, link, ids = _four_clicks(services)
    with services.engine.connect() as conn:
        token = conn.execute(
            select(t.programs.c.postback_token).where(t.programs.c.id == scope.program_id)
        ).scalar_one()
    record = RecordConversion(token=token, order_id="H-1", amount="100.00", click_id=ids[0])
    record_conversion(services.uow(), services.clock, record)
    period = q.Period.last_days(services.clock.now(), 30)
    partner_scope = q.Scope(scope.program_id, scope.currency, scope.timezone, link.partner_id)
    for folded in (False, True):
        if folded:
            with services.engine.connect() as conn:
                fold_new_events(conn, now=services.clock.now())
        with services.read() as conn:
            totals, points = q.summary(conn, scope, period)
            metrics = q.partner_metrics(conn, scope, period, [link.partner_id])
            (stats,) = q.link_stats(conn, partner_scope, period)
            mine = q.totals(conn, partner_scope, period)
        assert (totals.clicks, totals.bot_clicks, totals.unique_clicks) == (2, 2, 1)
        assert totals.conversions == 1 and totals.commission.amount > 0
        assert totals.conversion_rate == Decimal(50)
        assert totals.epc is not None and totals.epc.amount == totals.commission.amount / 2
        assert sum(p.clicks for p in points) == 2
        assert metrics[link.partner_id].clicks == 2
        assert metrics[link.partner_id].conversion_rate == Decimal(50)
        assert (stats.clicks, stats.unique_clicks, stats.conversion_rate) == (2, 1, Decimal(50))
        assert (mine.clicks, mine.bot_clicks) == (2, 2)
        # The report of the same (whole) days counts the same clicks; in this world (no
        # refund, the commission booked with its conversion) the rest agrees too.
        today = services.clock.now().date()
        report = ReportQuery(
            scope.program_id, scope.currency, scope.timezone, Dimension.PARTNER,
            today - timedelta(days=10), today,
        )  # fmt: skip
        with services.read() as conn:
            (row,) = report_sums(conn, report)
        assert (row.clicks, row.unique_clicks, row.conversions) == (
            totals.clicks, totals.unique_clicks, totals.conversions
        )  # fmt: skip
        assert (row.revenue, row.commission) == (totals.revenue.amount, totals.commission.amount)


@pytest.mark.parametrize("timezone", TIMEZONES)
def test_segment_features_from_rollups_equal_the_raw_features(
    services: Services, timezone: str
) -> None:
    scope, _partners, _links = _world(services, timezone)
    now = services.clock.now()
    with services.engine.connect() as conn:
        fold_new_events(conn, now=now - timedelta(days=1))
    with services.read() as conn:
        expected = partner_period_features(conn, scope.program_id, scope.currency, now, 30)
        assert q.segment_features(conn, scope, now, 30) == expected
    assert sum(f.clicks for f in expected) > 500


def test_ui_app_folds_in_the_background_while_serving_and_stops_cleanly(
    services: Services,
) -> None:
    import time

    from starlette.testclient import TestClient

    from partnerflow.storage.rollups import read_mark
    from partnerflow.web.ui import create_ui_app

    scope, _partners, _links = _world(services, "UTC")
    app = create_ui_app(services, fold_interval=0.05)
    folder = app.state.rollup_folder
    with TestClient(app) as client:
        assert client.get("/login").status_code == 200  # serving while folding
        deadline = time.monotonic() + 20
        while folder.folds < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert folder.folds >= 2
    assert folder._task is None and folder._executor is None  # stopped with the app
    with services.read() as conn:
        assert read_mark(conn, "clicks") is not None
        folded = q.traffic(conn, scope, q.Period.last_days(services.clock.now(), 30))[None]
        raw = q.traffic(conn, scope, q.Period.last_days(services.clock.now(), 30), source=q.RAW)
    assert folded == raw[None]
    with services.read() as conn:
        rows = conn.execute(select(func.count()).select_from(t.rollup_traffic)).scalar_one()
    assert rows > 0
