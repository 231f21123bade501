"""Daily rollups of the event tables, kept up to date incrementally (SQLAlchemy Core, the
same SQL on SQLite and PostgreSQL).

How they stay exact:
- **Traffic** (clicks, impressions) is append-only, so it is *folded*: events past a
  high-water mark on their time-ordered id (48-bit millisecond prefix) are summed into
  `rollup_traffic` with an additive upsert, and the mark moves in the same transaction.
  The mark is claimed by a guarded UPDATE, so two folds racing never add an event twice;
  a re-run finds nothing past the mark and changes nothing. Events younger than
  `settle_seconds` are left for the next fold, so a batch another writer is still
  committing is not skipped.
- **Conversions** change after the fact (refunds, fraud rejections), so their rollup is
  *recomputed* per dirty (program, local day): a day is dirty when a conversion of it was
  written, or a ledger entry about one of its conversions was appended, since the last
  fold (minus an overlap: recomputing is idempotent, so overlap costs only time).
- Reports read the rollups plus the raw traffic past the mark ("tail"), so they are exact
  for traffic at any moment and for conversions as of the last fold.

- **Late traffic**: events the tracker spooled while the database was unreachable (or a
  crashed tracker left in its spool) are stored when the spool is drained, possibly after
  a fold (another tracker's traffic) moved the mark past their ids. The drain folds those
  itself, in its own transaction: `late_events` lists the drained ids at or below the mark
  that are not stored yet, and `fold_events` adds exactly those once inserted.
- Folds, drains and rebuilds of a table take its traffic lock first (`lock_traffic`:
  PostgreSQL holds a transaction-level advisory lock; SQLite's write transactions already
  exclude each other), so none of them reads a mark another is about to move.

What they can miss (run `partnerflow report refresh --rebuild` for the days concerned):
a status change of a conversion that appended no ledger entry (e.g. rejecting one that
earned no commission); a change of the program's timezone.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from partnerflow.core.errors import Conflict
from partnerflow.core.ids import click_id_time_ms
from partnerflow.storage import tables as t
from partnerflow.storage.channels import partner_network
from partnerflow.storage.reports import EARNING_KINDS, _bucket, local_day_bounds
from partnerflow.storage.rollup_grain import (
    CONVERSION_MEASURES,
    CREATIVE,
    NO_FILTERS,
    TRAFFIC_MEASURES,
    Filters,
    GrainBuilder,
    GrainKey,
    ProgramFacts,
    group_measures,
    merge_measures,
)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
DEFAULT_SETTLE_SECONDS = 2.0
CONVERSION_OVERLAP = timedelta(minutes=10)
CHUNK_ROWS = 500_000
TAIL_MARGIN = timedelta(minutes=5)
_GRAIN_KEYS = (
    "program_id",
    "day",
    "partner_id",
    "offer_id",
    "link_id",
    "country",
    "device",
    "channel",
    "creative_id",
)


def id_prefix(ms: int) -> str:
    """The 10-character time prefix of event ids created at `ms`: every id created
    earlier compares lower (Crockford base32 sorts like the number it encodes)."""
    value = ms & ((1 << 50) - 1)
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(45, -1, -5))


@dataclass(frozen=True, slots=True)
class FoldResult:
    clicks: int
    impressions: int
    conversion_days: int


# --- reference data ---------------------------------------------------------------------


def program_facts(conn: Connection, program_id: int | None = None) -> dict[int, ProgramFacts]:
    p = t.programs.c
    query = select(p.id, p.currency, p.timezone)
    if program_id is not None:
        query = query.where(p.id == program_id)
    return {r.id: ProgramFacts(r.id, r.currency, r.timezone) for r in conn.execute(query)}


def partner_networks(conn: Connection, program_ids: Iterable[int]) -> dict[int, str | None]:
    ids = list(program_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(t.partners.c.id, t.partners.c.social).where(t.partners.c.program_id.in_(ids))
    )
    return {r.id: partner_network(r.social if isinstance(r.social, dict) else None) for r in rows}


def builder(conn: Connection, program_id: int | None = None) -> GrainBuilder:
    programs = program_facts(conn, program_id)
    return GrainBuilder(programs, partner_networks(conn, programs))


# --- raw aggregation --------------------------------------------------------------------


def _nz(value: Any) -> Any:
    return func.coalesce(value, "")


def add_raw_traffic(
    conn: Connection,
    grain: GrainBuilder,
    click_where: Sequence[ColumnElement[bool]],
    impression_where: Sequence[ColumnElement[bool]] | None,
    extra: str | None = None,
) -> int:
    """Aggregate raw clicks (and impressions, unless None) matching the conditions into
    `grain`; `extra` names a sub-ID column to keep apart. Returns the clicks seen."""
    c = t.clicks.c
    extra_col: Any = _nz(c[extra]) if extra else literal("")
    bucket = _bucket(conn, c.created_at)
    dims = (
        c.program_id,
        bucket,
        c.partner_id,
        c.offer_id,
        c.link_id,
        _nz(c.country),
        _nz(c.device),
        _nz(c.referrer),
        extra_col,
        func.coalesce(c.creative_id, 0),
    )
    labelled = [d.label(f"d{i}") for i, d in enumerate(dims)]
    rows = conn.execute(
        select(
            *labelled,
            func.sum(case((c.is_bot == false(), 1), else_=0)),
            func.sum(case(((c.is_bot == false()) & (c.is_unique == true()), 1), else_=0)),
            func.sum(case((c.is_bot == true(), 1), else_=0)),
        )
        .where(*click_where)
        .group_by(*labelled)
    ).all()
    grain.add_clicks(rows)
    seen = sum(int(r[-3]) + int(r[-1]) for r in rows)
    if impression_where is not None:
        i = t.impressions.c
        idims = [
            d.label(f"i{n}")
            for n, d in enumerate(
                (
                    i.program_id,
                    _bucket(conn, i.created_at),
                    i.partner_id,
                    i.offer_id,
                    i.link_id,
                    func.coalesce(i.creative_id, 0),
                )
            )
        ]
        grain.add_impressions(
            conn.execute(
                select(*idims, func.count())
                .where(*impression_where, i.is_bot == false())
                .group_by(*idims)
            ).all()
        )
    return seen


def add_raw_conversions(
    conn: Connection,
    grain: GrainBuilder,
    where: Sequence[ColumnElement[bool]],
    extra: str | None = None,
) -> None:
    """Aggregate counted conversions (and their net commission) matching the conditions."""
    v, c, e = t.conversions.c, t.clicks.c, t.commission_entries.c
    extra_col: Any = _nz(c[extra]) if extra else literal("")
    dims = (
        v.program_id,
        _bucket(conn, v.created_at),
        v.partner_id,
        func.coalesce(v.offer_id, 0),
        func.coalesce(c.link_id, 0),
        _nz(c.country),
        _nz(c.device),
        _nz(c.referrer),
        _nz(v.coupon_code),
        v.attributed_by,
        extra_col,
        func.coalesce(c.creative_id, 0),  # the click's: conversions carry no creative
    )
    counted = (v.partner_id.is_not(None), v.status != "rejected", *where)
    joined = t.conversions.outerjoin(t.clicks, c.id == v.click_id)
    labelled = [d.label(f"d{i}") for i, d in enumerate(dims)]
    kinds = [v.event_type.label("et"), v.status.label("st"), v.currency.label("cur")]
    grain.add_conversions(
        conn.execute(
            # Revenue is net of partial refunds, as the commission is net of their
            # pro-rata reversals (a fully refunded order counts no revenue at all).
            select(*labelled, *kinds, func.count(), func.sum(v.amount_micros - v.refunded_micros))
            .select_from(joined)
            .where(*counted)
            .group_by(*labelled, *kinds)
        ).all()
    )
    cur = e.currency.label("ecur")
    grain.add_ledger(
        conn.execute(
            select(*labelled, cur, func.sum(e.amount_micros))
            .select_from(t.commission_entries.join(joined, e.conversion_id == v.id))
            .where(*counted, e.kind.in_(EARNING_KINDS))
            .group_by(*labelled, cur)
        ).all()
    )


# --- marks ------------------------------------------------------------------------------


def lock_traffic(conn: Connection, name: str) -> None:
    """Take the traffic lock of `name` ("clicks" or "impressions") until the transaction
    ends (PostgreSQL; on SQLite the write transaction holds the database already)."""
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(f"partnerflow-rollup-{name}".encode())
        conn.execute(select(func.pg_advisory_xact_lock(key)))


def read_mark(conn: Connection, name: str) -> str | None:
    m = t.rollup_marks.c
    value = conn.execute(select(m.value).where(m.name == name)).scalar()
    return None if value is None else str(value)


def _claim_mark(conn: Connection, name: str, old: str | None, new: str, now: datetime) -> None:
    """Move a mark from `old` to `new`, or raise Conflict when another fold moved it first
    (the caller's transaction then rolls back and adds nothing)."""
    m = t.rollup_marks.c
    if old is None:
        # A racing first fold makes this INSERT fail; the transaction is then lost anyway.
        try:
            conn.execute(insert(t.rollup_marks).values(name=name, value=new, updated_at=now))
        except IntegrityError:
            raise Conflict(f"another rollup fold claimed {name!r}", field=name) from None
        return
    moved = conn.execute(
        update(t.rollup_marks)
        .where(m.name == name, m.value == old)
        .values(value=new, updated_at=now)
    ).rowcount
    if moved != 1:
        raise Conflict(f"another rollup fold claimed {name!r}", field=name)


# --- writing rollups --------------------------------------------------------------------


def _upsert_add(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    names: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    if not rows:
        return
    ins: Any = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    stmt = ins(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={n: table.c[n] + stmt.excluded[n] for n in names},
    )
    for start in range(0, len(rows), 5000):
        conn.execute(stmt, rows[start : start + 5000])


def _traffic_rows(grain: Mapping[GrainKey, Sequence[int]]) -> list[dict[str, Any]]:
    return [
        {
            **dict(zip(_GRAIN_KEYS, (*key[:8], key[CREATIVE]), strict=True)),
            **dict(zip(TRAFFIC_MEASURES, values, strict=True)),
        }
        for key, values in grain.items()
    ]


def _conversion_rows(grain: Mapping[GrainKey, Sequence[int]]) -> list[dict[str, Any]]:
    return [
        {
            **dict(zip(_GRAIN_KEYS, (*key[:8], key[CREATIVE]), strict=True)),
            "coupon_code": key[8],
            **dict(zip(CONVERSION_MEASURES, values, strict=True)),
        }
        for key, values in grain.items()
    ]


def _fold_table(
    conn: Connection, name: str, table: Table, now: datetime, settle_seconds: float, max_rows: int
) -> int:
    """Fold one chunk of `table` (clicks or impressions) past its mark; the count folded."""
    cutoff = id_prefix(int((now.timestamp() - settle_seconds) * 1000))
    lock_traffic(conn, name)
    old = read_mark(conn, name)
    ids = table.c.id
    window = [ids < cutoff] + ([ids > old] if old is not None else [])
    upper = conn.execute(
        select(ids).where(*window).order_by(ids).offset(max_rows - 1).limit(1)
    ).scalar()
    if upper is None:
        upper = conn.execute(select(func.max(ids)).where(*window)).scalar()
    if upper is None:
        return 0
    _claim_mark(conn, name, old, str(upper), now)
    return _fold_selected(conn, table, [*window, ids <= upper])


def _fold_selected(conn: Connection, table: Table, where: Sequence[ColumnElement[bool]]) -> int:
    """Add the events of `table` matching `where` to the traffic rollup; the count added."""
    grain = builder(conn)
    if table is t.clicks:
        seen = add_raw_traffic(conn, grain, where, None)
    else:
        add_raw_traffic(conn, grain, [false()], where)
        seen = sum(v[3] for v in grain.traffic.values())
    _upsert_add(conn, t.rollup_traffic, _GRAIN_KEYS, TRAFFIC_MEASURES, _traffic_rows(grain.traffic))
    return seen


_TRAFFIC_TABLES = {"clicks": t.clicks, "impressions": t.impressions}
_IN_CHUNK = 500


def late_events(conn: Connection, name: str, ids: Sequence[str]) -> list[str]:
    """Of event ids about to be inserted into `name`, those a fold will never see: at or
    below the mark and not stored yet. Takes the traffic lock, so the mark stays put until
    the caller's transaction (which inserts them and calls `fold_events`) ends."""
    lock_traffic(conn, name)
    mark = read_mark(conn, name)
    if mark is None:
        return []
    below = sorted({i for i in ids if i <= mark})
    column = _TRAFFIC_TABLES[name].c.id
    stored: set[str] = set()
    for start in range(0, len(below), _IN_CHUNK):
        chunk = below[start : start + _IN_CHUNK]
        stored.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return [i for i in below if i not in stored]


def fold_events(conn: Connection, name: str, ids: Sequence[str]) -> int:
    """Add these stored events of `name` (from `late_events`) to the traffic rollup."""
    table = _TRAFFIC_TABLES[name]
    return sum(
        _fold_selected(conn, table, [table.c.id.in_(ids[start : start + _IN_CHUNK])])
        for start in range(0, len(ids), _IN_CHUNK)
    )


def _dirty_conversion_days(
    conn: Connection,
    programs: Mapping[int, ProgramFacts],
    since: datetime | None,
    grain: GrainBuilder,
) -> dict[int, set[date]]:
    v, e = t.conversions.c, t.commission_entries.c
    out: dict[int, set[date]] = {}
    for pid in programs:
        bucket = _bucket(conn, v.created_at).label("b")
        conv_where = [v.program_id == pid]
        ledger_where = [e.program_id == pid]
        if since is not None:
            conv_where.append(v.created_at >= since)
            ledger_where.append(e.created_at >= since)
        rows = list(conn.execute(select(bucket).where(*conv_where).group_by(bucket)).all())
        rows += conn.execute(
            select(bucket)
            .select_from(t.commission_entries.join(t.conversions, e.conversion_id == v.id))
            .where(*ledger_where)
            .group_by(bucket)
        ).all()
        days = {grain.day(pid, r[0]) for r in rows}
        if days:
            out[pid] = days
    return out


def recompute_conversion_days(conn: Connection, program_id: int, days: Iterable[date]) -> None:
    """Replace the conversion rollup of these local days with a fresh aggregation."""
    wanted = sorted(set(days))
    if not wanted:
        return
    grain = builder(conn, program_id)
    tz = grain.programs[program_id].timezone
    r = t.rollup_conversions.c
    v = t.conversions.c
    for first, last in _runs(wanted):
        conn.execute(
            delete(t.rollup_conversions).where(
                r.program_id == program_id, r.day >= first, r.day <= last
            )
        )
        start, end = local_day_bounds(first, last, tz)
        add_raw_conversions(
            conn, grain, [v.program_id == program_id, v.created_at >= start, v.created_at < end]
        )
    rows = _conversion_rows(grain.conversions)
    for start_i in range(0, len(rows), 5000):
        conn.execute(insert(t.rollup_conversions), rows[start_i : start_i + 5000])


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    runs: list[tuple[date, date]] = []
    for d in days:
        if runs and d == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


def _fold_conversions(conn: Connection, now: datetime) -> int:
    old = read_mark(conn, "conversions")
    since = None if old is None else datetime.fromisoformat(old) - CONVERSION_OVERLAP
    _claim_mark(conn, "conversions", old, now.astimezone(UTC).isoformat(), now)
    programs = program_facts(conn)
    grain = GrainBuilder(programs)
    dirty = _dirty_conversion_days(conn, programs, since, grain)
    for pid, days in dirty.items():
        recompute_conversion_days(conn, pid, days)
    return sum(len(d) for d in dirty.values())


def fold_new_events(
    conn: Connection,
    *,
    now: datetime | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    max_rows: int = CHUNK_ROWS,
) -> FoldResult:
    """Fold every event written since the last fold into the rollups. Idempotent and safe
    to call from several processes: each chunk commits together with its mark. On a
    connection already inside a transaction it folds there (the caller commits)."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    totals = {"clicks": 0, "impressions": 0}
    for name, table in (("clicks", t.clicks), ("impressions", t.impressions)):
        while True:
            if conn.in_transaction():
                n = _fold_table(conn, name, table, at, settle_seconds, max_rows)
            else:
                with conn.begin():
                    n = _fold_table(conn, name, table, at, settle_seconds, max_rows)
            totals[name] += n
            if n == 0 or n < max_rows:
                break
    if conn.in_transaction():
        days = _fold_conversions(conn, at)
    else:
        with conn.begin():
            days = _fold_conversions(conn, at)
    return FoldResult(totals["clicks"], totals["impressions"], days)


def rebuild(conn: Connection, program_id: int, first_day: date, last_day: date) -> None:
    """Recompute the rollups of these local days from the raw events (up to the marks, so
    the next fold neither misses nor repeats an event). For repairs; idempotent."""
    grain = builder(conn, program_id)
    tz = grain.programs[program_id].timezone
    start, end = local_day_bounds(first_day, last_day, tz)
    r = t.rollup_traffic.c
    conn.execute(
        delete(t.rollup_traffic).where(
            r.program_id == program_id, r.day >= first_day, r.day <= last_day
        )
    )
    c, i = t.clicks.c, t.impressions.c
    lock_traffic(conn, "clicks")
    lock_traffic(conn, "impressions")
    click_mark, impression_mark = read_mark(conn, "clicks"), read_mark(conn, "impressions")
    click_where = [
        c.program_id == program_id,
        c.created_at >= start,
        c.created_at < end,
        c.id <= click_mark if click_mark is not None else false(),
    ]
    impression_where = [
        i.program_id == program_id,
        i.created_at >= start,
        i.created_at < end,
        i.id <= impression_mark if impression_mark is not None else false(),
    ]
    add_raw_traffic(conn, grain, click_where, impression_where)
    _upsert_add(conn, t.rollup_traffic, _GRAIN_KEYS, TRAFFIC_MEASURES, _traffic_rows(grain.traffic))
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    recompute_conversion_days(conn, program_id, days)


# --- reading rollups --------------------------------------------------------------------

_ROLLUP_COLUMN = {
    "partner": "partner_id",
    "offer": "offer_id",
    "link": "link_id",
    "day": "day",
    "week": "day",
    "month": "day",
    "country": "country",
    "device": "device",
    "channel": "channel",
    "coupon": "coupon_code",
    "creative": "creative_id",
}
ROLLUP_DIMENSIONS = frozenset(_ROLLUP_COLUMN)


def _filter_where(table: Table, filters: Filters) -> list[ColumnElement[bool]]:
    c = table.c
    out: list[ColumnElement[bool]] = []
    if filters.partner_ids:
        out.append(c.partner_id.in_(filters.partner_ids))
    if filters.offer_ids:
        out.append(c.offer_id.in_(filters.offer_ids))
    if filters.countries:
        out.append(c.country.in_(filters.countries))
    if filters.devices:
        out.append(c.device.in_(filters.devices))
    return out


def rollup_measures(
    conn: Connection,
    program: ProgramFacts,
    dimension: str,
    first_day: date,
    last_day: date,
    filters: Filters = NO_FILTERS,
    *,
    with_tail: bool = True,
) -> dict[Any, dict[str, int]]:
    """Report groups from the rollups (plus the unfolded traffic tail): dimension value ->
    measure sums. Days, weeks and months are keyed by their first local day."""
    from partnerflow.storage.rollup_grain import NO_IMPRESSIONS, period_key

    column = _ROLLUP_COLUMN[dimension]
    parts: list[dict[Any, dict[str, int]]] = []
    sources: tuple[tuple[Table, tuple[str, ...]], ...] = (
        (t.rollup_traffic, TRAFFIC_MEASURES),
        (t.rollup_conversions, CONVERSION_MEASURES),
    )
    for table, names in sources:
        if column not in table.c:
            continue
        if dimension in NO_IMPRESSIONS:
            names = tuple(n for n in names if n != "impressions")
        key = table.c[column]
        rows = conn.execute(
            select(key, *(func.sum(table.c[n]) for n in names))
            .where(
                table.c.program_id == program.id,
                table.c.day >= first_day,
                table.c.day <= last_day,
                *_filter_where(table, filters),
            )
            .group_by(key)
        ).all()
        part: dict[Any, dict[str, int]] = {}
        for row in rows:
            group = row[0]
            if column == "day":
                group = period_key(_as_date(group), dimension)
            slot = part.setdefault(group, {})
            for n, value in zip(names, row[1:], strict=True):
                slot[n] = slot.get(n, 0) + int(value or 0)
        parts.append(part)
    if with_tail and column != "coupon_code":
        grain = builder(conn, program.id)
        start, end = local_day_bounds(first_day, last_day, program.timezone)
        c, i = t.clicks.c, t.impressions.c
        cm, im = read_mark(conn, "clicks"), read_mark(conn, "impressions")
        add_raw_traffic(
            conn,
            grain,
            [c.program_id == program.id, c.created_at < end, *_past_mark(c, cm, start)],
            [i.program_id == program.id, i.created_at < end, *_past_mark(i, im, start)],
        )
        parts.append(group_measures(grain.traffic, TRAFFIC_MEASURES, dimension, filters))
    return merge_measures(*parts)


def _past_mark(columns: Any, mark: str | None, start: datetime) -> list[ColumnElement[bool]]:
    """Events created from `start` on and past a mark. The time bound taken from the mark
    is redundant (an id's time prefix is its creation time) but it is the one lower bound
    the database gets, so the (program, created_at) index scans only the tail instead of
    the whole period (SQLite uses a single range bound per column)."""
    if mark is None:
        return [columns.created_at >= start]
    since = datetime.fromtimestamp(click_id_time_ms(mark) / 1000, tz=UTC) - TAIL_MARGIN
    return [columns.id > mark, columns.created_at >= max(start, since)]


def raw_measures(
    conn: Connection,
    program: ProgramFacts,
    dimension: str,
    first_day: date,
    last_day: date,
    filters: Filters = NO_FILTERS,
) -> dict[Any, dict[str, int]]:
    """The same groups computed from the raw events (every dimension, sub-IDs included):
    the reference the rollups are tested against, and the engine for sub-ID reports."""
    grain = builder(conn, program.id)
    start, end = local_day_bounds(first_day, last_day, program.timezone)
    extra = dimension if dimension.startswith("sub") else None
    c, i, v = t.clicks.c, t.impressions.c, t.conversions.c
    add_raw_traffic(
        conn,
        grain,
        [c.program_id == program.id, c.created_at >= start, c.created_at < end],
        [i.program_id == program.id, i.created_at >= start, i.created_at < end],
        extra,
    )
    add_raw_conversions(
        conn, grain, [v.program_id == program.id, v.created_at >= start, v.created_at < end], extra
    )
    return merge_measures(
        group_measures(grain.traffic, TRAFFIC_MEASURES, dimension, filters),
        group_measures(grain.conversions, CONVERSION_MEASURES, dimension, filters),
    )


def rollup_tables_snapshot(conn: Connection, program_id: int) -> dict[str, set[tuple[Any, ...]]]:
    """Every non-zero rollup row of a program (tests compare folds with rebuilds)."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table, names in (
        (t.rollup_traffic, TRAFFIC_MEASURES),
        (t.rollup_conversions, CONVERSION_MEASURES),
    ):
        rows = conn.execute(select(table).where(table.c.program_id == program_id)).all()
        out[table.name] = {
            tuple(
                _as_date(x) if isinstance(x, str | date) and k == "day" else x
                for k, x in zip(r._fields, r, strict=True)
            )
            for r in rows
            if any(getattr(r, n) for n in names)
        }
    return out


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
