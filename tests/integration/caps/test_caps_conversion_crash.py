"""Conversions recorded through the use case (`record_conversion`: the REST API, the Shopify
and Stripe webhooks, CSV imports) with the caps in Redis, on SQLite and PostgreSQL.

Redis is not part of the database transaction: a process killed between its reservation and
its commit leaves the reservation and no conversion. The order's retry must leave exactly one
conversion holding exactly one reservation, counted once, and its refund must give the room
back. The same holds for the same order recorded by two processes at once: the one that does
not keep the order must never take the other's reservation with it."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, func, select
from tests.factories import World, cap_one_conversion_a_day, make_coupon, make_world

from partnerflow.bootstrap import Services, build
from partnerflow.commissions.services import reverse_conversion
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock
from partnerflow.core.money import Money
from partnerflow.storage import tables as t
from partnerflow.storage.cap_reservations import RedisCapCounter
from partnerflow.storage.tracking_caps import (
    RECONCILE_GRACE_SECONDS,
    RELEASE_UNSETTLED_LUA,
    SETTLE_UNSETTLED_LUA,
    UNSETTLED,
    Reconciled,
    reconcile_unsettled,
)
from partnerflow.tracking.conversions import cap_reservation_id
from partnerflow.tracking.model import ConversionStatus
from partnerflow.tracking.services import RecordConversion, record_conversion
from partnerflow.web.app import create_app

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix(services: Services, redis_url: str) -> Iterator[str]:
    """The deployment's Redis counters, under a prefix of this test's own (the caps of every
    test database start at id 1, and Redis outlives the test)."""
    prefix = f"pft{secrets.token_hex(4)}:"
    services._lazy["cap_counter"] = RedisCapCounter.from_url(redis_url, prefix)
    yield prefix
    counter = RedisCapCounter.from_url(redis_url, prefix)
    keys = list(counter.client.scan_iter(f"{prefix}*"))
    if keys:
        counter.client.delete(*keys)
    counter.client.close()


@pytest.fixture
def world(services: Services, prefix: str) -> World:
    """Ann's coupon, and a hard cap of one conversion a day on her offer."""
    world = make_world(services)
    make_coupon(services, world.partner, world.offer, code="ANN10")
    cap_one_conversion_a_day(services, world)
    return world


def _order(world: World, order_id: str) -> RecordConversion:
    return RecordConversion(
        token=world.program.postback_token, order_id=order_id, amount="50.00", coupon="ANN10"
    )


def _process(services: Services, redis_url: str, prefix: str) -> Services:
    """Another process's services: its own engine and Redis client, the same counters."""
    svc = build(services.settings, clock=services.clock)
    svc._lazy["cap_counter"] = RedisCapCounter.from_url(redis_url, prefix)
    return svc


