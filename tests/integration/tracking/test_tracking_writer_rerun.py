"""The writer's rerun path (`storage.event_writer`): a conversion that fails after it wrote
something (a bug, or a constraint the rules did not foresee) makes the writer roll the whole
batch back and write it again with a SAVEPOINT per conversion — so that conversion fails
alone, and the rest of its batch is stored once, with nothing of the failed one left."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from tests.factories import click_row, make_world

from partnerflow.bootstrap import Services
from partnerflow.core.errors import PartnerflowError
from partnerflow.storage import tables as t
from partnerflow.storage.event_writer import ConversionOutcome, EventWriter
from partnerflow.storage.tracking_lookup import TrackingLookup
from partnerflow.tracking.postbacks import parse_postback

# The ledger refuses the commission of order "boom" only: its conversion row is written
# first, so the failure comes after a write — the case a plain refusal cannot handle.
REFUSE_BOOM = {
    "sqlite": [
        "CREATE TRIGGER test_refuse_boom BEFORE INSERT ON commission_entries"
        " WHEN (SELECT order_id FROM conversions WHERE id = NEW.conversion_id) = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'the ledger refused this row'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION test_refuse_boom() RETURNS trigger AS $$ BEGIN"
        " IF (SELECT order_id FROM conversions WHERE id = NEW.conversion_id) = 'boom' THEN"
        " RAISE EXCEPTION 'the ledger refused this row'; END IF; RETURN NEW; END"
        " $$ LANGUAGE plpgsql",
        "CREATE TRIGGER test_refuse_boom BEFORE INSERT ON commission_entries"
        " FOR EACH ROW EXECUTE FUNCTION test_refuse_boom()",
    ],
}
ALLOW_BOOM = {
    "sqlite": ["DROP TRIGGER test_refuse_boom"],
    "postgresql": ["DROP TRIGGER test_refuse_boom ON commission_entries"],
}


def _run(services: Services, statements: dict[str, list[str]]) -> None:
    with services.engine.begin() as conn:
        for sql in statements[services.engine.dialect.name]:
            conn.exec_driver_sql(sql)


def test_a_conversion_failing_after_its_write_fails_alone_and_its_batch_is_stored(
    services: Services,
) -> None:
    world = make_world(services)
    assert (world.program.id, world.offer.id, world.link.id) == (1, 1, 1)  # click_row's ids
    _run(services, REFUSE_BOOM)
    lookup = TrackingLookup(services.engine)
    writer = EventWriter(services.engine, lookup, services.clock, services.settings.spool_dir)
    program = lookup.load_program(world.program.postback_token)
    assert program is not None
    click = click_row(writer, partner_id=world.partner.id)
    writer.start()

    def order(order_id: str) -> Any:
        return parse_postback(
            {"token": world.program.postback_token, "click_id": click[0],
             "order_id": order_id, "amount": "120.00", "currency": "EUR"}
        )  # fmt: skip

    async def scenario() -> tuple[list[Any], int]:
        await writer.write_click(click)
        before = writer.batches
        # Enqueued in one pass of the loop: one batch, one transaction.
        results = await asyncio.gather(
            *(writer.record(order(o), program) for o in ("A-1", "boom", "A-3")),
            return_exceptions=True,
        )
        return results, writer.batches - before

    try:
        (first, failed, third), batches = asyncio.run(scenario())
    finally:
        writer.stop()
    assert batches == 1
    # The database's own error (not a refusal of ours), for this request alone.
    assert isinstance(failed, Exception) and not isinstance(failed, PartnerflowError)
    assert "the ledger refused this row" in str(failed)
    for outcome, order_id in ((first, "A-1"), (third, "A-3")):
        assert isinstance(outcome, ConversionOutcome)
        assert (outcome.order_id, outcome.duplicate, outcome.amount) == (order_id, False, "12.00")
    with services.engine.connect() as conn:
        orders = conn.execute(select(t.conversions.c.order_id).order_by(t.conversions.c.id))
        assert [r.order_id for r in orders] == ["A-1", "A-3"]
        ledger = conn.execute(
            select(t.commission_entries.c.conversion_id, t.commission_entries.c.amount_micros)
        ).all()
        assert sorted(amount for _, amount in ledger) == [12_000_000, 12_000_000]
        assert {conversion for conversion, _ in ledger} == {
            first.conversion_id,
            third.conversion_id,
        }
        payloads = conn.execute(select(t.outbox_events.c.payload)).scalars().all()
        assert payloads and not any("boom" in p for p in payloads)
        clicks = conn.execute(select(t.clicks.c.id)).scalars().all()
        assert clicks == [click[0]]

    # The failed order was never acknowledged: sent again once the ledger takes it, it is new.
    _run(services, ALLOW_BOOM)
    writer = EventWriter(services.engine, lookup, services.clock, services.settings.spool_dir)
    writer.start()
    try:
        again = asyncio.run(writer.record(order("boom"), program))
    finally:
        writer.stop()
    assert (again.duplicate, again.amount) == (False, "12.00")
