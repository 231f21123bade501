"""The tracker's group-commit writer: one thread, one database connection, batches.

Requests hand their event (a click or impression row, or a validated postback) to the
writer and await a future. The writer thread blocks on its queue; the first event wakes
it, it takes everything that has queued up since (the batch is whatever accumulated during
the previous commit — no polling interval, no timer), writes the batch in one transaction
with raw DBAPI `executemany` (no ORM, no SQL compilation per row), commits, and only then
resolves the futures: a redirect or a postback answer is sent once its event is durable.
Under light load a batch is one event and the latency is one commit; under heavy load the
commit cost is shared by hundreds of events.

Hand-off, per event loop: the events of one loop that arrive while the writer is busy
share one pending batch and one future (one `create_future`, one queue put and one
`call_soon_threadsafe` per batch and loop, not per event); each request awaits the batch's
future. Rows arrive ready for `executemany` (the created_at column already in SQLite's
text form), so the writer thread does no per-row Python work before binding.

Conversions go through the same batches and the same transaction. Duplicates are detected
by the unique (program, order id) constraint itself (`INSERT .. ON CONFLICT DO NOTHING
RETURNING`), which stays correct when several tracker processes receive the same order at
once. A refused conversion (unknown order, refund too large) is refused before it writes
anything, so no SAVEPOINT is needed on the usual path; if one ever fails after writing (a
bug), the whole batch is rolled back and written again with one SAVEPOINT per conversion,
so it fails alone.

Degraded mode: when the database cannot be written (PostgreSQL down, disk full), click and
impression rows go to the fsync'd local spool (`storage.spool`) and are acknowledged from
there; conversions are answered 503 (their outcome needs the database, and postback
senders retry). Once a second the writer retries the database and drains the spool with
`ON CONFLICT DO NOTHING` on the event ids, so a row drained twice is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine

from partnerflow.caps.model import CapAlert, CapRule
from partnerflow.commissions.ports import ProgramTerms
from partnerflow.commissions.services import ConversionInput, Priced, commission_for_conversion
from partnerflow.core.clock import Clock, SystemClock
from partnerflow.core.currencies import MINOR_UNITS
from partnerflow.core.errors import DatabaseUnavailable, InvalidInput, NotFound, PartnerflowError
from partnerflow.core.events import (
    COMMISSION_CREATED,
    COMMISSION_REVERSED,
    CONVERSION_CREATED,
    CONVERSION_FLAGGED,
    CONVERSION_REVERSED,
    money_fields,
    money_text,
)
from partnerflow.core.ids import ClickId, ConversionId, OfferId, PartnerId, ProgramId
from partnerflow.core.money import Money, check_minor_units
from partnerflow.partners.rules import EARNING_STATUSES
from partnerflow.storage.caps import store_alerts
from partnerflow.storage.ledger import ledger_lock_key, txn_id_for
from partnerflow.storage.outbox import (
    commission_created_payload,
    conversion_payload,
    new_event_ids,
)
from partnerflow.storage.rollups import fold_events, late_events
from partnerflow.storage.scheduling import YieldingScheduler
from partnerflow.storage.spool import Spool, release_orphan, take_orphan
from partnerflow.storage.tracking_caps import ConversionCapStore, Execute, conversion_verdict
from partnerflow.storage.tracking_lookup import OfferInfo, ProgramInfo, TrackingLookup
from partnerflow.storage.tracking_pricing import CursorFacts, PricingCache
from partnerflow.storage.wal_checkpoint import WalCheckpointer
from partnerflow.storage.wal_sync import WalSyncer
from partnerflow.tracking.conversions import (
    ALLOWED,
    CapVerdict,
    ClickEvidence,
    cap_reservation_id,
    cap_revenue,
    flags_text,
    score_attributed,
    score_flags,
)
from partnerflow.tracking.model import AttributedBy, Conversion, ConversionStatus
from partnerflow.tracking.postbacks import (
    NO_PROGRAM,
    Postback,
    PostbackKind,
    Reversal,
    Touch,
    attribute,
    reversal_for,
)

log = logging.getLogger(__name__)

CLICK_COLUMNS: Final = (
    "id", "created_at", "program_id", "offer_id", "partner_id", "link_id", "ip",
    "user_agent", "referrer", "sub1", "sub2", "sub3", "sub4", "sub5", "country", "device",
    "os", "browser", "is_unique", "is_bot", "is_qr", "fraud_score", "flags", "creative_id",
)  # fmt: skip
IMPRESSION_COLUMNS: Final = (
    "id", "created_at", "program_id", "offer_id", "partner_id", "link_id", "ip",
    "user_agent", "is_bot", "creative_id",
)  # fmt: skip
_TABLES: Final = {"clicks": CLICK_COLUMNS, "impressions": IMPRESSION_COLUMNS}
_CLICK, _IMPRESSION, _CONVERSION, _STOP = 1, 2, 3, 4
RETRY_SECONDS: Final = 1.0
# Outbox payloads: `json.dumps(payload, separators=...)` builds a JSONEncoder per call; one
# shared encoder (it keeps no state between calls) gives the same text.
_PAYLOAD_JSON: Final = json.JSONEncoder(separators=(",", ":"))


class _Batch:
    """The events one event loop enqueued during one pass over its ready callbacks.

    Filled on the loop's thread under the writer's lock while it is the loop's open batch
    (`EventWriter._pending`); once handed over (put on the writer's queue) it belongs to
    the writer thread. `future` resolves to None (durable) or to an exception instance (every
    waiter raises its own copy); each conversion's outcome is put in its slot."""

    __slots__ = ("clicks", "conversions", "future", "handed", "impressions", "loop", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[BaseException | None] = loop.create_future()
        self.clicks: list[tuple[Any, ...]] = []
        self.impressions: list[tuple[Any, ...]] = []
        self.conversions: list[list[Any]] = []  # [postback, program, outcome, error]
        self.size = 0
        self.handed = 0.0  # perf_counter() when put on the writer's queue


@dataclass(frozen=True, slots=True)
class _ClickRow:
    """The attributed click's details a conversion uses (score, country, sub-ids)."""

    evidence: ClickEvidence
    country: str | None
    sub_ids: dict[str, str] = field(default_factory=dict)


class _Rerun(Exception):
    """A conversion failed after writing: rerun the batch with a SAVEPOINT each."""


@dataclass(frozen=True, slots=True)
class ConversionOutcome:
    kind: str
    conversion_id: int
    order_id: str
    duplicate: bool
    status: str
    attributed_by: str | None
    partner_id: int | None
    amount: str | None  # the commission (or the reversal, for refunds)
    currency: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "conversion_id": self.conversion_id,
            "order_id": self.order_id,
            "duplicate": self.duplicate,
            "status": self.status,
            "attributed_by": self.attributed_by,
            "partner_id": self.partner_id,
            "commission" if self.kind == "conversion" else "reversed": self.amount,
            "currency": self.currency,
            "explanation": self.explanation,
        }


def sqlite_timestamp(value: datetime) -> str:
    """The exact text `UtcDateTime` stores on SQLite (always with microseconds).

    `isoformat` is C; the strftime-style f-string it replaces cost ~2 µs per click."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    text = value.isoformat(" ")
    return text[:26] if value.microsecond else text[:19] + ".000000"


def _insert_sql(table: str, columns: Sequence[str], conflict: str) -> str:
    marks = ", ".join("?" for _ in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({conflict}) DO NOTHING"
    )


class _Sql:
    """Dialect-specific raw SQL, written once with '?' placeholders."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.statements: dict[str, str] = {}
        self._last_ts: tuple[datetime | None, str] = (None, "")

    def __call__(self, sql: str) -> str:
        if self.sqlite:
            return sql
        cached = self.statements.get(sql)
        if cached is None:
            cached = self.statements[sql] = sql.replace("?", "%s")
        return cached

    def ts(self, value: datetime) -> Any:
        if not self.sqlite:
            return value
        # A conversion stamps its row, its ledger entry and its events with one `now`:
        # formatted once (one tuple: read and replaced atomically).
        last, text = self._last_ts
        if last is not value:
            text = sqlite_timestamp(value)
            self._last_ts = (value, text)
        return text


class EventWriter:
    def __init__(
        self,
        engine: Engine,
        lookup: TrackingLookup,
        clock: Clock,
        spool_dir: Path,
        *,
        max_batch: int = 2000,
        pricing: PricingCache | None = None,
        cap_store: ConversionCapStore | None = None,
        sync_thread: bool = False,
        batch_scheduling: bool = False,
    ) -> None:
        self.engine = engine
        self.lookup = lookup
        self.pricing = pricing or PricingCache(engine)
        self.cap_store = cap_store or ConversionCapStore()
        self.clock = clock
        self.max_batch = max_batch
        self.spool = Spool(spool_dir)
        self.sql = _Sql(engine.dialect.name)
        # SQLite: checkpoints run beside the writer, never inside its commits (p99).
        self.checkpointer = WalCheckpointer(engine) if self.sql.sqlite else None
        # SQLite FULL/EXTRA with `sync_thread`: the WAL fsync runs beside the next batch
        # (`storage.wal_sync`); `_sync_level` is the level the writer's connection is restored
        # to, when in use. Without it each commit fsyncs inside COMMIT, as configured.
        database = engine.url.database if self.sql.sqlite else None
        self.syncer = (
            WalSyncer(Path(f"{database}-wal"), self._settle, DatabaseUnavailable)
            if sync_thread and database and database != ":memory:"
            else None
        )
        self._sync_level: int | None = None
        # The writer thread yields the core to the event loop unless a neighbour holds it
        # (`storage.scheduling`).
        self.scheduling = YieldingScheduler(batch_scheduling)
        # Boolean columns of the rows built on the request's side: `flags[b]`. SQLite gets
        # 0/1: the sqlite3 module binds an exact int directly but looks for an adapter for
        # a bool first (measured ~0.35 µs per value, three per click, on the writer thread).
        # (Two statements, not a conditional expression: compiled, mypyc joins the two
        # tuples' types to (int, int) and PostgreSQL then gets 0/1 for a boolean column.)
        self.flags: tuple[Any, Any] = (False, True)
        if self.sql.sqlite:
            self.flags = (0, 1)
        self._system_clock = self.sql.sqlite and type(clock) is SystemClock
        self._stamp_prefix = (-1, "")
        self._click_sql = self.sql(_insert_sql("clicks", CLICK_COLUMNS, "id"))
        self._impression_sql = self.sql(_insert_sql("impressions", IMPRESSION_COLUMNS, "id"))
        self._outbox_sql = self.sql(
            "INSERT INTO outbox_events (event_id, event_type, program_id, partner_id, payload,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)"
        )
        # Per batch attempt (writer thread only): the attributed clicks read for the current
        # conversion, cap alerts to store and Redis reservations to undo or release once
        # the batch's fate is known.
        self._clicks: dict[str, _ClickRow] = {}
        self._alerts: list[tuple[CapAlert, CapRule]] = []
        self._redis_reserved: list[str] = []
        self._redis_releases: list[str] = []
        self._q: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, _Batch] = {}
        self._worker: threading.Thread | None = None
        self._closed = False  # the thread took its last batches: later ones are refused
        self._fairy: Any = None
        self._raw: Any = None
        self.degraded = False
        self._last_attempt = 0.0
        self._wrote = False  # whether the current conversion has written anything yet
        # Counters for /healthz and the benchmark.
        self.batches = 0
        self.events = 0
        self.spooled = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is not None:
            return
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="pf-writer", daemon=True)
        self._worker.start()
        if self.syncer is not None:
            self.syncer.start()
        if self.checkpointer is not None:
            self.checkpointer.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread and close the connection."""
        if self._worker is None:
            return
        self._q.put(None)
        self._worker.join(timeout=30)
        self._worker = None
        if self.syncer is not None:
            self.syncer.stop()  # answers every committed batch once it is synced
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self._disconnect()
        self.spool.close()

    @property
    def running(self) -> bool:
        return self._worker is not None

    # -- requests (event loop side) --------------------------------------------------------
    def stamp(self) -> Any:
        """created_at for a row (booleans: `flags`): SQLite's text form (formatted on the
        request's side, so rows go to `executemany` untouched), a datetime for PostgreSQL."""
        if self._system_clock:
            # The system clock on SQLite: the text straight from the clock, its date and
            # time formatted once a second (0.4 µs; a datetime and isoformat: 1.4 µs).
            micros = time.time_ns() // 1000
            second, fraction = divmod(micros, 1_000_000)
            cached_second, prefix = self._stamp_prefix
            if second != cached_second:
                prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S.")
                self._stamp_prefix = (second, prefix)  # one tuple: safe across threads
            # str(10**6 + f)[1:] pads to six digits; compiled, a `:06d` format spec is a
            # call of int.__format__ (~0.6 µs a click in perf).
            return prefix + str(1_000_000 + fraction)[1:]
        now = self.clock.now()
        return sqlite_timestamp(now) if self.sql.sqlite else now

    def _batch(self) -> _Batch:
        """The calling loop's open batch (call with the lock held).

        A batch is handed to the writer when its loop has run every callback that was
        ready — everything read in this pass over the sockets — not at its first event.
        Waking the writer at the first event let it take the GIL between two of the loop's
        callbacks (uvloop drops it around each) and commit a batch of a few events: at 32
        connections ~11 clicks per commit, with the commit's fixed cost (fsync, WAL
        header, context switches) spread over fewer clicks. Handed over at the end of the
        pass: ~16 per commit and ~3 µs less writer CPU per click (docs/performance.md)."""
        loop = asyncio.get_running_loop()
        batch = self._pending.get(loop)
        if batch is None or batch.size >= self.max_batch:
            if batch is not None:  # full: to the writer now
                del self._pending[loop]
                self._submit(batch)
            batch = self._pending[loop] = _Batch(loop)
            loop.call_soon(self._hand_over, batch)
        batch.size += 1
        return batch

    def _hand_over(self, batch: _Batch) -> None:
        """Runs on the batch's loop once the events read with it are all enqueued."""
        with self._lock:
            if self._pending.get(batch.loop) is not batch:
                return  # full and handed over already, or taken by `stop`
            del self._pending[batch.loop]
            self._submit(batch)

    def _submit(self, batch: _Batch) -> None:
        """To the writer thread (call with the lock held) — unless it has taken its last
        batches (shutdown): then nobody would write it, and its requests are refused."""
        if self._closed:
            _resolve(batch.future, DatabaseUnavailable("event writer stopped"))
        else:
            batch.handed = time.perf_counter()
            self._q.put(batch)

    async def write_click(self, row: tuple[Any, ...]) -> None:
        """Store a click row (`CLICK_COLUMNS`, created_at from `stamp()`); returns once
        durable, raises DatabaseUnavailable if neither the database nor the spool took it."""
        error = await self.enqueue_click(row)
        if error is not None:
            raise DatabaseUnavailable(str(error))

    def enqueue_click(self, row: tuple[Any, ...]) -> asyncio.Future[BaseException | None]:
        """`write_click` without awaiting: the future of the row's batch, done once the batch
        is durable (result None) or failed (the error). Call it on the event loop."""
        with self._lock:
            batch = self._batch()
            batch.clicks.append(row)
        return batch.future

    async def write_impression(self, row: tuple[Any, ...]) -> None:
        with self._lock:
            batch = self._batch()
            batch.impressions.append(row)
        error = await batch.future
        if error is not None:
            raise DatabaseUnavailable(str(error))

    async def record(self, postback: Postback, program: ProgramInfo) -> ConversionOutcome:
        slot: list[Any] = [postback, program, None, None]
        with self._lock:
            batch = self._batch()
            batch.conversions.append(slot)
        error = await batch.future
        if slot[3] is not None:
            raise slot[3]
        if error is not None or slot[2] is None:
            raise DatabaseUnavailable(str(error or "conversion not written"))
        outcome: ConversionOutcome = slot[2]
        return outcome

    # -- the thread ------------------------------------------------------------------------
    def _take(self, first: _Batch) -> list[_Batch]:
        """`first` and the batches handed over after it (each loop's), up to about
        max_batch events."""
        taken = [first]
        size = first.size
        while size < self.max_batch:
            try:
                more = self._q.get_nowait()
            except queue.Empty:
                break
            if more is None:  # stop(): seen by the next `get`, after this batch
                self._q.put(None)
                break
            taken.append(more)
            size += more.size
        return taken

    def _run(self) -> None:
        self.scheduling.start()
        self._try_database()
        while True:
            timeout = RETRY_SECONDS if (self.degraded or self.spool.pending) else None
            try:
                first = self._q.get(timeout=timeout)
            except queue.Empty:
                self._try_database()
                continue
            stopping = first is None
            if stopping:
                # Whatever is handed over or still open is written before stopping. Under
                # the lock, as batches are only ever queued under it: none can slip in
                # between the drain and `_closed` (it would wait forever).
                with self._lock:
                    self._closed = True
                    batches = [*self._drain_queue(), *self._pending.values()]
                    self._pending.clear()
            else:
                assert first is not None
                now = time.perf_counter()
                self.scheduling.waited(now - first.handed, now)
                batches = self._take(first)
            if batches:
                try:
                    self._flush(batches)
                except Exception:  # never let the writer die; _flush resolves what it can
                    log.exception("event writer: unexpected error in a batch")
                    self._settle(batches, RuntimeError("event writer failed"))
            if self.degraded and time.monotonic() - self._last_attempt > RETRY_SECONDS:
                self._try_database()
            if stopping:
                if self.degraded or self.spool.pending:
                    self._try_database()
                return

    def _drain_queue(self) -> list[_Batch]:
        batches: list[_Batch] = []
        while True:
            try:
                batch = self._q.get_nowait()
            except queue.Empty:
                return batches
            if batch is not None:
                batches.append(batch)

    def _connect(self) -> Any:
        if self._raw is None:
            self._fairy = self.engine.raw_connection()
            self._raw = self._fairy.driver_connection
            if self.checkpointer is not None:
                self.checkpointer.configure_writer(self._raw)
            if self.syncer is not None:
                self._sync_level = self.syncer.configure_writer(self._raw)
        return self._raw

    def _disconnect(self, *, broken: bool = False) -> None:
        fairy, self._fairy, self._raw = self._fairy, None, None
        if fairy is None:
            return
        try:
            if broken:
                fairy.invalidate()
            else:
                if self.checkpointer is not None:
                    self.checkpointer.release_writer(fairy.driver_connection)
                if self.syncer is not None and self._sync_level is not None:
                    self.syncer.release_writer(fairy.driver_connection, self._sync_level)
                fairy.close()
        except Exception:
            log.debug("closing a broken connection failed", exc_info=True)
        finally:
            self._sync_level = None

    def _begin(self, raw: Any) -> Any:
        cur = raw.cursor()
        if self.sql.sqlite:
            cur.execute("BEGIN IMMEDIATE")
        return cur

    def _rollback(self, raw: Any) -> None:
        try:
            if self.sql.sqlite:
                raw.execute("ROLLBACK")
            else:
                raw.rollback()
        except Exception:
            log.debug("rollback failed", exc_info=True)

    def _flush(self, batches: list[_Batch]) -> None:
        clicks = [row for b in batches for row in b.clicks]
        impressions = [row for b in batches for row in b.impressions]
        conversions = [slot for b in batches for slot in b.conversions]
        count = len(clicks) + len(impressions) + len(conversions)
        if not self.degraded:
            try:
                try:
                    self._write(clicks, impressions, conversions, savepoints=False)
                except _Rerun:
                    self._rollback(self._connect())
                    for slot in conversions:
                        slot[2] = slot[3] = None
                    self._write(clicks, impressions, conversions, savepoints=True)
                self.batches += 1
                self.events += count
                if self._sync_level is not None:
                    assert self.syncer is not None
                    self.syncer.submit(batches)  # answered once the WAL is fsynced
                else:
                    self._settle(batches, None)
                if self.checkpointer is not None:  # after the answers: it may take a while
                    self.checkpointer.after_commit(self._raw)
                return
            except Exception as exc:
                log.error("database write failed, spooling events: %s", exc)
                if self._raw is not None:
                    self._rollback(self._raw)
                self._disconnect(broken=True)
                self.degraded = True
                self._last_attempt = time.monotonic()
        # Degraded: events to the spool, conversions refused for now.
        unavailable = DatabaseUnavailable("database unavailable, retry later")
        for slot in conversions:
            slot[2], slot[3] = None, unavailable
        error: BaseException | None = None
        try:
            records = [_spool_record("clicks", row) for row in clicks]
            records += [_spool_record("impressions", row) for row in impressions]
            self.spool.append(records)
            self.spooled += len(records)
        except Exception as exc:
            log.exception("spool write failed: events NOT acknowledged")
            error = DatabaseUnavailable(f"database and spool unavailable: {exc}")
        self._settle(batches, error)

    def _write(
        self,
        clicks: list[tuple[Any, ...]],
        impressions: list[tuple[Any, ...]],
        conversions: list[list[Any]],
        *,
        savepoints: bool,
    ) -> None:
        """One transaction: the event rows, then each conversion; commit."""
        raw = self._connect()
        cur = self._begin(raw)
        self._alerts, self._redis_reserved, self._redis_releases = [], [], []
        try:
            if clicks:
                cur.executemany(self._click_sql, clicks)
            if impressions:
                cur.executemany(self._impression_sql, impressions)
            for slot in conversions:
                slot[2], slot[3] = self._one_conversion(cur, slot[0], slot[1], savepoints)
        except BaseException:
            # Nothing of this attempt committed: Redis reservations are given back (SQL
            # ones went with the rollback).
            reserved = list(self._redis_reserved)
            self._undo_redis(self._redis_reserved)
            self._settle_redis(reserved)
            raise
        try:
            raw.commit() if not self.sql.sqlite else cur.execute("COMMIT")
        except BaseException:
            # The commit failed, its outcome unknown: Redis stays as a killed tracker would
            # leave it, as the unit of work does (`SqlConversionCaps.abandoned`). If it did
            # commit, the reservations are its conversions'; if not, each one's retry gives
            # its leftover back, and `reconcile_unsettled` the rest (they stay noted).
            self._redis_reserved, self._redis_releases = [], []
            raise
        self._after_commit()

    def _undo_redis(self, reservation_ids: list[str]) -> None:
        redis = self.cap_store.redis
        for rid in reservation_ids:
            try:
                if redis is not None:
                    redis.release(rid)
            except Exception:
                log.exception("could not release cap reservation %s", rid)
        reservation_ids.clear()

    def _settle_redis(self, reservation_ids: list[str]) -> None:
        """The batch's transaction has ended: its Redis reservations are no longer noted as
        unsettled (`storage.tracking_caps.UNSETTLED`; one round trip per batch with any)."""
        try:
            self.cap_store.settled(reservation_ids)
        except Exception:  # the reconciliation job settles what is left noted
            log.exception("could not settle %d cap reservations", len(reservation_ids))

    def _after_commit(self) -> None:
        """Cap alerts and Redis releases, once the batch is durable (off the request path:
        the requests are answered by `_settle` right after)."""
        if self._redis_reserved:
            self._settle_redis(self._redis_reserved)
            self._redis_reserved = []
        if self._redis_releases:
            self._undo_redis(self._redis_releases)
        if self._alerts:
            alerts, self._alerts = self._alerts, []
            try:
                store_alerts(
                    self.engine, [(a, rule.metric) for a, rule in alerts], self.clock.now()
                )
            except Exception:
                log.exception("could not store %d cap alerts", len(alerts))

    @staticmethod
    def _settle(batches: list[_Batch], error: BaseException | None) -> None:
        """One wake-up per batch (one per event loop), whatever its size."""
        for batch in batches:
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                batch.loop.call_soon_threadsafe(_resolve, batch.future, error)

    # -- degraded mode -------------------------------------------------------------------
    def _try_database(self) -> None:
        """Reconnect and drain our spool and any orphaned spool into the database."""
        self._last_attempt = time.monotonic()
        try:
            self._connect()  # the writer's own connection: is the database back?
            records = self.spool.read() if self.spool.pending or self.spool.path.exists() else []
            if records:
                self._drain(records)
                self.spool.clear()
                log.warning("drained %d spooled events into the database", len(records))
            for path in self.spool.orphans():
                taken = take_orphan(path)
                if taken is None:
                    continue
                fd, orphan_records = taken
                drained = False
                try:
                    self._drain(orphan_records)
                    drained = True
                    log.warning("drained %d events from %s", len(orphan_records), path)
                finally:
                    release_orphan(path, fd, drained=drained)
            self.degraded = False
        except Exception as exc:
            if not self.degraded:
                log.error("database unavailable: %s", exc)
            if self._raw is not None:
                self._rollback(self._raw)
            self._disconnect(broken=True)
            self.degraded = True

    def _drain(self, records: list[dict[str, Any]]) -> None:
        by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for record in records:
            table = record.get("t")
            row = record.get("r")
            if table not in _TABLES or not isinstance(row, list):
                continue
            if len(row) == len(_TABLES[table]) - 1:
                row = [*row, None]  # spooled before creative_id (migration 0010) was added
            elif len(row) != len(_TABLES[table]):
                continue
            if not isinstance(row[0], str):
                continue
            created = row[1]
            if not self.sql.sqlite:
                created = datetime.fromisoformat(created).replace(tzinfo=UTC)
            by_table[table].append((row[0], created, *row[2:]))
        # A connection of the engine (its configured synchronous level: the commit is
        # durable before the caller deletes the spool file), not the writer's own.
        with self.engine.begin() as conn:
            for table in _TABLES:  # always clicks, then impressions: the lock order of folds
                rows = by_table.get(table)
                if not rows:
                    continue
                # Rows whose ids a rollup fold has passed while they sat in the spool: folded
                # here, or reports would never count them (`storage.rollups`).
                late = late_events(conn, table, [row[0] for row in rows])
                for start in range(0, len(rows), 5000):
                    conn.exec_driver_sql(
                        self.sql(_insert_sql(table, _TABLES[table], "id")),
                        rows[start : start + 5000],
                    )
                fold_events(conn, table, late)

    # -- conversions -----------------------------------------------------------------------
    def _one_conversion(
        self, cur: Any, postback: Postback, program: ProgramInfo, savepoint: bool
    ) -> tuple[ConversionOutcome | None, BaseException | None]:
        """Write one conversion or reversal. Without `savepoint` (the usual path: two
        statements fewer per conversion, ~10% of its cost), a refusal is fine as long as
        nothing was written yet — which is how `_convert` and `_reverse` are built —, and
        anything else raises `_Rerun` so the batch is redone with a SAVEPOINT each."""
        if savepoint:
            cur.execute("SAVEPOINT pf_conv")
        self._wrote = False
        marks = (len(self._alerts), len(self._redis_reserved), len(self._redis_releases))
        try:
            if postback.kind is PostbackKind.CONVERSION:
                outcome = self._convert(cur, postback, program)
            else:
                outcome = self._reverse(cur, postback, program)
        except self._driver_errors() as exc:
            # A database that fails here fails for the whole batch (it is probably down).
            raise exc
        except Exception as exc:
            if not savepoint:
                if isinstance(exc, PartnerflowError) and not self._wrote:
                    return None, exc
                raise _Rerun from exc
            if not isinstance(exc, PartnerflowError):
                log.exception("conversion %s failed", postback.order_id)
            # What this conversion did outside the database goes with its savepoint — Redis
            # first, while the savepoint still holds the conversion row: once it is rolled
            # back, another tracker's attempt at the same order (waiting on that row) may
            # reserve under the same id, and a later undo would take that reservation.
            del self._alerts[marks[0] :], self._redis_releases[marks[2] :]
            undone = self._redis_reserved[marks[1] :]
            self._undo_redis(list(undone))
            self._settle_redis(undone)
            del self._redis_reserved[marks[1] :]
            cur.execute("ROLLBACK TO SAVEPOINT pf_conv")
            cur.execute("RELEASE SAVEPOINT pf_conv")
            return None, exc
        if savepoint:
            cur.execute("RELEASE SAVEPOINT pf_conv")
        return outcome, None

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        module = self.engine.dialect.dbapi
        return (module.OperationalError, module.InterfaceError) if module else ()

    def _click_touch(self, cur: Any, click_id: str | None, by: AttributedBy) -> Touch | None:
        if not click_id:
            return None
        cur.execute(
            self.sql(
                "SELECT program_id, offer_id, partner_id, created_at, fraud_score, flags,"
                " country, sub1, sub2, sub3, sub4, sub5 FROM clicks WHERE id = ?"
            ),
            (click_id,),
        )
        row = cur.fetchone()
        label = "click" if by is AttributedBy.CLICK_ID else "cookie click"
        if row is None:
            return Touch(by, NO_PROGRAM, 0, 0, label=f"{label} {click_id} not found")
        at = _as_utc(row[3])
        self._clicks[click_id] = _ClickRow(
            ClickEvidence(at, row[4], row[5]),
            row[6],
            {f"sub{i}": v for i, v in enumerate(row[7:12], start=1) if v is not None},
        )
        return Touch(by, row[0], row[1], row[2], click_id, at, f"{label} {click_id}")

    def _customer_touch(self, cur: Any, program_id: int, customer_id: str) -> Touch | None:
        cur.execute(
            self.sql(
                "SELECT offer_id, partner_id, click_id FROM conversions "
                "WHERE program_id = ? AND customer_id = ? AND partner_id IS NOT NULL "
                "ORDER BY id DESC LIMIT 1"
            ),
            (program_id, customer_id),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return Touch(
            AttributedBy.CUSTOMER, program_id, row[0], row[1], row[2],
            label=f"customer {customer_id} last brought by partner {row[1]}",
        )  # fmt: skip

    def _coupon_touch(self, cur: Any, program_id: int, code: str | None) -> Touch | None:
        if not code:
            return None
        coupon = self.lookup.snapshot.coupons.get((program_id, code))
        if coupon is not None:
            return Touch(
                AttributedBy.COUPON, program_id, coupon.offer_id, coupon.partner_id,
                label=f"coupon {code}",
            )  # fmt: skip
        cur.execute(
            self.sql(
                "SELECT offer_id, partner_id FROM coupon_codes WHERE program_id = ? AND code = ?"
            ),
            (program_id, code),
        )
        row = cur.fetchone()
        if row is None:
            return Touch(AttributedBy.COUPON, NO_PROGRAM, 0, 0, label=f"coupon {code} unknown")
        return Touch(AttributedBy.COUPON, program_id, row[0], row[1], label=f"coupon {code}")

    def _convert(self, cur: Any, pb: Postback, program: ProgramInfo) -> ConversionOutcome:
        sql = self.sql
        now = self.clock.now()
        currency = pb.currency or program.currency
        if pb.amount is not None:
            check_minor_units(pb.amount, currency)
        sale = Money(pb.amount if pb.amount is not None else Decimal(0), currency)
        self._clicks.clear()
        candidates = [
            self._click_touch(cur, pb.click_id, AttributedBy.CLICK_ID),
            self._click_touch(cur, pb.cookie_click_id, AttributedBy.COOKIE)
            if pb.cookie_click_id != pb.click_id
            else None,
            self._coupon_touch(cur, program.id, pb.coupon),
        ]
        found = attribute(program.id, program.cookie_window_days, now, candidates)
        if found.touch is None and pb.customer_id:
            candidates.append(self._customer_touch(cur, program.id, pb.customer_id))
            found = attribute(program.id, program.cookie_window_days, now, candidates)
        touch = found.touch
        notes = [n for n in found.notes if n != "not attributed to a partner" or touch is None]
        status = ConversionStatus.PENDING
        priced: Priced | None = None
        click = self._clicks.get(touch.click_id) if touch and touch.click_id else None
        score = None
        if touch is not None:
            snapshot = self.lookup.snapshot
            offer = snapshot.offers.get(touch.offer_id)
            # From the snapshot (at most `ttl` seconds old, like the link's status): a
            # query per conversion would cost more than the rest of the conversion.
            partner_status = snapshot.partner_status.get(touch.partner_id)
            if partner_status is None:
                cur.execute(sql("SELECT status FROM partners WHERE id = ?"), (touch.partner_id,))
                row = cur.fetchone()
                partner_status = row[0] if row else "unknown"
            if partner_status not in EARNING_STATUSES:
                status = ConversionStatus.REJECTED
                notes.append("partner is not approved or active: no commission")
            else:
                priced = self._price(cur, program, touch, pb, sale, now, offer, click)
                notes.append(priced.explanation)
            score = score_attributed(now, click.evidence if click else None)
        commission = priced.amount if priced is not None else None
        flags = score_flags(score) if score is not None else None
        flagged = bool(score is not None and score.flagged)
        if flagged and score is not None:
            notes.append(
                f"fraud score {score.score} ({'; '.join(score.reasons)}): "
                "the commission stays pending until reviewed"
            )
        explanation = "; ".join(notes)
        self._wrote = True
        cur.execute(
            sql(
                "INSERT INTO conversions (created_at, program_id, offer_id, partner_id, click_id,"
                " order_id, event_type, amount_micros, currency, status, attributed_by,"
                " customer_id, coupon_code, is_flagged, flags, refunded_micros)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
                " ON CONFLICT (program_id, order_id) DO NOTHING RETURNING id"
            ),
            (
                sql.ts(now),
                program.id,
                touch.offer_id if touch else None,
                touch.partner_id if touch else None,
                touch.click_id if touch else None,
                pb.order_id,
                pb.event_type.value,
                sale.to_micros(),
                currency,
                status.value,
                found.by.value,
                pb.customer_id,
                pb.coupon,
                flagged,
                flags,
            ),
        )
        inserted = cur.fetchone()
        if inserted is None:
            return self._existing(cur, program, pb.order_id, "conversion")
        conversion_id = int(inserted[0])
        if touch is not None and status is ConversionStatus.PENDING:
            verdict = self._caps(cur, program, touch, pb, sale, priced, now)
            if not verdict.allowed:
                status = ConversionStatus.REJECTED
                commission = None
                flags = flags_text(flags, verdict.flag)
                explanation = f"{explanation}; {verdict.reason}"
                cur.execute(
                    sql("UPDATE conversions SET status = ?, flags = ? WHERE id = ?"),
                    (status.value, flags, conversion_id),
                )
        if commission is not None and touch is not None:
            assert priced is not None
            self._ledger(
                cur, now, program.id, touch.partner_id, conversion_id,
                [("commission", "pending", commission.to_micros())],
                commission.currency, explanation, txn_id_for(f"commission:{conversion_id}"),
                txn_key=f"commission:{conversion_id}", fx_rate=priced.fx_rate,
                fx_rate_date=priced.fx_rate_date,
            )  # fmt: skip
        conversion = Conversion(
            id=ConversionId(conversion_id),
            program_id=ProgramId(program.id),
            offer_id=OfferId(touch.offer_id) if touch else None,
            partner_id=PartnerId(touch.partner_id) if touch else None,
            order_id=pb.order_id,
            event_type=pb.event_type,
            amount=sale.amount,
            currency=currency,
            status=status,
            attributed_by=found.by,
            created_at=now,
            click_id=ClickId(touch.click_id) if touch and touch.click_id else None,
            customer_id=pb.customer_id,
            coupon_code=pb.coupon,
        )
        self._publish_created(
            cur, now, conversion, commission, explanation, click.sub_ids if click else {},
            flags if flagged else None,
        )  # fmt: skip
        return ConversionOutcome(
            kind="conversion",
            conversion_id=conversion_id,
            order_id=pb.order_id,
            duplicate=False,
            status=status.value,
            attributed_by=found.by.value,
            partner_id=touch.partner_id if touch else None,
            amount=str(commission.amount) if commission else None,
            currency=commission.currency if commission else currency,
            explanation=explanation,
        )

    def _price(
        self,
        cur: Any,
        program: ProgramInfo,
        touch: Touch,
        pb: Postback,
        sale: Money,
        now: datetime,
        offer: OfferInfo | None,
        click: _ClickRow | None,
    ) -> Priced:
        """The commission engine, as `tracking.services.record_conversion` calls it."""
        terms = ProgramTerms(
            program.id, program.slug, program.currency, program.lock_period_days,
            program.attribution_model, program.cookie_window_days,
        )  # fmt: skip
        return commission_for_conversion(
            self.pricing.book(program.id),
            CursorFacts(cur, self.sql, self.sql.ts).as_repository(),
            self.pricing.rates(),
            terms,
            ConversionInput(
                partner_id=touch.partner_id,
                offer_id=touch.offer_id,
                event_type=pb.event_type.value,
                amount=sale,
                at=now,
                customer_id=pb.customer_id,
                country=click.country if click else None,
            ),
            simple_plan=offer.commission_plan if offer is not None else None,
        )

    def _execute(self, cur: Any) -> Execute:
        def execute(query: str, params: Sequence[Any]) -> list[Any]:
            cur.execute(self.sql(query), tuple(params))
            return list(cur.fetchall()) if cur.description is not None else []

        return execute

    def _caps(
        self,
        cur: Any,
        program: ProgramInfo,
        touch: Touch,
        pb: Postback,
        sale: Money,
        priced: Priced | None,
        now: datetime,
    ) -> CapVerdict:
        rules = self.lookup.snapshot.caps.get(program.id)
        if not rules:
            return ALLOWED
        converted = priced.fx.converted.amount if priced and priced.fx else None
        payout = priced.amount if priced and priced.amount else None
        rid = cap_reservation_id(program.id, pb.order_id)
        # The conversion row was inserted just now (and is locked until this batch ends):
        # `conversion_verdict` gives back a Redis reservation a killed tracker left under its
        # id before reserving.
        verdict = conversion_verdict(
            self.cap_store, rules, self._execute(cur), self.sql.ts,
            program_id=program.id, tz=program.timezone, offer_id=touch.offer_id,
            partner_id=touch.partner_id, at=now,
            revenue=cap_revenue(sale.amount, sale.currency, program.currency, converted),
            payout=payout.amount if payout and payout.currency == program.currency else
            Decimal(0),
            reservation_id=rid, order_id=pb.order_id, alerts=self._alerts,
        )  # fmt: skip
        if verdict.reserved and self.cap_store.redis is not None:
            self._redis_reserved.append(rid)  # outside the transaction: undone by hand
        return verdict

    def _publish(self, cur: Any, now: datetime, events: list[tuple[str, dict[str, Any],
                 int, int | None]]) -> None:  # fmt: skip
        """Outbox rows in the conversion's transaction (see storage.outbox)."""
        self._wrote = True
        stamp = self.sql.ts(now)
        cur.executemany(
            self._outbox_sql,
            [
                (event_id, kind, program_id, partner_id, _PAYLOAD_JSON.encode(payload), stamp)
                for event_id, (kind, payload, program_id, partner_id) in zip(
                    new_event_ids(len(events)), events, strict=True
                )
            ],
        )

    def _publish_created(
        self,
        cur: Any,
        now: datetime,
        conversion: Conversion,
        commission: Money | None,
        explanation: str,
        sub_ids: dict[str, str],
        flags: str | None,
    ) -> None:
        pid, partner = conversion.program_id, conversion.partner_id
        text = money_text(commission.amount) if commission is not None else None
        created = conversion_payload(conversion, text, explanation, sub_ids)
        events: list[tuple[str, dict[str, Any], int, int | None]] = [
            (CONVERSION_CREATED, created, pid, partner),
        ]
        if commission is not None:
            events.append(
                (COMMISSION_CREATED, commission_created_payload(conversion, commission,
                 explanation), pid, partner)
            )  # fmt: skip
        if flags is not None:
            # The same conversion object plus its flags (payloads are encoded, never changed).
            events.append(
                (CONVERSION_FLAGGED, {"conversion": {**created["conversion"], "flags": flags}},
                 pid, partner)
            )  # fmt: skip
        self._publish(cur, now, events)

    def _existing(
        self, cur: Any, program: ProgramInfo, order_id: str, kind: str
    ) -> ConversionOutcome:
        cur.execute(
            self.sql(
                "SELECT id, status, attributed_by, partner_id, currency FROM conversions"
                " WHERE program_id = ? AND order_id = ?"
            ),
            (program.id, order_id),
        )
        row = cur.fetchone()
        if row is None:  # pragma: no cover - the conflict guarantees the row exists
            raise NotFound(f"order {order_id} not found")
        amount, currency = None, row[4]
        if kind == "conversion":  # the commission the first answer gave, as booked
            cur.execute(
                self.sql(
                    "SELECT SUM(amount_micros), MIN(currency) FROM commission_entries"
                    " WHERE conversion_id = ? AND kind = 'commission'"
                ),
                (int(row[0]),),
            )
            booked = cur.fetchone()
            if booked is not None and booked[0] is not None:
                commission = Money.from_micros(int(booked[0]), booked[1]).rounded()
                amount, currency = str(commission.amount), commission.currency
        return ConversionOutcome(
            kind=kind,
            conversion_id=int(row[0]),
            order_id=order_id,
            duplicate=True,
            status=row[1],
            attributed_by=row[2],
            partner_id=row[3],
            amount=amount,
            currency=currency,
            explanation="duplicate order id: already recorded",
        )

    def _ledger(
        self,
        cur: Any,
        now: datetime,
        program_id: int,
        partner_id: int,
        conversion_id: int,
        entries: list[tuple[str, str, int]],
        currency: str,
        reason: str,
        txn_id: str,
        *,
        txn_key: str | None = None,
        fx_rate: Decimal | None = None,
        fx_rate_date: date | None = None,
    ) -> None:
        self._wrote = True
        cur.executemany(
            self.sql(
                "INSERT INTO commission_entries (txn_id, txn_key, created_at, program_id,"
                " partner_id, conversion_id, kind, bucket, amount_micros, currency, reason,"
                " author, fx_rate, fx_rate_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            [
                (txn_id, txn_key, self.sql.ts(now), program_id, partner_id, conversion_id, kind,
                 bucket, micros, currency, reason[:2000], "system:postback",
                 str(fx_rate) if fx_rate is not None and kind == "commission" else None,
                 fx_rate_date.isoformat() if fx_rate_date and kind == "commission" else None)
                for kind, bucket, micros in entries
            ],
        )  # fmt: skip

    def _reverse(self, cur: Any, pb: Postback, program: ProgramInfo) -> ConversionOutcome:
        sql = self.sql
        if not sql.sqlite:
            # The program's ledger lock (`SqlLedger.lock_program`), as the approval job and
            # the other money use cases take it: a refund read between the job's read and
            # its write would otherwise see its reversed commission approved. Tried, never
            # waited for: this batch also holds the clicks of every tracker request in it,
            # and an approval run or payout build can hold the lock for seconds. A busy
            # ledger refuses this refund alone (503, nothing written; senders retry), and
            # two writers can never deadlock on two programs' locks.
            cur.execute(sql("SELECT pg_try_advisory_xact_lock(?)"), (ledger_lock_key(program.id),))
            if not cur.fetchone()[0]:
                raise DatabaseUnavailable(
                    "the program's ledger is busy (an approval or payout is running); retry"
                )
        cur.execute(
            sql(
                "SELECT id, amount_micros, currency, refunded_micros, partner_id, status,"
                " attributed_by, offer_id, event_type, click_id, coupon_code, customer_id,"
                " created_at FROM conversions WHERE program_id = ? AND order_id = ?"
            ),
            (program.id, pb.order_id),
        )
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"order {pb.order_id} was never recorded", field="order_id")
        conv_id, order_micros, currency, refunded, partner_id, status, attributed_by = row[:7]
        row_facts = row
        if pb.currency and pb.currency != currency:
            raise InvalidInput(
                f"refund currency {pb.currency} differs from the order's {currency}",
                field="currency",
            )
        if pb.amount is not None:
            # In the order's currency: a refund of 0.000001 USD would reverse "0.00".
            check_minor_units(pb.amount, currency)
        refund_micros = Money(pb.amount, currency).to_micros() if pb.amount is not None else None
        key = pb.refund_id or f"{pb.kind.value}:{refund_micros if refund_micros else 'rest'}"
        txn_id = _txn_id(f"r|{conv_id}|{key}")
        txn_key = f"reversal:{conv_id}:{key}"[:200]
        cur.execute(sql("SELECT COUNT(*) FROM commission_entries WHERE txn_id = ?"), (txn_id,))
        already = cur.fetchone()[0] > 0
        # Fully refunded: all of its amount, or — an order of amount zero, whose reversal
        # moves no amount and may book no entry — its status.
        done = (
            refunded >= order_micros
            if order_micros > 0
            else status == ConversionStatus.REVERSED.value
        )
        if already or done:
            if (
                status == ConversionStatus.REVERSED.value
                and self.cap_store.redis is not None
                and program.id in self.lookup.snapshot.caps
            ):
                # Its Redis release runs after the commit: a tracker killed in between left
                # the room taken, and the unanswered refund comes again. Releasing is
                # idempotent (the reservation key goes with the first release).
                self._redis_releases.append(cap_reservation_id(program.id, pb.order_id))
            outcome = self._existing(cur, program, pb.order_id, pb.kind.value)
            return ConversionOutcome(
                **{**_fields(outcome), "explanation": "refund already recorded"}
            )
        cur.execute(
            sql(
                "SELECT kind, bucket, amount_micros, currency FROM commission_entries"
                " WHERE conversion_id = ?"
            ),
            (conv_id,),
        )
        commission = 0
        net: dict[str, int] = defaultdict(int)
        # The commission is booked in the program's currency (an order in another currency
        # is converted when priced): its reversal is taken back in that currency too, not
        # in the order's, or the ledger would net EUR commissions against USD reversals.
        ledger_currency = currency
        for kind, bucket, micros, entry_currency in cur.fetchall():
            net[bucket] += micros
            if kind == "commission":
                commission += micros
                ledger_currency = entry_currency
        reversal = reversal_for(
            order_micros, refunded, refund_micros, commission, net, MINOR_UNITS[ledger_currency]
        )
        now = self.clock.now()
        # Fixed-point: str() of a normalized 10 is "1E+1", which went into the ledger reason.
        refund_text = f"{Money.from_micros(reversal.refund_micros, currency).amount.normalize():f}"
        reason = (
            f"{pb.kind.value} of {refund_text} {currency} on order {pb.order_id}"
            f" ({'full' if reversal.fully_refunded else 'partial, pro rata'})"
            if order_micros > 0
            else f"{pb.kind.value} of order {pb.order_id} (amount zero: its whole commission)"
        )
        if reversal.entries and partner_id is not None:
            self._ledger(
                cur, now, program.id, partner_id, conv_id,
                [("reversal", bucket, micros) for bucket, micros in reversal.entries],
                ledger_currency, reason, txn_id, txn_key=txn_key,
            )  # fmt: skip
        new_status = ConversionStatus.REVERSED.value if reversal.fully_refunded else status
        self._wrote = True
        cur.execute(
            sql("UPDATE conversions SET refunded_micros = ?, status = ? WHERE id = ?"),
            (refunded + reversal.refund_micros, new_status, conv_id),
        )
        if reversal.fully_refunded and program.id in self.lookup.snapshot.caps:
            # A refunded conversion gives its cap capacity back (once: the reservation row
            # or key is deleted by the first release).
            rid = cap_reservation_id(program.id, pb.order_id)
            if self.cap_store.redis is None:
                self.cap_store.release(self._execute(cur), rid)
            else:
                self._redis_releases.append(rid)  # after the commit
        reversed_micros = -sum(m for _, m in reversal.entries)
        self._publish_reversed(
            cur,
            now,
            program.id,
            row_facts,
            new_status,
            pb,
            reversal,
            refunded,
            reversed_micros,
            reason,
            txn_key,
            ledger_currency,
        )
        return ConversionOutcome(
            kind=pb.kind.value,
            conversion_id=conv_id,
            order_id=pb.order_id,
            duplicate=False,
            status=new_status,
            attributed_by=attributed_by,
            partner_id=partner_id,
            amount=str(Money.from_micros(reversed_micros, ledger_currency).rounded().amount),
            currency=ledger_currency,
            explanation=reason,
        )

    def _publish_reversed(
        self,
        cur: Any,
        now: datetime,
        program_id: int,
        row: Any,
        new_status: str,
        pb: Postback,
        reversal: Reversal,
        refunded_before: int,
        reversed_micros: int,
        reason: str,
        txn_key: str,
        ledger_currency: str,
    ) -> None:
        """`conversion.reversed` (and `commission.reversed` when money was taken back, in
        the commission's currency), the same payloads as
        `commissions.services.reverse_conversion` publishes."""
        conv_id, order_micros, currency, _, partner_id, _, attributed_by = row[:7]
        offer_id, event_type, click_id, coupon_code, customer_id, created_at = row[7:13]
        conversion = {
            "id": conv_id, "program_id": program_id, "offer_id": offer_id,
            "partner_id": partner_id, "order_id": pb.order_id, "event_type": event_type,
            **_money(order_micros, currency), "status": new_status,
            "attributed_by": attributed_by, "click_id": click_id, "coupon_code": coupon_code,
            "customer_id": customer_id, "created_at": _as_utc(created_at).isoformat(),
        }  # fmt: skip
        taken_back = _money(reversed_micros, ledger_currency) if reversal.entries else None
        events: list[tuple[str, dict[str, Any], int, int | None]] = []
        if taken_back is not None and partner_id is not None:
            events.append((COMMISSION_REVERSED, {"commission": {
                "txn_id": txn_key, "kind": "reversal", "program_id": program_id,
                "partner_id": partner_id, "conversion_id": conv_id, **taken_back,
                "reason": reason, "author": "system:postback", "created_at": now.isoformat(),
            }}, program_id, partner_id))  # fmt: skip
        events.append((CONVERSION_REVERSED, {
            "conversion": conversion,
            "reversal": {
                "kind": pb.kind.value,
                "refund": _money(reversal.refund_micros, currency),
                "refunded_total": _money(refunded_before + reversal.refund_micros, currency),
                "fully_refunded": reversal.fully_refunded,
                "commission_reversed": taken_back,
                "reason": reason,
            },
        }, program_id, partner_id))  # fmt: skip
        self._publish(cur, now, events)


def _money(micros: int, currency: str) -> dict[str, str]:
    return money_fields(Money.from_micros(micros, currency))


def _fields(outcome: ConversionOutcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in outcome.__dataclass_fields__}


def _txn_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _as_utc(value: Any) -> datetime:
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _spool_record(table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    created = row[1] if isinstance(row[1], str) else sqlite_timestamp(row[1])
    return {"t": table, "r": [row[0], created, *row[2:]]}


def _resolve(future: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)