def _at_commit_after_a_conversion(engine: Engine, then: Any) -> None:
    """Call `then()` at the transaction boundary: when a transaction that inserted a
    conversion (and so has reserved its caps) is about to commit."""

    @event.listens_for(engine, "after_cursor_execute")
    def wrote(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CONVERSIONS"):
            conn.info["wrote_conversion"] = True

    @event.listens_for(engine, "commit")
    def commit(conn: Any) -> None:
        if conn.info.pop("wrote_conversion", False):
            then()


def _record_then_hang_at_commit(
    settings: Settings, clock: FixedClock, redis_url: str, prefix: str, cmd: Any, queue: Any
) -> None:
    """A child process: records the order and stops at its commit, to be SIGKILLed there."""
    svc = build(settings, clock=clock)
    svc._lazy["cap_counter"] = RedisCapCounter.from_url(redis_url, prefix)

    def hang() -> None:
        queue.put("at commit")
        time.sleep(120)

    _at_commit_after_a_conversion(svc.engine, hang)
    record_conversion(svc.uow(), svc.clock, cmd)
    queue.put("committed")  # not reached: the test kills the process first


def _kill_at_commit(services: Services, redis_url: str, prefix: str, cmd: Any) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    services.engine.dispose()  # no pooled connection is shared with the child
    child = ctx.Process(
        target=_record_then_hang_at_commit,
        args=(services.settings, services.clock, redis_url, prefix, cmd, queue),
    )
    child.start()
    try:
        assert queue.get(timeout=60) == "at commit"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL


def _conversions(services: Services) -> list[tuple[str, str]]:
    c = t.conversions.c
    with services.engine.connect() as conn:
        return [(r.order_id, r.status) for r in conn.execute(select(c.order_id, c.status))]


def _commission_entries(services: Services) -> int:
    with services.engine.connect() as conn:
        count = select(func.count()).select_from(t.commission_entries)
        return int(conn.execute(count).scalar_one())


def _cap_usage(counter: RedisCapCounter) -> list[int]:
    """What each cap counter in Redis holds (here: the one day's counter of the offer cap)."""
    keys = [k.decode() for k in counter.client.scan_iter(f"{counter.prefix}cap:*")]
    return [int(counter.client.get(k)) for k in keys]


def _reservations(counter: RedisCapCounter) -> list[str]:
    """The reservation ids held in Redis."""
    keys = counter.client.scan_iter(f"{counter.prefix}res:*")
    return sorted(k.decode().removeprefix(f"{counter.prefix}res:") for k in keys)


def _refund(services: Services, world: World, order_id: str) -> None:
    reverse_conversion(
        services.uow(), services.clock, program_id=world.program.id, order_id=order_id,
        amount=None, reason="returned", author="ops",
    )  # fmt: skip


def test_an_order_retried_after_a_kill_before_its_commit_is_counted_once(
    services: Services, world: World, redis_url: str, prefix: str
) -> None:
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    rid = cap_reservation_id(world.program.id, "K-1")
    _kill_at_commit(services, redis_url, prefix, _order(world, "K-1"))
    # What the killed process left: its reservation in Redis, nothing in the database.
    assert (_conversions(services), _commission_entries(services)) == ([], 0)
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])

    # The sender got no answer and retries: the cap (one a day) has room for it.
    retried = record_conversion(services.uow(), services.clock, _order(world, "K-1"))
    assert (retried.duplicate, retried.conversion.status) == (False, ConversionStatus.PENDING)
    assert retried.commission == Money(Decimal("5.00"), "EUR")
    assert (_conversions(services), _commission_entries(services)) == ([("K-1", "pending")], 1)
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])

    # Counted exactly once: the cap is full, and a retry of the order changes nothing.
    other = record_conversion(services.uow(), services.clock, _order(world, "K-2"))
    assert other.conversion.status is ConversionStatus.REJECTED
    again = record_conversion(services.uow(), services.clock, _order(world, "K-1"))
    assert (again.duplicate, again.conversion.id) == (True, retried.conversion.id)
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])

    # Its refund gives the room back: nothing was eaten.
    _refund(services, world, "K-1")
    assert (_cap_usage(counter), _reservations(counter)) == ([0], [])
    third = record_conversion(services.uow(), services.clock, _order(world, "K-3"))
    assert third.conversion.status is ConversionStatus.PENDING
    assert _cap_usage(counter) == [1]


def test_a_killed_attempt_over_a_full_cap_leaves_it_full_and_no_conversion(
    services: Services, world: World, redis_url: str, prefix: str
) -> None:
    # The attempt is refused by the cap before the kill: it reserved nothing, and its retry
    # is refused the same way (the leftover release takes only what is under its own id).
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    first = record_conversion(services.uow(), services.clock, _order(world, "K-1"))
    assert first.conversion.status is ConversionStatus.PENDING
    _kill_at_commit(services, redis_url, prefix, _order(world, "K-2"))
    assert _conversions(services) == [("K-1", "pending")]
    rid = cap_reservation_id(world.program.id, "K-1")
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])

    retried = record_conversion(services.uow(), services.clock, _order(world, "K-2"))
    assert (retried.duplicate, retried.conversion.status) == (False, ConversionStatus.REJECTED)
    assert retried.commission is None
    assert sorted(_conversions(services)) == [("K-1", "pending"), ("K-2", "rejected")]
    assert (_commission_entries(services), _cap_usage(counter)) == (1, [1])
    assert _reservations(counter) == [rid]


