"""Read-side queries for the web pages (dashboard and partner portal).

Every query takes a `Scope`: a program and, for the partner portal, one partner. The partner
filter is applied here, in SQL, so a portal page cannot show another partner's rows even if
a handler forgets a check. Each page costs a fixed number of queries whatever the number
of rows (aggregates are grouped, never fetched per row), which the query-count tests pin.

Counting rules (docs/web.md): clicks are the clicks not flagged as bots, as in the reports
(docs/kpis.md), so a page and a report of the same period show the same clicks and divide
CR and EPC by them; the bot-flagged ones are counted apart (`Totals.bot_clicks`); unique
clicks are the unique clicks not flagged as bots; impressions leave bots out; conversions
and revenue count pending and approved conversions, not rejected or reversed ones;
commission is the net sum of ledger entries created in the period (an approval or payment
moves money between buckets and nets to zero; a reversal subtracts). Money is summed as
integer micro-units per currency and returned as exact `Money`.

Where traffic is read from: clicks and impressions are by far the biggest tables, so
traffic comes from the daily rollups (`storage.rollups`) for the whole local days inside
a period, plus the raw events of the partial days at its edges (a "last 30 days" period
starts and ends mid-day) and of the tail past the fold's mark (events not folded yet).
That is exact at any moment, whenever the fold last ran, and reads a few thousand rollup
rows plus about a day of raw events instead of every click of the period
(`source="raw"` reads everything raw: the reference the tests compare with).
Conversions and the ledger are small (a few per hundred clicks) and change after the fact
(refunds, approvals), so they are read raw: live, with no fold delay.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
)

from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import click_id_time_ms
from partnerflow.core.money import MICROS, Money
from partnerflow.segments.model import PartnerPeriodFeatures
from partnerflow.storage import tables as t
from partnerflow.storage.reports import BUCKET_SECONDS, EARNING_KINDS, creative_labels

COUNTED_STATUSES = ("pending", "approved")
ALL_TIME_START = datetime(2000, 1, 1, tzinfo=UTC)
BUCKETS = ("pending", "approved", "paid")


@dataclass(frozen=True, slots=True)
class Scope:
    program_id: int
    currency: str
    timezone: str = "UTC"
    partner_id: int | None = None


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def last_days(cls, now: datetime, days: int) -> Period:
        """The `days` days up to and including `now` (periods are half-open [start, end),
        so the end is pushed one microsecond, the storage resolution, past now)."""
        end = now + timedelta(microseconds=1)
        return cls(end - timedelta(days=days), end)

    @classmethod
    def until(cls, now: datetime) -> Period:
        """Everything up to and including `now` ("all time")."""
        return cls(ALL_TIME_START, now + timedelta(microseconds=1))

    def previous(self) -> Period:
        return Period(self.start - (self.end - self.start), self.start)


class MoneySums:
    """Exact sums in micro-units, per currency."""

    def __init__(self) -> None:
        self.micros: dict[str, int] = defaultdict(int)

    def add(self, currency: str, micros: Any) -> None:
        self.micros[currency] += int(micros or 0)

    def main(self, currency: str) -> Money:
        return Money.from_micros(self.micros.get(currency, 0), currency)

    def others(self, currency: str) -> tuple[Money, ...]:
        return tuple(
            Money.from_micros(v, c)
            for c, v in sorted(self.micros.items())
            if c != currency and v != 0
        )


def _ratio(numerator: Decimal, denominator: int) -> Decimal | None:
    return None if denominator == 0 else numerator / Decimal(denominator)


@dataclass(frozen=True, slots=True)
class Totals:
    clicks: int  # not flagged as a bot
    unique_clicks: int
    conversions: int
    revenue: Money
    commission: Money
    revenue_other: tuple[Money, ...] = ()
    commission_other: tuple[Money, ...] = ()
    impressions: int = 0
    bot_clicks: int = 0  # recorded, flagged as bots: in no rate

    @property
    def ctr(self) -> Decimal | None:
        """Clicks per 100 impressions (None without impressions)."""
        return _ratio(Decimal(self.clicks) * 100, self.impressions)

    @property
    def conversion_rate(self) -> Decimal | None:
        """Conversions per 100 clicks (bots left out)."""
        rate = _ratio(Decimal(self.conversions) * 100, self.clicks)
        return rate

    @property
    def epc(self) -> Money | None:
        """Partner earnings per click (commission / clicks, bots left out), in the main
        currency."""
        value = _ratio(self.commission.amount, self.clicks)
        return None if value is None else Money(value, self.commission.currency)

    @property
    def aov(self) -> Money | None:
        value = _ratio(self.revenue.amount, self.conversions)
        return None if value is None else Money(value, self.revenue.currency)


def _between(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


# Traffic: rollups + raw edges and tail ---------------------------------------------------

# Events this far before the mark's own time are re-read raw (with `id > mark`): ids are
# minted by the tracker a little before the row's `created_at`, the same margin as
# `storage.rollups.TAIL_MARGIN`.
TAIL_MARGIN = timedelta(minutes=5)
TRAFFIC_KEYS = (None, "day", "partner", "link")
# A raw interval [start, end) and the id above which its events count (None: all).
Interval = tuple[datetime, datetime, str | None]
ROLLUP, RAW = "rollup", "raw"


@dataclass(frozen=True, slots=True)
class Marks:
    """How far the rollup fold got (the last folded click and impression ids)."""

    clicks: str | None = None
    impressions: str | None = None

    @staticmethod
    def since(mark: str | None) -> datetime | None:
        if mark is None:
            return None
        return datetime.fromtimestamp(click_id_time_ms(mark) / 1000, tz=UTC) - TAIL_MARGIN


def read_marks(conn: Connection) -> Marks:
    m = t.rollup_marks.c
    found = dict(
        conn.execute(select(m.name, m.value).where(m.name.in_(("clicks", "impressions")))).all()
    )
    return Marks(found.get("clicks"), found.get("impressions"))


@dataclass(slots=True)
class Traffic:
    clicks: int = 0  # gross: bot-flagged clicks included
    unique_clicks: int = 0  # unique and not flagged as a bot
    impressions: int = 0  # not flagged as a bot
    human_clicks: int = 0  # not flagged as a bot (the reports' and segments' "clicks")


def _local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _local_days(period: Period, tz: str) -> tuple[tuple[date, date] | None, list[Interval]]:
    """The first and last local day wholly inside the period (None when there is none),
    and the [start, end) of the partial days at its edges (at most two). Only the edges
    are looked at, so "all time" costs no more than a month."""
    zone = zoneinfo.ZoneInfo(tz)
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    edges: list[Interval] = []
    if _local_midnight(first, zone) != period.start:
        edge_end = min(_local_midnight(first + timedelta(days=1), zone), period.end)
        edges.append((period.start, edge_end, None))
        first += timedelta(days=1)
    if last >= first and _local_midnight(last + timedelta(days=1), zone) != period.end:
        edges.append((max(_local_midnight(last, zone), period.start), period.end, None))
        last -= timedelta(days=1)
    return ((first, last) if first <= last else None), edges


def _as_day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def traffic(
    conn: Connection,
    scope: Scope,
    period: Period,
    by: str | None = None,
    ids: Sequence[int] | None = None,
    *,
    impressions: bool = False,
    marks: Marks | None = None,
    source: str = ROLLUP,
) -> dict[Any, Traffic]:
    """Traffic in the period grouped `by` None (one group, key None), local "day",
    "partner" or "link"; `ids` restricts partners or links. Costs at most three queries
    whatever the period (rollups, raw clicks, raw impressions when asked for)."""
    assert by in TRAFFIC_KEYS
    out: dict[Any, Traffic] = {}
    zone = zoneinfo.ZoneInfo(scope.timezone)
    if ids is not None and not ids:
        return out

    def slot(key: Any) -> Traffic:
        found = out.get(key)
        if found is None:
            found = out[key] = Traffic()
        return found

    raw: list[Interval] = []
    raw_impressions: list[Interval] = []
    if source == RAW:
        raw.append((period.start, period.end, None))
        raw_impressions.append((period.start, period.end, None))
    else:
        full, edges = _local_days(period, scope.timezone)
        raw += edges
        raw_impressions += edges
        if full is not None:
            marks = marks if marks is not None else read_marks(conn)
            first, last = full
            start = _local_midnight(first, zone)
            end = _local_midnight(last + timedelta(days=1), zone)
            for mark, target in ((marks.clicks, raw), (marks.impressions, raw_impressions)):
                since = Marks.since(mark)
                tail_start = start if since is None else max(start, since)
                if tail_start < end:
                    target.append((tail_start, end, mark))
            _add_rollup(conn, scope, first, last, by, ids, slot, impressions)
    _add_raw_clicks(conn, scope, raw, by, ids, zone, slot)
    if impressions:
        _add_raw_impressions(conn, scope, raw_impressions, by, ids, zone, slot)
    return out


def _add_rollup(
    conn: Connection,
    scope: Scope,
    first: date,
    last: date,
    by: str | None,
    ids: Sequence[int] | None,
    slot: Any,
    impressions: bool,
) -> None:
    r = t.rollup_traffic.c
    key: Any = {
        None: literal_column("0"),
        "day": r.day,
        "partner": r.partner_id,
        "link": r.link_id,
    }[by]
    where = [r.program_id == scope.program_id, r.day >= first, r.day <= last]
    if scope.partner_id is not None:
        where.append(r.partner_id == scope.partner_id)
    if ids is not None:
        where.append(key.in_(list(ids)))
    shown = func.sum(r.impressions) if impressions else literal(0)
    query = select(
        key.label("k"), func.sum(r.clicks), func.sum(r.bot_clicks), func.sum(r.unique_clicks), shown
    ).where(*where)
    if by is not None:
        query = query.group_by(key)
    for k, human, bots, unique, impressions_n in conn.execute(query):
        if human is None:
            continue  # no rows: an aggregate without GROUP BY still returns one
        found = slot(_as_day(k) if by == "day" else None if by is None else int(k))
        found.clicks += int(human) + int(bots)
        found.human_clicks += int(human)
        found.unique_clicks += int(unique or 0)
        found.impressions += int(impressions_n or 0)


def _bucket(conn: Connection, column: Any) -> Any:
    """Integer 15-minute UTC bucket of a timestamp (`//`: SQLAlchemy's `/` is a true
    division, which would make every second its own group). Every IANA offset is a
    multiple of 15 minutes, so a bucket falls in one local day."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer) // BUCKET_SECONDS
    return func.floor(func.extract("epoch", column) / BUCKET_SECONDS)


