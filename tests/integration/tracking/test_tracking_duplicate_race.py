"""Two tracker processes receiving the same postbacks at the same moment, with conversion
caps in Redis (shared by both) and the events in one database (SQLite and PostgreSQL).

Each order must become exactly one conversion holding exactly one cap reservation, and its
refund must give that reservation back: a loser of the race that charged the cap and then
rolled back could otherwise take the winner's reservation with it, leaving the cap full of
room nobody can release."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.factories import World, make_world

from partnerflow.bootstrap import Services, build
from partnerflow.caps.services import SetCap, set_caps
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock
from partnerflow.core.ids import ProgramId
from partnerflow.storage import tables as t
from partnerflow.storage.cap_reservations import RedisCapCounter
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.tracking.conversions import cap_reservation_id
from partnerflow.web.app import create_app

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

ORDERS = 12
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_counter(redis_url: str) -> Iterator[RedisCapCounter]:
    """A counter under a prefix of this test's own: Redis outlives the test."""
    counter = RedisCapCounter.from_url(redis_url, prefix=f"pft{secrets.token_hex(4)}:")
    yield counter
    keys = list(counter.client.scan_iter(f"{counter.prefix}*"))
    if keys:
        counter.client.delete(*keys)
    counter.client.close()


def _process(settings: Settings, clock: FixedClock, counter: RedisCapCounter) -> Services:
    """One tracker process's services: its own engine, the shared Redis counters."""
    svc = build(settings, clock=clock)
    svc._lazy["cap_counter"] = counter  # the deployment's counter, under the test's prefix
    return svc


@pytest.fixture
async def two_trackers(
    services: Services, clock: FixedClock, redis_counter: RedisCapCounter
) -> AsyncIterator[tuple[World, list[httpx.AsyncClient]]]:
    services._lazy["cap_counter"] = redis_counter
    world = make_world(services)
    set_caps(
        SqlCapsUnitOfWork(services.engine, clock),
        redis_counter,
        clock,
        [SetCap(program_id=ProgramId(world.program.id), metric="conversions", period="day",
                limit="1000", partner_id=world.partner.id)],
        "test",
    )  # fmt: skip
    processes = [_process(services.settings, clock, redis_counter) for _ in range(2)]
    apps = [create_app(svc, tracking_only=True) for svc in processes]
    clients = []
    try:
        for app in apps:
            await app.startup()
            transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
            clients.append(httpx.AsyncClient(transport=transport, base_url="http://track.test"))
        yield world, clients
    finally:
        for client in clients:
            await client.aclose()
        for app in apps:
            await app.shutdown()
        for svc in processes:
            svc._lazy.pop("cap_counter", None)  # closed by the fixture, not twice
            svc.close()
        services._lazy.pop("cap_counter", None)


async def _postback(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/postback", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _click_id(client: httpx.AsyncClient) -> str:
    """A click on Ann's link through `client`; its id."""
    click = await client.get("/c/ann-shop", headers={"user-agent": UA})
    return click.headers["location"].split("click_id=")[1].split("&")[0]


def _cap_key(redis_counter: RedisCapCounter) -> tuple[str, str]:
    """The one cap usage key in Redis: (the full key, the key `usage` takes)."""
    [cap_key] = [k.decode() for k in redis_counter.client.scan_iter(f"{redis_counter.prefix}cap:*")]
    return cap_key, cap_key.removeprefix(redis_counter.prefix)


async def test_the_same_postback_at_two_trackers_makes_one_conversion_and_one_reservation(
    services: Services,
    two_trackers: tuple[World, list[httpx.AsyncClient]],
    redis_counter: RedisCapCounter,
) -> None:
    world, (first, second) = two_trackers
    token = world.program.postback_token
    click_id = await _click_id(first)

    for i in range(ORDERS):
        params = {"token": token, "click_id": click_id, "order_id": f"R-{i}", "amount": "50"}
        answers = await asyncio.gather(_postback(first, **params), _postback(second, **params))
        assert sorted(a["duplicate"] for a in answers) == [False, True], answers
        assert len({a["conversion_id"] for a in answers}) == 1

    with services.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(t.conversions)).scalar_one()
        pending = conn.execute(
            select(func.count())
            .select_from(t.conversions)
            .where(t.conversions.c.status == "pending")
        ).scalar_one()
    assert (stored, pending) == (ORDERS, ORDERS)
    _, usage_key = _cap_key(redis_counter)
    assert redis_counter.usage([usage_key]) == {usage_key: ORDERS}
    reservations = [cap_reservation_id(world.program.id, f"R-{i}") for i in range(ORDERS)]
    prefix = redis_counter.prefix
    assert all(redis_counter.client.exists(f"{prefix}res:{rid}") for rid in reservations)

    # Every refund gives its conversion's room back, whichever tracker it reaches.
    for i in range(ORDERS):
        client = (first, second)[i % 2]
        refund = await _postback(client, token=token, order_id=f"R-{i}", event="refund")
        assert refund["duplicate"] is False
    assert redis_counter.usage([usage_key]) == {usage_key: 0}
    assert not any(redis_counter.client.exists(f"{prefix}res:{rid}") for rid in reservations)


