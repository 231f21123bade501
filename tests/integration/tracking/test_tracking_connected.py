"""The tracker connected to the other capabilities, through the real HTTP app on SQLite and
PostgreSQL: versioned plans and exchange rates price postbacks, conversions publish their
events, caps hold on clicks and conversions (concurrently too), fraud scores are stored."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from tests.factories import World, make_offer, make_partner, make_program

from partnerflow.bootstrap import Services
from partnerflow.caps.services import SetCap, set_caps
from partnerflow.commissions.services import import_rates, set_plan
from partnerflow.core.clock import FixedClock
from partnerflow.core.ids import ProgramId
from partnerflow.storage import tables as t
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.tracking.services import CreateLink, create_link
from partnerflow.web.app import PartnerflowApp, create_app

pytestmark = pytest.mark.anyio

UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
LANDING = "https://shop.example.com/landing"
FALLBACK = "https://shop.example.com/sold-out"

TIERED_PLAN = """
id = "tiered"
currency = "EUR"

[[versions]]
version = 1
effective_from = 2026-01-01
  [[versions.rules]]
  id = "sales"
  type = "cps"
  tiers = [{ from = 1, to = 1, percent = "10" }, { from = 2, percent = "20" }]
"""

SUBSCRIPTION_PLAN = """
id = "saas"
currency = "EUR"

[[versions]]
version = 1
effective_from = 2026-01-01
  [[versions.rules]]
  id = "first-payment"
  type = "cps"
  percent = "30"
  [[versions.rules]]
  id = "renewals"
  type = "recurring"
  percent = "20"
  months = 3
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(services: Services) -> World:
    program = make_program(services, fallback_url=FALLBACK)
    offer = make_offer(services, program)
    partner = make_partner(services, program)
    link = create_link(
        services.uow(),
        services.clock,
        CreateLink(partner_id=partner.id, offer_id=offer.id, code="ann-shop"),
        actor="test",
    )
    return World(program, offer, partner, link)