def _raw_key(conn: Connection, table: Any, by: str | None) -> Any:
    if by is None:
        return literal_column("0")
    if by == "day":
        return _bucket(conn, table.c.created_at)
    return table.c.partner_id if by == "partner" else table.c.link_id


def _raw_group(key: Any, by: str | None, zone: zoneinfo.ZoneInfo) -> Any:
    if by is None:
        return None
    if by == "day":
        instant = datetime.fromtimestamp(int(key) * BUCKET_SECONDS, tz=UTC)
        return instant.astimezone(zone).date()
    return int(key)


def _raw_where(
    table: Any, scope: Scope, by: str | None, ids: Sequence[int] | None
) -> list[ColumnElement[bool]]:
    if scope.partner_id is not None:
        where = [table.c.partner_id == scope.partner_id]
    else:
        where = [table.c.program_id == scope.program_id]
    if ids is not None and by in ("partner", "link"):
        column = table.c.partner_id if by == "partner" else table.c.link_id
        where.append(column.in_(list(ids)))
    return where


def _intervals(table: Any, intervals: list[Interval]) -> list[list[ColumnElement[bool]]]:
    out = []
    for start, end, above in intervals:
        cond = [table.c.created_at >= start, table.c.created_at < end]
        if above is not None:
            cond.append(table.c.id > above)
        out.append(cond)
    return out