@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
def test_the_same_order_recorded_twice_at_once_holds_one_reservation(
    services: Services, world: World, redis_url: str, prefix: str, first_ends: str
) -> None:
    """The first process stops with the order written and its cap reserved; the second
    records the same order meanwhile (it waits on the first's row: PostgreSQL's unique
    index, SQLite's write lock). Then the first commits — the second finds the order — or
    rolls back — the second records it. Either way one conversion holds one reservation."""
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    first, second = (_process(services, redis_url, prefix) for _ in range(2))
    order = _order(world, "K-1")
    paused, go = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def hold() -> None:
        paused.set()
        assert go.wait(timeout=60)

    def run_first() -> None:
        try:
            if first_ends == "commit":
                _at_commit_after_a_conversion(first.engine, hold)
                outcomes["first"] = record_conversion(first.uow(), first.clock, order)
                return
            with first.uow() as uow:
                outcomes["first"] = record_conversion(uow, first.clock, order)
                hold()
                # A slow process: its connection goes back to the pool (after the rollback)
                # well after the second one can have recorded the order.
                event.listen(first.engine, "checkin", lambda *_: time.sleep(0.5))
                raise RuntimeError("boom")
        except RuntimeError as exc:
            outcomes["first"] = exc

    def run_second() -> None:
        outcomes["second"] = record_conversion(second.uow(), second.clock, order)

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    try:
        threads[0].start()
        assert paused.wait(timeout=60)
        threads[1].start()
        time.sleep(0.5)
        assert threads[1].is_alive()  # waiting for the first's transaction to end
        go.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        go.set()
        for svc in (first, second):
            svc.close()

    rid = cap_reservation_id(world.program.id, "K-1")
    [conversion] = _conversions(services)
    assert conversion == ("K-1", "pending")
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])
    assert _commission_entries(services) == 1
    if first_ends == "commit":
        assert outcomes["first"].duplicate is False
        assert outcomes["second"].duplicate is True
        assert outcomes["second"].conversion.id == outcomes["first"].conversion.id
    else:
        assert isinstance(outcomes["first"], RuntimeError)
        assert outcomes["second"].duplicate is False
        assert outcomes["second"].conversion.status is ConversionStatus.PENDING

    # The reservation is the kept conversion's: its refund gives the room back.
    _refund(services, world, "K-1")
    assert (_cap_usage(counter), _reservations(counter)) == ([0], [])


# -- reservations whose transaction's end was never seen -------------------------------------


def _unsettled(counter: RedisCapCounter) -> dict[str, str]:
    notes = counter.client.hgetall(counter.prefix + UNSETTLED)
    return {k.decode(): v.decode() for k, v in notes.items()}


def test_an_order_killed_before_its_commit_and_never_retried_gets_its_room_back(
    services: Services, world: World, redis_url: str, prefix: str
) -> None:
    """Nobody retries the killed order: without reconciliation its reservation would hold
    the cap's room until the counter expires (never, for an all-time cap)."""
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    rid = cap_reservation_id(world.program.id, "K-1")
    _kill_at_commit(services, redis_url, prefix, _order(world, "K-1"))
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])
    note = _unsettled(counter)[rid]
    assert note.split("\t")[1:] == [str(world.program.id), "K-1"]

    store = services.conversion_cap_store()
    # Within the grace period it might still be committing: left alone.
    assert reconcile_unsettled(services.engine, store) == Reconciled(young=1)
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])
    later = time.time() + RECONCILE_GRACE_SECONDS + 1
    assert reconcile_unsettled(services.engine, store, now=later) == Reconciled(released=1)
    assert (_cap_usage(counter), _reservations(counter), _unsettled(counter)) == ([0], [], {})
    assert reconcile_unsettled(services.engine, store, now=later) == Reconciled()
    # The room is back: the day's one conversion can be paid.
    paid = record_conversion(services.uow(), services.clock, _order(world, "K-2"))
    assert paid.conversion.status is ConversionStatus.PENDING
    assert _cap_usage(counter) == [1] and _unsettled(counter) == {}


def test_a_committed_order_is_settled_at_once_and_a_lost_settle_keeps_its_room(
    services: Services, world: World, prefix: str
) -> None:
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    rid = cap_reservation_id(world.program.id, "K-1")
    recorded = record_conversion(services.uow(), services.clock, _order(world, "K-1"))
    assert recorded.conversion.status is ConversionStatus.PENDING
    assert (_cap_usage(counter), _reservations(counter), _unsettled(counter)) == ([1], [rid], {})
    # A process killed right after its commit never removed its note: the conversion is
    # stored, so the reservation is the order's and stays.
    stale = f"{int(time.time()) - RECONCILE_GRACE_SECONDS - 60}\t{world.program.id}\tK-1"
    counter.client.hset(counter.prefix + UNSETTLED, rid, stale)
    store = services.conversion_cap_store()
    assert reconcile_unsettled(services.engine, store) == Reconciled(settled=1)
    assert (_cap_usage(counter), _reservations(counter), _unsettled(counter)) == ([1], [rid], {})