class Tracker:
    def __init__(self, app: PartnerflowApp, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    def refresh(self) -> None:
        """What the snapshot thread and the pricing cache do every few seconds."""
        self.app.tracker.lookup.refresh()
        self.app.tracker.writer.pricing.invalidate()

    async def click(self, code: str = "ann-shop", **params: str) -> httpx.Response:
        return await self.client.get(
            f"/c/{code}", params=params, headers={"user-agent": UA, "referer": "https://blog/"}
        )

    async def click_id(self) -> str:
        location = (await self.click()).headers["location"]
        return parse_qs(urlsplit(location).query)["click_id"][0]

    async def postback(self, **params: str) -> dict[str, Any]:
        response = await self.client.get("/postback", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def tracker(services: Services) -> AsyncIterator[Tracker]:
    app = create_app(services, tracking_only=True)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://track.test") as c:
            yield Tracker(app, c)
    finally:
        await app.shutdown()


def rows(services: Services, query: Any) -> list[Any]:
    with services.engine.connect() as conn:
        return list(conn.execute(query))


def ledger(services: Services) -> list[tuple[str, str, int, str | None, str | None]]:
    ce = t.commission_entries.c
    return [
        tuple(r)
        for r in rows(
            services,
            select(ce.kind, ce.bucket, ce.amount_micros, ce.txn_key, ce.fx_rate).order_by(ce.id),
        )
    ]


def events(services: Services) -> list[tuple[str, dict[str, Any]]]:
    o = t.outbox_events.c
    out = []
    for r in rows(services, select(o.event_type, o.payload).order_by(o.id)):
        payload = r.payload if isinstance(r.payload, dict) else json.loads(r.payload)
        out.append((r.event_type, payload))
    return out


def add_cap(services: Services, world: World, **kw: Any) -> None:
    set_caps(
        SqlCapsUnitOfWork(services.engine, services.clock),
        services.cap_counter(),
        services.clock,
        [SetCap(program_id=ProgramId(world.program.id), period="day", **kw)],
        "test",
    )


# --- one pricing path ----------------------------------------------------------------------


async def test_a_versioned_tiered_plan_prices_http_postbacks(
    services: Services, world: World, tracker: Tracker
) -> None:
    set_plan(SqlMoneyUnitOfWork(services.engine, services.clock), services.clock,
             program_id=world.program.id, text=TIERED_PLAN, author="kim")  # fmt: skip
    tracker.refresh()
    token = world.program.postback_token
    first = await tracker.postback(token=token, click_id=await tracker.click_id(),
                                   order_id="T-1", amount="100")  # fmt: skip
    second = await tracker.postback(token=token, click_id=await tracker.click_id(),
                                    order_id="T-2", amount="100")  # fmt: skip
    assert (first["commission"], second["commission"]) == ("10.00", "20.00")
    assert "program plan: plan tiered v1" in second["explanation"]
    assert "(this is conversion 2)" in second["explanation"]
    assert ledger(services) == [
        ("commission", "pending", 10_000_000, f"commission:{first['conversion_id']}", None),
        ("commission", "pending", 20_000_000, f"commission:{second['conversion_id']}", None),
    ]


async def test_renewals_pay_the_recurring_rule_for_its_months_by_customer_id(
    services: Services, world: World, tracker: Tracker
) -> None:
    set_plan(SqlMoneyUnitOfWork(services.engine, services.clock), services.clock,
             program_id=world.program.id, text=SUBSCRIPTION_PLAN, author="kim")  # fmt: skip
    tracker.refresh()
    token = world.program.postback_token
    # The subscription starts with a sale through a click; renewals come from the billing
    # system with the subscriber's id only, each a payment of 50.00.
    sale = await tracker.postback(token=token, click_id=await tracker.click_id(),
                                  order_id="INV-1", amount="50", customer_id="cus_1")  # fmt: skip
    renewal = {"token": token, "amount": "50", "customer_id": "cus_1", "event": "renewal"}
    renewals = [await tracker.postback(order_id=f"INV-{n}", **renewal) for n in (2, 3, 4)]
    assert sale["commission"] == "15.00"
    assert [r["commission"] for r in renewals] == ["10.00", "10.00", None]
    assert {r["attributed_by"] for r in renewals} == {"customer"}
    assert {r["partner_id"] for r in renewals} == {world.partner.id}
    assert "recurring for 3 payment(s), this is payment 4" in renewals[2]["explanation"]
    cv = t.conversions.c
    stored = rows(services, select(cv.order_id, cv.event_type, cv.partner_id).order_by(cv.id))
    assert [(r.order_id, r.event_type) for r in stored] == [
        ("INV-1", "sale"), ("INV-2", "renewal"), ("INV-3", "renewal"), ("INV-4", "renewal"),
    ]  # fmt: skip
    # A renewal without its subscriber cannot be attributed or numbered: refused, stored nothing.
    response = await tracker.client.get(
        "/postback", params={"token": token, "order_id": "INV-9", "event": "renewal"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "customer_id"
    assert len(rows(services, select(cv.id))) == 4
    # A refunded renewal gives its commission back, like any conversion.
    await tracker.postback(token=token, order_id="INV-2", event="refund")
    assert [entry[:3] for entry in ledger(services)][-1] == ("reversal", "pending", -10_000_000)


def _usd_to_eur(services: Services, tracker: Tracker) -> None:
    """USD -> EUR at 0.9 from 2026-03-01, known to the tracker."""
    import_rates(SqlMoneyUnitOfWork(services.engine, services.clock), services.clock,
                 ["date,from,to,rate", "2026-03-01,USD,EUR,0.9"])  # fmt: skip
    tracker.refresh()


async def test_an_order_in_another_currency_is_converted_with_the_stored_rate(
    services: Services, world: World, tracker: Tracker
) -> None:
    _usd_to_eur(services, tracker)
    body = await tracker.postback(token=world.program.postback_token, order_id="U-1",
                                  amount="100", currency="USD",
                                  click_id=await tracker.click_id())  # fmt: skip
    assert (body["commission"], body["currency"]) == ("9.00", "EUR")
    assert body["explanation"].count("order value 100.00 USD at 0.9 (2026-03-01) = 90.00 EUR")
    assert ledger(services) == [
        ("commission", "pending", 9_000_000, f"commission:{body['conversion_id']}", "0.9")
    ]
    with services.engine.connect() as conn:
        day = conn.execute(select(t.commission_entries.c.fx_rate_date)).scalar_one()
    assert day == "2026-03-01"


async def test_a_refund_of_an_order_in_another_currency_reverses_in_the_commission_currency(
    services: Services, world: World, tracker: Tracker
) -> None:
    # The commission of a USD order in a EUR program is booked in EUR; a refund postback
    # once booked its reversal in USD (the order's currency), so the partner kept the EUR
    # commission and owed a USD one, and reports (program currency) never netted it.
    _usd_to_eur(services, tracker)
    token = world.program.postback_token
    await tracker.postback(token=token, order_id="U-3", amount="100", currency="USD",
                           click_id=await tracker.click_id())  # fmt: skip
    partial = await tracker.postback(token=token, order_id="U-3", event="refund", amount="50")
    assert (partial["reversed"], partial["currency"]) == ("4.50", "EUR")
    await tracker.postback(token=token, order_id="U-3", event="refund")
    ce = t.commission_entries.c
    assert rows(services, select(ce.kind, ce.amount_micros, ce.currency).order_by(ce.id)) == [
        ("commission", 9_000_000, "EUR"),
        ("reversal", -4_500_000, "EUR"),
        ("reversal", -4_500_000, "EUR"),
    ]


async def test_without_a_rate_nothing_is_booked_and_the_missing_rate_is_named(
    services: Services, world: World, tracker: Tracker
) -> None:
    body = await tracker.postback(token=world.program.postback_token, order_id="U-2",
                                  amount="100", currency="USD",
                                  click_id=await tracker.click_id())  # fmt: skip
    assert body["commission"] is None
    assert "no USD->EUR rate on or before 2026-03-02" in body["explanation"]
    assert ledger(services) == []


# --- events ------------------------------------------------------------------------------


async def test_conversions_and_refunds_publish_their_events_once(
    services: Services, clock: FixedClock, world: World, tracker: Tracker
) -> None:
    token = world.program.postback_token
    click_id = await tracker.click_id()
    clock.advance(timedelta(minutes=10))  # a believable click-to-conversion time
    first = await tracker.postback(token=token, click_id=click_id, order_id="E-1",
                                   amount="50", sub1="x")  # fmt: skip
    again = await tracker.postback(token=token, click_id=click_id, order_id="E-1", amount="50")
    assert again["duplicate"] is True
    published = events(services)
    assert [e for e, _ in published] == ["conversion.created", "commission.created"]
    conv = published[0][1]["conversion"]
    assert (conv["id"], conv["order_id"], conv["commission"]) == (
        first["conversion_id"], "E-1", "5"
    )  # fmt: skip
    assert conv["click_id"] == click_id
    assert published[1][1]["commission"]["txn_id"] == f"commission:{first['conversion_id']}"
    refund = await tracker.postback(token=token, order_id="E-1", event="refund")
    assert refund["reversed"] == "5.00"
    kinds = [e for e, _ in events(services)]
    assert kinds == [
        "conversion.created", "commission.created", "commission.reversed", "conversion.reversed"
    ]  # fmt: skip
    reversed_event = events(services)[-1][1]
    assert reversed_event["conversion"]["status"] == "reversed"
    assert reversed_event["reversal"]["fully_refunded"] is True
    assert reversed_event["reversal"]["commission_reversed"] == {"amount": "5", "currency": "EUR"}
    await tracker.postback(token=token, order_id="E-1", event="refund")  # already refunded
    assert len(events(services)) == 4


# --- caps --------------------------------------------------------------------------------


async def test_a_click_cap_sends_exactly_n_concurrent_clicks_to_the_landing_page(
    services: Services, world: World, tracker: Tracker
) -> None:
    add_cap(services, world, metric="clicks", limit="5", offer_id=world.offer.id)
    tracker.refresh()
    answers = await asyncio.gather(*(tracker.click() for _ in range(16)))
    locations = sorted(a.headers["location"].split("?")[0] for a in answers)
    assert {a.status_code for a in answers} == {302}
    assert locations.count(LANDING) == 5
    assert locations.count(FALLBACK) == 11
    # Over-cap clicks are not recorded and set no click cookie.
    assert len(rows(services, select(t.clicks.c.id))) == 5
    assert sum("pf_click" in a.headers.get("set-cookie", "") for a in answers) == 5


async def test_an_over_cap_conversion_is_recorded_but_not_payable_until_a_refund_frees_room(
    services: Services, world: World, tracker: Tracker
) -> None:
    add_cap(services, world, metric="conversions", limit="1", partner_id=world.partner.id)
    tracker.refresh()
    token = world.program.postback_token
    paid = await tracker.postback(token=token, click_id=await tracker.click_id(),
                                  order_id="C-1", amount="100")  # fmt: skip
    capped = await tracker.postback(token=token, click_id=await tracker.click_id(),
                                    order_id="C-2", amount="100")  # fmt: skip
    assert (paid["status"], paid["commission"]) == ("pending", "10.00")
    assert (capped["status"], capped["commission"]) == ("rejected", None)
    assert (
        "is full for 2026-03-02 (1 of 1): conversion recorded but not payable"
        in (capped["explanation"])
    )
    cv = t.conversions.c
    stored = rows(services, select(cv.order_id, cv.status, cv.flags).order_by(cv.id))
    assert [(r.order_id, r.status) for r in stored] == [("C-1", "pending"), ("C-2", "rejected")]
    assert stored[1].flags.split(";")[-1].startswith("cap:")
    assert len(ledger(services)) == 1
    # The refund gives the reservation back: the next conversion pays again.
    await tracker.postback(token=token, order_id="C-1", event="refund")
    again = await tracker.postback(token=token, click_id=await tracker.click_id(),
                                   order_id="C-3", amount="100")  # fmt: skip
    assert (again["status"], again["commission"]) == ("pending", "10.00")


# --- fraud -------------------------------------------------------------------------------


async def test_a_suspicious_click_is_scored_and_flagged_but_still_redirected(
    services: Services, world: World, tracker: Tracker
) -> None:
    response = await tracker.client.get(
        "/c/ann-shop", params={"gclid": "abc"}, headers={"user-agent": "python-requests/2.31"}
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith(LANDING)
    [row] = rows(services, select(t.clicks.c.fraud_score, t.clicks.c.flags, t.clicks.c.is_bot))
    assert row.is_bot is True
    assert row.fraud_score == 100
    assert set(row.flags.split(";")) == {"scripted_client", "paid_search:gclid", "no_referrer"}


async def test_a_conversion_seconds_after_its_click_is_flagged_and_held(
    services: Services, world: World, tracker: Tracker
) -> None:
    # The test clock does not move: the conversion comes 0 s after its click.
    body = await tracker.postback(token=world.program.postback_token, order_id="F-1",
                                  amount="100", click_id=await tracker.click_id())  # fmt: skip
    assert body["commission"] == "10.00"
    assert "fraud score 80 (converted 0.0 s after the click" in body["explanation"]
    cv = t.conversions.c
    [row] = rows(services, select(cv.is_flagged, cv.flags, cv.status))
    assert (row.is_flagged, row.flags, row.status) == (True, "ctit_injection", "pending")
    assert [e for e, _ in events(services)] == [
        "conversion.created", "commission.created", "conversion.flagged"
    ]  # fmt: skip
    assert ledger(services)[0][:2] == ("commission", "pending")
    assert Decimal(body["commission"]) == Decimal("10.00")


async def test_outbox_payloads_are_compact_json_and_the_flagged_event_repeats_the_created_one(
    services: Services, world: World, tracker: Tracker
) -> None:
    location = (await tracker.click(sub1="zoë", sub2="a b")).headers["location"]
    click_id = parse_qs(urlsplit(location).query)["click_id"][0]
    await tracker.postback(token=world.program.postback_token, order_id="J-1", amount="100",
                           click_id=click_id, customer_id="kundin-ü")  # fmt: skip
    with services.engine.connect() as conn:
        stored = [tuple(r) for r in conn.exec_driver_sql(
            "SELECT event_id, event_type, CAST(payload AS TEXT) FROM outbox_events ORDER BY id"
        )]  # fmt: skip
    assert [kind for _, kind, _ in stored] == [
        "conversion.created", "commission.created", "conversion.flagged"
    ]  # fmt: skip
    assert len({event_id for event_id, _, _ in stored}) == 3
    assert all(re.fullmatch(r"evt_[0-9a-f]{24}", event_id) for event_id, _, _ in stored)
    # The text json.dumps(payload, separators=(",", ":")) wrote, non-ASCII escaped.
    for _, _, text in stored:
        assert text == json.dumps(json.loads(text), separators=(",", ":"))
    created, flagged = (json.loads(stored[n][2])["conversion"] for n in (0, 2))
    assert created["sub_ids"] == {"sub1": "zoë", "sub2": "a b"}
    assert "\\u00eb" in stored[0][2] and created["customer_id"] == "kundin-ü"
    assert flagged == {**created, "flags": "ctit_injection"}


@pytest.mark.redis
def test_redis_conversion_reservations_use_the_conversions_own_id(redis_url: str) -> None:
    import secrets

    from partnerflow.caps.model import Charge
    from partnerflow.storage.cap_reservations import RedisCapCounter
    from partnerflow.storage.tracking_caps import ConversionCapStore
    from partnerflow.tracking.conversions import cap_reservation_id

    counter = RedisCapCounter.from_url(redis_url, prefix=f"pft{secrets.token_hex(4)}:")
    store = ConversionCapStore(counter)
    charge = Charge(key="cap:1:2026-03-02", amount=1, limit=2, cap_id=1, ttl_seconds=60)
    ids = [cap_reservation_id(1, f"R-{i}") for i in range(3)]

    def nothing(sql: str, params: Any) -> list[Any]:
        raise AssertionError("Redis reservations touch no SQL")

    outcomes = [
        store.reserve(nothing, str, [charge], rid, datetime_now(), (1, f"R-{i}"))
        for i, rid in enumerate(ids)
    ]
    assert [type(o).__name__ for o in outcomes] == ["Reservation", "Reservation", "Refused"]
    assert counter.usage([charge.key]) == {charge.key: 2}
    assert store.release(nothing, ids[0]) is True
    assert store.release(nothing, ids[0]) is False  # once only
    assert counter.usage([charge.key]) == {charge.key: 1}
    counter.client.delete(*[counter.prefix + k for k in (charge.key, f"res:{ids[1]}")])


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
