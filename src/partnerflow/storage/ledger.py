"""The commission ledger: insert-only. There is deliberately no update or delete here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from partnerflow.commissions.model import EntryKind, LedgerBucket, LedgerEntry
from partnerflow.core.ids import ConversionId, PartnerId, ProgramId
from partnerflow.core.money import Money
from partnerflow.storage import tables as t


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
    )


class SqlLedger:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(self, entries: list[LedgerEntry], txn_id: str) -> None:
        self.conn.execute(
            t.commission_entries.insert(),
            [
                {
                    "txn_id": txn_id,
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
                }
                for e in entries
            ],
        )

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
