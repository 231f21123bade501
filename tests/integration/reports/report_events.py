"""Hand-made events for the report tests (a helper module, not a test module)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tests.factories import make_link, make_offer, make_partner, make_program

from partnerflow.bootstrap import Services
from partnerflow.core.ids import new_click_id
from partnerflow.storage import tables as t

_orders = itertools.count(1)
LATER = datetime(2030, 1, 1, tzinfo=UTC)  # "now" for folds: every test event has settled


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def add_click(svc: Services, link: Any, at: datetime, **kw: Any) -> str:
    click_id = new_click_id(int(at.timestamp() * 1000))
    values = {"is_unique": True, "is_bot": False, "is_qr": False, "fraud_score": 0, **kw}
    with svc.engine.begin() as conn:
        conn.execute(
            t.clicks.insert().values(
                id=click_id,
                created_at=at,
                program_id=link.program_id,
                offer_id=link.offer_id,
                partner_id=link.partner_id,
                link_id=link.id,
                **values,
            )
        )
    return click_id


def add_impression(svc: Services, link: Any, at: datetime) -> None:
    with svc.engine.begin() as conn:
        conn.execute(
            t.impressions.insert().values(
                id=new_click_id(int(at.timestamp() * 1000)),
                created_at=at,
                program_id=link.program_id,
                offer_id=link.offer_id,
                partner_id=link.partner_id,
                link_id=link.id,
                is_bot=False,
            )
        )


def add_conversion(
    svc: Services,
    link: Any,
    at: datetime,
    amount: str,
    *,
    commission: str | None = None,
    click_id: str | None = None,
    status: str = "pending",
    event_type: str = "sale",
    coupon: str | None = None,
    customer: str | None = None,
) -> int:
    with svc.engine.begin() as conn:
        conversion_id = int(
            conn.execute(
                t.conversions.insert()
                .values(
                    created_at=at,
                    program_id=link.program_id,
                    offer_id=link.offer_id,
                    partner_id=link.partner_id,
                    click_id=click_id,
                    order_id=f"O-{next(_orders)}",
                    event_type=event_type,
                    amount_micros=int(Decimal(amount) * 1_000_000),
                    currency="EUR",
                    status=status,
                    attributed_by="coupon" if coupon else "click_id",
                    coupon_code=coupon,
                    customer_id=customer,
                    is_flagged=False,
                )
                .returning(t.conversions.c.id)
            ).scalar_one()
        )
        if commission is not None:
            add_entry(conn, link, conversion_id, "commission", commission, at)
    return conversion_id


def add_entry(
    conn: Any, link: Any, conversion_id: int, kind: str, amount: str, at: datetime
) -> None:
    conn.execute(
        t.commission_entries.insert().values(
            txn_id=f"t{conversion_id}{kind}{next(_orders)}",
            created_at=at,
            program_id=link.program_id,
            partner_id=link.partner_id,
            conversion_id=conversion_id,
            kind=kind,
            bucket="pending",
            amount_micros=int(Decimal(amount) * 1_000_000),
            currency="EUR",
            reason="test",
            author="test",
        )
    )


def make_world(services: Services) -> dict[str, Any]:
    program = make_program(services, timezone="Europe/Warsaw")
    shop = make_offer(services, program, name="Shop")
    club = make_offer(services, program, name="Club", plan={"type": "cpa", "amount": "2.00"})
    ann = make_partner(services, program, email="ann@blog.example")
    bob = make_partner(services, program, email="bob@tok.example", social={"tiktok": "@bob"})
    ann_link = make_link(services, ann, shop, code="ann-shop")
    bob_link = make_link(services, bob, club, code="bob-club")
    day = utc(2026, 3, 10, 10)
    ids = [
        add_click(
            services,
            ann_link,
            day,
            country="PL",
            device="mobile",
            sub1="review",
            referrer="https://annblog.example/best-tents",
        ),
        add_click(
            services,
            ann_link,
            day,
            country="PL",
            device="desktop",
            sub1="review",
            referrer="https://www.google.com/",
        ),
        add_click(
            services, ann_link, day, country="DE", device="mobile", sub1="sidebar", is_unique=False
        ),
        add_click(services, ann_link, day, country="DE", device="mobile", is_bot=True),
        add_click(services, bob_link, day, country="PL", device="mobile"),  # no referrer
        add_click(
            services,
            bob_link,
            day,
            country="PL",
            device="mobile",
            referrer="https://m.tiktok.com/@bob/video/1",
        ),
    ]
    for _ in range(100):
        add_impression(services, ann_link, day)
    add_conversion(
        services, ann_link, day, "100.00", commission="10.00", click_id=ids[0], customer="C1"
    )
    refunded = add_conversion(
        services, ann_link, day, "50.00", commission="5.00", click_id=ids[1], customer="C2"
    )
    add_conversion(
        services, ann_link, day, "30.00", commission="3.00", coupon="ANN10", customer="C3"
    )
    add_conversion(
        services,
        bob_link,
        day,
        "0",
        commission="2.00",
        click_id=ids[4],
        event_type="lead",
        customer="C4",
    )
    add_conversion(services, bob_link, day, "70.00", status="rejected", click_id=ids[5])
    # The previous period (2026-03-09 for a one-day report): Ann had 1 click, 1 sale.
    prev = utc(2026, 3, 9, 10)
    c = add_click(services, ann_link, prev, country="PL", device="mobile")
    add_conversion(services, ann_link, prev, "40.00", commission="4.00", click_id=c, customer="C1")
    with services.engine.begin() as conn:
        conn.execute(
            t.ad_spend.insert().values(
                program_id=program.id,
                day=date(2026, 3, 10),
                channel="tiktok",
                campaign="boost",
                partner_id=bob.id,
                amount_micros=8_000_000,
                currency="EUR",
                batch_id="b1",
                imported_at=day,
            )
        )
    return {
        "program": program,
        "ann": ann,
        "bob": bob,
        "shop": shop,
        "club": club,
        "ann_link": ann_link,
        "refunded": refunded,
    }
