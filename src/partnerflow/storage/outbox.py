"""The transactional outbox: `publish` appends a domain event in the caller's transaction,
so an event exists if and only if the change it announces committed. The webhook job
delivers events afterwards; nothing on the tracking path waits for a receiver.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from partnerflow.core.clock import Clock
from partnerflow.core.events import COMMISSION_CREATED, money_fields
from partnerflow.core.money import Money
from partnerflow.messaging.events import check_event_type, money_text
from partnerflow.storage import tables as t
from partnerflow.tracking.model import Conversion
from partnerflow.tracking.services import ConversionRecorded, RecordConversion, record_conversion

# Import-time type for the unit of work would be a cycle (unit_of_work imports storage), so
# the wrapper takes anything with `.connection` and the tracking ports.
UnitOfWork = Any


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def new_event_ids(count: int) -> list[str]:
    """`count` ids like `new_event_id`'s (96 random bits each) from one read of the OS's
    CSPRNG instead of one per id (a conversion publishes two or three events)."""
    raw = secrets.token_hex(12 * count)
    return ["evt_" + raw[start : start + 24] for start in range(0, 24 * count, 24)]


def publish(
    conn: Connection,
    event_type: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    program_id: int | None = None,
    partner_id: int | None = None,
) -> str:
    """Append an event to the outbox in `conn`'s transaction; returns its id."""
    check_event_type(event_type)
    event_id = new_event_id()
    conn.execute(
        t.outbox_events.insert().values(
            event_id=event_id,
            event_type=event_type,
            program_id=program_id,
            partner_id=partner_id,
            payload=payload,
            created_at=now,
        )
    )
    return event_id


class SqlOutbox:
    """`core.events.EventSink` over one connection: every unit of work exposes one as
    `events`, so use cases publish in their own transaction."""

    def __init__(self, conn: Connection, clock: Clock) -> None:
        self.conn = conn
        self.clock = clock

    def publish(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        program_id: int | None = None,
        partner_id: int | None = None,
    ) -> str:
        return publish(
            self.conn,
            event_type,
            payload,
            now=self.clock.now(),
            program_id=program_id,
            partner_id=partner_id,
        )


def conversion_payload(
    conversion: Conversion, commission: str | None, explanation: str, sub_ids: dict[str, str]
) -> dict[str, Any]:
    return {
        "conversion": {
            "id": conversion.id,
            "program_id": conversion.program_id,
            "offer_id": conversion.offer_id,
            "partner_id": conversion.partner_id,
            "order_id": conversion.order_id,
            "event_type": conversion.event_type.value,
            "amount": money_text(conversion.amount),
            "currency": conversion.currency,
            "status": conversion.status.value,
            "attributed_by": conversion.attributed_by.value,
            "click_id": conversion.click_id,
            "coupon_code": conversion.coupon_code,
            "customer_id": conversion.customer_id,
            "created_at": conversion.created_at.isoformat(),
            "commission": commission,
            "explanation": explanation,
            "sub_ids": sub_ids,
        }
    }


def commission_created_payload(
    conversion: Conversion, commission: Money, explanation: str
) -> dict[str, Any]:
    """`commission.created` data: the pending commission a new conversion accrued (the
    same `commission` object as the other commission events)."""
    return {
        "commission": {
            "txn_id": f"commission:{conversion.id}",
            "kind": "commission",
            "program_id": conversion.program_id,
            "partner_id": conversion.partner_id,
            "conversion_id": conversion.id,
            **money_fields(commission),
            "bucket": "pending",
            "reason": explanation,
            "author": "system",
            "created_at": conversion.created_at.isoformat(),
        }
    }


def record_conversion_published(
    uow: UnitOfWork, clock: Clock, cmd: RecordConversion
) -> ConversionRecorded:
    """`tracking.services.record_conversion` plus `conversion.created` and, when a
    commission was booked, `commission.created` (as the tracker publishes them), in one
    transaction (the unit of work is re-entrant). Duplicates publish nothing."""
    with uow:
        result: ConversionRecorded = record_conversion(uow, clock, cmd)
        if not result.duplicate:
            conv = result.conversion
            sub_ids: dict[str, str] = {}
            if conv.click_id:
                click = uow.clicks.get(conv.click_id)
                sub_ids = dict(click.sub_ids) if click is not None else {}
            commission = money_text(result.commission.amount) if result.commission else None
            publish(
                uow.connection,
                "conversion.created",
                conversion_payload(conv, commission, result.explanation, sub_ids),
                now=clock.now(),
                program_id=conv.program_id,
                partner_id=conv.partner_id,
            )
            # Booked iff there is a commission and a partner (`record_conversion`).
            if result.commission is not None and conv.partner_id is not None:
                publish(
                    uow.connection,
                    COMMISSION_CREATED,
                    commission_created_payload(conv, result.commission, result.explanation),
                    now=clock.now(),
                    program_id=conv.program_id,
                    partner_id=conv.partner_id,
                )
    return result
