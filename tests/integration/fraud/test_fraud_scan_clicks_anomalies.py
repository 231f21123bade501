"""The fraud scan's click reviews (one per partner, signal and day) and anomalous
partner-day flags, and `partnerflow fraud anomalies`, on SQLite and (when configured)
PostgreSQL."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
from sqlalchemy import func, select
from tests.factories import World, make_link, make_partner, make_world
from typer.testing import CliRunner

from partnerflow.bootstrap import Services
from partnerflow.cli import fraud as fraud_cli
from partnerflow.cli.runtime import reset_services
from partnerflow.core.clock import FixedClock
from partnerflow.core.ids import new_click_id
from partnerflow.fraud.policy import Action, Subject
from partnerflow.fraud.ports import ReviewFilter, ReviewStatus
from partnerflow.fraud.services import decide_reviews, set_policy
from partnerflow.jobs.fraud_scan import scan
from partnerflow.storage import tables as t
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
CHROME += "Chrome/126.0.0.0 Safari/537.36"
HOME_IP = "81.2.69.160"
AWS_IP = "52.95.110.1"


def _clicks(svc: Services, partner_id: int, link_id: int, world: World, rows: list[Any]) -> None:
    values = [
        {
            "id": new_click_id(),
            "created_at": at,
            "program_id": world.program.id,
            "offer_id": world.offer.id,
            "partner_id": partner_id,
            "link_id": link_id,
            "ip": ip,
            "user_agent": ua,
            "referrer": referrer,
            "sub1": sub1,
            "is_unique": True,
            "is_bot": bot,
            "is_qr": False,
            "fraud_score": 0,
            "flags": None,
        }
        for at, ip, ua, referrer, sub1, bot in rows
    ]
    with svc.engine.begin() as conn:
        conn.execute(t.clicks.insert(), values)


def _uow(svc: Services) -> SqlFraudUnitOfWork:
    return SqlFraudUnitOfWork(svc.engine, svc.clock)


def _click_reviews(svc: Services) -> dict[str, Any]:
    with _uow(svc) as uow:
        found = uow.reviews.find(ReviewFilter(subject=Subject.CLICK))
    return {r.detail["signal"] + "@" + r.detail["day"]: r for r in found}


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


def test_click_findings_are_one_review_per_partner_signal_and_day(
    services: Services, world: World, clock: FixedClock
) -> None:
    now = clock.now()  # 2026-03-02 12:00 UTC
    yesterday = now - timedelta(days=1)
    p, link = world.partner.id, world.link.id
    rows: list[Any] = []
    # Clean background: 200 home clicks spread over both days.
    rows += [(now - timedelta(minutes=7 * i), f"81.2.{i % 100}.9", CHROME, None, None, False)
             for i in range(200)]  # fmt: skip
    # 40 browser-looking clicks from AWS this morning.
    rows += [(now - timedelta(minutes=3 * i + 1), AWS_IP, CHROME, None, None, False)
             for i in range(40)]  # fmt: skip
    # A burst yesterday: 90 clicks in 45 s from one home IP.
    rows += [(yesterday + timedelta(seconds=i / 2), HOME_IP, CHROME, None, None, False)
             for i in range(90)]  # fmt: skip
    # Two paid-search clicks (gclid passed through a sub-id, fbclid in the referrer).
    rows.append((now - timedelta(hours=2), "81.2.69.7", CHROME, None, "gclid=Cj0KCQ", False))
    rows.append(
        (
            now - timedelta(hours=3),
            "81.2.69.8",
            CHROME,
            "https://l.example/?fbclid=IwAR",
            None,
            False,
        )
    )
    # Three crawler clicks: too few for a review.
    rows += [(now - timedelta(hours=h), "81.2.69.9", "Googlebot/2.1", None, None, True)
             for h in (1, 2, 3)]  # fmt: skip
    _clicks(services, p, link, world, rows)

    report = scan(services)
    reviews = _click_reviews(services)
    assert sorted(reviews) == [
        "datacenter@2026-03-02",
        "ip_burst@2026-03-01",
        "paid_search@2026-03-02",
    ]
    assert report.clicks_checked == 335
    dc = reviews["datacenter@2026-03-02"]
    assert (dc.action, dc.partner_id, dc.status) == (Action.FLAG, p, ReviewStatus.OPEN)
    assert dc.detail["clicks"] == 40
    assert dc.detail["ips"] == {AWS_IP: 40}
    assert dc.reasons[0].startswith("40 clicks from datacenter or Tor IPs on 2026-03-02 (")
    assert "Amazon" in dc.reasons[1]
    burst = reviews["ip_burst@2026-03-01"]
    assert burst.detail["clicks"] == 30  # the clicks past 60 in a minute
    assert burst.reasons[1] == f"peak 90 clicks a minute; IPs: {HOME_IP} (30)"
    paid = reviews["paid_search@2026-03-02"]
    assert paid.detail["details"] == {"fbclid": 1, "gclid": 1}

    # Re-running queues nothing new; more clicks on the running day update the open review.
    assert [d for d in scan(services).opened if d.review.subject is Subject.CLICK] == []
    _clicks(
        services, p, link, world, [(now - timedelta(seconds=5), AWS_IP, CHROME, None, None, False)]
    )
    again = scan(services)
    assert again.refreshed == 1
    assert _click_reviews(services)["datacenter@2026-03-02"].detail["clicks"] == 41

    # A decided review is never rewritten.
    decide_reviews(_uow(services), clock, [dc.id], "approve", "maria", "office VPN on AWS")
    _clicks(
        services, p, link, world, [(now - timedelta(seconds=4), AWS_IP, CHROME, None, None, False)]
    )
    assert scan(services).refreshed == 0
    decided = _click_reviews(services)["datacenter@2026-03-02"]
    assert (decided.status, decided.detail["clicks"]) == (ReviewStatus.APPROVED, 41)


def test_click_reviews_can_be_switched_off_and_allow_paid_search(
    services: Services, world: World, clock: FixedClock
) -> None:
    now = clock.now()
    rows = [
        (now - timedelta(minutes=i), "81.2.69.7", CHROME, None, "gclid=x", False) for i in range(3)
    ]
    _clicks(services, world.partner.id, world.link.id, world, rows)
    set_policy(
        _uow(services),
        clock,
        world.program.id,
        {"conversion": {"paid_search_allowed": True}},
        "lead",
    )
    scan(services)
    assert _click_reviews(services) == {}
    set_policy(
        _uow(services), clock, world.program.id, {"actions": {"click_flag_at": None}}, "lead"
    )
    rows = [(now - timedelta(minutes=i), AWS_IP, CHROME, None, None, False) for i in range(50)]
    _clicks(services, world.partner.id, world.link.id, world, rows)
    scan(services)
    assert _click_reviews(services) == {}


@pytest.fixture
def cli(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", services.settings.database_url)
    root = typer.Typer()
    root.add_typer(fraud_cli.app, name="fraud")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(root, list(args))

    yield invoke
    reset_services()


def _history(services: Services, world: World, clock: FixedClock) -> int:
    """12 partners with 30 ordinary days (20-40 home clicks each); yesterday one of them
    sends 400 clicks, 300 of them from a crawler. Returns that partner's id."""
    rng = random.Random(7)
    partners = [(world.partner.id, world.link.id)]
    for n in range(11):
        partner = make_partner(services, world.program, email=f"p{n}@blog.example")
        partners.append(
            (partner.id, make_link(services, partner, world.offer, code=f"part-{n}").id)
        )
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    for partner_id, link_id in partners:
        rows: list[Any] = []
        for day in range(1, 31):
            start = midnight - timedelta(days=day)
            for _ in range(rng.randint(20, 40)):
                at = start + timedelta(seconds=rng.randrange(86_400))
                ip = f"81.2.{rng.randrange(100)}.{rng.randrange(1, 250)}"
                rows.append((at, ip, CHROME, None, None, False))
        _clicks(services, partner_id, link_id, world, rows)
    bad, bad_link = partners[5]
    yesterday = midnight - timedelta(days=1)
    bot = "Googlebot/2.1"
    rows = [(yesterday + timedelta(minutes=3 * i), f"81.2.69.{i % 200 + 1}", bot, None, None, True)
            for i in range(300)]  # fmt: skip
    rows += [(yesterday + timedelta(minutes=14 * i), f"81.2.70.{i + 1}", CHROME, None, None, False)
             for i in range(100)]  # fmt: skip
    _clicks(services, bad, bad_link, world, rows)
    return bad