async def test_a_reservation_left_by_a_tracker_killed_before_its_commit_is_not_counted_twice(
    services: Services,
    two_trackers: tuple[World, list[httpx.AsyncClient]],
    redis_counter: RedisCapCounter,
) -> None:
    # The writer reserves in Redis inside its batch and commits afterwards. A tracker
    # SIGKILLed in between leaves the reservation in Redis and no conversion: the postback
    # was never answered, so its sender retries, and the retry reserved again — the cap
    # counted the order twice, and the refund gave back only one of the two.
    world, (first, second) = two_trackers
    token = world.program.postback_token
    click_id = await _click_id(first)
    params = {"token": token, "click_id": click_id, "order_id": "K-1", "amount": "50"}
    await _postback(first, **params)
    # What the killed tracker left: its Redis reservation, nothing committed.
    with services.engine.begin() as conn:
        [conversion_id] = conn.execute(select(t.conversions.c.id)).scalars()
        conn.execute(t.outbox_events.delete())
        ce = t.commission_entries
        conn.execute(ce.delete().where(ce.c.conversion_id == conversion_id))
        conn.execute(t.conversions.delete().where(t.conversions.c.id == conversion_id))
    _, usage_key = _cap_key(redis_counter)
    assert redis_counter.usage([usage_key]) == {usage_key: 1}

    retried = await _postback(second, **params)
    assert (retried["duplicate"], retried["status"]) == (False, "pending")
    assert redis_counter.usage([usage_key]) == {usage_key: 1}
    refund = await _postback(first, token=token, order_id="K-1", event="refund")
    assert refund["status"] == "reversed"
    assert redis_counter.usage([usage_key]) == {usage_key: 0}
    rid = cap_reservation_id(world.program.id, "K-1")
    assert not redis_counter.client.exists(f"{redis_counter.prefix}res:{rid}")


async def test_a_refund_whose_release_was_cut_off_by_a_kill_releases_when_sent_again(
    services: Services,
    two_trackers: tuple[World, list[httpx.AsyncClient]],
    redis_counter: RedisCapCounter,
) -> None:
    # A full refund commits, then gives the reservation back in Redis. A tracker killed
    # between the two keeps the room taken for good: the refund's sender got no answer and
    # sends it again, which answered "duplicate" and released nothing.
    world, (first, second) = two_trackers
    token = world.program.postback_token
    click_id = await _click_id(first)
    await _postback(first, token=token, click_id=click_id, order_id="K-2", amount="50")
    rid = cap_reservation_id(world.program.id, "K-2")
    res_key = f"{redis_counter.prefix}res:{rid}"
    held = redis_counter.client.get(res_key)
    cap_key, usage_key = _cap_key(redis_counter)
    refund = await _postback(first, token=token, order_id="K-2", event="refund")
    assert (refund["duplicate"], refund["status"]) == (False, "reversed")
    # What the killed tracker left: the refund committed, its Redis release never ran.
    redis_counter.client.set(res_key, held)
    redis_counter.client.incrby(cap_key, 1)

    again = await _postback(second, token=token, order_id="K-2", event="refund")
    assert again["duplicate"] is True
    assert redis_counter.usage([usage_key]) == {usage_key: 0}
    assert not redis_counter.client.exists(res_key)
