"""Payout batches and their items, the payees behind them, and the unit of work that the
commission and payout use cases run in.

A batch row's status moves open -> paid exactly once, by a conditional UPDATE whose row
count says whether this transaction won; the money itself moves in `commission_entries`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Self

from sqlalchemy import Connection, select, update

from partnerflow.core.money import Money
from partnerflow.payouts.batches import HeldLine, Payee, PayoutBatch, PayoutLine, Period
from partnerflow.payouts.ports import StoredBatch
from partnerflow.storage import tables as t
from partnerflow.storage.plans import SqlConversionFacts, SqlPlans
from partnerflow.storage.rates import SqlRates
from partnerflow.storage.unit_of_work import SqlUnitOfWork


class SqlPayouts:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _load(self, rows: list[Any]) -> list[StoredBatch]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        items: dict[str, list[Any]] = {i: [] for i in ids}
        for item in self.conn.execute(
            select(t.payout_items)
            .where(t.payout_items.c.batch_id.in_(ids))
            .order_by(t.payout_items.c.id)
        ):
            items[item.batch_id].append(item)
        out = []
        for r in rows:
            lines = tuple(
                PayoutLine(i.partner_id, Money.from_micros(i.amount_micros, i.currency),
                           i.payment_key)
                for i in items[r.id]
                if not i.held
            )  # fmt: skip
            held = tuple(
                HeldLine(i.partner_id, Money.from_micros(i.amount_micros, i.currency), i.reason)
                for i in items[r.id]
                if i.held
            )
            period = Period(date.fromisoformat(r.period_start), date.fromisoformat(r.period_end))
            out.append(
                StoredBatch(
                    PayoutBatch(r.id, r.program_id, period, lines, held),
                    r.status,
                    r.created_by,
                    r.created_at,
                    r.paid_by,
                    r.paid_at,
                )
            )
        return out

    def get(self, batch_id: str) -> StoredBatch | None:
        rows = list(
            self.conn.execute(select(t.payout_batches).where(t.payout_batches.c.id == batch_id))
        )
        found = self._load(rows)
        return found[0] if found else None

    def list(self, program_id: int | None = None) -> list[StoredBatch]:
        query = select(t.payout_batches).order_by(
            t.payout_batches.c.created_at, t.payout_batches.c.id
        )
        if program_id is not None:
            query = query.where(t.payout_batches.c.program_id == program_id)
        return self._load(list(self.conn.execute(query)))

    def add(self, batch: PayoutBatch, created_by: str, at: datetime) -> None:
        self.conn.execute(
            t.payout_batches.insert().values(
                id=batch.id,
                program_id=batch.program_id,
                period_start=batch.period.start.isoformat(),
                period_end=batch.period.end.isoformat(),
                status="open",
                created_by=created_by,
                created_at=at,
            )
        )
        rows = [
            {
                "batch_id": batch.id,
                "partner_id": x.partner_id,
                "amount_micros": x.amount.to_micros(),
                "currency": x.amount.currency,
                "held": False,
                "payment_key": x.key,
                "reason": None,
            }
            for x in batch.lines
        ] + [
            {
                "batch_id": batch.id,
                "partner_id": h.partner_id,
                "amount_micros": h.amount.to_micros(),
                "currency": h.amount.currency,
                "held": True,
                "payment_key": None,
                "reason": h.reason,
            }
            for h in batch.held
        ]
        if rows:
            self.conn.execute(t.payout_items.insert(), rows)

    def supersede_open(self, program_id: int) -> int:
        c = t.payout_batches.c
        result = self.conn.execute(
            update(t.payout_batches)
            .where(c.program_id == program_id, c.status == "open")
            .values(status="superseded")
        )
        return int(result.rowcount or 0)

    def reopen(self, batch_id: str) -> bool:
        c = t.payout_batches.c
        result = self.conn.execute(
            update(t.payout_batches)
            .where(c.id == batch_id, c.status == "superseded")
            .values(status="open")
        )
        return (result.rowcount or 0) == 1

    def mark_paid(self, batch_id: str, paid_by: str, at: datetime) -> bool:
        c = t.payout_batches.c
        result = self.conn.execute(
            update(t.payout_batches)
            .where(c.id == batch_id, c.status == "open")
            .values(status="paid", paid_by=paid_by, paid_at=at)
        )
        return (result.rowcount or 0) == 1

    def paid_ids(self, program_id: int) -> set[str]:
        c = t.payout_batches.c
        rows = self.conn.execute(select(c.id).where(c.program_id == program_id, c.status == "paid"))
        return {r[0] for r in rows}


class SqlPayees:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def payees(self, program_id: int) -> dict[int, Payee]:
        p = t.partners.c
        rows = self.conn.execute(
            select(p.id, p.status, p.name, p.email).where(p.program_id == program_id)
        )
        return {r.id: Payee(r.id, r.status, r.name, r.email) for r in rows}


class SqlMoneyUnitOfWork(SqlUnitOfWork):
    """The unit of work of the commission and payout use cases: every repository of
    `SqlUnitOfWork` plus plans, rates, conversion facts, payout batches and payees.

    (These could move into `SqlUnitOfWork` itself; kept apart while the tracking use case
    does not need them.)"""

    plans: SqlPlans
    rates: SqlRates
    facts: SqlConversionFacts
    payouts: SqlPayouts
    payees: SqlPayees

    def __enter__(self) -> Self:
        outer = self._depth == 0
        super().__enter__()
        if outer:
            conn = self.connection
            self.plans = SqlPlans(conn)
            self.rates = SqlRates(conn)
            self.facts = SqlConversionFacts(conn)
            self.payouts = SqlPayouts(conn)
            self.payees = SqlPayees(conn)
        return self
