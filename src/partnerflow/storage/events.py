"""Repositories for tracked events read on the admin side: clicks and conversions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.dialects import postgresql, sqlite

from partnerflow.core.ids import ClickId, ConversionId, LinkId, OfferId, PartnerId, ProgramId
from partnerflow.core.money import Money
from partnerflow.storage import tables as t
from partnerflow.tracking.model import (
    SUB_ID_KEYS,
    AttributedBy,
    Click,
    Conversion,
    ConversionStatus,
    EventType,
)


def _click(row: Row[Any]) -> Click:
    return Click(
        id=ClickId(row.id),
        link_id=LinkId(row.link_id),
        program_id=ProgramId(row.program_id),
        partner_id=PartnerId(row.partner_id),
        offer_id=OfferId(row.offer_id),
        created_at=row.created_at,
        ip=row.ip,
        user_agent=row.user_agent,
        referrer=row.referrer,
        sub_ids={k: getattr(row, k) for k in SUB_ID_KEYS if getattr(row, k)},
        country=row.country,
        device=row.device,
        is_unique=row.is_unique,
        is_bot=row.is_bot,
        fraud_score=int(row.fraud_score or 0),
        flags=row.flags,
    )


class SqlClicks:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, click_id: ClickId) -> Click | None:
        row = self.conn.execute(select(t.clicks).where(t.clicks.c.id == click_id)).first()
        return _click(row) if row else None


def _conversion(row: Row[Any]) -> Conversion:
    return Conversion(
        id=ConversionId(row.id),
        program_id=ProgramId(row.program_id),
        offer_id=OfferId(row.offer_id) if row.offer_id is not None else None,
        partner_id=PartnerId(row.partner_id) if row.partner_id is not None else None,
        order_id=row.order_id,
        event_type=EventType(row.event_type),
        amount=Money.from_micros(row.amount_micros, row.currency).amount,
        currency=row.currency,
        status=ConversionStatus(row.status),
        attributed_by=AttributedBy(row.attributed_by),
        created_at=row.created_at,
        click_id=ClickId(row.click_id) if row.click_id else None,
        customer_id=row.customer_id,
        coupon_code=row.coupon_code,
        is_flagged=bool(row.is_flagged),
        flags=row.flags,
    )


class SqlConversions:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, conversion_id: ConversionId) -> Conversion | None:
        row = self.conn.execute(
            select(t.conversions).where(t.conversions.c.id == conversion_id)
        ).first()
        return _conversion(row) if row else None

    def by_order(self, program_id: ProgramId, order_id: str) -> Conversion | None:
        row = self.conn.execute(
            select(t.conversions).where(
                t.conversions.c.program_id == program_id, t.conversions.c.order_id == order_id
            )
        ).first()
        return _conversion(row) if row else None

    def last_attributed_to_customer(
        self, program_id: ProgramId, customer_id: str
    ) -> Conversion | None:
        """The same row the tracker's writer attributes a customer's conversion by."""
        c = t.conversions.c
        row = self.conn.execute(
            select(t.conversions)
            .where(
                c.program_id == program_id,
                c.customer_id == customer_id,
                c.partner_id.is_not(None),
            )
            .order_by(c.id.desc())
            .limit(1)
        ).first()
        return _conversion(row) if row else None

    def add(self, conversion: Conversion) -> Conversion | None:
        """Insert the conversion; None when its program already has one with this order id.
        A second transaction adding the same order waits (PostgreSQL: on the unique index;
        SQLite: on the write lock) until the first ends, so the row is this transaction's
        until it ends: what it reserves under the order's id cannot be anyone else's."""
        values = {
            "created_at": conversion.created_at,
            "program_id": conversion.program_id,
            "offer_id": conversion.offer_id,
            "partner_id": conversion.partner_id,
            "click_id": conversion.click_id,
            "order_id": conversion.order_id,
            "event_type": conversion.event_type.value,
            "amount_micros": Money(conversion.amount, conversion.currency).to_micros(),
            "currency": conversion.currency,
            "status": conversion.status.value,
            "attributed_by": conversion.attributed_by.value,
            "customer_id": conversion.customer_id,
            "coupon_code": conversion.coupon_code,
            "is_flagged": conversion.is_flagged,
            "flags": conversion.flags,
        }
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        new_id = self.conn.execute(
            dialect.insert(t.conversions)
            .values(values)
            .on_conflict_do_nothing(index_elements=["program_id", "order_id"])
            .returning(t.conversions.c.id)
        ).scalar_one_or_none()
        if new_id is None:
            return None
        found = self.get(ConversionId(new_id))
        assert found is not None
        return found

    def reject(self, conversion_id: ConversionId, flags: str | None) -> Conversion:
        """Mark a conversion just added as rejected (over a hard cap), with its flags."""
        self.conn.execute(
            update(t.conversions)
            .where(t.conversions.c.id == conversion_id)
            .values(status=ConversionStatus.REJECTED.value, flags=flags)
        )
        found = self.get(conversion_id)
        assert found is not None
        return found
