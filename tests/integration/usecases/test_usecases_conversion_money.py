"""`record_conversion` (API, inbound webhooks, imports) prices, caps and flags like the
tracker: the commission engine with stored rates, conversion caps in its own transaction."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from tests.factories import World, cap_one_conversion_a_day, make_world

from partnerflow.bootstrap import Services
from partnerflow.commissions.services import import_rates
from partnerflow.core.ids import new_click_id
from partnerflow.core.money import Money
from partnerflow.storage import tables as t
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.tracking.model import ConversionStatus
from partnerflow.tracking.services import RecordConversion, record_conversion


def _click(svc: Services, world: World, age: timedelta) -> str:
    click_id = new_click_id()
    with svc.engine.begin() as conn:
        conn.execute(
            t.clicks.insert().values(
                id=click_id, created_at=svc.clock.now() - age, program_id=world.program.id,
                offer_id=world.offer.id, partner_id=world.partner.id, link_id=world.link.id,
                is_unique=True, is_bot=False, is_qr=False, fraud_score=0,
            )
        )  # fmt: skip
    return click_id


def test_a_usd_order_on_a_eur_program_is_converted_with_the_stored_rate(
    services: Services,
) -> None:
    world = make_world(services)
    import_rates(SqlMoneyUnitOfWork(services.engine, services.clock), services.clock,
                 ["date,from,to,rate", "2026-03-01,USD,EUR,0.9"])  # fmt: skip
    result = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="U-1", amount="100",
                         currency="USD", click_id=_click(services, world, timedelta(hours=1))),
    )  # fmt: skip
    assert result.commission == Money(Decimal("9.00"), "EUR")
    with services.uow() as uow:
        [entry] = uow.ledger.for_partner(world.partner.id)
    assert (entry.fx_rate, entry.fx_rate_date.isoformat() if entry.fx_rate_date else None) == (
        Decimal("0.9"), "2026-03-01"
    )  # fmt: skip
    assert entry.txn_key == f"commission:{result.conversion.id}"
    none = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="G-1", amount="100",
                         currency="GBP", click_id=_click(services, world, timedelta(hours=1))),
    )  # fmt: skip
    assert none.commission is None
    assert "no GBP->EUR rate on or before 2026-03-02" in none.explanation


def test_over_a_conversion_cap_the_use_case_records_without_paying(services: Services) -> None:
    world = make_world(services)
    cap_one_conversion_a_day(services, world)
    click = _click(services, world, timedelta(hours=1))
    paid = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="K-1", amount="50",
                         click_id=click),
    )  # fmt: skip
    capped = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="K-2", amount="50",
                         click_id=click),
    )  # fmt: skip
    assert paid.commission == Money(Decimal("5.00"), "EUR")
    assert capped.commission is None
    assert capped.conversion.status is ConversionStatus.REJECTED
    assert capped.conversion.flags is not None and capped.conversion.flags.startswith("cap:")
    assert "conversion recorded but not payable" in capped.explanation
    with services.engine.connect() as conn:
        used = conn.execute(select(t.cap_usage.c.used)).scalars().all()
        reservations = conn.execute(select(t.cap_reservations.c.id)).scalars().all()
    assert used == [1]
    assert len(reservations) == 1


def test_a_conversion_seconds_after_its_click_is_flagged(services: Services) -> None:
    world = make_world(services)
    result = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="F-1", amount="10",
                         click_id=_click(services, world, timedelta(seconds=3))),
    )  # fmt: skip
    assert (result.conversion.is_flagged, result.conversion.flags) == (True, "ctit_injection")
    assert result.commission == Money(Decimal("1.00"), "EUR")  # booked, held pending
