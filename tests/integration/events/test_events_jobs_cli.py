"""`partnerflow jobs run --once` end to end: a partner applies, the pass delivers the
signed `partner.applied` webhook to a real local HTTP server; a refund reaches the partner's
own postback; a re-run sends nothing twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import typer
from sqlalchemy import select
from tests.integration.commissions.money_world import MoneyWorld, make_money_world
from tests.integration.messaging.test_messaging_webhooks import Receiver
from typer.testing import CliRunner

from partnerflow.bootstrap import Services, build
from partnerflow.cli.jobs import app as jobs_app
from partnerflow.cli.runtime import reset_services
from partnerflow.commissions.services import reverse_conversion
from partnerflow.config import Settings
from partnerflow.core.clock import SystemClock
from partnerflow.messaging.signatures import verify
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.storage import tables as t
from partnerflow.storage import webhooks as wh


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def svc(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """Services on the same SQLite file the CLI uses, on the real clock (signatures carry
    the send time)."""
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PARTNERFLOW_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")
    monkeypatch.setenv("PARTNERFLOW_SPOOL_DIR", str(tmp_path / "spool"))
    services = build(Settings(database_url=sqlite_url, spool_dir=tmp_path / "spool"),
                     clock=SystemClock())  # fmt: skip
    services.migrate()
    yield services
    services.close()
    reset_services()


def run_once(*args: str) -> list[dict[str, Any]]:
    root = typer.Typer()
    root.add_typer(jobs_app, name="jobs")
    reset_services()
    result = CliRunner().invoke(root, ["jobs", "run", "--once", *args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return [json.loads(line) for line in result.stdout.splitlines()]


def add_endpoint(svc: Services, world: MoneyWorld, url: str, events: list[str]) -> wh.Endpoint:
    with svc.engine.begin() as conn:
        return wh.create_endpoint(
            conn, program_id=world.program.id, url=url, events=events,
            now=svc.clock.now(), allow_private=True,
        )  # fmt: skip


def test_once_delivers_partner_applied_signed(svc: Services, receiver: Receiver) -> None:
    world = make_money_world(svc)
    endpoint = add_endpoint(svc, world, receiver.url + "/hooks", ["partner.*"])
    cy = create_partner(
        svc.uow(),
        svc.clock,
        CreatePartner(program_id=world.program.id, name="Cy", email="cy@site.example"),
        actor="signup",
    )
    with svc.engine.connect() as conn:
        [event] = conn.execute(select(t.outbox_events)).all()
    assert (event.event_type, event.partner_id) == ("partner.applied", cy.id)

    reports = run_once()
    assert [r["job"] for r in reports] == [
        "fraud-scan", "approvals", "adaptive-caps", "cap-reservations", "rollups", "notices",
        "outbox", "webhooks",
    ]  # fmt: skip
    assert all(r["ok"] for r in reports), reports
    assert reports[-1]["result"] == {"fanned_out": 1, "attempted": 1, "succeeded": 1, "failed": 0}
    [request] = receiver.requests
    assert (request["method"], request["path"]) == ("POST", "/hooks")
    headers = request["headers"]
    verify(endpoint.secret, request["body"], headers["Partnerflow-Signature"], datetime.now(UTC))
    assert headers["Partnerflow-Event-Type"] == "partner.applied"
    assert headers["Partnerflow-Event-Id"] == event.event_id
    body = json.loads(request["body"])
    assert body["type"] == "partner.applied"
    assert body["data"]["partner"]["email"] == "cy@site.example"

    run_once("--only", "webhooks")  # nothing left: nothing sent twice
    assert len(receiver.requests) == 1


def test_a_refund_reaches_the_partners_postback_with_a_negative_commission(
    svc: Services, receiver: Receiver
) -> None:
    world = make_money_world(svc)
    with svc.engine.begin() as conn:
        wh.create_postback(
            conn,
            partner_id=world.ann.id,
            url_template=receiver.url + "/pb?o={order_id}&c={commission}&a={amount}&cur={currency}",
            now=svc.clock.now(),
            allow_private=True,
        )
    world.sale("o-9", "80.00")
    reverse_conversion(
        world.uow(), svc.clock, program_id=world.program.id, order_id="o-9",
        amount=Decimal("80"), reason="returned", author="shop",
    )  # fmt: skip
    [report] = run_once("--only", "webhooks")
    assert report["result"]["succeeded"] == 1  # the reversal (the sale was not published)
    [request] = receiver.requests
    assert request["method"] == "GET"
    query = parse_qs(urlsplit(request["path"]).query)
    assert query == {"o": ["o-9"], "c": ["-8"], "a": ["80"], "cur": ["EUR"]}
    run_once("--only", "webhooks")
    assert len(receiver.requests) == 1


def test_unknown_job_names_are_refused(svc: Services) -> None:
    root = typer.Typer()
    root.add_typer(jobs_app, name="jobs")
    result = CliRunner().invoke(root, ["jobs", "run", "--once", "--only", "webhooks,mail"])
    assert result.exit_code == 1
    assert "unknown job(s) mail" in result.output
