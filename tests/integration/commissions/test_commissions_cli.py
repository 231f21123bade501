"""The commission, conversion, rate and payout commands through the real CLI runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from tests.integration.commissions.money_world import MoneyWorld, count, make_money_world
from typer.testing import CliRunner

from partnerflow.bootstrap import Services
from partnerflow.cli import commissions, conversions, payouts, rates
from partnerflow.cli.runtime import reset_services
from partnerflow.storage import tables as t

runner = CliRunner()

PLAN = """
id = "standard"
currency = "EUR"
[[versions]]
version = 1
effective_from = 2026-01-01
  [[versions.rules]]
  id = "sales"
  type = "cps"
  percent = "15"
"""


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(commissions.app, name="commissions")
    root.add_typer(conversions.app, name="conversions")
    root.add_typer(payouts.app, name="payouts")
    root.add_typer(rates.app, name="rates")
    return root


@pytest.fixture
def world(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[MoneyWorld]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", services.settings.database_url)
    monkeypatch.setenv("COLUMNS", "300")  # error messages unwrapped, as a log would show them
    reset_services()
    yield make_money_world(services, lock_days=0)
    reset_services()


def run(*args: str) -> tuple[int, str]:
    reset_services()
    result = runner.invoke(_cli(), list(args))
    return result.exit_code, result.output


def test_plan_set_show_and_versions(world: MoneyWorld, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    code, out = run("commissions", "plan", "set", "--program", "acme", "--file", str(plan),
                    "--author", "kim")  # fmt: skip
    assert code == 0, out
    assert "stored plan standard for acme (program) as revision 1 with 1 version(s)" in out
    code, out = run("commissions", "plan", "show", "--program", "acme")
    assert code == 0 and "rule sales: cps 15%" in out
    code, out = run("commissions", "plan", "versions", "--program", "acme", "--json")
    assert code == 0
    assert json.loads(out)[0]["versions"][0]["rules"] == ["sales (cps)"]


def test_bad_plan_file_is_a_clear_error_and_writes_nothing(
    world: MoneyWorld, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.replace('percent = "15"', 'tiers = [{ from = 2, percent = "1" }]'))
    code, out = run("commissions", "plan", "set", "--program", "acme", "--file", str(plan))
    assert code == 2
    assert "versions[0].rules[0].tiers[0].from: leaves a gap: expected from = 1, got 2" in out
    code, out = run("commissions", "plan", "set", "--program", "acme", "--file",
                    str(tmp_path / "missing.toml"))  # fmt: skip
    assert code == 2 and "cannot read" in out
    assert count(world.svc, t.commission_plans) == 0


def test_adjust_needs_reason_and_author(world: MoneyWorld) -> None:
    code, out = run("commissions", "adjust", "--partner", str(world.ann.id), "--amount", "5",
                    "--currency", "EUR", "--reason", " ", "--author", "kim")  # fmt: skip
    assert code == 2 and "an adjustment needs a reason" in out
    code, out = run("commissions", "adjust", "--partner", str(world.ann.id), "--amount", "5",
                    "--currency", "EUR", "--reason", "goodwill")  # fmt: skip
    assert code != 0 and "--author" in out
    code, out = run("commissions", "adjust", "--partner", str(world.ann.id), "--amount", "abc",
                    "--currency", "EUR", "--reason", "goodwill", "--author", "kim")  # fmt: skip
    assert code == 2
    assert count(world.svc, t.commission_entries) == 0
    code, out = run("commissions", "adjust", "--partner", str(world.ann.id), "--amount", "-5",
                    "--currency", "EUR", "--reason", "goodwill", "--author", "kim")  # fmt: skip
    assert code == 0, out
    code, out = run("commissions", "balances", "--partner", str(world.ann.id), "--json")
    assert code == 0
    [bal] = json.loads(out)
    assert bal["approved"] == {"amount": "-5.00", "currency": "EUR"}


def test_reasons_and_authors_on_statements_refuse_bidi_and_invisible_characters(
    world: MoneyWorld,
) -> None:
    """What people type for an adjustment or a refund is shown on the partner's statement
    and in exports: the same display-text rule as names, a message naming the code point,
    exit 2, and nothing booked."""
    conv = world.sale("A-1", "800")
    before = count(world.svc, t.commission_entries)
    for option, value, said in [
        ("--reason", "goodwill \u202e", "reason must not contain U+202E"),
        ("--author", "kim\u200b", "author must not contain U+200B"),
    ]:
        given = {"--reason": "goodwill", "--author": "kim", option: value}
        args = [x for pair in given.items() for x in pair]
        code, out = run("commissions", "adjust", "--partner", str(world.ann.id), "--amount",
                        "5", "--currency", "EUR", *args)  # fmt: skip
        assert code == 2 and said in out, out
    code, out = run("commissions", "reverse", "--program", "acme", "--order", "A-1",
                    "--amount", "200", "--reason", "returned\u2066")  # fmt: skip
    assert code == 2 and "reason must not contain U+2066" in out, out
    assert count(world.svc, t.commission_entries) == before
    # Line breaks are fine in a reason; the order and its commission are untouched above.
    code, out = run("commissions", "reverse", "--program", "acme", "--order", "A-1",
                    "--amount", "200", "--reason", "one returned\nbox damaged")  # fmt: skip
    assert code == 0 and "reversed 20.00 EUR" in out, out
    assert conv


def test_a_plan_author_refuses_bidi_characters(world: MoneyWorld, tmp_path: Path) -> None:
    """`--author` of a plan change is shown in the plan's history: the same rule as refund
    authors."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    code, out = run("commissions", "plan", "set", "--program", "acme", "--file", str(plan),
                    "--author", "kim\u202e")  # fmt: skip
    assert code == 2 and "author must not contain U+202E" in out, out
    assert count(world.svc, t.commission_plans) == 0


