"""Reads for CLV and churn (SQLAlchemy Core, the same SQL on SQLite and PostgreSQL).

A *purchase* is a stored conversion of the program with `event_type = 'sale'`, a customer id,
a status other than rejected or reversed, and something left after refunds
(`amount_micros - refunded_micros > 0`); its value is that net amount. This is the counting
rule of `storage.segment_queries.customer_purchases`, plus the partner the sale was attributed
to, which decides the customer's acquisition cohort.

Amounts in another currency are converted into the program's currency with the stored
exchange-rate table (the rate valid on the sale's UTC day, as for commissions); a sale with
no rate keeps `amount = None`: it still counts as activity (churn, cohort) but not as spend.
Money stays integer micro-units until it becomes an exact Decimal here.

A *subscription payment* (`subscription_payments`, for the sBG retention forecast) is a paid
conversion of the program: `event_type` 'sale' or 'renewal' (recurring commission rules pay
renewals; the tracker records a renewal charge as a sale with the subscriber's customer id),
a customer id, status not rejected or reversed and not fully refunded — optionally only of
the given (subscription) offers. No amount is needed: paying is what counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from partnerflow.commissions.plans import SUBSCRIPTION_EVENTS
from partnerflow.commissions.rates import RateTable
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import MICROS, Money
from partnerflow.storage import tables as t
from partnerflow.storage.rates import SqlRates

EXCLUDED_STATUSES = ("rejected", "reversed")


@dataclass(frozen=True, slots=True)
class Sale:
    """One purchase; satisfies `analytics.cohorts.SaleLike` (storage and analytics are
    sibling layers, so neither imports the other's types)."""

    customer_id: str
    partner_id: int | None
    at: datetime
    amount: Decimal | None
    """Net of refunds, in the program currency; None when it could not be converted."""


@dataclass(frozen=True, slots=True)
class StoredSales:
    sales: tuple[Sale, ...]
    """Purchases ordered by customer, time and conversion id."""
    converted: int
    """Sales converted from another currency with the exchange-rate table."""
    without_rate: int
    """Sales in another currency with no exchange rate: activity only, no spend."""
    missing_rates: tuple[str, ...]
    """The currencies that had no rate, sorted (for the note printed to the user)."""


def program_sales(
    conn: Connection,
    program_id: int,
    currency: str,
    *,
    before: datetime | None = None,
    rates: RateTable | None = None,
) -> StoredSales:
    """Every purchase of the program (created before `before`, when given), net of refunds,
    in the program currency when it can be converted.

    `rates` defaults to the stored exchange-rate table; pass an empty `RateTable()` to skip
    every sale in another currency.
    """
    v = t.conversions
    query = (
        select(
            v.c.customer_id,
            v.c.partner_id,
            v.c.created_at,
            v.c.currency,
            (v.c.amount_micros - v.c.refunded_micros).label("net"),
        )
        .where(
            v.c.program_id == program_id,
            v.c.event_type == "sale",
            v.c.status.not_in(EXCLUDED_STATUSES),
            v.c.customer_id.is_not(None),
            v.c.customer_id != "",
            v.c.amount_micros > v.c.refunded_micros,
        )
        .order_by(v.c.customer_id, v.c.created_at, v.c.id)
    )
    if before is not None:
        query = query.where(v.c.created_at < before)
    rows = conn.execute(query).all()
    sales: list[Sale] = []
    converted = without_rate = 0
    missing: set[str] = set()
    # Net amounts repeat a lot (prices); Decimal division is the dearest step of the loop.
    exact: dict[int, Decimal] = {}
    for customer_id, partner_id, created_at, row_currency, net in rows:
        micros = int(net)
        amount: Decimal | None = exact.get(micros)
        if amount is None:
            amount = exact[micros] = Decimal(micros) / MICROS
        if row_currency != currency:
            if rates is None:  # loaded once, and only when a foreign currency shows up
                rates = SqlRates(conn).table()
            try:
                money = Money(amount, str(row_currency))
                amount = rates.convert(money, currency, created_at).converted.amount
                converted += 1
            except (NotFound, InvalidInput):  # no rate, or a currency we do not know
                amount = None
                without_rate += 1
                missing.add(str(row_currency))
        sales.append(
            Sale(
                customer_id=str(customer_id),
                partner_id=None if partner_id is None else int(partner_id),
                at=created_at,
                amount=amount,
            )
        )
    return StoredSales(
        sales=tuple(sales),
        converted=converted,
        without_rate=without_rate,
        missing_rates=tuple(sorted(missing)),
    )


def partner_names(conn: Connection, program_id: int, partner_ids: Sequence[int]) -> dict[int, str]:
    """Names of the given partners of the program (unknown ids are simply absent)."""
    if not partner_ids:
        return {}
    p = t.partners
    rows = conn.execute(
        select(p.c.id, p.c.name).where(
            p.c.program_id == program_id, p.c.id.in_(sorted(set(partner_ids)))
        )
    )
    return {int(r.id): str(r.name) for r in rows}


@dataclass(frozen=True, slots=True)
class Payment:
    """One paid subscription payment (see the module docstring)."""

    customer_id: str
    partner_id: int | None
    offer_id: int | None
    at: datetime


def subscription_payments(
    conn: Connection, program_id: int, *, offer_ids: Sequence[int] | None = None
) -> tuple[Payment, ...]:
    """The program's paid subscription payments (of `offer_ids` when given), ordered by
    customer, time and conversion id, so a customer's first payment comes first."""
    v = t.conversions
    query = (
        select(v.c.customer_id, v.c.partner_id, v.c.offer_id, v.c.created_at)
        .where(
            v.c.program_id == program_id,
            v.c.event_type.in_(sorted(SUBSCRIPTION_EVENTS)),
            v.c.status.not_in(EXCLUDED_STATUSES),
            v.c.customer_id.is_not(None),
            v.c.customer_id != "",
            v.c.amount_micros > v.c.refunded_micros,
        )
        .order_by(v.c.customer_id, v.c.created_at, v.c.id)
    )
    if offer_ids is not None:
        query = query.where(v.c.offer_id.in_(sorted(set(offer_ids))))
    return tuple(
        Payment(
            customer_id=str(r.customer_id),
            partner_id=None if r.partner_id is None else int(r.partner_id),
            offer_id=None if r.offer_id is None else int(r.offer_id),
            at=r.created_at,
        )
        for r in conn.execute(query)
    )


def program_offers(conn: Connection, program_id: int) -> dict[int, str]:
    """The program's offers, id -> name, by id."""
    o = t.offers
    rows = conn.execute(
        select(o.c.id, o.c.name).where(o.c.program_id == program_id).order_by(o.c.id)
    )
    return {int(r.id): str(r.name) for r in rows}
