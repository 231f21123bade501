"""How the group-commit writer forms its batches: a loop hands over what it enqueued in one
pass over its ready callbacks (so those events share one commit), a full batch goes at
once, and nothing enqueued around shutdown is left waiting forever. And the created_at
text it stamps rows with."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.factories import click_row

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock, SystemClock
from partnerflow.storage.event_writer import (
    DatabaseUnavailable,
    EventWriter,
    sqlite_timestamp,
)
from partnerflow.storage.scheduling import YieldingScheduler
from partnerflow.storage.tracking_lookup import TrackingLookup


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'batches.db'}", spool_dir=tmp_path / "spool"),
        clock=SystemClock(),
    )
    services.migrate()
    yield services
    services.close()


def _writer(svc: Services, **options: int) -> EventWriter:
    return EventWriter(
        svc.engine, TrackingLookup(svc.engine), svc.clock, svc.settings.spool_dir, **options
    )


def _count(svc: Services) -> int:
    with svc.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM clicks").scalar_one())


def test_clicks_enqueued_in_one_pass_of_the_loop_share_one_commit(svc: Services) -> None:
    writer = _writer(svc)
    writer.start()

    async def scenario() -> None:
        # Let the writer finish connecting, so the first pass does not race its start-up.
        await writer.write_click(click_row(writer))
        before = writer.batches
        # One callback enqueues 40 clicks, as a pass over 40 readable connections would.
        futures = [writer.enqueue_click(click_row(writer)) for _ in range(40)]
        assert len({id(f) for f in futures}) == 1  # one batch, one future
        assert all(error is None for error in await asyncio.gather(*futures))
        assert writer.batches == before + 1
        # The next pass gets a new batch.
        assert await writer.enqueue_click(click_row(writer)) is None
        assert writer.batches == before + 2

    try:
        asyncio.run(scenario())
    finally:
        writer.stop()
    assert _count(svc) == 42


def test_a_full_batch_goes_to_the_writer_without_waiting_for_the_pass(svc: Services) -> None:
    writer = _writer(svc, max_batch=10)
    writer.start()

    async def scenario() -> None:
        futures = [writer.enqueue_click(click_row(writer)) for _ in range(25)]
        assert len({id(f) for f in futures}) == 3  # 10 + 10 + 5
        assert all(error is None for error in await asyncio.gather(*futures))

    try:
        asyncio.run(scenario())
    finally:
        writer.stop()
    assert _count(svc) == 25


def test_stop_writes_what_is_enqueued_but_not_yet_handed_over(svc: Services) -> None:
    writer = _writer(svc)
    writer.start()

    async def scenario() -> list[BaseException | None]:
        futures = [writer.enqueue_click(click_row(writer)) for _ in range(5)]
        # Stopped from this very callback: the loop has not finished its pass, so the
        # batch is still open (not handed over) when the writer takes its last batches.
        writer.stop()
        return list(await asyncio.gather(*futures))

    assert asyncio.run(scenario()) == [None] * 5
    assert _count(svc) == 5


def test_a_batch_after_the_writers_last_commit_is_refused_not_left_waiting(
    svc: Services,
) -> None:
    writer = _writer(svc)
    writer.start()

    async def scenario() -> None:
        await writer.write_click(click_row(writer))
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        with pytest.raises(DatabaseUnavailable, match="stopped"):
            await asyncio.wait_for(writer.write_click(click_row(writer)), timeout=5)

    asyncio.run(scenario())
    assert _count(svc) == 1


# -- created_at stamps -----------------------------------------------------------------------
_NOW_NS = 1_764_979_200 * 10**9  # 2025-12-06 00:00:00 UTC


def _expected_stamp(ns: int) -> str:
    micros = ns // 1000
    moment = datetime.fromtimestamp(micros // 10**6, UTC) + timedelta(microseconds=micros % 10**6)
    return sqlite_timestamp(moment)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50 * 365 * 86_400 * 10**9), max_size=20))
def test_the_system_clock_stamp_is_the_text_sqlite_stores(
    tmp_path_factory: pytest.TempPathFactory, offsets: list[int]
) -> None:
    """Any sequence of clock readings — across seconds, backwards (a clock step) — gives
    exactly what `sqlite_timestamp` makes of the same instant."""
    tmp = tmp_path_factory.mktemp("stamp")
    engine = build(Settings(database_url=f"sqlite:///{tmp / 'x.db'}", spool_dir=tmp)).engine
    writer = EventWriter(engine, TrackingLookup(engine), SystemClock(), tmp)
    original = time.time_ns
    try:
        for offset in [0, *offsets, 999_999_999, 10**9]:
            ns = _NOW_NS + offset
            time.time_ns = lambda ns=ns: ns  # type: ignore[misc]
            assert writer.stamp() == _expected_stamp(ns)
    finally:
        time.time_ns = original  # type: ignore[misc]
        engine.dispose()


def test_a_stamp_follows_an_injected_clock(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 1, 12, 30, 5, 250_000, tzinfo=UTC))
    svc = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", spool_dir=tmp_path), clock=clock
    )
    svc.migrate()
    writer = EventWriter(svc.engine, TrackingLookup(svc.engine), clock, tmp_path)
    try:
        assert writer.stamp() == "2026-03-01 12:30:05.250000"
        clock.advance(timedelta(seconds=1))
        assert writer.stamp() == "2026-03-01 12:30:06.250000"
    finally:
        svc.close()


# -- the writer thread's scheduling (`storage.scheduling`) ------------------------------------
@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")
@pytest.mark.parametrize("batch_scheduling", [True, False])
def test_the_writer_thread_yields_the_core_when_asked_to(
    svc: Services, batch_scheduling: bool
) -> None:
    writer = _writer(svc, batch_scheduling=batch_scheduling)
    writer.start()

    async def scenario() -> None:
        assert await writer.enqueue_click(click_row(writer)) is None

    try:
        asyncio.run(scenario())
        assert writer._worker is not None and writer._worker.native_id is not None
        policy = os.sched_getscheduler(writer._worker.native_id)
        assert policy == (os.SCHED_BATCH if batch_scheduling else os.SCHED_OTHER)
        assert writer.scheduling.yielding is batch_scheduling
        # The event loop's thread (this one) keeps its normal scheduling.
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        writer.stop()
    assert _count(svc) == 1


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")
def test_batches_that_waited_too_long_send_the_writer_back_to_normal_scheduling(
    svc: Services,
) -> None:
    writer = _writer(svc, batch_scheduling=True)
    # Every wait counts as slow and one is enough: the first batch decides.
    writer.scheduling = YieldingScheduler(True, slow_wait_s=-1.0, slow_limit=1, backoff_s=3600)
    writer.start()

    async def scenario() -> None:
        for _ in range(3):
            assert await writer.enqueue_click(click_row(writer)) is None

    try:
        asyncio.run(scenario())
        assert writer._worker is not None and writer._worker.native_id is not None
        assert writer.scheduling.fallbacks == 1 and not writer.scheduling.yielding
        assert os.sched_getscheduler(writer._worker.native_id) == os.SCHED_OTHER
    finally:
        writer.stop()
    assert _count(svc) == 3
