"""Reads for segmentation (SQLAlchemy Core, the same SQL on SQLite and PostgreSQL).

Counting conventions are those of the reports (`storage.reports`): bot clicks are left out;
a conversion counts when attributed to a partner and not rejected; refunds are reversed
conversions; revenue excludes reversed conversions and is summed in the program's currency
only; commission is the sum of earning ledger entries (commission, reversal, adjustment).
Money is summed as BIGINT micro-units and becomes Decimal only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, false, func, select

from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import MICROS
from partnerflow.segments.model import PartnerPeriodFeatures
from partnerflow.storage import tables as t

# Ledger kinds that change what a partner earned (approvals and payments only move money
# between buckets), as in the reports.
EARNING_KINDS = ("commission", "reversal", "adjustment")
SEGMENTED_STATUSES = ("active", "approved")


@dataclass(frozen=True, slots=True)
class PurchaseRow:
    customer_id: str
    at: datetime
    amount: Decimal


@dataclass(frozen=True, slots=True)
class CustomerPurchases:
    rows: list[PurchaseRow]
    other_currency: int
    """Sales skipped because they were not in the program's currency."""


def customer_purchases(
    conn: Connection, program_id: int, currency: str, until: datetime
) -> CustomerPurchases:
    """Every sale of the program with a customer id, up to `until`, net of partial refunds.

    Rejected and reversed sales are left out, and so are sales refunded in full.
    """
    v = t.conversions
    where = (
        v.c.program_id == program_id,
        v.c.event_type == "sale",
        v.c.status.not_in(("rejected", "reversed")),
        v.c.customer_id.is_not(None),
        v.c.customer_id != "",
        v.c.created_at <= until,
    )
    rows = conn.execute(
        select(
            v.c.customer_id,
            v.c.created_at,
            (v.c.amount_micros - v.c.refunded_micros).label("net"),
        )
        .where(*where, v.c.currency == currency)
        .order_by(v.c.customer_id, v.c.created_at, v.c.id)
    ).all()
    other = conn.execute(
        select(func.count()).select_from(v).where(*where, v.c.currency != currency)
    ).scalar_one()
    return CustomerPurchases(
        rows=[
            PurchaseRow(str(r.customer_id), r.created_at, Decimal(int(r.net)) / MICROS)
            for r in rows
            if int(r.net) > 0
        ],
        other_currency=int(other),
    )


