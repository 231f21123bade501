"""Read-side queries for the web pages (dashboard and partner portal).

Every query takes a `Scope`: a program and, for the partner portal, one partner. The partner
filter is applied here, in SQL, so a portal page cannot show another partner's rows even if
a handler forgets a check. Each page costs a fixed number of queries whatever the number
of rows (aggregates are grouped, never fetched per row), which the query-count tests pin.

Counting rules (docs/web.md): clicks are all recorded clicks (gross; unique shown beside
them); conversions and revenue count pending and approved conversions, not rejected or
reversed ones; commission is the net sum of ledger entries created in the period (an
approval or payment moves money between buckets and nets to zero; a reversal subtracts).
Money is summed as integer micro-units per currency and returned as exact `Money`.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)

from partnerflow.core.money import Money
from partnerflow.storage import tables as t

COUNTED_STATUSES = ("pending", "approved")
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
    clicks: int
    unique_clicks: int
    conversions: int
    revenue: Money
    commission: Money
    revenue_other: tuple[Money, ...] = ()
    commission_other: tuple[Money, ...] = ()

    @property
    def conversion_rate(self) -> Decimal | None:
        """Conversions per 100 gross clicks."""
        rate = _ratio(Decimal(self.conversions) * 100, self.clicks)
        return rate

    @property
    def epc(self) -> Money | None:
        """Partner earnings per gross click (commission / clicks), in the main currency."""
        value = _ratio(self.commission.amount, self.clicks)
        return None if value is None else Money(value, self.commission.currency)

    @property
    def aov(self) -> Money | None:
        value = _ratio(self.revenue.amount, self.conversions)
        return None if value is None else Money(value, self.revenue.currency)


def _between(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _clicks_where(scope: Scope, period: Period) -> list[ColumnElement[bool]]:
    c = t.clicks
    if scope.partner_id is not None:
        # A partner belongs to one program, so (partner_id, created_at) alone selects the
        # rows, and the index on exactly those columns answers counts without the table.
        return [c.c.partner_id == scope.partner_id, _between(c.c.created_at, period)]
    return [c.c.program_id == scope.program_id, _between(c.c.created_at, period)]


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


def totals(conn: Connection, scope: Scope, period: Period, *, unique: bool = True) -> Totals:
    """Period totals. `unique=False` skips the unique-click count, which has to read every
    click row (the gross count is answered from the index alone): trends only need gross."""
    c, v, e = t.clicks, t.conversions, t.commission_entries
    unique_col = (
        func.coalesce(func.sum(case((c.c.is_unique, 1), else_=0)), 0) if unique else literal(0)
    )
    click_row = conn.execute(
        select(func.count(), unique_col).where(*_clicks_where(scope, period))
    ).one()
    revenue = MoneySums()
    conversions = 0
    for currency, count, micros in conn.execute(
        select(v.c.currency, func.count(), func.sum(v.c.amount_micros))
        .where(*_conversions_where(scope, period))
        .group_by(v.c.currency)
    ):
        conversions += int(count)
        revenue.add(currency, micros)
    commission = MoneySums()
    for currency, micros in conn.execute(
        select(e.c.currency, func.sum(e.c.amount_micros))
        .where(*_ledger_where(scope, period))
        .group_by(e.c.currency)
    ):
        commission.add(currency, micros)
    return Totals(
        clicks=int(click_row[0]),
        unique_clicks=int(click_row[1]),
        conversions=conversions,
        revenue=revenue.main(scope.currency),
        commission=commission.main(scope.currency),
        revenue_other=revenue.others(scope.currency),
        commission_other=commission.others(scope.currency),
    )


# Daily series ------------------------------------------------------------------------


@dataclass(slots=True)
class DayPoint:
    day: date
    clicks: int = 0
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


def _per_day(
    conn: Connection,
    days: list[tuple[date, datetime, datetime]],
    column: Any,
    values: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
) -> Iterable[Sequence[Any]]:
    """One statement, one indexed range aggregate per day (UNION ALL): on SQLite this is
    several times faster than grouping every row by a computed day, and exact in any
    time zone."""
    parts = [
        select(literal(i).label("i"), *values).where(*where, column >= start, column < end)
        for i, (_day, start, end) in enumerate(days)
    ]
    yield from conn.execute(union_all(*parts))


def _without_period(where: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    # The *_where helpers put the period condition second; _per_day adds one per day.
    return [where[0], *where[2:]]


def daily_series(conn: Connection, scope: Scope, period: Period) -> list[DayPoint]:
    """Clicks, conversions, revenue and commission per local day (program time zone),
    in the program currency."""
    days = _day_bounds(period, scope.timezone)
    points = [DayPoint(day) for day, _s, _e in days]
    c, v, e = t.clicks, t.conversions, t.commission_entries
    click_where = _without_period(_clicks_where(scope, period))
    for i, count in _per_day(conn, days, c.c.created_at, [func.count()], click_where):
        points[i].clicks = int(count)
    conv_where = [
        *_without_period(_conversions_where(scope, period)),
        v.c.currency == scope.currency,
    ]
    conv_values = [func.count(), func.sum(v.c.amount_micros)]
    for i, count, micros in _per_day(conn, days, v.c.created_at, conv_values, conv_where):
        points[i].conversions = int(count)
        points[i].revenue_micros = int(micros or 0)
    ledger_where = [
        *_without_period(_ledger_where(scope, period)),
        e.c.currency == scope.currency,
    ]
    ledger_values = [func.sum(e.c.amount_micros)]
    for i, micros in _per_day(conn, days, e.c.created_at, ledger_values, ledger_where):
        points[i].commission_micros = int(micros or 0)
    return points


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
    clicks: int = 0
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
    conn: Connection, scope: Scope, period: Period, partner_ids: Sequence[int]
) -> dict[int, PartnerMetrics]:
    """Metrics of many partners in four grouped queries (no query per partner)."""
    out: dict[int, PartnerMetrics] = {pid: PartnerMetrics() for pid in partner_ids}
    if not partner_ids:
        return out
    ids = list(partner_ids)
    c, v, e = t.clicks, t.conversions, t.commission_entries
    # No program filter on clicks: the partners are the program's, and (partner_id,
    # created_at) is an index that answers the count by itself.
    for pid, count in conn.execute(
        select(c.c.partner_id, func.count())
        .where(c.c.partner_id.in_(ids), _between(c.c.created_at, period))
        .group_by(c.c.partner_id)
    ):
        out[pid].clicks = int(count)
    for pid, count, micros in conn.execute(
        select(v.c.partner_id, func.count(), func.sum(v.c.amount_micros))
        .where(
            *_conversions_where(scope, period),
            v.c.partner_id.in_(ids),
            v.c.currency == scope.currency,
        )
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
    conn: Connection, scope: Scope, period: Period, limit: int = 10
) -> list[PartnerRow]:
    """Partners ranked by attributed revenue in the period, then by commission."""
    v, p = t.conversions, t.partners
    ranked = conn.execute(
        select(v.c.partner_id, func.sum(v.c.amount_micros).label("revenue"))
        .where(*_conversions_where(scope, period), v.c.currency == scope.currency)
        .group_by(v.c.partner_id)
        .order_by(func.sum(v.c.amount_micros).desc(), v.c.partner_id)
        .limit(limit)
    ).all()
    ids = [int(r.partner_id) for r in ranked]
    if not ids:
        return []
    metrics = partner_metrics(conn, scope, period, ids)
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
    conn: Connection, scope: Scope, period: Period, link_id: int | None = None
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
        for lid, n, u in conn.execute(
            select(c.c.link_id, func.count(), func.sum(case((c.c.is_unique, 1), else_=0)))
            .where(*_clicks_where(scope, period), c.c.link_id.in_(ids))
            .group_by(c.c.link_id)
        ):
            clicks[lid] = (int(n), int(u or 0))
        joined = v.join(c, c.c.id == v.c.click_id)
        for lid, n, micros in conn.execute(
            select(c.c.link_id, func.count(), func.sum(v.c.amount_micros))
            .select_from(joined)
            .where(
                *_conversions_where(scope, period),
                v.c.currency == scope.currency,
                c.c.link_id.in_(ids),
            )
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
            v.c.currency == scope.currency,
        ]
        for code, n, micros in conn.execute(
            select(v.c.coupon_code, func.count(), func.sum(v.c.amount_micros))
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
