"""The commission ledger: insert-only. There is deliberately no update or delete here.

Two shapes of entry are written: `commissions.model.LedgerEntry` (the postback use case)
and `commissions.ledger.Entry` (the pure ledger functions: approvals, reversals,
adjustments, payments). Both land in `commission_entries`. The pure ledger's transaction
key (`approval:12`, `payment:<batch>:7`) is stored in `txn_key`, which is unique per bucket:
the database itself refuses to approve, pay or adjust the same thing twice, even when two
jobs race. `txn_id` (32 characters, shared with the tracker's fast path) holds the key
itself when it fits, else a digest of it.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError

from partnerflow.commissions.ledger import Entry
from partnerflow.commissions.model import EntryKind, LedgerBucket, LedgerEntry
from partnerflow.core.errors import Conflict
from partnerflow.core.ids import ConversionId, PartnerId, ProgramId
from partnerflow.core.money import Money
from partnerflow.storage import tables as t

TXN_ID_LENGTH = 32


def txn_id_for(key: str) -> str:
    """The 32-character `txn_id` for a ledger key: the key itself when it fits."""
    if len(key) <= TXN_ID_LENGTH:
        return key
    return "h:" + hashlib.sha256(key.encode()).hexdigest()[: TXN_ID_LENGTH - 2]


def ledger_lock_key(program_id: int) -> int:
    """The PostgreSQL advisory lock serialising a program's ledger writers."""
    return zlib.crc32(f"partnerflow-ledger-{program_id}".encode())


def _entry(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        program_id=ProgramId(row.program_id),
        partner_id=PartnerId(row.partner_id),
        conversion_id=ConversionId(row.conversion_id) if row.conversion_id is not None else None,
        kind=EntryKind(row.kind),
        bucket=LedgerBucket(row.bucket),
        amount=Money.from_micros(row.amount_micros, row.currency),
        reason=row.reason,
        author=row.author,
        created_at=row.created_at,
        txn_key=row.txn_key or row.txn_id,
        refund=Money.from_micros(row.refund_micros, row.currency)
        if row.refund_micros is not None
        else None,
        fx_rate=Decimal(row.fx_rate) if row.fx_rate else None,
        fx_rate_date=date.fromisoformat(row.fx_rate_date) if row.fx_rate_date else None,
    )


def _pure(row: Row[Any]) -> Entry:
    # `refund` is left out on purpose: how much of an order was refunded is kept on the
    # conversion (`conversions.refunded_micros`, shared with the tracker), which the
    # reversal use case hands to the pure ledger itself.
    return Entry(
        txn_id=row.txn_key or row.txn_id,
        program_id=row.program_id,
        partner_id=row.partner_id,
        conversion_id=row.conversion_id,
        kind=EntryKind(row.kind),
        bucket=LedgerBucket(row.bucket),
        amount=Money.from_micros(row.amount_micros, row.currency),
        reason=row.reason,
        author=row.author,
        created_at=row.created_at,
    )


class SqlLedger:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock_program(self, program_id: int) -> None:
        """Hold the program's ledger lock until the transaction ends. Each money use case
        reads the entries, decides and appends: two of them interleaving under READ
        COMMITTED (an approval job and a refund, two payouts) would both act on what they
        read — approving a commission just reversed, paying a balance twice. On SQLite the
        write transaction (BEGIN IMMEDIATE) holds the whole database already."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(select(func.pg_advisory_xact_lock(ledger_lock_key(program_id))))

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            with self.conn.begin_nested():
                self.conn.execute(t.commission_entries.insert(), rows)
        except IntegrityError as exc:
            keys = sorted({str(r.get("txn_key")) for r in rows if r.get("txn_key")})
            raise Conflict(
                f"ledger transaction {', '.join(keys) or '?'} was already recorded",
                field="txn",
            ) from exc

    def append(self, entries: list[LedgerEntry], txn_id: str) -> None:
        self._insert(
            [
                {
                    "txn_id": txn_id_for(e.txn_key or txn_id),
                    "txn_key": e.txn_key,
                    "created_at": e.created_at,
                    "program_id": e.program_id,
                    "partner_id": e.partner_id,
                    "conversion_id": e.conversion_id,
                    "kind": e.kind.value,
                    "bucket": e.bucket.value,
                    "amount_micros": e.amount.to_micros(),
                    "currency": e.amount.currency,
                    "reason": e.reason,
                    "author": e.author,
                    "refund_micros": e.refund.to_micros() if e.refund is not None else None,
                    "fx_rate": str(e.fx_rate) if e.fx_rate is not None else None,
                    "fx_rate_date": e.fx_rate_date.isoformat() if e.fx_rate_date else None,
                }
                for e in entries
            ]
        )

    def append_entries(
        self,
        entries: Sequence[Entry],
        *,
        fx_rate: Decimal | None = None,
        fx_rate_date: date | None = None,
    ) -> None:
        """Append pure-ledger entries; `fx_rate` is recorded on commission entries."""
        self._insert(
            [
                {
                    "txn_id": txn_id_for(e.txn_id),
                    "txn_key": e.txn_id,
                    "created_at": e.created_at,
                    "program_id": e.program_id,
                    "partner_id": e.partner_id,
                    "conversion_id": e.conversion_id,
                    "kind": e.kind.value,
                    "bucket": e.bucket.value,
                    "amount_micros": e.amount.to_micros(),
                    "currency": e.amount.currency,
                    "reason": e.reason,
                    "author": e.author,
                    "refund_micros": e.refund.to_micros() if e.refund is not None else None,
                    "fx_rate": str(fx_rate)
                    if fx_rate is not None and e.kind is EntryKind.COMMISSION
                    else None,
                    "fx_rate_date": fx_rate_date.isoformat()
                    if fx_rate_date is not None and e.kind is EntryKind.COMMISSION
                    else None,
                }
                for e in entries
            ]
        )

    def entries(
        self,
        *,
        program_id: int | None = None,
        partner_id: int | None = None,
        conversion_ids: Iterable[int] | None = None,
    ) -> list[Entry]:
        """Pure-ledger entries, oldest first, optionally narrowed."""
        c = t.commission_entries.c
        query = select(t.commission_entries).order_by(c.id)
        if program_id is not None:
            query = query.where(c.program_id == program_id)
        if partner_id is not None:
            query = query.where(c.partner_id == partner_id)
        if conversion_ids is not None:
            ids = list(conversion_ids)
            if not ids:
                return []
            query = query.where(c.conversion_id.in_(ids))
        return [_pure(r) for r in self.conn.execute(query)]

    def for_partner(self, partner_id: PartnerId) -> list[LedgerEntry]:
        rows = self.conn.execute(
            select(t.commission_entries)
            .where(t.commission_entries.c.partner_id == partner_id)
            .order_by(t.commission_entries.c.id)
        )
        return [_entry(r) for r in rows]

    def for_conversion(self, conversion_id: ConversionId) -> list[LedgerEntry]:
        rows = self.conn.execute(
            select(t.commission_entries)
            .where(t.commission_entries.c.conversion_id == conversion_id)
            .order_by(t.commission_entries.c.id)
        )
        return [_entry(r) for r in rows]