def _add_raw_clicks(
    conn: Connection,
    scope: Scope,
    intervals: list[Interval],
    by: str | None,
    ids: Sequence[int] | None,
    zone: zoneinfo.ZoneInfo,
    slot: Any,
) -> None:
    if not intervals:
        return
    c = t.clicks
    key = _raw_key(conn, c, by).label("k")
    human = c.c.is_bot == false()
    human_unique = func.sum(case((human & (c.c.is_unique == true()), 1), else_=0))
    humans = func.sum(case((human, 1), else_=0))
    where = _raw_where(c, scope, by, ids)
    parts = [
        select(key, func.count().label("n"), human_unique.label("u"), humans.label("h")).where(
            *where, *cond
        )
        for cond in _intervals(c, intervals)
    ]
    if by is not None:
        parts = [part.group_by(key) for part in parts]
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    for k, n, u, h in conn.execute(statement):
        if not n:
            continue
        found = slot(_raw_group(k, by, zone))
        found.clicks += int(n)
        found.unique_clicks += int(u or 0)
        found.human_clicks += int(h or 0)


def _add_raw_impressions(
    conn: Connection,
    scope: Scope,
    intervals: list[Interval],
    by: str | None,
    ids: Sequence[int] | None,
    zone: zoneinfo.ZoneInfo,
    slot: Any,
) -> None:
    if not intervals:
        return
    i = t.impressions
    key = _raw_key(conn, i, by).label("k")
    where = [*_raw_where(i, scope, by, ids), i.c.is_bot == false()]
    parts = [
        select(key, func.count().label("n")).where(*where, *cond)
        for cond in _intervals(i, intervals)
    ]
    if by is not None:
        parts = [part.group_by(key) for part in parts]
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    for k, n in conn.execute(statement):
        if n:
            slot(_raw_group(k, by, zone)).impressions += int(n)


def _conversions_where(scope: Scope, period: Period) -> list[ColumnElement[bool]]:
    v = t.conversions
    where = [
        v.c.program_id == scope.program_id,
        _between(v.c.created_at, period),
        v.c.status.in_(COUNTED_STATUSES),
        v.c.partner_id.is_not(None),
    ]
    if scope.partner_id is not None:
        where.append(v.c.partner_id == scope.partner_id)
    return where


def _ledger_where(scope: Scope, period: Period) -> list[ColumnElement[bool]]:
    e = t.commission_entries
    where = [e.c.program_id == scope.program_id, _between(e.c.created_at, period)]
    if scope.partner_id is not None:
        where.append(e.c.partner_id == scope.partner_id)
    return where


def _main_revenue(scope: Scope) -> Any:
    """Revenue net of partial refunds, summed in the program's currency only: orders in
    another currency still count as conversions (docs/web.md), never as revenue."""
    v = t.conversions.c
    return func.sum(
        case((v.currency == scope.currency, v.amount_micros - v.refunded_micros), else_=0)
    )


def totals(
    conn: Connection,
    scope: Scope,
    period: Period,
    *,
    impressions: bool = False,
    marks: Marks | None = None,
    source: str = ROLLUP,
) -> Totals:
    """Period totals (traffic from the rollups, see the module docstring)."""
    return _summarise(conn, scope, period, False, impressions, marks, source)[0]


def summary(
    conn: Connection,
    scope: Scope,
    period: Period,
    *,
    impressions: bool = False,
    marks: Marks | None = None,
    source: str = ROLLUP,
) -> tuple[Totals, list[DayPoint]]:
    """Period totals and the daily series of the same period from one set of grouped
    queries (a dashboard shows both)."""
    found, points = _summarise(conn, scope, period, True, impressions, marks, source)
    assert points is not None
    return found, points


