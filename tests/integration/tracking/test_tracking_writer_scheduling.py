"""The writer's threads run SCHED_BATCH (`storage.scheduling`): they never preempt the event
loop on waking; `writer_batch_scheduling=false` leaves them as ordinary threads."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.core.clock import SystemClock
from partnerflow.storage.event_writer import EventWriter
from partnerflow.storage.scheduling import yield_to_requests
from partnerflow.storage.tracking_lookup import TrackingLookup

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's"
)


def _policies(names: set[str]) -> dict[str, int]:
    found = {t.name: t.native_id for t in threading.enumerate() if t.name in names}
    assert set(found) == names, found
    return {name: os.sched_getscheduler(tid) for name, tid in found.items() if tid is not None}


def test_yield_to_requests_marks_only_the_calling_thread() -> None:
    seen: list[int] = []

    def body() -> None:
        seen.append(int(yield_to_requests()))
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [1, os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this thread is untouched


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "ordinary"])
def test_writer_sync_and_checkpoint_threads(tmp_path: Path, batch: bool) -> None:
    svc = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", spool_dir=tmp_path / "spool"),
        clock=SystemClock(),
    )
    svc.migrate()
    writer = EventWriter(
        svc.engine, TrackingLookup(svc.engine), svc.clock, tmp_path / "spool",
        sync_thread=True, batch_scheduling=batch,
    )  # fmt: skip
    writer.start()
    try:
        names = {"pf-writer", "pf-wal-sync", "pf-checkpoint"}
        expected = os.SCHED_BATCH if batch else os.SCHED_OTHER
        # Each thread sets its policy as it starts: wait until all three have.
        for _ in range(200):
            policies = _policies(names)
            if set(policies.values()) == {expected}:
                break
            threading.Event().wait(0.01)
        assert policies == dict.fromkeys(names, expected)
    finally:
        writer.stop()
        svc.close()
