"""`partnerflow report` (every dimension, filters, --compare, CSV, engines), the report
subcommands and `partnerflow revenue import`, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from partnerflow.analytics.reports import from_csv
from partnerflow.bootstrap import Services
from partnerflow.cli import create_cli, revenue
from partnerflow.cli.runtime import reset_services
from partnerflow.storage import tables as t

Invoke = Callable[..., Any]


@pytest.fixture
def cli(services: Services, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", database_url)
    app = create_cli()
    app.add_typer(revenue.app, name="revenue")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(app, list(args))

    yield invoke
    reset_services()


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.stdout


def test_report_json_keeps_the_old_keys_and_adds_every_kpi(
    cli: Invoke, world: dict[str, Any]
) -> None:
    ok(cli("report", "refresh"))
    out = json.loads(
        ok(cli("report", "--by", "partner", "--from", "2026-03-10", "--to", "2026-03-10", "--json"))
    )
    ann = out["rows"][0]
    assert {
        k: ann[k]
        for k in (
            "key",
            "label",
            "clicks",
            "unique_clicks",
            "conversions",
            "refunds",
            "revenue",
            "commission",
            "conversion_rate",
            "epc",
        )
    } == {
        "key": str(world["ann"].id),
        "label": "Ann",
        "clicks": 3,
        "unique_clicks": 2,
        "conversions": 3,
        "refunds": 0,
        "revenue": "180.00",
        "commission": "18.00",
        "conversion_rate": "1.000000",
        "epc": "6.0000",
    }
    assert (ann["impressions"], ann["ctr"], ann["aov"], ann["cpa"]) == (
        100,
        "0.030000",
        "60.0000",
        "6.0000",
    )
    bob = out["rows"][1]
    assert (bob["ad_spend"], bob["cost"], bob["cpa"]) == ("8.00", "10.00", None)
    assert out["totals"]["ad_spend"] == "8.00"


def test_report_by_sub_id_on_duckdb_as_csv_and_compare_to_a_file(
    cli: Invoke, world: dict[str, Any], tmp_path: Path
) -> None:
    text = ok(
        cli(
            "report",
            "--by",
            "sub1",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
            "--engine",
            "duckdb",
            "--format",
            "csv",
        )
    )
    rows = {r["key"]: r for r in from_csv(text)}
    assert (rows["review"]["clicks"], rows["sidebar"]["clicks"], rows["total"]["clicks"]) == (
        "2",
        "1",
        "5",
    )
    assert rows["review"]["ctr"] is None
    target = tmp_path / "partners.csv"
    ok(
        cli(
            "report",
            "--by",
            "partner",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
            "--compare",
            "--csv",
            str(target),
        )
    )
    back = from_csv(target.read_text(encoding="utf-8"))
    assert (back[0]["clicks"], back[0]["clicks_previous"], back[0]["clicks_delta"]) == (
        "3",
        "1",
        "2",
    )
    assert back[0]["revenue_delta_pct"] == "3.500000"


def test_rollup_engine_refuses_sub_ids_and_bad_options_exit_2(
    cli: Invoke, world: dict[str, Any]
) -> None:
    for args, message in (
        (("--by", "sub2", "--engine", "rollup"), "not rolled up"),
        (("--by", "fortnight"), "--by must be one of"),
        (("--by", "day", "--engine", "spark"), "--engine"),
        (("--by", "day", "--country", "PL", "--partner", "x"), "--partner takes ids"),
    ):
        result = cli("report", *args, "--from", "2026-03-10", "--to", "2026-03-10")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr
        assert "Traceback" not in result.output


def test_leaderboard_partners_and_cohorts(cli: Invoke, world: dict[str, Any]) -> None:
    ok(cli("report", "refresh"))
    board = json.loads(
        ok(cli("report", "leaderboard", "--metric", "revenue", "--period", "2026-03", "--json"))
    )
    assert [(s["rank"], s["label"], s["value"]) for s in board["standings"]] == [
        (1, "Ann", "220.00")
    ]
    activity = json.loads(ok(cli("report", "partners", "--inactive-days", "30", "--json")))
    assert (activity["active"], activity["inactive"]) == (0, 2)  # the real clock is later
    cohorts = json.loads(ok(cli("report", "cohorts", "--months", "1", "--json")))
    first = next(c for c in cohorts if c["partner_id"] == world["ann"].id)
    assert (first["month"], first["size"], first["retained"][0]) == ("2026-03", 3, 3)


def test_revenue_import_then_partners_share(
    cli: Invoke, world: dict[str, Any], tmp_path: Path, services: Services
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("day,revenue\n2026-03-10,abc\n2026-13-01,5\n", encoding="utf-8")
    result = cli("revenue", "import", str(bad))
    assert result.exit_code == 2
    assert "line 2" in result.stderr and "line 3" in result.stderr
    with services.engine.connect() as conn:
        assert conn.execute(t.program_revenue.select()).all() == []
    # More than 6 decimals used to be cut off silently (10.0000009 stored as 10), 1e30 and a
    # field over the csv module's limit ended in a traceback: each is a line error now.
    bad.write_text("day,revenue\n2026-03-10,10.0000009\n2026-03-11,1e30\n", encoding="utf-8")
    result = cli("revenue", "import", str(bad))
    assert result.exit_code == 2
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "line 2: revenue has more than 6 decimal places" in said
    assert "line 3: revenue is out of range" in said
    bad.write_text(f"day,revenue\n2026-03-12,x{'9' * 200_000}\n", encoding="utf-8")
    result = cli("revenue", "import", str(bad))
    assert result.exit_code == 2
    assert "line 2: field larger than field limit" in result.stderr
    with services.engine.connect() as conn:
        assert conn.execute(t.program_revenue.select()).all() == []
    good = tmp_path / "revenue.csv"
    good.write_text("day,revenue,orders\n2026-03-10,720.00,12\n", encoding="utf-8")
    assert ok(cli("revenue", "import", str(good))).strip() == "imported 1 revenue days into acme"
    share = json.loads(
        ok(cli("report", "share", "--from", "2026-03-10", "--to", "2026-03-10", "--json"))
    )
    assert share == {"partner_revenue": "180.00", "total_revenue": "720.00", "share": "0.250000"}
    ok(cli("revenue", "import", str(good)))  # re-import replaces, never doubles
    again = json.loads(
        ok(cli("report", "share", "--from", "2026-03-10", "--to", "2026-03-10", "--json"))
    )
    assert again["share"] == "0.250000"


def test_revenue_import_reads_excel_csv_and_refuses_what_it_cannot_store(
    cli: Invoke, world: dict[str, Any], tmp_path: Path, services: Services
) -> None:
    # Excel's "CSV UTF-8": a BOM and CRLF. The BOM stuck to the header ("missing: day").
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbfday,revenue,orders\r\n2026-03-10,720.00,12\r\n")
    assert ok(cli("revenue", "import", str(excel))).strip() == "imported 1 revenue days into acme"
    # Orders past the INTEGER column (PostgreSQL: a traceback), `1_000` and non-ASCII digits
    # (read by int() as 1000 and 3), and a source with a NUL (PostgreSQL: a traceback) or a
    # right-to-left override (shown reversed) are line errors; nothing is written.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "day,revenue,orders,source\n2026-03-11,1,3000000000,shop\n2026-03-12,1,1_000,shop\n"
        "2026-03-13,1,\u0663,shop\n2026-03-14,1,1,sh\x00op\n2026-03-15,1,1,\u202eshop\n",
        encoding="utf-8",
    )
    result = cli("revenue", "import", str(bad))
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    for line in (2, 3, 4):
        assert f"line {line}: orders must be a whole number from 0 to 2147483647" in said
    assert "line 5: source must not contain U+0000 (a control character)" in said
    assert "line 6: source must not contain U+202E" in said
    with services.engine.connect() as conn:
        assert [r.day.isoformat() for r in conn.execute(t.program_revenue.select())] == [
            "2026-03-10"
        ]


@pytest.mark.parametrize(
    ("first", "last"), [("9999-12-31", "9999-12-31"), ("0001-01-01", "0001-01-01")]
)
def test_report_days_out_of_range_are_refused(
    cli: Invoke, world: dict[str, Any], first: str, last: str
) -> None:
    # The end of 9999-12-31 (and 0001-01-01 east of UTC) overflowed datetime: a traceback.
    result = cli("report", "--by", "day", "--from", first, "--to", last)
    assert result.exit_code == 2, result.output
    assert "dates must be in 2000-2200" in result.stderr
