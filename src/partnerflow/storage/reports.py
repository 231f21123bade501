"""Report queries (SQLAlchemy Core, the same SQL on SQLite and PostgreSQL).

Sums stay exact: money is summed as BIGINT micro-units and turned into Decimal only here,
at the edge. Days are bucketed in the program's timezone without relying on the
database's timezone support (SQLite has none): the SQL groups events into 15-minute UTC
buckets and Python maps each bucket to its local day. Every current IANA offset is a
multiple of 15 minutes, so a bucket never straddles a local midnight.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Integer,
    case,
    cast,
    delete,
    false,
    func,
    select,
    true,
)

from partnerflow.core.ids import ProgramId
from partnerflow.core.money import MICROS
from partnerflow.storage import tables as t

BUCKET_SECONDS = 900
# Ledger kinds that change what a partner earned. Approvals and payments only move money
# between buckets (-pending +approved), so they are left out rather than netted.
EARNING_KINDS = ("commission", "reversal", "adjustment")


class Dimension(enum.StrEnum):
    PARTNER = "partner"
    OFFER = "offer"
    DAY = "day"
    CREATIVE = "creative"  # the click's creative (`cr=`); 0 = none


@dataclass(frozen=True, slots=True)
class GroupSums:
    """Raw sums for one report row; `key` is a partner, offer or creative id (0: no
    creative) or a local date."""

    key: int | date
    clicks: int = 0
    unique_clicks: int = 0
    conversions: int = 0
    refunds: int = 0
    revenue: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    program_id: ProgramId
    currency: str
    timezone: str
    dimension: Dimension
    first_day: date
    last_day: date  # inclusive


def local_day_bounds(first_day: date, last_day: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of local days first_day..last_day (inclusive) in `timezone`."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(first_day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _bucket(conn: Connection, column: Column[Any]) -> ColumnElement[Any]:
    """Integer 15-minute UTC bucket number of a timestamp column."""
    if conn.dialect.name == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text; strftime('%s') reads it as UTC.
        return cast(func.strftime("%s", column), Integer) // BUCKET_SECONDS
    return func.floor(func.extract("epoch", column) / BUCKET_SECONDS)


def _sum_if(condition: ColumnElement[bool], value: Any = 1) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def report_sums(conn: Connection, q: ReportQuery) -> list[GroupSums]:
    """Per-group sums for the query, ordered by key. Clicks flagged as bots are left out;
    conversions count only when attributed to a partner and not rejected; revenue excludes
    refunded (reversed) conversions and is net of partial refunds; money is summed in the
    program's currency only."""
    start, end = local_day_bounds(q.first_day, q.last_day, q.timezone)
    c, v, e = t.clicks, t.conversions, t.commission_entries

    def key_of(table: Any) -> ColumnElement[Any]:
        if q.dimension is Dimension.CREATIVE:
            return func.coalesce(c.c.creative_id, 0)  # conversions: their click's
        if q.dimension is Dimension.PARTNER:
            return table.c.partner_id  # type: ignore[no-any-return]
        if q.dimension is Dimension.OFFER:
            return table.c.offer_id  # type: ignore[no-any-return]
        return _bucket(conn, table.c.created_at)

    click_key = key_of(c).label("k")
    click_rows = conn.execute(
        select(
            click_key,
            func.count().label("clicks"),
            _sum_if(c.c.is_unique == true()).label("unique_clicks"),
        )
        .where(
            c.c.program_id == q.program_id,
            c.c.created_at >= start,
            c.c.created_at < end,
            c.c.is_bot == false(),
        )
        .group_by(click_key)
    ).all()

    conv_key = key_of(v).label("k")
    # By creative a conversion is grouped under its click's creative (none without a click).
    conversions: Any = (
        v.outerjoin(c, c.c.id == v.c.click_id) if q.dimension is Dimension.CREATIVE else v
    )
    in_currency = v.c.currency == q.currency
    not_refunded = v.c.status != "reversed"
    conv_where = (
        v.c.program_id == q.program_id,
        v.c.created_at >= start,
        v.c.created_at < end,
        v.c.partner_id.is_not(None),
        v.c.status != "rejected",
    )
    conv_rows = conn.execute(
        select(
            conv_key,
            func.count().label("conversions"),
            _sum_if(v.c.status == "reversed").label("refunds"),
            _sum_if(in_currency & not_refunded, v.c.amount_micros - v.c.refunded_micros).label(
                "revenue"
            ),
        )
        .select_from(conversions)
        .where(*conv_where)
        .group_by(conv_key)
    ).all()

    commission_rows = conn.execute(
        select(conv_key, func.coalesce(func.sum(e.c.amount_micros), 0).label("commission"))
        .select_from(e.join(conversions, e.c.conversion_id == v.c.id))
        .where(*conv_where, e.c.kind.in_(EARNING_KINDS), e.c.currency == q.currency)
        .group_by(conv_key)
    ).all()

    to_key = _day_mapper(q.timezone) if q.dimension is Dimension.DAY else int
    acc: dict[Any, dict[str, int]] = {}
    for rows, fields in (
        (click_rows, ("clicks", "unique_clicks")),
        (conv_rows, ("conversions", "refunds", "revenue")),
        (commission_rows, ("commission",)),
    ):
        for row in rows:
            if row.k is None:
                continue
            slot = acc.setdefault(to_key(row.k), {})
            for name in fields:
                slot[name] = slot.get(name, 0) + int(getattr(row, name))
    if q.dimension is Dimension.DAY:
        day = q.first_day
        while day <= q.last_day:
            acc.setdefault(day, {})
            day += timedelta(days=1)
    return [_group(key, acc[key]) for key in sorted(acc)]


