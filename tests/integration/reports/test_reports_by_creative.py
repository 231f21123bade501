"""Reports by creative (SQLite and PostgreSQL): clicks and impressions by their own
creative, conversions by their click's; the rollups, raw SQL, DuckDB, the raw report
queries the API uses and the CLI agree; and migration 0010 leaves an upgraded database
whose reports are right before and after the next fold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, insert, inspect, select, text
from tests.factories import make_link, make_offer, make_partner, make_program
from tests.integration.reports.report_events import (
    LATER,
    add_click,
    add_conversion,
    utc,
)
from tests.integration.reports.test_reports_cli import Invoke, ok
from tests.integration.reports.test_reports_rollups import facts, fold, measures
from typer.testing import CliRunner

from partnerflow.bootstrap import Services
from partnerflow.cli import create_cli
from partnerflow.cli.runtime import reset_services
from partnerflow.core.ids import new_click_id
from partnerflow.storage import content
from partnerflow.storage import tables as t
from partnerflow.storage.database import alembic_config, make_test_engine, upgrade
from partnerflow.storage.reports import Dimension, ReportQuery, labels, report_sums
from partnerflow.storage.rollup_grain import ProgramFacts
from partnerflow.storage.rollups import fold_new_events, rollup_measures

D = date(2026, 3, 10)
AT = utc(2026, 3, 10, 10)
ENGINES = ("rollup", "raw", "duckdb")


def add_impressions(svc: Services, link: Any, at: datetime, n: int, creative: int | None) -> None:
    with svc.engine.begin() as conn:
        conn.execute(
            insert(t.impressions),
            [
                {
                    "id": new_click_id(int(at.timestamp() * 1000)),
                    "created_at": at,
                    "program_id": link.program_id,
                    "offer_id": link.offer_id,
                    "partner_id": link.partner_id,
                    "link_id": link.id,
                    "is_bot": False,
                    "creative_id": creative,
                }
                for _ in range(n)
            ],
        )


def add_creative(svc: Services, program_id: int, title: str) -> int:
    with svc.engine.begin() as conn:
        return content.add_creative(
            conn, program_id, kind="social_post", title=title, text="Go!", content_type=None,
            data=None, actor="test", now=svc.clock.now(),
        )  # fmt: skip


@pytest.fixture
def world(services: Services) -> dict[str, Any]:
    program = make_program(services, timezone="Europe/Warsaw")
    shop = make_offer(services, program)
    ann = make_partner(services, program, email="ann@blog.example")
    bob = make_partner(services, program, email="bob@tok.example")
    ann_link = make_link(services, ann, shop, code="ann-shop")
    bob_link = make_link(services, bob, shop, code="bob-shop")
    banner = add_creative(services, program.id, "Spring banner")
    post = add_creative(services, program.id, "Trail post")
    a1 = add_click(services, ann_link, AT, creative_id=banner)
    add_click(services, ann_link, AT, creative_id=banner, is_unique=False)
    add_click(services, ann_link, AT, creative_id=banner, is_bot=True)
    add_click(services, ann_link, AT, creative_id=post)
    plain = add_click(services, ann_link, AT)
    b1 = add_click(services, bob_link, AT, creative_id=post)
    add_impressions(services, ann_link, AT, 10, banner)
    add_impressions(services, ann_link, AT, 5, None)
    add_impressions(services, bob_link, AT, 4, post)
    add_conversion(services, ann_link, AT, "100.00", commission="10.00", click_id=a1)
    add_conversion(services, bob_link, AT, "50.00", commission="5.00", click_id=b1)
    add_conversion(services, ann_link, AT, "20.00", commission="2.00", click_id=plain)
    add_conversion(services, ann_link, AT, "30.00", commission="3.00", coupon="ANN10")
    return {"program": program, "banner": banner, "post": post, "ann_link": ann_link}


@pytest.fixture
def cli(services: Services, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", database_url)
    app, runner = create_cli(), CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(app, list(args))

    yield invoke
    reset_services()


def expected(world: dict[str, Any]) -> dict[int, dict[str, int]]:
    def sale(n: int, revenue: int, commission: int) -> dict[str, int]:
        micros = revenue * 1_000_000
        return {
            "conversions": n,
            "refunds": 0,
            "sales": n,
            "leads": 0,
            "orders": n,
            "revenue_micros": micros,
            "sale_revenue_micros": micros,
            "commission_micros": commission * 1_000_000,
        }

    return {
        world["banner"]: {
            "clicks": 2, "unique_clicks": 1, "bot_clicks": 1, "impressions": 10, **sale(1, 100, 10)
        },
        world["post"]: {
            "clicks": 2, "unique_clicks": 2, "bot_clicks": 0, "impressions": 4, **sale(1, 50, 5)
        },
        0: {"clicks": 1, "unique_clicks": 1, "bot_clicks": 0, "impressions": 5, **sale(2, 50, 5)},
    }  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_groups_by_creative_with_exact_sums(
    services: Services, world: dict[str, Any], engine: str
) -> None:
    fold(services)
    got = measures(services, world["program"], "creative", D, D, engine=engine)
    assert got == expected(world)


def test_rollups_by_creative_add_the_unfolded_tail(
    services: Services, world: dict[str, Any]
) -> None:
    with services.engine.connect() as conn:
        before = rollup_measures(conn, facts(world["program"]), "creative", D, D)
    # Nothing folded yet: traffic from the raw tail, conversions as of the (no) last fold.
    traffic = ("clicks", "unique_clicks", "bot_clicks", "impressions")
    assert before == {k: {n: v[n] for n in traffic} for k, v in expected(world).items()}
    fold(services)
    add_click(services, world["ann_link"], AT + timedelta(hours=1), creative_id=world["post"])
    with services.engine.connect() as conn:
        after = rollup_measures(conn, facts(world["program"]), "creative", D, D)
    assert after[world["post"]]["clicks"] == 3
    assert {k: v for k, v in after.items() if k != world["post"]} == {
        k: v for k, v in expected(world).items() if k != world["post"]
    }


def test_raw_report_queries_group_by_creative_with_titles(
    services: Services, world: dict[str, Any]
) -> None:
    program = world["program"]
    query = ReportQuery(program.id, program.currency, program.timezone, Dimension.CREATIVE, D, D)
    with services.engine.connect() as conn:
        sums = report_sums(conn, query)
        names = labels(conn, Dimension.CREATIVE, [s.key for s in sums])
    got = {
        names[s.key]: (s.clicks, s.unique_clicks, s.conversions, s.revenue, s.commission)
        for s in sums
    }
    assert got == {
        "(none)": (1, 1, 2, Decimal(50), Decimal(5)),
        "Spring banner": (2, 1, 1, Decimal(100), Decimal(10)),
        "Trail post": (2, 2, 1, Decimal(50), Decimal(5)),
    }


def test_cli_report_by_creative_labels_rows_with_titles(cli: Invoke, world: dict[str, Any]) -> None:
    ok(cli("report", "refresh"))
    period = ("--from", "2026-03-10", "--to", "2026-03-10")
    for engine in ENGINES:
        args = ("report", "--by", "creative", *period, "--engine", engine, "--json")
        out = json.loads(ok(cli(*args)))
        rows = {
            r["label"]: (r["key"], r["clicks"], r["impressions"], r["ctr"]) for r in out["rows"]
        }
        assert rows == {
            "(none)": ("0", 1, 5, "0.200000"),
            "Spring banner": (str(world["banner"]), 2, 10, "0.200000"),
            "Trail post": (str(world["post"]), 2, 4, "0.500000"),
        }, engine
        assert out["by"] == "creative"
        assert out["totals"]["revenue"] == "200.00"


# --- migration 0010 ------------------------------------------------------------------------

BEFORE_0010 = ("0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")


def test_upgrading_to_0010_refolds_the_rollups_and_keeps_reports_right(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_test_engine(database_url)
    try:
        for revision in BEFORE_0010:
            upgrade(engine, revision)
        assert "creative_id" not in {c["name"] for c in inspect(engine).get_columns("clicks")}
        at = utc(2026, 3, 10, 9)
        with engine.begin() as conn:
            conn.execute(
                t.programs.insert().values(
                    id=1, slug="p", name="P", brand="P", currency="EUR", timezone="UTC",
                    cookie_window_days=30, attribution_model="last_click", lock_period_days=30,
                    postback_token="tok", created_at=at,
                )
            )  # fmt: skip
            # Core inserts name their columns, so these fit the schema before 0010 too.
            conn.execute(
                t.clicks.insert().values(
                    id=new_click_id(int(at.timestamp() * 1000)), created_at=at, program_id=1,
                    offer_id=1, partner_id=1, link_id=1, is_unique=True, is_bot=False,
                )
            )  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO rollup_traffic (program_id, day, partner_id, offer_id, link_id,"
                    " country, device, channel, clicks, unique_clicks, bot_clicks, impressions)"
                    " VALUES (1, '2026-03-10', 1, 1, 1, '', '', 'direct', 1, 1, 0, 0)"
                )
            )
            conn.execute(t.rollup_marks.insert().values(name="clicks", value="zzzz", updated_at=at))
        upgrade(engine, "0010")  # merges 0008 and 0009
        with engine.connect() as conn:
            heads = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            assert "0010" in heads and not heads & {"0008", "0009"}
            assert conn.execute(select(func.count()).select_from(t.rollup_traffic)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(t.rollup_marks)).scalar() == 0
            assert conn.execute(select(t.clicks.c.creative_id)).scalar_one() is None
            program = ProgramFacts(1, "EUR", "UTC")
            by = rollup_measures(conn, program, "creative", D, D)
            assert by == {0: {"clicks": 1, "unique_clicks": 1, "bot_clicks": 0, "impressions": 0}}
        with engine.connect() as conn:
            assert fold_new_events(conn, now=LATER).clicks == 1
            assert rollup_measures(conn, program, "creative", D, D) == by
        cfg = alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009")  # back to the two branches 0010 merged
        assert "creative_id" not in {c["name"] for c in inspect(engine).get_columns("clicks")}
        upgrade(engine)
        assert "creative_id" in {c["name"] for c in inspect(engine).get_columns("impressions")}
    finally:
        engine.dispose()


def test_upgrading_to_0011_makes_the_next_fold_recompute_every_conversion_day(
    database_url: str,
) -> None:
    """0011 (net revenue) deletes the conversions' mark, and only it: days folded with
    gross revenue are recomputed by the next fold."""
    engine = make_test_engine(database_url)
    try:
        upgrade(engine, "0010")
        at = utc(2026, 3, 10, 9)
        with engine.begin() as conn:
            for name in ("clicks", "conversions"):
                conn.execute(t.rollup_marks.insert().values(name=name, value="x", updated_at=at))
        upgrade(engine)
        with engine.connect() as conn:
            marks = set(conn.execute(select(t.rollup_marks.c.name)).scalars())
        assert marks == {"clicks"}
    finally:
        engine.dispose()