def _in(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _sum_if(condition: ColumnElement[bool], value: Any = 1) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def partner_period_features(
    conn: Connection,
    program_id: int,
    currency: str,
    now: datetime,
    period_days: int = 30,
) -> list[PartnerPeriodFeatures]:
    """Features of the program's active and approved partners for the `period_days` days
    before `now` and the `period_days` days before that, ordered by partner id."""
    if period_days < 1:
        raise InvalidInput("the period must be at least one day", field="period_days")
    current = (now - timedelta(days=period_days), now)
    previous = (now - timedelta(days=2 * period_days), current[0])
    p, c, v, e = t.partners, t.clicks, t.conversions, t.commission_entries

    partner_ids = [
        int(row.id)
        for row in conn.execute(
            select(p.c.id)
            .where(p.c.program_id == program_id, p.c.status.in_(SEGMENTED_STATUSES))
            .order_by(p.c.id)
        )
    ]
    if not partner_ids:
        return []

    click_rows = conn.execute(
        select(
            c.c.partner_id,
            _sum_if(_in(c.c.created_at, *current)).label("now"),
            _sum_if(_in(c.c.created_at, *previous)).label("before"),
        )
        .where(
            c.c.program_id == program_id,
            c.c.created_at >= previous[0],
            c.c.created_at < now,
            c.c.is_bot == false(),
        )
        .group_by(c.c.partner_id)
    ).all()
    clicks = {int(r.partner_id): (int(r.now), int(r.before)) for r in click_rows}

    counted = and_(v.c.status != "rejected", v.c.partner_id.is_not(None))
    earning = and_(v.c.currency == currency, v.c.status != "reversed")
    conv_rows = conn.execute(
        select(
            v.c.partner_id,
            _sum_if(_in(v.c.created_at, *current)).label("conversions"),
            _sum_if(and_(_in(v.c.created_at, *current), v.c.status == "reversed")).label("refunds"),
            _sum_if(and_(_in(v.c.created_at, *current), earning), v.c.amount_micros).label(
                "revenue"
            ),
            _sum_if(_in(v.c.created_at, *previous)).label("prev_conversions"),
            _sum_if(and_(_in(v.c.created_at, *previous), earning), v.c.amount_micros).label(
                "prev_revenue"
            ),
        )
        .where(
            v.c.program_id == program_id,
            v.c.created_at >= previous[0],
            v.c.created_at < now,
            counted,
        )
        .group_by(v.c.partner_id)
    ).all()
    conversions = {int(r.partner_id): r for r in conv_rows}

    commission_rows = conn.execute(
        select(
            e.c.partner_id,
            _sum_if(_in(e.c.created_at, *current), e.c.amount_micros).label("now"),
            _sum_if(_in(e.c.created_at, *previous), e.c.amount_micros).label("before"),
        )
        .where(
            e.c.program_id == program_id,
            e.c.created_at >= previous[0],
            e.c.created_at < now,
            e.c.kind.in_(EARNING_KINDS),
            e.c.currency == currency,
        )
        .group_by(e.c.partner_id)
    ).all()
    commission = {int(r.partner_id): (int(r.now), int(r.before)) for r in commission_rows}

    # Last activity over all time, one index lookup per partner (ix_*_partner_created).
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
    last_rows = conn.execute(
        select(
            p.c.id,
            last_click.label("last_click"),
            last_conversion.label("last_conversion"),
        ).where(p.c.id.in_(partner_ids))
    ).all()
    last: dict[int, datetime | None] = {}
    for r in last_rows:
        seen = [_aware(x) for x in (r.last_click, r.last_conversion) if x is not None]
        last[int(r.id)] = max(seen) if seen else None

    out = []
    for pid in partner_ids:
        n_clicks, prev_clicks = clicks.get(pid, (0, 0))
        conv = conversions.get(pid)
        comm_now, comm_before = commission.get(pid, (0, 0))
        seen_at = last.get(pid)
        out.append(
            PartnerPeriodFeatures(
                partner_id=pid,
                clicks=n_clicks,
                conversions=int(conv.conversions) if conv else 0,
                refunds=int(conv.refunds) if conv else 0,
                revenue=Decimal(int(conv.revenue)) / MICROS if conv else Decimal(0),
                commission=Decimal(comm_now) / MICROS,
                previous_clicks=prev_clicks,
                previous_conversions=int(conv.prev_conversions) if conv else 0,
                previous_revenue=Decimal(int(conv.prev_revenue)) / MICROS if conv else Decimal(0),
                previous_commission=Decimal(comm_before) / MICROS,
                days_since_last_activity=None if seen_at is None else (now - seen_at).days,
            )
        )
    return out


def _aware(value: Any) -> datetime:
    """Scalar subqueries lose the column type on some drivers: parse and tag UTC here."""

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"unexpected timestamp {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class PartnerProfileRow:
    partner_id: int
    name: str
    status: str
    website: str | None
    country: str | None
    social: dict[str, Any]


def partner_profiles(
    conn: Connection,
    program_id: int,
    *,
    partner_id: int | None = None,
    statuses: tuple[str, ...] | None = ("applied",),
) -> list[PartnerProfileRow]:
    """Partners' profile data for audience fit: one partner, or those in `statuses`."""
    p = t.partners
    query = select(p.c.id, p.c.name, p.c.status, p.c.website, p.c.country, p.c.social).where(
        p.c.program_id == program_id
    )
    if partner_id is not None:
        query = query.where(p.c.id == partner_id)
    elif statuses is not None:
        query = query.where(p.c.status.in_(statuses))
    return [
        PartnerProfileRow(
            partner_id=int(r.id),
            name=str(r.name),
            status=str(r.status),
            website=r.website,
            country=r.country,
            social=dict(r.social) if isinstance(r.social, dict) else {},
        )
        for r in conn.execute(query.order_by(p.c.id))
    ]