def _summarise(
    conn: Connection,
    scope: Scope,
    period: Period,
    by_day: bool,
    impressions: bool,
    marks: Marks | None,
    source: str,
) -> tuple[Totals, list[DayPoint] | None]:
    v, e = t.conversions, t.commission_entries
    seen = traffic(
        conn,
        scope,
        period,
        "day" if by_day else None,
        impressions=impressions,
        marks=marks,
        source=source,
    )
    total = Traffic()
    for found in seen.values():
        total.clicks += found.clicks
        total.human_clicks += found.human_clicks
        total.unique_clicks += found.unique_clicks
        total.impressions += found.impressions
    points: list[DayPoint] | None = None
    point: Callable[[Any], DayPoint | None] = lambda _bucket: None  # noqa: E731
    if by_day:
        days = _day_bounds(period, scope.timezone)
        points = [DayPoint(day) for day, _s, _e in days]
        index = {day: p for day, p in zip((d for d, _s, _e in days), points, strict=True)}
        zone = zoneinfo.ZoneInfo(scope.timezone)
        for day, found in seen.items():
            if day in index:
                index[day].clicks = found.human_clicks

        def point(bucket: Any) -> DayPoint | None:
            instant = datetime.fromtimestamp(int(bucket) * BUCKET_SECONDS, tz=UTC)
            return index.get(instant.astimezone(zone).date())

    # Grouped by currency and, for the series, 15-minute bucket, each bucket mapped to its
    # local day in Python (exact in any time zone, DST days included, on every database).
    conv_key = [v.c.currency] + ([_bucket(conn, v.c.created_at).label("b")] if by_day else [])
    revenue = MoneySums()
    conversions = 0
    for row in conn.execute(
        select(*conv_key, func.count(), func.sum(v.c.amount_micros - v.c.refunded_micros))
        .where(*_conversions_where(scope, period))
        .group_by(*conv_key)
    ):
        currency, count, micros = row[0], int(row[-2]), row[-1]
        conversions += count
        revenue.add(currency, micros)
        at = point(row[1]) if by_day else None
        if at is not None:  # a conversion in any currency; revenue in the program's
            at.conversions += count
            if currency == scope.currency:
                at.revenue_micros += int(micros or 0)
    ledger_key = [e.c.currency] + ([_bucket(conn, e.c.created_at).label("b")] if by_day else [])
    commission = MoneySums()
    for row in conn.execute(
        select(*ledger_key, func.sum(e.c.amount_micros))
        .where(*_ledger_where(scope, period))
        .group_by(*ledger_key)
    ):
        currency, micros = row[0], row[-1]
        commission.add(currency, micros)
        at = point(row[1]) if by_day and currency == scope.currency else None
        if at is not None:
            at.commission_micros += int(micros or 0)
    found_totals = Totals(
        clicks=total.human_clicks,
        unique_clicks=total.unique_clicks,
        conversions=conversions,
        revenue=revenue.main(scope.currency),
        commission=commission.main(scope.currency),
        revenue_other=revenue.others(scope.currency),
        commission_other=commission.others(scope.currency),
        impressions=total.impressions,
        bot_clicks=total.clicks - total.human_clicks,
    )
    return found_totals, points


# Daily series ------------------------------------------------------------------------


@dataclass(slots=True)
class DayPoint:
    day: date
    clicks: int = 0  # not flagged as a bot
    conversions: int = 0
    revenue_micros: int = 0
    commission_micros: int = 0


def _day_bounds(period: Period, tz: str) -> list[tuple[date, datetime, datetime]]:
    """Each local day of the period with its [start, end) in UTC, clipped to the period.
    Computed in Python with zoneinfo, so DST days (23 or 25 hours) come out right on
    every database."""
    zone = zoneinfo.ZoneInfo(tz)
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    out = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        nxt = day + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
        out.append((day, max(start, period.start), min(end, period.end)))
    return out


def series_for_chart(points: list[DayPoint]) -> dict[str, list[Any]]:
    """Columns for the chart script: unix seconds (UTC midnight of each day) and values.
    Money goes out as strings of the exact decimal; the chart only draws it."""
    return {
        "days": [p.day.isoformat() for p in points],
        "x": [
            int(datetime(p.day.year, p.day.month, p.day.day, tzinfo=UTC).timestamp())
            for p in points
        ],
        "clicks": [p.clicks for p in points],
        "conversions": [p.conversions for p in points],
        "revenue": [str(Decimal(p.revenue_micros) / 1_000_000) for p in points],
        "commission": [str(Decimal(p.commission_micros) / 1_000_000) for p in points],
    }


# Per-partner metrics (top partners, partner list) ------------------------------------


@dataclass(slots=True)
class PartnerMetrics:
    clicks: int = 0  # not flagged as a bot
    unique_clicks: int = 0
    conversions: int = 0
    revenue_micros: int = 0
    commission_micros: int = 0
    balances: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    def money(self, name: str, currency: str) -> Money:
        return Money.from_micros(getattr(self, f"{name}_micros"), currency)

    def balance(self, bucket: str, currency: str) -> Money:
        return Money.from_micros(self.balances[bucket], currency)

    @property
    def conversion_rate(self) -> Decimal | None:
        return _ratio(Decimal(self.conversions) * 100, self.clicks)


