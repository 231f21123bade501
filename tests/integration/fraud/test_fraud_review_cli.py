"""`partnerflow fraud review ...` and `partnerflow partners screen / screening-import`:
decisions through the CLI, and refusals with a clear message, an exit code and nothing
changed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import func, select
from tests.factories import World, make_partner, make_world
from tests.integration.fraud.test_fraud_review_queue import _click, _convert, _standing
from typer.testing import CliRunner

from partnerflow.bootstrap import Services
from partnerflow.cli import fraud as fraud_cli
from partnerflow.cli import screening as screening_cli
from partnerflow.cli.runtime import reset_services
from partnerflow.core.clock import FixedClock
from partnerflow.jobs.fraud_scan import scan
from partnerflow.storage import tables as t

Invoke = Callable[..., Any]


@pytest.fixture
def cli(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", services.settings.database_url)
    root = typer.Typer()
    root.add_typer(fraud_cli.app, name="fraud")
    root.add_typer(screening_cli.app, name="partners")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(root, list(args))

    yield invoke
    reset_services()


@pytest.fixture
def queued(services: Services, clock: FixedClock) -> dict[str, Any]:
    world = make_world(services)
    fast = _convert(services, world, "o-fast", click_id=_click(services, world, 2))
    slow = _convert(services, world, "o-slow", click_id=_click(services, world, 8))
    clock.advance(timedelta(minutes=1))
    report = scan(services)
    ids = {d.review.subject_id: d.review.id for d in report.opened}
    return {"world": world, "fast": fast, "slow": slow, "ids": ids}


def _state(services: Services) -> tuple[Any, ...]:
    with services.engine.connect() as conn:
        return (
            conn.execute(select(t.fraud_reviews.c.id, t.fraud_reviews.c.status)).all(),
            conn.execute(select(func.count()).select_from(t.commission_entries)).scalar_one(),
            conn.execute(select(t.partners.c.id, t.partners.c.status)).all(),
        )


def test_list_reject_and_reverse_through_the_cli(
    cli: Invoke, services: Services, queued: dict[str, Any]
) -> None:
    listed = cli("fraud", "review", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert sorted((r["subject_id"], r["action"], r["status"]) for r in rows) == [
        (str(queued["fast"]), "hold", "open"),
        (str(queued["slow"]), "hold", "open"),
    ]
    fast_review = queued["ids"][str(queued["fast"])]
    slow_review = queued["ids"][str(queued["slow"])]

    rejected = cli(
        "fraud", "review", "reject", str(fast_review), str(slow_review), "--note", "bots",
        "--as", "maria", "--json",
    )  # fmt: skip
    assert rejected.exit_code == 0, rejected.output
    assert [d["status"] for d in json.loads(rejected.stdout)] == ["rejected", "rejected"]
    assert _standing(services, queued["fast"]) == 0
    assert _standing(services, queued["slow"]) == 0

    back = cli("fraud", "review", "reverse", str(slow_review), "--note", "real buyer")
    assert back.exit_code == 0, back.output
    assert f"review {slow_review}: reversed (re-opened as review" in back.stdout
    assert _standing(services, queued["slow"]) == Decimal("10.00")

    everything = json.loads(cli("fraud", "review", "list", "--all", "--json").stdout)
    assert sorted(r["status"] for r in everything) == ["open", "rejected", "reversed"]


def test_cli_refusals_are_clear_and_change_nothing(
    cli: Invoke, services: Services, queued: dict[str, Any]
) -> None:
    fast_review = queued["ids"][str(queued["fast"])]
    slow_review = queued["ids"][str(queued["slow"])]
    assert cli("fraud", "review", "approve", str(slow_review)).exit_code == 0
    before = _state(services)

    missing = cli("fraud", "review", "approve", str(fast_review), "999")
    assert missing.exit_code == 3
    assert "fraud review 999 not found" in missing.stderr

    again = cli("fraud", "review", "reject", str(fast_review), str(slow_review))
    assert again.exit_code == 4
    assert f"fraud review {slow_review} was already approved by cli" in again.stderr

    no_note = cli("fraud", "review", "reverse", str(slow_review))
    assert no_note.exit_code == 2
    assert "a note is required" in no_note.stderr

    bad_status = cli("fraud", "review", "list", "--status", "maybe")
    assert bad_status.exit_code == 2
    assert "status must be one of open, approved, rejected, reversed" in bad_status.stderr

    no_ids = cli("fraud", "review", "approve")
    assert no_ids.exit_code != 0
    assert _state(services) == before


def test_scan_command_reports_and_is_idempotent(cli: Invoke, services: Services) -> None:
    make_world(services)
    first = cli("fraud", "review", "scan", "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert (data["programs"], data["opened"]) == (1, [])


def test_screen_applies_program_thresholds_and_is_audited(
    cli: Invoke, services: Services, tmp_path: Path
) -> None:
    world: World = make_world(services)
    burner = make_partner(services, world.program, email="x@mailinator.com", status="applied")
    blogger = make_partner(
        services, world.program, email="eva@travel.example", status="applied",
        website="https://travel.example", country="DE",
    )  # fmt: skip

    shown = cli("partners", "screen", str(burner.id), "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert (data["score"], data["decision"], data["applied"]) == (0, "reject", None)
    assert data["red_flags"][0] == "disposable e-mail domain: mailinator.com"

    applied = cli("partners", "screen", str(burner.id), "--apply")
    assert applied.exit_code == 0, applied.output
    assert f"partner {burner.id} is now rejected" in applied.stdout

    csv_file = tmp_path / "screening.csv"
    csv_file.write_text(
        "partner_id,domain_age_days,backlinks,followers,engagement_rate,review_rating\n"
        f"{blogger.id},1500,2000,150000,0.03,4.8\n"
    )
    assert cli("partners", "screening-import", str(csv_file)).exit_code == 0
    good = cli("partners", "screen", str(blogger.id), "--apply", "--json")
    data = json.loads(good.stdout)
    assert (data["decision"], data["applied"]) == ("approve", "approved")
    assert data["score"] == 99
    with services.engine.connect() as conn:
        statuses = dict(conn.execute(select(t.partners.c.id, t.partners.c.status)).all())
        audit = conn.execute(
            select(t.audit_log.c.action).where(t.audit_log.c.entity_id == str(blogger.id))
        ).scalars()
        actions = list(audit)
    assert (statuses[burner.id], statuses[blogger.id]) == ("rejected", "approved")
    assert actions[-2:] == ["partner.status_changed", "partner.screened"]


def test_screening_import_refuses_bad_rows_and_writes_nothing(
    cli: Invoke, services: Services, tmp_path: Path
) -> None:
    world = make_world(services)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"partner_id,review_rating\n{world.partner.id},4.5\n{world.partner.id},7\n")
    result = cli("partners", "screening-import", str(bad))
    assert result.exit_code == 2
    assert "line 3: review_rating must be between 1 and 5" in result.stderr
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("partner_id,backlinks\n999,10\n")
    result = cli("partners", "screening-import", str(unknown))
    assert result.exit_code == 3
    assert "partner 999 not found" in result.stderr
    huge = tmp_path / "huge.csv"
    huge.write_text(f"partner_id,review_rating\n{world.partner.id},{'4' * 200_000}\n")
    result = cli("partners", "screening-import", str(huge))
    assert result.exit_code == 2
    assert "the CSV could not be read: field larger than field limit" in result.stderr
    with services.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(t.partner_screening_data))
        assert count.scalar_one() == 0
    missing = cli("partners", "screen", "999")
    assert missing.exit_code == 3
    assert "partner 999 not found" in missing.stderr
