"""A conversion's cap room follows fraud decisions and the unit of work's transaction, with
the deployment's counters in SQL or in Redis (`PARTNERFLOW_TEST_REDIS_URL`), on SQLite and
PostgreSQL: a rejection through every entry point gives the room back (after the commit), a
rolled-back unit of work leaves the counters as they were, a reinstatement takes the room
back — past a full cap if need be, and then the overshoot is visible."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import typer
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from tests.factories import World, make_world
from tests.integration.fraud.test_fraud_review_queue import _click, _conversion_status, _convert
from tests.integration.web.web_world import ADMIN, PASSWORD, add_user, csrf_of
from typer.testing import CliRunner

from partnerflow.bootstrap import Services
from partnerflow.caps.model import CapRule
from partnerflow.caps.periods import Period, window_at
from partnerflow.caps.rules import counter_key
from partnerflow.caps.services import SetCap, set_caps
from partnerflow.cli import fraud as fraud_cli
from partnerflow.cli import runtime
from partnerflow.cli import screening as screening_cli
from partnerflow.core.clock import FixedClock
from partnerflow.fraud.policy import Action
from partnerflow.fraud.ports import ReviewFilter, ReviewStatus
from partnerflow.fraud.services import decide_reviews, reverse_decisions
from partnerflow.jobs.fraud_scan import scan
from partnerflow.storage import tables as t
from partnerflow.storage.api_keys import create_key
from partnerflow.storage.cap_reservations import RedisCapCounter
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.tracking.conversions import cap_reservation_id
from partnerflow.tracking.services import RecordConversion, record_conversion
from partnerflow.web.api import create_api_app
from partnerflow.web.auth.mail import LogEmailSender
from partnerflow.web.ui import create_ui_app

SALE_UNITS = 100_000_000  # a 100.00 EUR order in a revenue counter (micro-units)


@pytest.fixture(params=["sql", pytest.param("redis", marks=pytest.mark.redis)])
def counters(request: pytest.FixtureRequest, services: Services) -> Iterator[str]:
    """The deployment's cap counters. Redis ones get a prefix of this test's own: the caps
    of every test database start at id 1 (and Services has no setting for the prefix).
    Requested before anything builds a unit of work, which would make the SQL ones."""
    if request.param == "sql":
        yield "sql"
        return
    url: str = request.getfixturevalue("redis_url")
    counter = RedisCapCounter.from_url(url, prefix=f"pft{secrets.token_hex(4)}:")
    services._lazy["cap_counter"] = counter
    try:
        yield "redis"
    finally:
        keys = list(counter.client.scan_iter(match=counter.prefix + "*"))
        if keys:
            counter.client.delete(*keys)


@pytest.fixture
def redis_only(counters: str) -> str:
    if counters != "redis":
        pytest.skip("the entry points' wiring matters with Redis counters")
    return counters


@pytest.fixture
def world(services: Services, counters: str) -> World:
    return make_world(services)


def _set_caps(services: Services, world: World, conversions: int) -> tuple[CapRule, CapRule]:
    """A hard cap on conversions and a soft one on revenue, per day on the offer."""
    commands = [
        SetCap(program_id=world.program.id, metric="conversions", period="day",
               limit=str(conversions), offer_id=world.offer.id),
        SetCap(program_id=world.program.id, metric="revenue", period="day", limit="100000",
               offer_id=world.offer.id, mode="soft"),
    ]  # fmt: skip
    uow = SqlCapsUnitOfWork(services.engine, services.clock)
    count, revenue = set_caps(uow, services.cap_counter(), services.clock, commands, "test")
    services.cap_rules().invalidate()
    return count, revenue


def _usage(services: Services, world: World, *caps: CapRule) -> tuple[int, ...]:
    day = window_at(Period.DAY, services.clock.now(), world.program.timezone).key
    keys = [counter_key(cap.id, day) for cap in caps]
    used = services.cap_counter().usage(keys)
    return tuple(used[k] for k in keys)


def _held(services: Services, world: World, order_id: str) -> bool:
    """Whether the conversion's reservation is stored (SQL row or Redis key)."""
    rid = cap_reservation_id(world.program.id, order_id)
    counter = services.cap_counter()
    if isinstance(counter, RedisCapCounter):
        return bool(counter.client.exists(counter.prefix + f"res:{rid}"))
    with services.engine.connect() as conn:
        found = conn.execute(select(t.cap_reservations.c.id).where(t.cap_reservations.c.id == rid))
        return found.first() is not None


def _open_review(services: Services, action: Action) -> int:
    with services.fraud_uow() as uow:
        [review] = uow.reviews.find(ReviewFilter(status=ReviewStatus.OPEN, action=action))
    return review.id