def partner_metrics(
    conn: Connection,
    scope: Scope,
    period: Period,
    partner_ids: Sequence[int],
    *,
    marks: Marks | None = None,
    source: str = ROLLUP,
) -> dict[int, PartnerMetrics]:
    """Metrics of many partners in a fixed number of grouped queries (none per partner)."""
    out: dict[int, PartnerMetrics] = {pid: PartnerMetrics() for pid in partner_ids}
    if not partner_ids:
        return out
    ids = list(partner_ids)
    v, e = t.conversions, t.commission_entries
    seen = traffic(conn, scope, period, "partner", ids, marks=marks, source=source)
    for pid, found in seen.items():
        if pid in out:
            out[pid].clicks = found.human_clicks
            out[pid].unique_clicks = found.unique_clicks
    for pid, count, micros in conn.execute(
        select(v.c.partner_id, func.count(), _main_revenue(scope))
        .where(*_conversions_where(scope, period), v.c.partner_id.in_(ids))
        .group_by(v.c.partner_id)
    ):
        out[pid].conversions = int(count)
        out[pid].revenue_micros = int(micros or 0)
    for pid, micros in conn.execute(
        select(e.c.partner_id, func.sum(e.c.amount_micros))
        .where(
            *_ledger_where(scope, period),
            e.c.partner_id.in_(ids),
            e.c.currency == scope.currency,
        )
        .group_by(e.c.partner_id)
    ):
        out[pid].commission_micros = int(micros or 0)
    for pid, bucket, micros in conn.execute(
        select(e.c.partner_id, e.c.bucket, func.sum(e.c.amount_micros))
        .where(
            e.c.program_id == scope.program_id,
            e.c.partner_id.in_(ids),
            e.c.currency == scope.currency,
        )
        .group_by(e.c.partner_id, e.c.bucket)
    ):
        out[pid].balances[bucket] = int(micros or 0)
    return out


@dataclass(frozen=True, slots=True)
class PartnerRow:
    id: int
    name: str
    email: str
    status: str
    country: str | None
    website: str | None
    created_at: datetime
    metrics: PartnerMetrics


def top_partners(
    conn: Connection,
    scope: Scope,
    period: Period,
    limit: int = 10,
    *,
    marks: Marks | None = None,
    source: str = ROLLUP,
) -> list[PartnerRow]:
    """Partners ranked by attributed revenue in the period, then by commission."""
    v, p = t.conversions, t.partners
    ranked = conn.execute(
        select(v.c.partner_id, func.sum(v.c.amount_micros - v.c.refunded_micros).label("revenue"))
        .where(*_conversions_where(scope, period), v.c.currency == scope.currency)
        .group_by(v.c.partner_id)
        .order_by(func.sum(v.c.amount_micros - v.c.refunded_micros).desc(), v.c.partner_id)
        .limit(limit)
    ).all()
    ids = [int(r.partner_id) for r in ranked]
    if not ids:
        return []
    metrics = partner_metrics(conn, scope, period, ids, marks=marks, source=source)
    info = {r.id: r for r in conn.execute(select(p).where(p.c.id.in_(ids)))}
    return [_partner_row(info[pid], metrics[pid]) for pid in ids if pid in info]


def _partner_row(row: Any, metrics: PartnerMetrics) -> PartnerRow:
    return PartnerRow(
        id=row.id,
        name=row.name,
        email=row.email,
        status=row.status,
        country=row.country,
        website=row.website,
        created_at=row.created_at,
        metrics=metrics,
    )


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def partners_page(
    conn: Connection,
    scope: Scope,
    period: Period,
    *,
    status: str | None = None,
    search: str | None = None,
    page: int = 1,
    size: int = 50,
) -> tuple[list[PartnerRow], Page]:
    p = t.partners
    where: list[ColumnElement[bool]] = [p.c.program_id == scope.program_id]
    if status:
        where.append(p.c.status == status)
    if search:
        pattern = _like(search.strip()[:100])
        where.append(
            or_(
                func.lower(p.c.name).like(pattern, escape="\\"),
                func.lower(p.c.email).like(pattern, escape="\\"),
            )
        )
    total = int(conn.execute(select(func.count()).select_from(p).where(*where)).scalar_one())
    pager = Page(number=max(1, page), size=size, total=total)
    rows = conn.execute(
        select(p).where(*where).order_by(p.c.id.desc()).limit(size).offset(pager.offset)
    ).all()
    metrics = partner_metrics(conn, scope, period, [r.id for r in rows])
    return [_partner_row(r, metrics[r.id]) for r in rows], pager


def status_counts(conn: Connection, program_id: int) -> dict[str, int]:
    p = t.partners
    return {
        status: int(n)
        for status, n in conn.execute(
            select(p.c.status, func.count())
            .where(p.c.program_id == program_id)
            .group_by(p.c.status)
        )
    }


def partner_row(conn: Connection, partner_id: int, program_id: int | None = None) -> Any | None:
    p = t.partners
    where = [p.c.id == partner_id]
    if program_id is not None:
        where.append(p.c.program_id == program_id)
    return conn.execute(select(p).where(*where)).first()


# Links and coupons ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkStats:
    id: int
    code: str
    offer_id: int
    offer_name: str
    sub_ids: dict[str, str]
    created_at: datetime
    clicks: int
    unique_clicks: int
    conversions: int
    revenue: Money
    commission: Money

    @property
    def conversion_rate(self) -> Decimal | None:
        return _ratio(Decimal(self.conversions) * 100, self.clicks)


