"""Spooled events drained after a rollup fold moved past their ids still reach the reports,
exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from tests.factories import make_world

from partnerflow.bootstrap import Services
from partnerflow.core.ids import new_click_id
from partnerflow.storage import tables as t
from partnerflow.storage.event_writer import (
    CLICK_COLUMNS,
    IMPRESSION_COLUMNS,
    EventWriter,
    sqlite_timestamp,
)
from partnerflow.storage.rollups import fold_new_events, read_mark
from partnerflow.storage.spool import encode
from partnerflow.storage.tracking_lookup import TrackingLookup


def _rollup_totals(services: Services) -> tuple[int, int]:
    r = t.rollup_traffic.c
    with services.engine.connect() as conn:
        clicks, impressions = conn.execute(
            select(func.sum(r.clicks), func.sum(r.impressions))
        ).one()
    return int(clicks or 0), int(impressions or 0)


def test_spooled_events_below_the_mark_are_folded_once_when_drained(
    services: Services, tmp_path: Path
) -> None:
    world = make_world(services)
    now = services.clock.now()
    ms = int(now.timestamp() * 1000) - 60_000
    ids = world.program.id, world.offer.id, world.partner.id, world.link.id

    def click(click_id: str) -> list[Any]:
        row = [click_id, sqlite_timestamp(now), *ids, "198.51.100.7", "ua", None, "s1"]
        row += [None] * 4 + ["PL", "desktop", "Linux", "Chrome", True, False, False, 0, None, None]
        assert len(row) == len(CLICK_COLUMNS)
        return row

    late_click = new_click_id(ms)  # spooled while the database was away ...
    late_impression = new_click_id(ms + 1)
    stored = [new_click_id(ms + 1_000 + n) for n in range(3)]  # ... another tracker's traffic
    fresh_click = new_click_id(ms + 5_000)  # spooled too, but past the mark
    with services.engine.begin() as conn:
        for click_id in stored:
            values = dict(zip(CLICK_COLUMNS, click(click_id), strict=True))
            conn.execute(insert(t.clicks).values({**values, "created_at": now}))
        fold_new_events(conn, now=now + timedelta(hours=1))
        assert read_mark(conn, "clicks") == stored[-1]
    assert _rollup_totals(services) == (3, 0)

    spool_dir = tmp_path / "crashed-tracker"
    spool_dir.mkdir()
    impression = [late_impression, sqlite_timestamp(now), *ids, "198.51.100.7", "ua", False, None]
    assert len(impression) == len(IMPRESSION_COLUMNS)
    records = [
        {"t": "impressions", "r": impression},  # before the clicks: the drain orders tables
        {"t": "clicks", "r": click(late_click)},
        {"t": "clicks", "r": click(stored[0])},  # stored before the crash: not counted again
        {"t": "clicks", "r": click(late_click)},  # the same event twice in the spool
        {"t": "clicks", "r": click(fresh_click)},
    ]
    (spool_dir / "events-424242.spool").write_bytes(b"".join(encode(r) for r in records))
    writer = EventWriter(
        services.engine, TrackingLookup(services.engine), services.clock, spool_dir
    )
    writer.start()
    writer.stop()
    assert not (spool_dir / "events-424242.spool").exists()

    # The late click is folded by the drain; the fresh one waits for the next fold.
    assert _rollup_totals(services) == (4, 0)
    with services.engine.begin() as conn:
        fold_new_events(conn, now=now + timedelta(hours=1))
        stored_clicks = conn.execute(select(func.count()).select_from(t.clicks)).scalar_one()
    assert stored_clicks == 5
    assert _rollup_totals(services) == (5, 1)