def test_scan_flags_an_anomalous_partner_day_once_and_cli_lists_it(
    services: Services, world: World, clock: FixedClock, cli: Any
) -> None:
    bad = _history(services, world, clock)
    report = scan(services)
    assert report.partner_days_checked == 12 * 30
    flags = [d.review for d in report.opened if (d.review.scan_key or "").startswith("anomaly:")]
    assert [(r.subject, r.subject_id, r.action) for r in flags] == [
        (Subject.PARTNER, str(bad), Action.FLAG)
    ]
    assert flags[0].scan_key == f"anomaly:{bad}:2026-03-01"
    assert flags[0].reasons[0] == (
        "anomalous day 2026-03-01: stands out among the program's partner-days of the last 30 days"
    )
    # 300 crawler clicks among its 434 clicks that day.
    assert flags[0].reasons[1].startswith("bot share 69.1% (typical 0%, z=+")
    with services.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(t.fraud_reviews)).scalar_one()
    assert scan(services).opened == []
    with services.engine.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(t.fraud_reviews)).scalar_one() == before
        )

    result = cli("fraud", "anomalies", "--program", "acme", "--until", "2026-03-02", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert (bad, "2026-03-01") in {(a["partner_id"], a["day"]) for a in listed}
    top = listed[0]
    assert (top["partner_id"], top["day"], top["clicks"]) == (bad, "2026-03-01", 434)
    table = cli("fraud", "anomalies", "--days", "3", "--until", "2026-03-01")
    assert table.exit_code == 0 and "2026-03-01" in table.output, table.output
    bad_date = cli("fraud", "anomalies", "--until", "March")
    assert bad_date.exit_code != 0 and "until must be a date" in bad_date.output


def test_anomaly_flags_can_be_switched_off(
    services: Services, world: World, clock: FixedClock
) -> None:
    _history(services, world, clock)
    set_policy(
        _uow(services), clock, world.program.id, {"actions": {"anomaly_flag_at": None}}, "lead"
    )
    report = scan(services)
    assert [d for d in report.opened if (d.review.scan_key or "").startswith("anomaly:")] == []