def link_stats(
    conn: Connection,
    scope: Scope,
    period: Period,
    link_id: int | None = None,
    *,
    marks: Marks | None = None,
    source: str = ROLLUP,
) -> list[LinkStats]:
    """Per-link clicks and the conversions attributed through those links' clicks."""
    assert scope.partner_id is not None
    lk, o, c, v, e = (
        t.tracking_links,
        t.offers,
        t.clicks,
        t.conversions,
        t.commission_entries,
    )
    where = [lk.c.partner_id == scope.partner_id, lk.c.program_id == scope.program_id]
    if link_id is not None:
        where.append(lk.c.id == link_id)
    links = conn.execute(
        select(lk, o.c.name.label("offer_name"))
        .join(o, o.c.id == lk.c.offer_id)
        .where(*where)
        .order_by(lk.c.id)
    ).all()
    ids = [r.id for r in links]
    clicks: dict[int, tuple[int, int]] = {}
    conv: dict[int, tuple[int, int]] = {}
    comm: dict[int, int] = {}
    if ids:
        seen = traffic(conn, scope, period, "link", ids, marks=marks, source=source)
        clicks = {lid: (found.human_clicks, found.unique_clicks) for lid, found in seen.items()}
        joined = v.join(c, c.c.id == v.c.click_id)
        for lid, n, micros in conn.execute(
            select(c.c.link_id, func.count(), _main_revenue(scope))
            .select_from(joined)
            .where(*_conversions_where(scope, period), c.c.link_id.in_(ids))
            .group_by(c.c.link_id)
        ):
            conv[lid] = (int(n), int(micros or 0))
        ledger_join = e.join(v, v.c.id == e.c.conversion_id).join(c, c.c.id == v.c.click_id)
        for lid, micros in conn.execute(
            select(c.c.link_id, func.sum(e.c.amount_micros))
            .select_from(ledger_join)
            .where(
                *_ledger_where(scope, period),
                e.c.currency == scope.currency,
                c.c.link_id.in_(ids),
            )
            .group_by(c.c.link_id)
        ):
            comm[lid] = int(micros or 0)
    cur = scope.currency
    return [
        LinkStats(
            id=r.id,
            code=r.code,
            offer_id=r.offer_id,
            offer_name=r.offer_name,
            sub_ids=dict(r.sub_ids),
            created_at=r.created_at,
            clicks=clicks.get(r.id, (0, 0))[0],
            unique_clicks=clicks.get(r.id, (0, 0))[1],
            conversions=conv.get(r.id, (0, 0))[0],
            revenue=Money.from_micros(conv.get(r.id, (0, 0))[1], cur),
            commission=Money.from_micros(comm.get(r.id, 0), cur),
        )
        for r in links
    ]


@dataclass(frozen=True, slots=True)
class CouponStats:
    id: int
    code: str
    offer_name: str
    created_at: datetime
    conversions: int
    revenue: Money
    commission: Money


def coupon_stats(
    conn: Connection, scope: Scope, period: Period, coupon_id: int | None = None
) -> list[CouponStats]:
    """Per-coupon conversions: those attributed by the coupon (not by a link click)."""
    assert scope.partner_id is not None
    cc, o, v, e = t.coupon_codes, t.offers, t.conversions, t.commission_entries
    where = [cc.c.partner_id == scope.partner_id, cc.c.program_id == scope.program_id]
    if coupon_id is not None:
        where.append(cc.c.id == coupon_id)
    coupons = conn.execute(
        select(cc, o.c.name.label("offer_name"))
        .join(o, o.c.id == cc.c.offer_id)
        .where(*where)
        .order_by(cc.c.id)
    ).all()
    codes = [r.code for r in coupons]
    conv: dict[str, tuple[int, int]] = {}
    comm: dict[str, int] = {}
    if codes:
        coupon_where = [
            *_conversions_where(scope, period),
            v.c.attributed_by == "coupon",
            v.c.coupon_code.in_(codes),
        ]
        for code, n, micros in conn.execute(
            select(v.c.coupon_code, func.count(), _main_revenue(scope))
            .where(*coupon_where)
            .group_by(v.c.coupon_code)
        ):
            conv[code] = (int(n), int(micros or 0))
        for code, micros in conn.execute(
            select(v.c.coupon_code, func.sum(e.c.amount_micros))
            .select_from(e.join(v, v.c.id == e.c.conversion_id))
            .where(
                *_ledger_where(scope, period),
                e.c.currency == scope.currency,
                v.c.attributed_by == "coupon",
                v.c.coupon_code.in_(codes),
            )
            .group_by(v.c.coupon_code)
        ):
            comm[code] = int(micros or 0)
    cur = scope.currency
    return [
        CouponStats(
            id=r.id,
            code=r.code,
            offer_name=r.offer_name,
            created_at=r.created_at,
            conversions=conv.get(r.code, (0, 0))[0],
            revenue=Money.from_micros(conv.get(r.code, (0, 0))[1], cur),
            commission=Money.from_micros(comm.get(r.code, 0), cur),
        )
        for r in coupons
    ]


def balances(conn: Connection, scope: Scope, partner_id: int) -> dict[str, Money]:
    """Ledger balance per bucket (all time) in the program currency."""
    e = t.commission_entries
    out = dict.fromkeys(BUCKETS, 0)
    for bucket, micros in conn.execute(
        select(e.c.bucket, func.sum(e.c.amount_micros))
        .where(
            e.c.program_id == scope.program_id,
            e.c.partner_id == partner_id,
            e.c.currency == scope.currency,
        )
        .group_by(e.c.bucket)
    ):
        out[bucket] = int(micros or 0)
    return {b: Money.from_micros(m, scope.currency) for b, m in out.items()}


# Conversions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversionRow:
    id: int
    created_at: datetime
    order_id: str
    event_type: str
    amount: Money
    status: str
    attributed_by: str
    partner_id: int | None
    partner_name: str | None
    offer_name: str | None
    coupon_code: str | None
    is_flagged: bool
    commission: Money | None
    explanation: str