def _group(key: Any, sums: dict[str, int]) -> GroupSums:
    return GroupSums(
        key=key,
        clicks=sums.get("clicks", 0),
        unique_clicks=sums.get("unique_clicks", 0),
        conversions=sums.get("conversions", 0),
        refunds=sums.get("refunds", 0),
        revenue=Decimal(sums.get("revenue", 0)) / MICROS,
        commission=Decimal(sums.get("commission", 0)) / MICROS,
    )


def _day_mapper(timezone: str) -> Any:
    zone = ZoneInfo(timezone)

    def to_day(bucket: Any) -> date:
        instant = datetime.fromtimestamp(int(bucket) * BUCKET_SECONDS, tz=UTC)
        return instant.astimezone(zone).date()

    return to_day


NO_CREATIVE_LABEL = "(none)"


def creative_labels(conn: Connection, keys: Iterable[Any]) -> dict[Any, str]:
    """Creative titles by id for report keys, and "(none)" for 0 (events without one)."""
    ids = [k for k in keys if isinstance(k, int) and k]
    names: dict[Any, str] = {0: NO_CREATIVE_LABEL}
    if ids:
        cr = t.creatives.c
        rows = conn.execute(select(cr.id, cr.title).where(cr.id.in_(ids)))
        names.update({int(i): str(title) for i, title in rows})
    return names


def labels(conn: Connection, dimension: Dimension, keys: Iterable[Any]) -> dict[Any, str]:
    """Display names for partner / offer / creative keys (days label themselves)."""
    wanted = [k for k in keys if isinstance(k, int)]
    if dimension is Dimension.CREATIVE:
        return creative_labels(conn, wanted)
    if dimension is Dimension.DAY or not wanted:
        return {}
    table = t.partners if dimension is Dimension.PARTNER else t.offers
    rows = conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def event_totals(conn: Connection, program_id: ProgramId | None = None) -> dict[str, int]:
    """Counts of every stored event (bots and flagged ones included), for `stats`."""

    def scoped(table: Any) -> list[ColumnElement[bool]]:
        return [] if program_id is None else [table.c.program_id == program_id]

    c, i, v, e = t.clicks, t.impressions, t.conversions, t.commission_entries
    flagged_click = (c.c.is_bot == true()) | (c.c.fraud_score > 0) | (func.length(c.c.flags) > 0)
    clicks = conn.execute(
        select(
            func.count(),
            _sum_if(c.c.is_unique == true()),
            _sum_if(c.c.is_bot == true()),
            _sum_if(flagged_click),
        )
        .select_from(c)
        .where(*scoped(c))
    ).one()
    impressions = conn.execute(select(func.count()).select_from(i).where(*scoped(i))).scalar_one()
    conversions = conn.execute(
        select(
            func.count(),
            _sum_if(v.c.is_flagged == true()),
            _sum_if(v.c.status == "reversed"),
            _sum_if(v.c.partner_id.is_not(None)),
        )
        .select_from(v)
        .where(*scoped(v))
    ).one()
    ledger = conn.execute(select(func.count()).select_from(e).where(*scoped(e))).scalar_one()
    out = {
        "clicks": int(clicks[0]),
        "unique_clicks": int(clicks[1]),
        "bot_clicks": int(clicks[2]),
        "flagged_clicks": int(clicks[3]),
        "impressions": int(impressions),
        "conversions": int(conversions[0]),
        "attributed_conversions": int(conversions[3]),
        "flagged_conversions": int(conversions[1]),
        "refunded_conversions": int(conversions[2]),
        "ledger_entries": int(ledger),
    }
    for name, table in (
        ("programs", t.programs),
        ("offers", t.offers),
        ("partners", t.partners),
        ("links", t.tracking_links),
        ("coupons", t.coupon_codes),
    ):
        where = [] if program_id is None or name == "programs" else scoped(table)
        if name == "programs" and program_id is not None:
            where = [table.c.id == program_id]
        out[name] = int(
            conn.execute(select(func.count()).select_from(table).where(*where)).one()[0]
        )
    out["users"] = int(conn.execute(select(func.count()).select_from(t.users)).one()[0])
    return out


# --- ad spend, program revenue, partner activity, cohorts (issue 7) -----------------------

SPEND_DIMENSIONS = frozenset({"day", "week", "month", "partner", "channel"})


