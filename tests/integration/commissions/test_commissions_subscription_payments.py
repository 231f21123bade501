"""A renewal's payment number: the customer's earlier sale and renewal conversions of the
program, counted the same way by the admin side's facts (`SqlConversionFacts`) and the
tracker writer's (`CursorFacts`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.factories import make_program

from partnerflow.bootstrap import Services
from partnerflow.storage import tables as t
from partnerflow.storage.event_writer import EventWriter
from partnerflow.storage.plans import SqlConversionFacts
from partnerflow.storage.tracking_lookup import TrackingLookup
from partnerflow.storage.tracking_pricing import CursorFacts

# (minutes after the first, event type, customer, status)
HISTORY = [
    (0, "signup", "cus_1", "pending"),
    (1, "sale", "cus_1", "pending"),
    (2, "lead", "cus_1", "pending"),
    (3, "renewal", "cus_1", "rejected"),  # a payment even if it earned nothing
    (3, "renewal", "cus_1", "reversed"),  # same instant: ordered by id
    (4, "sale", "cus_2", "pending"),
    (5, "renewal", "cus_1", "pending"),
]


def test_both_fact_sources_number_a_customers_payments_alike(services: Services) -> None:
    program = make_program(services)
    start = services.clock.now()
    ids = []
    with services.engine.begin() as conn:
        for n, (minutes, event, customer, status) in enumerate(HISTORY):
            ids.append(
                conn.execute(
                    t.conversions.insert().values(
                        created_at=start + timedelta(minutes=minutes), program_id=program.id,
                        order_id=f"O-{n}", event_type=event, amount_micros=10_000_000,
                        currency="EUR", status=status, attributed_by="customer",
                        customer_id=customer, is_flagged=False,
                    )
                ).inserted_primary_key[0]
            )  # fmt: skip
    writer = EventWriter(
        services.engine, TrackingLookup(services.engine), services.clock,
        services.settings.spool_dir,
    )  # fmt: skip

    def both(at: datetime, before_id: int | None, customer: str = "cus_1") -> tuple[int, int]:
        with services.engine.connect() as conn:
            admin = SqlConversionFacts(conn).subscription_payments(
                program.id, customer, at, before_id
            )
        raw = services.engine.raw_connection()
        try:
            cursor = CursorFacts(raw.cursor(), writer.sql, writer.sql.ts)
            tracker = cursor.subscription_payments(program.id, customer, at, before_id)
        finally:
            raw.close()
        return admin, tracker

    def at(minutes: int) -> datetime:
        return start + timedelta(minutes=minutes)

    assert both(at(0), ids[0]) == (0, 0)
    assert both(at(3), ids[3]) == (1, 1)  # the sale only
    assert both(at(3), ids[4]) == (2, 2)  # and the rejected renewal before it
    assert both(at(5), ids[6]) == (3, 3)  # so this renewal is payment 4
    assert both(at(9), None) == (4, 4)  # not stored yet: everything up to `at`
    assert both(at(9), None, "cus_2") == (1, 1)
    assert both(at(9), None, "cus_3") == (0, 0)