def conversions_page(
    conn: Connection,
    scope: Scope,
    *,
    status: str | None = None,
    partner_id: int | None = None,
    page: int = 1,
    size: int = 50,
) -> tuple[list[ConversionRow], Page]:
    v, p, o, e = t.conversions, t.partners, t.offers, t.commission_entries
    where: list[ColumnElement[bool]] = [v.c.program_id == scope.program_id]
    if scope.partner_id is not None:
        where.append(v.c.partner_id == scope.partner_id)
    if partner_id is not None:
        where.append(v.c.partner_id == partner_id)
    if status:
        where.append(v.c.status == status)
    total = int(conn.execute(select(func.count()).select_from(v).where(*where)).scalar_one())
    pager = Page(number=max(1, page), size=size, total=total)
    rows = conn.execute(
        select(v, p.c.name.label("partner_name"), o.c.name.label("offer_name"))
        .outerjoin(p, p.c.id == v.c.partner_id)
        .outerjoin(o, o.c.id == v.c.offer_id)
        .where(*where)
        .order_by(v.c.created_at.desc(), v.c.id.desc())
        .limit(size)
        .offset(pager.offset)
    ).all()
    ids = [r.id for r in rows]
    commission: dict[int, MoneySums] = defaultdict(MoneySums)
    reasons: dict[int, str] = {}
    if ids:
        for conv_id, currency, micros, kind, reason in conn.execute(
            select(e.c.conversion_id, e.c.currency, e.c.amount_micros, e.c.kind, e.c.reason)
            .where(e.c.conversion_id.in_(ids))
            .order_by(e.c.id)
        ):
            # Approvals and payments move money between buckets: only the earning and its
            # reversals change what the conversion is worth.
            if kind in ("commission", "reversal", "adjustment"):
                commission[conv_id].add(currency, micros)
            if kind == "commission":
                reasons.setdefault(conv_id, reason)
    out = []
    for r in rows:
        sums = commission.get(r.id)
        money = None
        if sums is not None and sums.micros:
            cur = next(iter(sums.micros))
            money = sums.main(cur)
        out.append(
            ConversionRow(
                id=r.id,
                created_at=r.created_at,
                order_id=r.order_id,
                event_type=r.event_type,
                amount=Money.from_micros(r.amount_micros, r.currency),
                status=r.status,
                attributed_by=r.attributed_by,
                partner_id=r.partner_id,
                partner_name=r.partner_name,
                offer_name=r.offer_name,
                coupon_code=r.coupon_code,
                is_flagged=bool(r.is_flagged),
                commission=money,
                explanation=reasons.get(r.id, ""),
            )
        )
    return out, pager


# Audit log ---------------------------------------------------------------------------------


def audit_page(
    conn: Connection,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    page: int = 1,
    size: int = 50,
) -> tuple[list[Any], Page]:
    a = t.audit_log
    where: list[ColumnElement[bool]] = []
    if entity_type:
        where.append(a.c.entity_type == entity_type)
    if entity_id:
        where.append(a.c.entity_id == entity_id)
    total = int(conn.execute(select(func.count()).select_from(a).where(*where)).scalar_one())
    pager = Page(number=max(1, page), size=size, total=total)
    rows = conn.execute(
        select(a).where(*where).order_by(a.c.id.desc()).limit(size).offset(pager.offset)
    ).all()
    return list(rows), pager


def flagged_conversions(conn: Connection, scope: Scope, period: Period) -> int:
    v = t.conversions
    return int(
        conn.execute(
            select(func.count()).where(
                v.c.program_id == scope.program_id,
                _between(v.c.created_at, period),
                v.c.is_flagged.is_(True),
            )
        ).scalar_one()
    )


def partner_users(conn: Connection, partner_id: int) -> list[Any]:
    u = t.users
    return list(
        conn.execute(
            select(u.c.id, u.c.email, u.c.is_active, u.c.created_at).where(
                u.c.partner_id == partner_id
            )
        )
    )


def unread_count(conn: Connection, partner_id: int) -> int:
    """Unread announcements plus unread manager messages of one partner, in one statement
    (the portal navigation shows it on every page). Same rules as `storage.messages`'
    `inbox_unread` and `unread_for_partner`."""
    i, m = t.inbox_items, t.partner_messages
    inbox = (
        select(func.count())
        .select_from(i)
        .where(i.c.partner_id == partner_id, i.c.read_at.is_(None))
        .scalar_subquery()
    )
    messages = (
        select(func.count())
        .select_from(m)
        .where(m.c.partner_id == partner_id, m.c.sender == "manager", m.c.read_at.is_(None))
        .scalar_subquery()
    )
    return int(conn.execute(select(inbox + messages)).scalar_one())


# Segments ------------------------------------------------------------------------------------


