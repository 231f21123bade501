"""SQLite WAL checkpoints off the tracker writer's commit path.

With SQLite's default `wal_autocheckpoint` (1,000 pages), the connection whose commit
pushes the WAL past 4 MB runs the checkpoint *inside that COMMIT*: it copies every changed
page back into the database file and fsyncs it. Under click traffic that is every second or
so, and every request waiting on that batch — and every request queued behind it — waits
tens of milliseconds: the tracker's p99. So the writer's connection turns auto-checkpoints
off and this class runs them instead:

* a background thread with its own connection runs `wal_checkpoint(PASSIVE)` every
  `interval` seconds. PASSIVE never takes the write lock, so the writer keeps committing
  while pages are copied and the database file is fsynced (the sqlite3 module releases the
  GIL for the whole call);
* SQLite restarts the WAL from its beginning (reusing the file, so commits overwrite
  blocks instead of growing the file) only when a write transaction starts on a *fully*
  checkpointed WAL — which never happens while commits keep arriving during every
  checkpoint. So once the WAL holds more than `restart_frames` frames, the checkpointer asks
  the writer to finish the job: between two batches the writer runs one PASSIVE checkpoint
  itself (only the frames since the last background pass are left to copy, and no commit
  can slip in meanwhile), and its next transaction restarts the WAL. The WAL stays bounded
  at about `restart_frames` pages plus one interval of traffic.

`journal_size_limit` truncates a WAL that grew past the limit (after a long burst) when it
restarts. Durability is unchanged: a commit is durable when its WAL frames are fsynced
(`synchronous=FULL`); checkpoints only move already durable pages.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger(__name__)

INTERVAL = 0.1  # seconds between background checkpoints
RESTART_FRAMES = 8192  # 32 MiB of 4 KiB pages: then the writer lets the WAL restart
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


class WalCheckpointer:
    """One per tracker writer (SQLite only)."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = INTERVAL,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.restart_frames = restart_frames
        self.restart_wanted = False
        self.passes = 0  # background checkpoints run (for tests and /healthz)
        self.restarts = 0  # checkpoints the writer ran so the WAL could restart
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def configure_writer(raw: Any) -> None:
        """The writer's own connection: no checkpoint inside its commits."""
        raw.execute("PRAGMA wal_autocheckpoint=0")
        raw.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")

    @staticmethod
    def release_writer(raw: Any) -> None:
        """Before the writer's connection goes back to the pool: SQLite's default again."""
        raw.execute("PRAGMA wal_autocheckpoint=1000")

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pf-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def after_commit(self, raw: Any) -> None:
        """Called by the writer thread between batches, outside any transaction."""
        if not self.restart_wanted:
            return
        self.restart_wanted = False
        try:
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.restarts += 1
        except Exception as exc:  # a checkpoint is housekeeping: never fail a batch for it
            log.warning("WAL checkpoint on the writer's connection failed: %s", exc)

    def _run(self) -> None:
        fairy: Any = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if fairy is None:
                        fairy = self.engine.raw_connection()
                    busy, frames, _copied = fairy.driver_connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                except Exception as exc:
                    log.warning("background WAL checkpoint failed: %s", exc)
                    if fairy is not None:
                        fairy.invalidate()
                        fairy = None
                    continue
                self.passes += 1
                if frames > self.restart_frames and not busy:
                    self.restart_wanted = True
        finally:
            if fairy is not None:
                fairy.close()
