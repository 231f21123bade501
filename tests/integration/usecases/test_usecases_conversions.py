"""The postback rule on real storage: attribution, idempotency, refusals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from tests.factories import World, make_coupon, make_offer, make_world

from partnerflow.bootstrap import Services
from partnerflow.commissions.model import EntryKind, LedgerBucket
from partnerflow.commissions.services import set_plan
from partnerflow.core.errors import Forbidden, InvalidInput
from partnerflow.core.ids import new_click_id
from partnerflow.core.money import Money
from partnerflow.partners.services import change_status
from partnerflow.storage import tables as t
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.tracking.model import AttributedBy, ConversionStatus
from partnerflow.tracking.services import RecordConversion, record_conversion


def _insert_click(svc: Services, world: World, age: timedelta = timedelta(minutes=5)) -> str:
    click_id = new_click_id()
    with svc.engine.begin() as conn:
        conn.execute(
            t.clicks.insert().values(
                id=click_id,
                created_at=svc.clock.now() - age,
                program_id=world.program.id,
                offer_id=world.offer.id,
                partner_id=world.partner.id,
                link_id=world.link.id,
                is_unique=True,
                is_bot=False,
                is_qr=False,
                fraud_score=0,
            )
        )
    return click_id


def _count(svc: Services, table: t.Table) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_postback_with_click_id_attributes_and_accrues_commission(services: Services) -> None:
    world = make_world(services)
    click_id = _insert_click(services, world)
    result = record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(
            token=world.program.postback_token,
            order_id="A-1",
            amount="120.00",
            currency="EUR",
            click_id=click_id,
        ),
    )
    assert not result.duplicate
    assert result.conversion.partner_id == world.partner.id
    assert result.conversion.attributed_by is AttributedBy.CLICK_ID
    assert result.commission == Money(Decimal("12.00"), "EUR")
    with services.uow() as uow:
        entries = uow.ledger.for_partner(world.partner.id)
    assert [(e.kind, e.bucket, e.amount) for e in entries] == [
        (EntryKind.COMMISSION, LedgerBucket.PENDING, Money(Decimal("12.00"), "EUR"))
    ]
    assert entries[0].txn_key == f"commission:{result.conversion.id}"
    assert (
        "offer 1's simple plan (CPS 10% of sale): rule cps (cps): 120.00 EUR x 10% = 12.00; "
        "total 12.00 -> 12.00 EUR (rounded half-up once)"
    ) in entries[0].reason


def test_repeated_order_id_is_a_duplicate_with_one_ledger_entry(services: Services) -> None:
    world = make_world(services)
    cmd = RecordConversion(
        token=world.program.postback_token,
        order_id="A-1",
        amount="50",
        click_id=_insert_click(services, world),
    )
    first = record_conversion(services.uow(), services.clock, cmd)
    second = record_conversion(services.uow(), services.clock, cmd)
    assert second.duplicate and second.conversion.id == first.conversion.id
    assert _count(services, t.conversions) == 1
    assert _count(services, t.commission_entries) == 1


def test_coupon_attributes_when_there_is_no_click(services: Services) -> None:
    world = make_world(services)
    make_coupon(services, world.partner, world.offer, code="ANN10")
    result = record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(
            token=world.program.postback_token, order_id="B-7", amount="80", coupon="ann10"
        ),
    )
    assert result.conversion.attributed_by is AttributedBy.COUPON
    assert result.conversion.coupon_code == "ANN10"
    assert result.commission == Money(Decimal("8.00"), "EUR")


def test_click_outside_the_cookie_window_does_not_attribute(services: Services) -> None:
    world = make_world(services)
    old = _insert_click(services, world, age=timedelta(days=31))
    result = record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(
            token=world.program.postback_token, order_id="C-1", amount="10", click_id=old
        ),
    )
    assert result.conversion.partner_id is None
    assert result.commission is None
    assert "30-day window" in result.explanation
    assert _count(services, t.commission_entries) == 0


def test_suspended_partner_earns_nothing(services: Services) -> None:
    world = make_world(services)
    click_id = _insert_click(services, world)
    change_status(services.uow(), world.partner.id, "suspended", actor="mgr")
    result = record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(
            token=world.program.postback_token, order_id="D-1", amount="10", click_id=click_id
        ),
    )
    assert result.conversion.status is ConversionStatus.REJECTED
    assert result.commission is None
    assert _count(services, t.commission_entries) == 0


def test_cpl_offer_pays_leads_not_sales(services: Services) -> None:
    world = make_world(services)
    lead_offer = make_offer(
        services, world.program, name="Newsletter", plan={"type": "cpl", "amount": "1.50"}
    )
    coupon = make_coupon(services, world.partner, lead_offer, code="NEWS")
    token = world.program.postback_token
    lead = record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(token=token, order_id="L-1", coupon=coupon.code, event_type="lead"),
    )
    sale = record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(token=token, order_id="L-2", amount="10", coupon=coupon.code),
    )
    assert lead.commission == Money(Decimal("1.50"), "EUR")
    assert sale.commission is None


WELCOME_PLAN = """
id = "welcome"
currency = "EUR"