def segment_features(
    conn: Connection,
    scope: Scope,
    now: datetime,
    period_days: int = 30,
    *,
    marks: Marks | None = None,
) -> list[PartnerPeriodFeatures]:
    """`storage.segment_queries.partner_period_features` with the clicks read through
    `traffic` (rollups + raw edges and tail) instead of two months of raw clicks; every
    other feature is read the same way, and the tests check both give the same result."""
    from partnerflow.storage.segment_queries import SEGMENTED_STATUSES

    if period_days < 1:
        raise InvalidInput("the period must be at least one day", field="period_days")
    # Half-open [now - N days, now), as partner_period_features.
    current = Period(now - timedelta(days=period_days), now)
    previous = current.previous()
    whole = Period(previous.start, now)
    p, v, e = t.partners, t.conversions, t.commission_entries
    ids = [
        int(pid)
        for pid in conn.execute(
            select(p.c.id)
            .where(p.c.program_id == scope.program_id, p.c.status.in_(SEGMENTED_STATUSES))
            .order_by(p.c.id)
        ).scalars()
    ]
    if not ids:
        return []
    marks = marks if marks is not None else read_marks(conn)
    clicks_now = traffic(conn, scope, current, "partner", ids, marks=marks)
    clicks_before = traffic(conn, scope, previous, "partner", ids, marks=marks)

    def within(column: Any, period: Period) -> ColumnElement[bool]:
        return and_(column >= period.start, column < period.end)

    def sum_if(condition: ColumnElement[bool], value: Any = 1) -> Any:
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    earning = and_(v.c.currency == scope.currency, v.c.status != "reversed")
    in_now, in_before = within(v.c.created_at, current), within(v.c.created_at, previous)
    conversions = {
        int(r[0]): r[1:]
        for r in conn.execute(
            select(
                v.c.partner_id,
                sum_if(in_now),
                sum_if(and_(in_now, v.c.status == "reversed")),
                sum_if(and_(in_now, earning), v.c.amount_micros - v.c.refunded_micros),
                sum_if(in_before),
                sum_if(and_(in_before, earning), v.c.amount_micros - v.c.refunded_micros),
            )
            .where(
                v.c.program_id == scope.program_id,
                within(v.c.created_at, whole),
                v.c.status != "rejected",
                v.c.partner_id.is_not(None),
            )
            .group_by(v.c.partner_id)
        )
    }
    commission = {
        int(r[0]): (int(r[1]), int(r[2]))
        for r in conn.execute(
            select(
                e.c.partner_id,
                sum_if(within(e.c.created_at, current), e.c.amount_micros),
                sum_if(within(e.c.created_at, previous), e.c.amount_micros),
            )
            .where(
                e.c.program_id == scope.program_id,
                within(e.c.created_at, whole),
                e.c.kind.in_(EARNING_KINDS),
                e.c.currency == scope.currency,
            )
            .group_by(e.c.partner_id)
        )
    }
    last = _last_activity(conn, ids, now)
    out = []
    for pid in ids:
        conv = conversions.get(pid, (0, 0, 0, 0, 0))
        comm_now, comm_before = commission.get(pid, (0, 0))
        seen_at = last.get(pid)
        out.append(
            PartnerPeriodFeatures(
                partner_id=pid,
                clicks=clicks_now.get(pid, Traffic()).human_clicks,
                conversions=int(conv[0]),
                refunds=int(conv[1]),
                revenue=Decimal(int(conv[2])) / MICROS,
                commission=Decimal(comm_now) / MICROS,
                previous_clicks=clicks_before.get(pid, Traffic()).human_clicks,
                previous_conversions=int(conv[3]),
                previous_revenue=Decimal(int(conv[4])) / MICROS,
                previous_commission=Decimal(comm_before) / MICROS,
                days_since_last_activity=None if seen_at is None else (now - seen_at).days,
            )
        )
    return out


def _last_activity(conn: Connection, ids: Sequence[int], now: datetime) -> dict[int, datetime]:
    """Each partner's last non-bot click or counted conversion up to `now` (one index
    lookup per partner inside a single statement)."""
    p, c, v = t.partners, t.clicks, t.conversions
    last_click = (
        select(func.max(c.c.created_at))
        .where(c.c.partner_id == p.c.id, c.c.is_bot == false(), c.c.created_at <= now)
        .scalar_subquery()
    )
    last_conversion = (
        select(func.max(v.c.created_at))
        .where(v.c.partner_id == p.c.id, v.c.status != "rejected", v.c.created_at <= now)
        .scalar_subquery()
    )
    out: dict[int, datetime] = {}
    for pid, click_at, conversion_at in conn.execute(
        select(p.c.id, last_click, last_conversion).where(p.c.id.in_(list(ids)))
    ):
        seen = [_aware(x) for x in (click_at, conversion_at) if x is not None]
        if seen:
            out[int(pid)] = max(seen)
    return out


def _aware(value: Any) -> datetime:
    """Scalar subqueries lose the column type on some drivers: parse and tag UTC here."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"unexpected timestamp {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Report builder labels ---------------------------------------------------------------------


def report_labels(conn: Connection, dimension: str, keys: Iterable[Any]) -> dict[Any, str]:
    """Display names of report groups: partner and offer names, link codes, creative
    titles, and words for the empty groups (no link, unknown country, no coupon, no
    creative)."""
    ids = [k for k in keys if isinstance(k, int) and k]
    names: dict[Any, str] = {}
    if dimension == "link":
        lk = t.tracking_links.c
        if ids:
            names = {
                int(i): str(code)
                for i, code in conn.execute(select(lk.id, lk.code).where(lk.id.in_(ids)))
            }
        names[0] = "(no link: coupon or customer)"
    elif dimension in ("partner", "offer") and ids:
        table = t.partners if dimension == "partner" else t.offers
        names = {
            int(i): str(name)
            for i, name in conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(ids)))
        }
    elif dimension in ("country", "device", "channel"):
        names[""] = "(unknown)"
    elif dimension == "coupon":
        names[""] = "(no coupon)"
    elif dimension == "creative":
        names = creative_labels(conn, ids)
    return names


def conversions_folded_at(conn: Connection) -> datetime | None:
    """When conversions were last folded into the rollups (reports show them as of then)."""
    m = t.rollup_marks.c
    value = conn.execute(select(m.value).where(m.name == "conversions")).scalar()
    return None if value is None else _aware(str(value))
