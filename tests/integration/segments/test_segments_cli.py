"""`partnerflow segments ...` end to end on a real database (SQLite, and PostgreSQL when
configured): rows inserted with SQLAlchemy Core into the real tables, commands run with
CliRunner, JSON checked exactly where the data decides it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from partnerflow.bootstrap import build
from partnerflow.cli import segments
from partnerflow.cli.runtime import reset_services
from partnerflow.config import Settings
from partnerflow.storage import tables as t

Invoke = Callable[..., Any]
NOW = datetime.now(UTC).replace(microsecond=0)


def _program(engine: Engine, slug: str) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                t.programs.insert().values(
                    slug=slug,
                    name=slug,
                    brand=slug,
                    currency="EUR",
                    timezone="Europe/Warsaw",
                    cookie_window_days=30,
                    attribution_model="last_click",
                    lock_period_days=30,
                    postback_token=f"token-{slug}",
                    created_at=NOW - timedelta(days=400),
                )
            ).inserted_primary_key[0]
        )


def _partner(engine: Engine, program_id: int, name: str, status: str = "active", **kw: Any) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                t.partners.insert().values(
                    program_id=program_id,
                    name=name,
                    email=f"{name.lower().replace(' ', '.')}@example.com",
                    status=status,
                    social=kw.pop("social", {}),
                    created_at=NOW - timedelta(days=300),
                    status_changed_at=NOW - timedelta(days=300),
                    **kw,
                )
            ).inserted_primary_key[0]
        )


class Sales:
    def __init__(self, engine: Engine, program_id: int) -> None:
        self.engine, self.program_id, self.n = engine, program_id, 0

    def add(
        self,
        partner_id: int | None,
        days_ago: float,
        amount: int,
        customer: str | None = None,
        status: str = "approved",
        currency: str = "EUR",
    ) -> None:
        self.n += 1
        with self.engine.begin() as conn:
            conn.execute(
                t.conversions.insert().values(
                    created_at=NOW - timedelta(days=days_ago),
                    program_id=self.program_id,
                    partner_id=partner_id,
                    order_id=f"o{self.program_id}-{self.n}",
                    event_type="sale",
                    amount_micros=amount * 1_000_000,
                    currency=currency,
                    status=status,
                    attributed_by="click_id",
                    customer_id=customer,
                )
            )


@pytest.fixture
def world(database_url: str, tmp_path: Any) -> dict[str, int]:
    svc = build(Settings(database_url=database_url, spool_dir=tmp_path / "spool"))
    svc.migrate()
    engine = svc.engine
    acme = _program(engine, "acme")
    star = _partner(engine, acme, "Star")
    sleepy = _partner(engine, acme, "Sleepy")
    refunder = _partner(engine, acme, "Refunder")
    newbie = _partner(engine, acme, "Newbie")
    steady = _partner(engine, acme, "Steady")
    runner = _partner(
        engine,
        acme,
        "Trail Runner",
        status="applied",
        website="https://trail-running-club.example",
        social={"instagram": "Marathon training and running shoes"},
    )
    chef = _partner(
        engine, acme, "Chef", status="applied", social={"youtube": "Vegan family recipes"}
    )
    sales = Sales(engine, acme)
    for i in range(10):
        for j in range(10):
            sales.add(star, 1 + i % 3 + 7 * j, 100 + i, customer=f"loyal{i}")
        sales.add(newbie, 2 + i % 4, 10 + i, customer=f"new{i}")
        for j in range(6):
            sales.add(sleepy, 200 + i + 10 * j, 300 + i, customer=f"lapsed{i}")
    for k in range(20):
        sales.add(refunder, 1 + k % 9, 50, status="reversed" if k < 8 else "approved")
    sales.add(steady, 3, 50)
    sales.add(steady, 5, 50)
    sales.add(steady, 33, 50)
    sales.add(steady, 40, 50)
    sales.add(star, 2, 999, customer="loyal0", currency="USD")
    with engine.begin() as conn:
        for kind, bucket, amount in (("commission", "pending", 10), ("approval", "approved", 10)):
            conn.execute(
                t.commission_entries.insert().values(
                    txn_id=f"tx-{kind}",
                    created_at=NOW - timedelta(days=1),
                    program_id=acme,
                    partner_id=star,
                    kind=kind,
                    bucket=bucket,
                    amount_micros=amount * 1_000_000,
                    currency="EUR",
                    reason="test",
                    author="test",
                )
            )
    tiny = _program(engine, "tiny")
    tiny_sales = Sales(engine, tiny)
    for i in range(3):
        tiny_sales.add(None, i + 1, 20, customer=f"t{i}")
    svc.close()
    return {
        "star": star,
        "sleepy": sleepy,
        "refunder": refunder,
        "newbie": newbie,
        "steady": steady,
        "runner": runner,
        "chef": chef,
    }


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", database_url)
    root = typer.Typer()
    root.add_typer(segments.app, name="segments")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(root, ["segments", *args])

    yield invoke
    reset_services()


def ok_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.stdout)


def test_customer_segments_json(cli: Invoke, world: dict[str, int]) -> None:
    out = ok_json(cli("customers", "--program", "acme", "--json", "--historical", "--members"))
    assert (out["customers"], out["purchases"], out["k"]) == (30, 170, 3)
    assert out["skipped_other_currency"] == 1
    assert out["clv_method"] == "historical"
    segs = {s["name"]: s for s in out["segments"]}
    assert list(segs) == ["At risk big spenders", "Active frequent buyers", "New low spenders"]
    assert segs["At risk big spenders"]["revenue"] == "18270.00"
    assert segs["Active frequent buyers"]["revenue"] == "10450.00"
    assert segs["Active frequent buyers"]["clv_total"] == "10450.00"
    assert segs["New low spenders"]["customers"] == 10
    assert segs["New low spenders"]["clv_mean"] == "14.50"
    members = {m["customer_id"]: m for m in out["members"]}
    assert members["lapsed0"]["segment"] == "At risk big spenders"
    assert members["lapsed0"]["rfm_segment"] == "At Risk"


def test_customer_segments_table_and_predicted_clv(cli: Invoke, world: dict[str, int]) -> None:
    result = cli("customers", "--program", "acme")
    assert result.exit_code == 0, result.output
    assert "30 customers, 170 purchases" in result.stdout
    assert "skipped 1 sale(s) not in EUR" in result.stdout
    assert "Active frequent buyers" in result.stdout


def test_customer_segments_errors(cli: Invoke, world: dict[str, int]) -> None:
    tiny = cli("customers", "--program", "tiny")
    assert tiny.exit_code == 2
    assert "at least 10 customers with purchases; got 3" in tiny.stderr
    several = cli("customers")
    assert several.exit_code == 2
    assert "several programs exist" in several.stderr
    missing = cli("customers", "--program", "nope")
    assert missing.exit_code == 3


def test_partner_segments_json(cli: Invoke, world: dict[str, int]) -> None:
    out = ok_json(cli("partners", "--program", "acme", "--json"))
    rows = {r["partner_id"]: r for r in out["partners"]}
    assert set(rows) == {world[k] for k in ("star", "sleepy", "refunder", "newbie", "steady")}
    seg = {name: rows[world[name]]["segment"] for name in ("star", "sleepy", "refunder")}
    assert seg == {"star": "stars", "sleepy": "dormant", "refunder": "risky"}
    assert rows[world["newbie"]]["segment"] == "rising"
    assert rows[world["steady"]]["segment"] == "steady"
    assert rows[world["refunder"]]["reason"] == (
        "8 of 20 conversions refunded (40.0%), at or above 25.0%"
    )
    assert rows[world["sleepy"]]["rule"] == "dormant.inactive"
    assert rows[world["newbie"]]["reason"] == (
        "revenue 145.00 EUR is from nothing the previous period (0.00 EUR)"
    )
    star = rows[world["star"]]
    assert (star["conversions"], star["commission"]) == (
        45,
        "10.00",
    )  # 44 EUR sales in 30 days + 1 in USD
    assert star["name"] == "Star"
    assert rows[world["steady"]]["previous_revenue"] == "100.00"


def test_partner_segments_table(cli: Invoke, world: dict[str, int]) -> None:
    result = cli("partners", "--program", "acme")
    assert result.exit_code == 0, result.output
    for word in ("stars", "dormant", "risky", "rising", "steady"):
        assert word in result.stdout


def test_audience_fit_scores_applicants(cli: Invoke, world: dict[str, int]) -> None:
    out = ok_json(
        cli(
            "audience-fit", "--program", "acme", "--method", "tfidf", "--json",
            "--audience", "Runners training for marathons; running shoes and trail gear",
        )
    )  # fmt: skip
    assert out["method"] == "tfidf"
    ids = [p["partner_id"] for p in out["partners"]]
    assert ids == [world["runner"], world["chef"]]
    runner, chef = out["partners"]
    assert runner["score"] > 0
    assert chef["score"] == 0
    assert "running" in [m["applicant"] for m in runner["matches"]]


def test_audience_fit_one_partner_and_errors(cli: Invoke, world: dict[str, int]) -> None:
    one = ok_json(
        cli("audience-fit", "-p", "acme", "--audience", "vegan cooking", "--method", "tfidf",
            "--partner", str(world["chef"]), "--json")
    )  # fmt: skip
    assert [p["partner_id"] for p in one["partners"]] == [world["chef"]]
    assert one["partners"][0]["score"] > 0
    missing = cli("audience-fit", "-p", "acme", "--audience", "x y", "--partner", "99999")
    assert missing.exit_code == 3
    assert "partner 99999 not found" in missing.stderr
    empty = cli("audience-fit", "-p", "acme", "--audience", "  ")
    assert empty.exit_code == 2
    assert "--audience is empty" in empty.stderr
    bad = cli("audience-fit", "-p", "acme", "--audience", "runners", "--method", "magic")
    assert bad.exit_code == 2
