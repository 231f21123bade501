"""`partnerflow caps|goals|spend` through typer's CliRunner on a real SQLite database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from tests.factories import make_world
from typer.testing import CliRunner

from partnerflow.bootstrap import build
from partnerflow.cli import caps as caps_cli
from partnerflow.cli import goals as goals_cli
from partnerflow.cli import spend as spend_cli
from partnerflow.cli.runtime import reset_services
from partnerflow.config import Settings
from partnerflow.storage import tables as t


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", url)
    svc = build(Settings(database_url=url))
    svc.migrate()
    make_world(svc)
    svc.close()
    root = typer.Typer()
    root.add_typer(caps_cli.app, name="caps")
    root.add_typer(goals_cli.app, name="goals")
    root.add_typer(spend_cli.app, name="spend")
    reset_services()
    yield root
    reset_services()


def run(cli: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    reset_services()
    return result.exit_code, result.stdout, result.stderr


def test_caps_set_list_usage_history(cli: typer.Typer) -> None:
    code, out, _ = run(
        cli,
        "caps",
        "set",
        "--metric",
        "clicks",
        "--limit",
        "100",
        "--offer",
        "1",
        "--partner",
        "1",
        "--alerts",
        "80,90",
    )
    assert code == 0
    assert out.strip() == "saved: hard cap #1: 100 clicks per day for partner 1 on offer 1"
    code, out, _ = run(cli, "caps", "list", "--json")
    assert code == 0
    [cap] = json.loads(out)
    assert (cap["limit"], cap["scope"], cap["alerts"]) == ("100", "partner_offer", ["80", "90"])
    code, out, _ = run(cli, "caps", "usage", "--json")
    assert (code, json.loads(out)[0]["used"]) == (0, "0")
    code, out, _ = run(
        cli,
        "caps",
        "set",
        "--cap",
        "1",
        "--metric",
        "clicks",
        "--limit",
        "50",
        "--offer",
        "1",
        "--partner",
        "1",
        "--reason",
        "slow week",
    )
    assert code == 0
    code, out, _ = run(cli, "caps", "history", "--json")
    assert [h["reason"] for h in json.loads(out)] == [
        "manual change: set to 100",
        "slow week: changed 100 → 50",
    ]


def test_caps_errors_exit_non_zero_with_a_message(cli: typer.Typer) -> None:
    code, _, err = run(cli, "caps", "set", "--metric", "clicks", "--limit", "-3", "--offer", "1")
    assert code == 2 and "limit must not be negative" in err
    code, _, err = run(cli, "caps", "set", "--metric", "clicks", "--limit", "3", "--offer", "9")
    assert code == 3 and "offer 9 not found" in err
    run(cli, "caps", "set", "--metric", "clicks", "--limit", "3", "--offer", "1")
    code, _, err = run(cli, "caps", "set", "--metric", "clicks", "--limit", "5", "--offer", "1")
    assert code == 4 and "overlaps cap #1" in err


def test_a_cap_reason_with_a_bidi_control_is_refused_and_nothing_is_saved(
    cli: typer.Typer,
) -> None:
    """The reason goes to the cap history and to partners' notices: the CLI, which stored it
    as typed, gets the display-text rule of the use case."""
    args = ("caps", "set", "--metric", "clicks", "--limit", "100", "--offer", "1")
    for reason, said in [
        ("budget \u202ecut", "reason must not contain U+202E"),
        ("slow\u200bweek", "reason must not contain U+200B"),
        ("one\ntwo", "reason must not contain U+000A"),
    ]:
        code, _, err = run(cli, *args, "--reason", reason)
        assert code == 2 and said in err, err
    code, out, _ = run(cli, "caps", "list", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(cli, "caps", "history", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, _, _ = run(cli, *args, "--reason", "  launch\u200d week  ")  # joiner: fine
    assert code == 0
    code, out, _ = run(cli, "caps", "history", "--json")
    assert [h["reason"] for h in json.loads(out)] == ["launch\u200d week: set to 100"]


def test_caps_recompute_is_idempotent(cli: typer.Typer, tmp_path: Path) -> None:
    run(
        cli,
        "caps",
        "set",
        "--metric",
        "conversions",
        "--limit",
        "100",
        "--offer",
        "1",
        "--partner",
        "1",
        "--adaptive-min",
        "50",
        "--adaptive-max",
        "200",
        "--max-step",
        "20",
    )
    quality = tmp_path / "q.json"
    quality.write_text('{"1": 90}')
    code, out, _ = run(cli, "caps", "recompute", "--quality-file", str(quality), "--json")
    assert code == 0
    [item] = json.loads(out)
    assert item["reason"] == ("not enough data (0 clicks < 100) → cap held at 100 (max step 20%)")
    code, out, _ = run(cli, "caps", "recompute", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_goals_and_spend_commands(cli: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = run(cli, "goals", "set", "--metric", "sales", "--target", "100")
    assert (code, out.strip()) == (0, "goal 1: 100 sales per month")
    code, out, _ = run(
        cli,
        "goals",
        "set",
        "--metric",
        "revenue",
        "--partner",
        "1",
        "--growth",
        "10",
        "--bonus",
        "q1-bonus",
    )
    assert code == 0
    code, out, _ = run(cli, "goals", "list", "--json")
    assert [g["kind"] for g in json.loads(out)] == ["goal", "target (growth)"]
    code, out, _ = run(cli, "goals", "progress", "--json")
    assert code == 0 and len(json.loads(out)["progress"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("day,channel,campaign,partner,amount\n2999-01-01,meta,x,1,5\n")
    code, _, err = run(cli, "spend", "import", str(bad))
    assert (
        code == 2 and "nothing imported" in err and "line 2: day 2999-01-01 is in the future" in err
    )
    good = tmp_path / "good.csv"
    good.write_text("day,channel,campaign,partner,amount\n2020-01-01,meta,x,1,5\n")
    code, out, _ = run(cli, "spend", "import", str(good))
    assert (code, out.strip()) == (0, "imported 1 spend rows into acme")
    code, out, _ = run(
        cli, "spend", "suggest", "--from", "2020-01-01", "--to", "2020-01-31", "--json"
    )
    [line] = json.loads(out)
    assert (line["key"], line["verdict"]) == ("meta", "hold")
    code, out, _ = run(
        cli,
        "spend",
        "report",
        "--by",
        "partner",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02",
        "--json",
    )
    assert json.loads(out)[0]["spend"] == "5"


def test_caps_set_publishes_one_cap_changed(cli: typer.Typer, tmp_path: Path) -> None:
    code, _, _ = run(cli, "caps", "set", "--metric", "clicks", "--limit", "100", "--offer", "1")
    assert code == 0
    svc = build(Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}"))
    with svc.read() as conn:
        rows = conn.execute(select(t.outbox_events.c.event_type, t.outbox_events.c.payload)).all()
    svc.close()
    [(kind, payload)] = rows
    assert kind == "cap.changed"
    assert (payload["cap"]["id"], payload["cap"]["limit"]) == (1, "100")


def test_spend_suggest_refuses_a_target_roas_outside_0_to_1000(cli: typer.Typer) -> None:
    """The API's bounds (`caps.spend.parse_target_roas`): `1e999999999` could overflow
    Decimal in `suggest` (a traceback) and `1e-999999999` print a billion zeros; a message
    and exit code 2 instead, nothing on stdout."""
    for target in ("0", "1001", "1000.5", "1e999999999", "1e-999999999", "NaN", "-inf", "-2",
                   "two"):  # fmt: skip
        result = CliRunner().invoke(cli, ["spend", "suggest", f"--target-roas={target}"])
        reset_services()
        assert (result.exit_code, result.stdout) == (2, ""), target
        assert isinstance(result.exception, SystemExit)
        assert " ".join(result.stderr.split()) == (
            "error: --target-roas must be a decimal number above 0 and at most 1000 "
            "(e.g. 2 or 1.5) (target_roas)"
        )
    code, out, _ = run(cli, "spend", "suggest", "--target-roas", "1000", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_caps_reconcile_without_redis_has_nothing_to_do(cli: typer.Typer) -> None:
    code, out, _ = run(cli, "caps", "reconcile")
    assert code == 0 and "counted in the database" in out
    code, _, err = run(cli, "caps", "reconcile", "--grace-minutes", "0")
    assert code == 2 and "--grace-minutes" in err


@pytest.mark.redis
def test_caps_reconcile_settles_notes_with_redis(
    cli: typer.Typer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secrets
    import time

    import redis

    from partnerflow.storage.tracking_caps import UNSETTLED

    monkeypatch.setenv("PARTNERFLOW_REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    rid = f"cv{secrets.token_hex(15)}"
    # A note whose reservation is gone (released by a refund) and whose order never
    # committed: only the note is left, and it goes.
    client.hset(f"pf:{UNSETTLED}", rid, f"{int(time.time()) - 3600}\t1\tORPHAN-{rid}")
    try:
        code, out, _ = run(cli, "caps", "reconcile", "--grace-minutes", "30", "--json")
        assert code == 0, out
        assert json.loads(out)["settled"] >= 1
        assert client.hget(f"pf:{UNSETTLED}", rid) is None
    finally:
        client.hdel(f"pf:{UNSETTLED}", rid)
        client.close()