def ad_spend_by(
    conn: Connection,
    program_id: int,
    currency: str,
    dimension: str,
    first_day: date,
    last_day: date,
    partner_ids: tuple[int, ...] = (),
    other_filters: bool = False,
) -> tuple[dict[Any, Decimal] | None, Decimal | None]:
    """Imported ad spend per group, and in total, in the program's currency. Spend is
    recorded per day, channel and (optionally) partner, so it is attributed only by those
    dimensions (None otherwise); with an offer, country or device filter, or when the
    program has no spend at all, nothing can be said (None, None)."""
    from partnerflow.storage.rollup_grain import period_key

    s = t.ad_spend.c
    where = [
        s.program_id == program_id,
        s.day >= first_day,
        s.day <= last_day,
        s.currency == currency,
    ]
    if partner_ids:
        where.append(s.partner_id.in_(partner_ids))
    any_spend = conn.execute(
        select(func.count()).select_from(t.ad_spend).where(t.ad_spend.c.program_id == program_id)
    ).scalar_one()
    if not any_spend or other_filters:
        return None, None
    rows = conn.execute(
        select(s.day, s.partner_id, s.channel, func.sum(s.amount_micros))
        .where(*where)
        .group_by(s.day, s.partner_id, s.channel)
    ).all()
    total = sum((int(r[3]) for r in rows), 0)
    if dimension not in SPEND_DIMENSIONS:
        return None, Decimal(total) / MICROS
    out: dict[Any, int] = {}
    for day, partner_id, channel, micros in rows:
        if dimension == "partner":
            if partner_id is None:
                continue
            key: Any = int(partner_id)
        elif dimension == "channel":
            key = str(channel).strip().lower()
        else:
            key = period_key(
                day if isinstance(day, date) else date.fromisoformat(str(day)), dimension
            )
        out[key] = out.get(key, 0) + int(micros)
    return {k: Decimal(v) / MICROS for k, v in out.items()}, Decimal(total) / MICROS


def program_revenue_total(
    conn: Connection, program_id: int, currency: str, first_day: date, last_day: date
) -> tuple[Decimal, int] | None:
    """Total revenue (all sources) and orders imported for the period, or None when no
    revenue was imported for any of its days."""
    r = t.program_revenue.c
    row = conn.execute(
        select(func.count(), func.sum(r.revenue_micros), func.sum(r.orders)).where(
            r.program_id == program_id,
            r.day >= first_day,
            r.day <= last_day,
            r.currency == currency,
        )
    ).one()
    if not row[0]:
        return None
    return Decimal(int(row[1] or 0)) / MICROS, int(row[2] or 0)


def import_program_revenue(
    conn: Connection,
    program_id: int,
    rows: Iterable[tuple[date, str, int, int, str]],
    batch_id: str,
    now: datetime,
) -> int:
    """Upsert (day, source, revenue micros, orders, currency) rows: re-importing a day and
    source replaces it, so a corrected export is simply imported again."""
    r = t.program_revenue.c
    n = 0
    for day, source, micros, orders, currency in rows:
        conn.execute(
            delete(t.program_revenue).where(
                r.program_id == program_id, r.day == day, r.source == source
            )
        )
        conn.execute(
            t.program_revenue.insert().values(
                program_id=program_id,
                day=day,
                source=source,
                revenue_micros=micros,
                orders=orders,
                currency=currency,
                batch_id=batch_id,
                imported_at=now,
            )
        )
        n += 1
    return n


def last_activity(conn: Connection, program_id: int) -> dict[int, date | None]:
    """Each partner's last local day with a (non-bot) click or a conversion, from the
    rollups; partners with none map to None."""
    out: dict[int, date | None] = {
        int(pid): None
        for pid in conn.execute(
            select(t.partners.c.id).where(
                t.partners.c.program_id == program_id, t.partners.c.status == "active"
            )
        ).scalars()
    }
    for table, measure in ((t.rollup_traffic, "clicks"), (t.rollup_conversions, "conversions")):
        rows = conn.execute(
            select(table.c.partner_id, func.max(table.c.day))
            .where(table.c.program_id == program_id, table.c[measure] > 0)
            .group_by(table.c.partner_id)
        )
        for pid, day in rows:
            if int(pid) not in out:
                continue
            d = day if isinstance(day, date) else date.fromisoformat(str(day))
            seen = out[int(pid)]
            out[int(pid)] = d if seen is None or d > seen else seen
    return out


def customer_purchases(
    conn: Connection, program_id: int, timezone: str
) -> list[tuple[str, int, date]]:
    """(customer, partner or 0, local day) of every counted conversion with a customer id
    (unattributed purchases included: a retained customer may come back by themselves)."""
    v = t.conversions.c
    bucket = _bucket(conn, v.created_at).label("b")
    partner = func.coalesce(v.partner_id, 0).label("p")
    rows = conn.execute(
        select(v.customer_id, partner, bucket)
        .where(v.program_id == program_id, v.customer_id.is_not(None), v.status != "rejected")
        .group_by(v.customer_id, partner, bucket)
    ).all()
    to_day = _day_mapper(timezone)
    return [(str(c), int(p), to_day(b)) for c, p, b in rows]
