"""How the group-commit writer forms its batches: a loop hands over what it enqueued in one
pass over its ready callbacks (so those events share one commit), a full batch goes at
once, and nothing enqueued around shutdown is left waiting forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import SystemClock
from partnerflow.core.ids import new_click_id
from partnerflow.storage.event_writer import CLICK_COLUMNS, DatabaseUnavailable, EventWriter
from partnerflow.storage.tracking_lookup import TrackingLookup


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    services = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'batches.db'}", spool_dir=tmp_path / "spool"),
        clock=SystemClock(),
    )
    services.migrate()
    return services


def _writer(svc: Services, **options: int) -> EventWriter:
    return EventWriter(
        svc.engine, TrackingLookup(svc.engine), svc.clock, svc.settings.spool_dir, **options
    )


def _row(writer: EventWriter) -> tuple[object, ...]:
    row = (
        new_click_id(), writer.stamp(), 1, 1, 1, 1, "198.51.100.9", "ua", None,
        None, None, None, None, None, "PL", "desktop", "Linux", "Chrome", True, False, False,
        0, None,
    )  # fmt: skip
    return row + (None,) * (len(CLICK_COLUMNS) - len(row))


def _count(svc: Services) -> int:
    with svc.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM clicks").scalar_one())


def test_clicks_enqueued_in_one_pass_of_the_loop_share_one_commit(svc: Services) -> None:
    writer = _writer(svc)
    writer.start()

    async def scenario() -> None:
        # Let the writer finish connecting, so the first pass does not race its start-up.
        await writer.write_click(_row(writer))
        before = writer.batches
        # One callback enqueues 40 clicks, as a pass over 40 readable connections would.
        futures = [writer.enqueue_click(_row(writer)) for _ in range(40)]
        assert len({id(f) for f in futures}) == 1  # one batch, one future
        assert all(error is None for error in await asyncio.gather(*futures))
        assert writer.batches == before + 1
        # The next pass gets a new batch.
        assert await writer.enqueue_click(_row(writer)) is None
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
        futures = [writer.enqueue_click(_row(writer)) for _ in range(25)]
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
        futures = [writer.enqueue_click(_row(writer)) for _ in range(5)]
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
        await writer.write_click(_row(writer))
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        with pytest.raises(DatabaseUnavailable, match="stopped"):
            await asyncio.wait_for(writer.write_click(_row(writer)), timeout=5)

    asyncio.run(scenario())
    assert _count(svc) == 1
