"""The tracker writer's SQLite checkpoints: off the commit path, and the WAL stays bounded
under writes that never pause (the case SQLite's own restart logic does not cover)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.factories import click_row

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import SystemClock
from partnerflow.storage import tables as t
from partnerflow.storage.event_writer import EventWriter
from partnerflow.storage.tracking_lookup import TrackingLookup
from partnerflow.storage.wal_checkpoint import WalCheckpointer

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Services:
    svc = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'wal.db'}", spool_dir=tmp_path / "spool"),
        clock=SystemClock(),
    )
    svc.migrate()
    return svc


async def _write(writer: EventWriter, batches: int, per_batch: int) -> None:
    n = 0
    for _ in range(batches):
        rows = []
        for _ in range(per_batch):
            n += 1
            rows.append(
                writer.write_click(
                    click_row(
                        writer,
                        partner_id=1 + n % 40,
                        ip=f"198.51.100.{n % 200}",
                        ua=UA,
                        sub1=f"s{n}",
                    )
                )
            )
        await asyncio.gather(*rows)


def test_the_writer_connection_never_checkpoints_inside_a_commit(
    sqlite_services: Services,
) -> None:
    writer = EventWriter(
        sqlite_services.engine,
        TrackingLookup(sqlite_services.engine),
        sqlite_services.clock,
        sqlite_services.settings.spool_dir,
    )
    assert writer.checkpointer is not None
    raw = writer._connect()
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    writer._disconnect()
    # Back in the pool, a connection checkpoints again as SQLite does by default.
    with sqlite_services.engine.connect() as conn:
        level = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert level == 1000


def test_wal_stays_bounded_and_every_row_is_stored_under_continuous_writes(
    sqlite_services: Services,
) -> None:
    engine = sqlite_services.engine
    writer = EventWriter(
        engine, TrackingLookup(engine), sqlite_services.clock, sqlite_services.settings.spool_dir
    )
    assert writer.checkpointer is not None
    # Tiny thresholds so a test-sized load crosses them many times.
    writer.checkpointer = WalCheckpointer(engine, interval=0.01, restart_frames=64)
    writer.start()
    try:
        asyncio.run(_write(writer, batches=400, per_batch=25))
    finally:
        writer.stop()
    checkpointer = writer.checkpointer
    assert checkpointer.passes > 0
    assert checkpointer.restarts > 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.clicks)).scalar() == 10_000
    path = Path(str(engine.url.database))
    wal = Path(f"{path}-wal")
    # Without restarts these 10,000 rows leave a WAL of ~35 MB (measured); with them the
    # file is reused from its start and stays at a few MB.
    assert not wal.exists() or wal.stat().st_size < 8 * 1024 * 1024
    # And the database file itself holds the rows: checkpoints really moved pages.
    direct = sqlite3.connect(path)
    try:
        assert direct.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        direct.close()


def test_checkpointer_survives_an_unreachable_database(tmp_path: Path) -> None:
    """A failing background checkpoint is logged and retried, never raised."""
    missing = tmp_path / "gone" / "x.db"
    svc = build(
        Settings(database_url=f"sqlite:///{missing}", spool_dir=tmp_path / "spool"),
        clock=SystemClock(),
    )
    os.rmdir(missing.parent)  # the engine created the directory; the file cannot be opened
    checkpointer = WalCheckpointer(svc.engine, interval=0.01)
    checkpointer.start()
    try:
        time.sleep(0.1)
        assert checkpointer._thread is not None and checkpointer._thread.is_alive()
    finally:
        checkpointer.stop()
    assert checkpointer.passes == 0  # every attempt failed, and was retried