@pytest.fixture
def held(services: Services, world: World, clock: FixedClock) -> dict[str, Any]:
    """Caps of 10 conversions a day; a sale 2 s after its click (queued on hold by the
    scan) and a self-referral (rejected by the scan at once)."""
    caps = _set_caps(services, world, 10)
    fast = _convert(services, world, "o-fast", click_id=_click(services, world, 2))
    _convert(services, world, "o-self", coupon=None, click_id=_click(services, world, 7200),
             customer_id="ANN+shop@blog.example")  # fmt: skip
    assert _usage(services, world, *caps) == (2, 2 * SALE_UNITS)
    clock.advance(timedelta(minutes=1))
    report = scan(services)  # the job's unit of work: the self-referral is rejected
    assert {d.review.action for d in report.opened} == {Action.HOLD, Action.REJECT}
    assert _usage(services, world, *caps) == (1, SALE_UNITS)
    assert not _held(services, world, "o-self")
    return {"caps": caps, "fast": fast, "review": _open_review(services, Action.HOLD)}


# --- a rejection through each entry point releases the room ------------------------------


def _reject_by_api(services: Services, review_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with services.engine.begin() as conn:
        _, token = create_key(conn, name="admin", scopes=["admin:read", "admin:write"],
                              now=services.clock.now())  # fmt: skip
    app = Starlette(routes=[Mount("/api/v1", app=create_api_app(services))])
    with TestClient(app) as client:
        response = client.post(
            "/api/v1/fraud-reviews/decisions",
            json={"ids": [review_id], "decision": "reject", "note": "bot sale"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    assert response.json()[0]["status"] == "rejected"


def _reject_on_dashboard(
    services: Services, review_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(services, ADMIN, "admin")
    ui = create_ui_app(services, email_sender=LogEmailSender())
    with TestClient(ui, base_url="http://testserver") as client:
        page = client.get("/login")
        login = client.post(
            "/login",
            data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert login.status_code == 303, login.text
        queue = client.get("/admin/fraud", params={"program": "acme"})
        decided = client.post(
            "/admin/fraud/decide",
            data={
                "program": "acme",
                "csrf_token": csrf_of(queue.text),
                "review": str(review_id),
                "decision": "reject",
                "note": "bot sale",
            },
            follow_redirects=False,
        )
    assert decided.status_code == 303, decided.text


def _reject_by_cli(services: Services, review_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_services", services)  # the command uses these services
    root = typer.Typer()
    root.add_typer(fraud_cli.app, name="fraud")
    result = CliRunner().invoke(root, ["fraud", "review", "reject", str(review_id), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["status"] == "rejected"


Reject = Callable[[Services, int, pytest.MonkeyPatch], None]


@pytest.mark.parametrize(
    "reject",
    [_reject_by_api, _reject_on_dashboard, _reject_by_cli],
    ids=["api", "dashboard", "cli"],
)
def test_a_rejection_through_each_entry_point_gives_the_cap_room_back(
    services: Services,
    world: World,
    held: dict[str, Any],
    redis_only: str,
    reject: Reject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _usage(services, world, *held["caps"]) == (1, SALE_UNITS)
    reject(services, held["review"], monkeypatch)
    assert _conversion_status(services, held["fast"]) == "rejected"
    assert _usage(services, world, *held["caps"]) == (0, 0)
    assert not _held(services, world, "o-fast")


def test_partner_screening_runs_in_the_deployments_fraud_unit_of_work(
    services: Services, world: World, redis_only: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Screening touches no conversion; it still gets its unit of work from `fraud_uow`,
    so it carries the deployment's cap counters like every other fraud entry point."""
    made: list[Any] = []
    real = services.fraud_uow

    def spy() -> Any:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(services, "fraud_uow", spy)
    monkeypatch.setattr(runtime, "_services", services)
    root = typer.Typer()
    root.add_typer(screening_cli.app, name="partners")
    result = CliRunner().invoke(root, ["partners", "screen", str(world.partner.id), "--json"])
    assert result.exit_code == 0, result.output
    assert len(made) == 1
    assert made[0]._cap_store is services.conversion_cap_store()
    assert made[0]._cap_store.redis is services.cap_counter()


# --- Redis side effects follow the transaction -------------------------------------------


def test_a_release_happens_at_the_commit_and_not_at_all_on_rollback(
    services: Services, world: World, held: dict[str, Any], clock: FixedClock
) -> None:
    caps = held["caps"]
    with pytest.raises(RuntimeError, match="boom"), services.fraud_uow() as uow:
        [decision] = decide_reviews(uow, clock, [held["review"]], "reject", "maria")
        assert f"conversion {held['fast']} cap room released" in decision.effects
        raise RuntimeError("boom")
    assert _conversion_status(services, held["fast"]) == "pending"
    assert _usage(services, world, *caps) == (1, SALE_UNITS)
    assert _held(services, world, "o-fast")

    with services.fraud_uow() as uow:
        decide_reviews(uow, clock, [held["review"]], "reject", "maria")
        if services.conversion_cap_store().redis is not None:
            # Not yet: the transaction could still roll back. (SQL counters change in the
            # transaction itself; SQLite could not even be read beside it.)
            assert _usage(services, world, *caps) == (1, SALE_UNITS)
    assert _usage(services, world, *caps) == (0, 0)
    assert not _held(services, world, "o-fast")


def test_a_rolled_back_unit_of_work_leaves_the_counters_unchanged(
    services: Services, world: World, clock: FixedClock
) -> None:
    caps = _set_caps(services, world, 1)
    order = RecordConversion(token=world.program.postback_token, order_id="o-1",
                             amount="100.00", click_id=_click(services, world, 3600))  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"), services.uow() as uow:
        recorded = record_conversion(uow, clock, order)
        assert recorded.conversion.status == "pending"
        raise RuntimeError("boom")
    assert _usage(services, world, *caps) == (0, 0)
    assert not _held(services, world, "o-1")
    with services.engine.connect() as conn:
        assert conn.execute(select(t.conversions.c.id)).first() is None
    # The room is really free: the same order is recorded and counted once.
    again = record_conversion(services.uow(), clock, order)
    assert again.conversion.status == "pending"
    assert _usage(services, world, *caps) == (1, SALE_UNITS)


# --- reinstatement -----------------------------------------------------------------------


def test_reinstating_a_rejected_conversion_takes_its_room_back(
    services: Services, world: World, held: dict[str, Any], clock: FixedClock
) -> None:
    caps, fast = held["caps"], held["fast"]
    decide_reviews(services.fraud_uow(), clock, [held["review"]], "reject", "maria")
    assert _usage(services, world, *caps) == (0, 0)

    [back] = reverse_decisions(services.fraud_uow(), clock, [held["review"]], "lead", "real")
    assert back.effects[-2:] == (
        f"conversion {fast} back to pending",
        f"conversion {fast} cap room taken back",
    )
    assert _conversion_status(services, fast) == "pending"
    assert _usage(services, world, *caps) == (1, SALE_UNITS)  # exactly what it held before
    assert _held(services, world, "o-fast")

    # Under the same id: rejecting it again finds the reservation and releases it once.
    assert back.reopened_as is not None
    [again] = decide_reviews(services.fraud_uow(), clock, [back.reopened_as], "reject", "maria")
    assert f"conversion {fast} cap room released" in again.effects
    assert _usage(services, world, *caps) == (0, 0)

    # Approving a finding whose automated action rejected the conversion reinstates it too.
    self_review = _open_review(services, Action.REJECT)
    [approved] = decide_reviews(services.fraud_uow(), clock, [self_review], "approve", "maria")
    assert approved.effects[-1].endswith("cap room taken back")
    assert _usage(services, world, *caps) == (1, SALE_UNITS)


def test_a_reinstatement_that_rolls_back_takes_nothing(
    services: Services, world: World, held: dict[str, Any], clock: FixedClock
) -> None:
    caps = held["caps"]
    decide_reviews(services.fraud_uow(), clock, [held["review"]], "reject", "maria")
    with pytest.raises(RuntimeError, match="boom"), services.fraud_uow() as uow:
        reverse_decisions(uow, clock, [held["review"]], "lead", "real")
        raise RuntimeError("boom")
    assert _usage(services, world, *caps) == (0, 0)
    assert not _held(services, world, "o-fast")


def test_reinstating_over_a_full_cap_is_allowed_counted_and_visible(
    services: Services, world: World, clock: FixedClock
) -> None:
    count, revenue = _set_caps(services, world, 1)
    first = _convert(services, world, "o-1", click_id=_click(services, world, 2))
    clock.advance(timedelta(minutes=1))
    scan(services)
    review = _open_review(services, Action.HOLD)
    decide_reviews(services.fraud_uow(), clock, [review], "reject", "maria", "bot")
    # A second sale takes the room the rejection freed.
    second = _convert(services, world, "o-2", click_id=_click(services, world, 3600))
    assert _conversion_status(services, second) == "pending"
    assert _usage(services, world, count, revenue) == (1, SALE_UNITS)

    [back] = reverse_decisions(services.fraud_uow(), clock, [review], "lead", "real buyer")
    over = (
        f"conversion {first} counted over a full cap: hard cap #{count.id}: 1 conversions per "
        f"day for offer {world.offer.id} exceeded in 2026-03-02: 2 of 1 (a conversion "
        "reinstated after fraud review is counted past the limit)"
    )
    assert back.effects[-3:] == (
        f"conversion {first} back to pending",
        f"conversion {first} cap room taken back",
        over,
    )
    assert _conversion_status(services, first) == "pending"  # the decision stands
    assert _usage(services, world, count, revenue) == (2, 2 * SALE_UNITS)
    with services.engine.connect() as conn:
        alerts = conn.execute(
            select(
                t.cap_alerts.c.cap_id, t.cap_alerts.c.threshold, t.cap_alerts.c.used_units
            ).order_by(t.cap_alerts.c.id)
        ).all()
        audit = conn.execute(
            select(t.audit_log.c.detail).where(t.audit_log.c.action == "fraud_review.reversed")
        ).scalar_one()
    # The 90% alert of the first sale, then the overshoot (at its own threshold: 200%).
    assert [tuple(a) for a in alerts] == [(count.id, "90", 1), (count.id, "200.0", 2)]
    assert over in audit["effects"]
    # The cap stays full: the next conversion is refused as usual.
    third = _convert(services, world, "o-3", click_id=_click(services, world, 3600))
    assert _conversion_status(services, third) == "rejected"
    assert _usage(services, world, count, revenue) == (2, 2 * SALE_UNITS)
