"""The writer's WAL fsync beside the next batch (`storage.wal_sync`): a click is answered
only once its commit is fsynced, a failed fsync is never acknowledged, and the other
connections keep the configured durability."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest
from tests.factories import click_row

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import SystemClock
from partnerflow.storage.event_writer import DatabaseUnavailable, EventWriter
from partnerflow.storage.tracking_lookup import TrackingLookup


def _services(tmp_path: Path, synchronous: str = "FULL") -> Services:
    svc = build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'sync.db'}",
            spool_dir=tmp_path / "spool",
            sqlite_synchronous=synchronous,
        ),
        clock=SystemClock(),
    )
    svc.migrate()
    return svc


def _writer(svc: Services) -> EventWriter:
    return EventWriter(
        svc.engine, TrackingLookup(svc.engine), svc.clock, svc.settings.spool_dir, sync_thread=True
    )


def _count(svc: Services) -> int:
    with svc.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM clicks").scalar_one())


def test_a_click_is_answered_only_after_its_wal_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = _services(tmp_path)
    writer = _writer(svc)
    gate = threading.Event()
    synced = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        gate.wait(10)  # the disk is slow: hold the fsync until the test says so
        synced(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    writer.start()

    async def scenario() -> None:
        answered = asyncio.ensure_future(writer.write_click(click_row(writer)))
        # Committed (other connections see the row) but not answered while the fsync waits.
        for _ in range(200):
            if _count(svc) == 1:
                break
            await asyncio.sleep(0.01)
        assert _count(svc) == 1
        await asyncio.sleep(0.05)
        assert not answered.done()
        gate.set()
        await asyncio.wait_for(answered, 10)

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        writer.stop()
    assert writer.syncer is not None and writer.syncer.syncs >= 1


def test_a_failed_fsync_is_not_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = _services(tmp_path)
    writer = _writer(svc)

    def broken_disk(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fdatasync", broken_disk)
    writer.start()
    try:
        with pytest.raises(DatabaseUnavailable, match="durable"):
            asyncio.run(writer.write_click(click_row(writer)))
    finally:
        writer.stop()


def test_only_the_writer_connection_skips_the_commit_fsync(tmp_path: Path) -> None:
    svc = _services(tmp_path)
    writer = _writer(svc)
    writer.start()
    try:
        asyncio.run(writer.write_click(click_row(writer)))
        raw = writer._raw
        assert raw is not None
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL + the syncer
        with svc.engine.connect() as conn:  # everyone else: the configured FULL
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        writer.stop()
    # The writer's connection went back to the pool at FULL.
    with svc.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    assert _count(svc) == 1
    assert writer.syncer is not None and writer.syncer.commits >= 1


def test_configured_normal_needs_no_syncer(tmp_path: Path) -> None:
    svc = _services(tmp_path, synchronous="NORMAL")
    writer = _writer(svc)
    writer.start()
    try:
        for _ in range(3):
            asyncio.run(writer.write_click(click_row(writer)))
    finally:
        writer.stop()
    assert writer.syncer is not None and writer.syncer.syncs == 0
    assert _count(svc) == 3
