"""The exchange-rate table: insert-only (a commission computed with a rate must keep finding
it), rates kept as exact Decimal text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from partnerflow.commissions.rates import Rate, RateTable
from partnerflow.core.errors import Conflict
from partnerflow.storage import tables as t


class SqlRates:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def all(self) -> list[Rate]:
        c = t.exchange_rates.c
        rows = self.conn.execute(
            select(c.source, c.target, c.rate, c.valid_from).order_by(
                c.source, c.target, c.valid_from
            )
        )
        return [Rate(r[0], r[1], Decimal(r[2]), date.fromisoformat(r[3])) for r in rows]

    def table(self) -> RateTable:
        return RateTable(tuple(self.all()))

    def existing(self) -> dict[tuple[str, str, date], Decimal]:
        return {(r.source, r.target, r.valid_from): r.rate for r in self.all()}

    def add(self, rates: Sequence[Rate], import_id: str, at: datetime) -> None:
        if not rates:
            return
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    t.exchange_rates.insert(),
                    [
                        {
                            "source": r.source,
                            "target": r.target,
                            "valid_from": r.valid_from.isoformat(),
                            "rate": str(r.rate),
                            "import_id": import_id,
                            "imported_at": at,
                        }
                        for r in rates
                    ],
                )
        except IntegrityError as exc:
            raise Conflict("another import stored some of these rates meanwhile: retry") from exc