def test_a_retry_that_reserved_again_is_never_released_by_a_stale_note(
    services: Services, world: World, prefix: str
) -> None:
    """The release is conditional on the note read: an order retried between the job's
    database check and its release wrote a newer note, so its new reservation stays."""
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    recorded = record_conversion(services.uow(), services.clock, _order(world, "K-1"))
    assert recorded.conversion.status is ConversionStatus.PENDING
    rid = cap_reservation_id(world.program.id, "K-1")
    old = f"{int(time.time()) - RECONCILE_GRACE_SECONDS - 60}\t{world.program.id}\tK-1"
    counter.client.hset(counter.prefix + UNSETTLED, rid, f"{int(time.time())}\t1\tK-1")
    release = counter.client.register_script(RELEASE_UNSETTLED_LUA)
    keys = [counter.prefix + UNSETTLED, counter.prefix + f"res:{rid}"]
    assert release(keys=keys, args=[rid, old, counter.prefix]) == -1
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])
    # Nor is a newer note dropped by a pass that read the old one (the order is stored).
    settle = counter.client.register_script(SETTLE_UNSETTLED_LUA)
    assert settle(keys=keys[:1], args=[rid, old]) == 0
    assert len(_unsettled(counter)) == 1


def test_unreadable_notes_are_reported_not_acted_on(
    services: Services, world: World, prefix: str
) -> None:
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    counter.client.hset(counter.prefix + UNSETTLED, "cvbroken", "not a note")
    store = services.conversion_cap_store()
    assert reconcile_unsettled(services.engine, store) == Reconciled(skipped=1)
    assert _unsettled(counter) == {"cvbroken": "not a note"}


async def _tracker_postbacks(
    services: Services, world: World, *order_ids: str
) -> list[httpx.Response]:
    """Postbacks of Ann's coupon through the tracker app (its batched writer), one per
    order, in order."""
    app = create_app(services, tracking_only=True)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://track.test") as c:
            params = {"token": world.program.postback_token, "amount": "50", "coupon": "ANN10"}
            return [
                await c.get("/postback", params={**params, "order_id": order_id})
                for order_id in order_ids
            ]
    finally:
        await app.shutdown()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_trackers_writer_settles_its_batches_reservations(
    services: Services, world: World, prefix: str, anyio_backend: str
) -> None:
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    paid, capped = await _tracker_postbacks(services, world, "T-1", "T-2")
    assert (paid.json()["status"], capped.json()["status"]) == ("pending", "rejected")
    rid = cap_reservation_id(world.program.id, "T-1")
    assert (_cap_usage(counter), _reservations(counter), _unsettled(counter)) == ([1], [rid], {})


# The commit of a transaction that wrote order "boom" fails (a deferred constraint, checked
# at COMMIT): the outcome a lost connection or a full disk leaves unknown.
FAIL_COMMIT_OF_BOOM = {
    "sqlite": [
        "CREATE TABLE test_guard_target (id TEXT PRIMARY KEY)",
        "CREATE TABLE test_guard (ref TEXT REFERENCES test_guard_target (id)"
        " DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER test_fail_commit AFTER INSERT ON conversions"
        " WHEN NEW.order_id = 'boom' BEGIN INSERT INTO test_guard VALUES ('missing'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION test_fail_commit() RETURNS trigger AS $$ BEGIN"
        " IF NEW.order_id = 'boom' THEN RAISE EXCEPTION 'the commit of boom fails'; END IF;"
        " RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE CONSTRAINT TRIGGER test_fail_commit AFTER INSERT ON conversions"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit()",
    ],
}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_failed_tracker_commit_keeps_its_reservation_until_reconciled(
    services: Services, world: World, prefix: str, anyio_backend: str
) -> None:
    """The tracker's writer treats a failed COMMIT as the unit of work does: the outcome is
    unknown, so the reservation stays (right if it did commit) and stays noted; nothing
    retried the order, so the reconciliation gives the room back."""
    counter = services.cap_counter()
    assert isinstance(counter, RedisCapCounter)
    with services.engine.begin() as conn:
        for sql in FAIL_COMMIT_OF_BOOM[services.engine.dialect.name]:
            conn.exec_driver_sql(sql)
    [failed] = await _tracker_postbacks(services, world, "boom")
    assert failed.status_code == 503, failed.text
    rid = cap_reservation_id(world.program.id, "boom")
    assert _conversions(services) == []
    assert (_cap_usage(counter), _reservations(counter)) == ([1], [rid])
    assert list(_unsettled(counter)) == [rid]
    later = time.time() + RECONCILE_GRACE_SECONDS + 1
    store = services.conversion_cap_store()
    assert reconcile_unsettled(services.engine, store, now=later) == Reconciled(released=1)
    assert (_cap_usage(counter), _reservations(counter), _unsettled(counter)) == ([0], [], {})