def test_payout_authors_refuse_bidi_and_invisible_characters(world: MoneyWorld) -> None:
    """Who built and who paid a batch is shown on it ("created by", "paid by")."""
    world.sale("A-1", "800")
    assert run("commissions", "approve", "--program", "acme")[0] == 0
    today = datetime.now(UTC).date().isoformat()
    build = ("payouts", "build", "--program", "acme", "--period-end", today, "--json")
    code, out = run(*build, "--author", "ops\u200b")
    assert code == 2 and "author must not contain U+200B" in out, out
    assert count(world.svc, t.payout_batches) == 0
    code, out = run(*build, "--author", "ops")
    assert code == 0, out
    batch = json.loads(out)["id"]
    code, out = run("payouts", "mark-paid", batch, "--author", "ops\u2066")
    assert code == 2 and "author must not contain U+2066" in out, out
    code, out = run("payouts", "show", batch, "--json")
    assert (code, json.loads(out)["status"], json.loads(out)["paid_by"]) == (0, "open", None)


def test_refund_explain_and_payout_round_trip(world: MoneyWorld, tmp_path: Path) -> None:
    conv = world.sale("A-1", "800")  # 80.00
    code, out = run("commissions", "reverse", "--program", "acme", "--order", "A-1",
                    "--amount", "900", "--reason", "x")  # fmt: skip
    assert code == 2 and "larger than what is left of order A-1" in out
    code, out = run("commissions", "reverse", "--program", "acme", "--order", "A-1",
                    "--amount", "200", "--reason", "one returned")  # fmt: skip
    assert code == 0 and "reversed 20.00 EUR" in out
    code, out = run("commissions", "approve", "--program", "acme")
    assert code == 0, out
    code, out = run("conversions", "explain", str(conv))
    assert code == 0
    assert "approval approved 60.00 EUR by system" in out
    code, out = run("conversions", "explain", str(conv), "--json")
    data = json.loads(out)
    assert [e["kind"] for e in data["ledger"]] == ["commission", "reversal", "approval", "approval"]
    # The CLI runs on the system clock: approvals are dated today.
    today = datetime.now(UTC).date().isoformat()
    code, out = run("payouts", "build", "--program", "acme", "--period-end", today, "--json")
    assert code == 0, out
    batch = json.loads(out)["id"]
    csv_path = tmp_path / "pay.csv"
    code, out = run("payouts", "export", batch, "--format", "paypal", "--out", str(csv_path))
    assert code == 0, out
    assert csv_path.read_text().startswith("ann@blog.example,60.00,EUR,")
    assert run("payouts", "mark-paid", batch)[0] == 0
    code, out = run("payouts", "mark-paid", batch)
    assert code == 4 and "already paid" in out
    code, out = run("payouts", "show", batch)
    assert code == 0 and "(paid)" in out
    code, out = run("payouts", "build", "--program", "acme", "--period-end", "yesterday")
    assert code == 2 and "--period-end must be YYYY-MM-DD" in out


def test_rates_import_reports_rows_and_imports_nothing(world: MoneyWorld, tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,from,to,rate\n2026-03-01,USD,EUR,0.92\n2026-03-01,USD,EUR,abc\n")
    code, out = run("rates", "import", str(path))
    assert code == 2
    assert "line 3: rate 'abc' is not a number" in out
    assert count(world.svc, t.exchange_rates) == 0
    path.write_text("date,from,to,rate\n2026-03-01,USD,EUR,0.92\n")
    code, out = run("rates", "import", str(path))
    assert code == 0 and "imported 1 rate(s)" in out