[[versions]]
version = 1
effective_from = 2026-01-01
  [[versions.rules]]
  id = "sales"
  type = "cps"
  percent = "10"
  [[versions.bonuses]]
  id = "new-customer"
  type = "new_customer"
  amount = "3"
"""


def test_a_customer_id_is_stored_and_priced_without_its_surrounding_whitespace(
    services: Services,
) -> None:
    """As a postback reads it: " cust-1 " from the API or a CSV is the customer cust-1, so
    their second order is not paid the new-customer bonus again."""
    world = make_world(services)
    make_coupon(services, world.partner, world.offer, code="ANN10")
    set_plan(SqlMoneyUnitOfWork(services.engine, services.clock), services.clock,
             program_id=world.program.id, text=WELCOME_PLAN, author="kim")  # fmt: skip
    token = world.program.postback_token
    orders = [
        record_conversion(
            services.uow(),
            services.clock,
            RecordConversion(token=token, order_id=order_id, amount="100", coupon="ANN10",
                             customer_id=customer_id),
        )
        for order_id, customer_id in (("W-1", "cust-1"), ("W-2", " cust-1 "), ("W-3", "\tcust-2"))
    ]  # fmt: skip
    assert [o.conversion.customer_id for o in orders] == ["cust-1", "cust-1", "cust-2"]
    assert [o.commission for o in orders] == [
        Money(Decimal("13.00"), "EUR"), Money(Decimal("10.00"), "EUR"),
        Money(Decimal("13.00"), "EUR"),
    ]  # fmt: skip
    with services.engine.connect() as conn:
        stored = conn.execute(
            select(t.conversions.c.customer_id).order_by(t.conversions.c.id)
        ).scalars()
        assert list(stored) == ["cust-1", "cust-1", "cust-2"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"token": ""}, Forbidden),
        ({"token": "wrong"}, Forbidden),
        ({"amount": "-1"}, InvalidInput),
        ({"amount": "abc"}, InvalidInput),
        ({"amount": "1e12"}, InvalidInput),
        ({"currency": "XXX"}, InvalidInput),
        ({"order_id": ""}, InvalidInput),
        ({"order_id": "has space"}, InvalidInput),
        ({"click_id": "not-a-click"}, InvalidInput),
        ({"event_type": "purchase"}, InvalidInput),
        ({"customer_id": ""}, InvalidInput),
        ({"customer_id": " \t "}, InvalidInput),  # blank once stripped
        ({"customer_id": "c" * 129}, InvalidInput),
        ({"customer_id": "cust\u202e1"}, InvalidInput),  # REST API, CSV, Shopify, Stripe
        ({"customer_id": "\u2066cust\u2069"}, InvalidInput),
        ({"customer_id": "cu\u200bst"}, InvalidInput),
        ({"customer_id": "cu\x85st"}, InvalidInput),  # NEL at an end is stripped (isspace)
        ({"customer_id": "cust\ud800"}, InvalidInput),
    ],
)
def test_bad_postbacks_are_refused_and_write_nothing(
    services: Services, changes: dict[str, str], error: type[Exception]
) -> None:
    world = make_world(services)
    fields = {
        "token": world.program.postback_token,
        "order_id": "E-1",
        "amount": "10",
        "currency": "EUR",
    } | changes
    with pytest.raises(error):
        record_conversion(services.uow(), services.clock, RecordConversion(**fields))
    assert _count(services, t.conversions) == 0
    assert _count(services, t.commission_entries) == 0


def test_a_returning_customer_is_attributed_to_the_partner_who_last_brought_them(
    services: Services,
) -> None:
    """As the tracker attributes postbacks: no click and no coupon, but a customer id the
    program already has a partner's conversion for (a subscription's renewal, a repeat
    order) — that partner, by customer."""
    world = make_world(services)
    first = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="S-1", amount="30",
                         click_id=_insert_click(services, world), customer_id="cus_9"),
    )  # fmt: skip
    # A repeat order (the offer's plan pays sales; a renewal is priced by a plan that pays
    # renewals, and attributed the same way).
    repeat = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="S-2", amount="30",
                         customer_id=" cus_9 "),
    )  # fmt: skip
    assert repeat.conversion.attributed_by is AttributedBy.CUSTOMER
    assert "customer cus_9 last brought by partner" in repeat.explanation
    assert (repeat.conversion.partner_id, repeat.conversion.offer_id) == (
        world.partner.id, world.offer.id,
    )  # fmt: skip
    assert repeat.conversion.click_id == first.conversion.click_id
    assert repeat.commission == Money(Decimal("3.00"), "EUR")
    # A customer no partner brought stays unattributed.
    stranger = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=world.program.postback_token, order_id="S-3", amount="30",
                         customer_id="cus_other"),
    )  # fmt: skip
    assert stranger.conversion.attributed_by is AttributedBy.NONE
    assert stranger.conversion.partner_id is None and stranger.commission is None
