"""The tracking endpoints end to end on SQLite and PostgreSQL: clicks, postbacks, refunds."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from tests.factories import World, make_coupon, make_offer, make_program, make_world

from partnerflow.bootstrap import Services
from partnerflow.partners.services import change_status
from partnerflow.storage import tables as t
from partnerflow.storage.ledger import ledger_lock_key

pytestmark = pytest.mark.anyio


def count(services: Services, table: t.Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def ledger(services: Services) -> list[tuple[str, str, int]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(
                t.commission_entries.c.kind,
                t.commission_entries.c.bucket,
                t.commission_entries.c.amount_micros,
            ).order_by(t.commission_entries.c.id)
        )
        return [tuple(r) for r in rows]


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


async def click(client: httpx.AsyncClient, code: str = "ann-shop", **params: str) -> httpx.Response:
    return await client.get(f"/c/{code}", params=params, headers={"user-agent": UA})


UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


async def test_click_redirects_with_click_id_cookie_and_stored_row(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await click(tracker_client, sub1="spring", utm_source="blog", qr="1")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "shop.example.com",
        "/landing",
    )
    query = parse_qs(location.query)
    click_id = query["click_id"][0]
    assert query["utm_source"] == ["blog"]
    assert "sub1" not in query
    assert response.cookies["pf_click"] == click_id
    assert "pf_vid" in response.cookies
    set_cookie = response.headers.get_list("set-cookie")[0]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert f"Max-Age={30 * 86400}" in set_cookie
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks).where(t.clicks.c.id == click_id)).one()
    assert row.link_id == world.link.id
    assert row.partner_id == world.partner.id
    assert row.sub1 == "spring"
    assert row.is_qr is True
    assert row.is_unique is True
    assert row.is_bot is False
    assert (row.device, row.os, row.browser) == ("mobile", "iOS", "Mobile Safari")
    assert row.ip == "203.0.113.7"
    assert row.created_at == services.clock.now()


async def test_repeat_click_from_same_visitor_is_not_unique(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    first = await click(tracker_client)
    second = await click(tracker_client)  # the client sends back pf_vid
    assert first.status_code == second.status_code == 302
    with services.engine.connect() as conn:
        uniques = [
            r.is_unique
            for r in conn.execute(select(t.clicks).order_by(t.clicks.c.created_at, t.clicks.c.id))
        ]
    assert sorted(uniques) == [False, True]


async def test_sub_ids_with_c1_control_characters_are_dropped(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    """U+0080-U+009F are control characters too (U+0085 is a line break to many readers):
    the sub-id is dropped and flagged, like one with a NUL; the visitor still lands."""
    response = await click(tracker_client, sub1="a\x85b", sub2="ok", utm_source="x\x9fy")
    assert response.status_code == 302
    assert "utm_source" not in response.headers["location"]
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks)).one()
    assert (row.sub1, row.sub2) == (None, "ok")
    assert row.flags is not None
    assert "sub1:control characters" in row.flags and "utm_source:invalid" in row.flags


async def test_a_scripted_clicks_referrer_is_stored_without_bidi_or_invisible_characters(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    """`pf.js` sends the page's referrer as `ref=`, UTF-8: a right-to-left override or a
    zero-width space would reorder or hide what the click log and CSV exports show. They
    are removed (the click is still recorded: the referrer is evidence, not input)."""
    response = await click(
        tracker_client, js="1", ref="https://blog.example/\u202egnp.exe\u200b?a=\u2066b"
    )
    assert response.status_code == 200
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks)).one()
    assert row.referrer == "https://blog.example/gnp.exe?a=b"


async def test_unknown_code_is_404_without_redirect(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await click(tracker_client, code="nope-nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "location" not in response.headers
    assert count(services, t.clicks) == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/",
        "//evil.com",
        "https://shop.example.com@evil.com/",
        "https://shop.example.com\\@evil.com/",
        "https://evil.com\\.shop.example.com/",
        "javascript:alert(1)",
        "https://shop.example.com.evil.com/",
        "https://xn--shp-qla.example.com/",
        "https://shop.example.com%2F@evil.com",
        "https:\t//evil.com",
    ],
)
async def test_open_redirect_attempts_are_refused(
    services: Services, world: World, tracker_client: httpx.AsyncClient, url: str
) -> None:
    response = await click(tracker_client, url=url)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert "location" not in response.headers
    assert count(services, t.clicks) == 0


async def test_deep_link_to_landing_domain_is_followed(
    world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await click(tracker_client, url="https://shop.example.com/p/42?color=red#top")
    assert response.status_code == 302
    assert response.headers["location"].startswith(
        "https://shop.example.com/p/42?color=red&click_id="
    )
    assert response.headers["location"].endswith("#top")


async def postback(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/postback", params=params)


async def test_postback_records_conversion_and_ledger_entry(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    click_id = parse_qs(urlsplit((await click(tracker_client)).headers["location"]).query)[
        "click_id"
    ][0]
    response = await postback(
        tracker_client, token=world.program.postback_token, click_id=click_id,
        order_id="A-1", amount="120.00", currency="EUR",
    )  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["duplicate"] is False
    assert body["attributed_by"] == "click_id"
    assert body["partner_id"] == world.partner.id
    assert Decimal(body["commission"]) == Decimal("12.00")
    assert ledger(services) == [("commission", "pending", 12_000_000)]


async def test_duplicate_order_answers_duplicate_and_writes_nothing_more(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    params = dict(token=world.program.postback_token, order_id="A-2", amount="50", coupon="ANN10")
    make_coupon(services, world.partner, world.offer)
    first = await postback(tracker_client, **params)
    second = await tracker_client.post("/postback", data=params)
    assert first.json()["duplicate"] is False
    assert first.json()["attributed_by"] == "coupon"
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["conversion_id"] == first.json()["conversion_id"]
    # The commission the first answer gave, as booked (a sender may have lost that answer).
    assert (second.json()["commission"], second.json()["currency"]) == ("5.00", "EUR")
    assert (first.json()["commission"], first.json()["currency"]) == ("5.00", "EUR")
    assert count(services, t.conversions) == 1
    assert ledger(services) == [("commission", "pending", 5_000_000)]


async def test_concurrent_duplicates_store_one_conversion(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    import asyncio

    params = dict(token=world.program.postback_token, order_id="A-3", amount="10")
    answers = await asyncio.gather(*(postback(tracker_client, **params) for _ in range(8)))
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 7
    assert count(services, t.conversions) == 1


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"token": "wrong-token", "order_id": "X"}, 403, "token"),
        ({"order_id": "X"}, 403, "token"),
        ({"order_id": "X", "amount": "-5"}, 400, "amount"),
        ({"order_id": "X", "amount": "abc"}, 400, "amount"),
        ({"order_id": "X", "amount": "1e12"}, 400, "amount"),
        ({"order_id": "X", "amount": "NaN"}, 400, "amount"),
        ({"order_id": "X", "amount": "1_000"}, 400, "amount"),  # Decimal() read it as 1000
        ({"order_id": "X", "amount": "\u0661\u0662\u0663"}, 400, "amount"),  # Arabic-Indic 123
        ({"order_id": "X", "amount": "5", "currency": "XXX"}, 400, "currency"),
        ({"order_id": "", "amount": "5"}, 400, "order_id"),
        ({"order_id": "X", "click_id": "{click_id}"}, 400, "click_id"),
        ({"order_id": "X", "event": "bogus"}, 400, "event"),
    ],
)
async def test_bad_postbacks_are_refused_and_write_nothing(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    params: dict[str, str], status: int, field: str,
) -> None:  # fmt: skip
    if "token" not in params and status != 403:
        params = {**params, "token": world.program.postback_token}
    response = await postback(tracker_client, **params)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert count(services, t.conversions) == 0
    assert ledger(services) == []


@pytest.mark.parametrize("path", ["/postback", "/px"])
@pytest.mark.parametrize(
    "params",
    [
        {"amount": "1e1000000"},  # past decimal's Emax: abs() raised decimal.Overflow (500)
        {"amount": "1E+999999999999999999"},
        {"amount": "1e1000000", "event": "refund"},
    ],
)
async def test_amount_with_a_huge_exponent_is_refused_not_a_500(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    path: str, params: dict[str, str],
) -> None:  # fmt: skip
    response = await tracker_client.get(
        path, params={"token": world.program.postback_token, "order_id": "H-1", **params}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "amount"
    assert count(services, t.conversions) == 0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"amount": "10.5", "currency": "JPY"}, "10.5 has more decimal places than JPY allows (0)"),
        (
            {"amount": "19.999", "currency": "USD"},
            "19.999 has more decimal places than USD allows (2)",
        ),
        (
            {"amount": "1.2345", "currency": "KWD"},
            "1.2345 has more decimal places than KWD allows (3)",
        ),
        # No currency: the program's (EUR).
        ({"amount": "0.001"}, "0.001 has more decimal places than EUR allows (2)"),
    ],
)
@pytest.mark.parametrize("path", ["/postback", "/px"])
async def test_amounts_finer_than_the_currency_are_refused_and_write_nothing(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    path: str, params: dict[str, str], reason: str,
) -> None:  # fmt: skip
    make_coupon(services, world.partner, world.offer)
    response = await tracker_client.get(
        path, params={"token": world.program.postback_token, "order_id": "M-1", "coupon": "ANN10",
                      **params},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_input", "reason": reason, "field": "amount"}
    assert count(services, t.conversions) == 0
    assert ledger(services) == []


async def test_order_webhook_refuses_a_json_amount_finer_than_the_currency(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await tracker_client.post(
        "/api/v1/orders",
        content=b'{"order_id": "M-2", "amount": 10.5, "currency": "JPY"}',
        headers={"content-type": "application/json",
                 "authorization": f"Bearer {world.program.postback_token}"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["reason"] == "10.5 has more decimal places than JPY allows (0)"
    assert count(services, t.conversions) == 0


@pytest.mark.parametrize(
    ("amount", "currency", "micros"),
    [("1000.00", "JPY", 1_000_000_000), ("10.50", "USD", 10_500_000), ("7.000", None, 7_000_000)],
)
async def test_trailing_zeros_past_the_minor_unit_are_accepted(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    amount: str, currency: str | None, micros: int,
) -> None:  # fmt: skip
    params = {"token": world.program.postback_token, "order_id": "Z-1", "amount": amount}
    response = await postback(
        tracker_client, **params, **({"currency": currency} if currency else {})
    )
    assert response.status_code == 200
    with services.engine.connect() as conn:
        stored = conn.execute(select(t.conversions.c.amount_micros, t.conversions.c.currency)).one()
    assert tuple(stored) == (micros, currency or "EUR")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"amount": "0.000001"}, "0.000001 has more decimal places than EUR allows (2)"),
        (
            {"amount": "0.000001", "currency": "EUR"},
            "0.000001 has more decimal places than EUR allows (2)",
        ),
        (
            {"amount": "0"},
            "a refund amount must be positive (leave amount out to refund the rest of the order)",
        ),
        (
            {"amount": "0.00", "event": "chargeback"},
            "a refund amount must be positive (leave amount out to refund the rest of the order)",
        ),
    ],
)
async def test_refunds_of_nothing_are_refused_and_change_nothing(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    params: dict[str, str], reason: str,
) -> None:  # fmt: skip
    """A refund of 0.000001 EUR answered "reversed": "0.00" and stored a refund nobody
    made; a zero one is a sender's unfilled field."""
    make_coupon(services, world.partner, world.offer)
    token = world.program.postback_token
    await postback(tracker_client, token=token, coupon="ANN10", order_id="N-1", amount="100")
    response = await postback(
        tracker_client, **{"token": token, "event": "refund", "order_id": "N-1", **params}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_input", "reason": reason, "field": "amount"}
    assert ledger(services) == [("commission", "pending", 10_000_000)]
    with services.engine.connect() as conn:
        stored = conn.execute(select(t.conversions.c.refunded_micros, t.conversions.c.status)).one()
    assert tuple(stored) == (0, "pending")


async def test_a_refund_is_checked_against_the_orders_currency(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    """An order in JPY in a EUR program: its refund without `currency` is in yen."""
    make_coupon(services, world.partner, world.offer)
    token = world.program.postback_token
    placed = await postback(
        tracker_client, token=token, coupon="ANN10", order_id="Y-1", amount="5000",
        currency="JPY",
    )  # fmt: skip
    assert placed.status_code == 200
    refused = await postback(
        tracker_client, token=token, event="refund", order_id="Y-1", amount="0.5"
    )
    assert refused.status_code == 400
    assert refused.json()["reason"] == "0.5 has more decimal places than JPY allows (0)"
    accepted = await postback(
        tracker_client, token=token, event="refund", order_id="Y-1", amount="1000"
    )
    assert accepted.status_code == 200
    with services.engine.connect() as conn:
        assert conn.execute(select(t.conversions.c.refunded_micros)).scalar_one() == 1_000_000_000


async def test_partial_then_full_refund_reverses_commission_pro_rata(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    click_id = parse_qs(urlsplit((await click(tracker_client)).headers["location"]).query)[
        "click_id"
    ][0]
    token = world.program.postback_token
    await postback(tracker_client, token=token, click_id=click_id, order_id="R-1", amount="100.00")
    partial = await postback(
        tracker_client, token=token, event="refund", order_id="R-1", amount="25"
    )
    assert partial.status_code == 200
    assert partial.json()["reversed"] == "2.50"
    assert partial.json()["status"] == "pending"
    repeat = await postback(
        tracker_client, token=token, event="refund", order_id="R-1", amount="25"
    )
    assert repeat.json()["duplicate"] is True
    too_much = await postback(
        tracker_client, token=token, event="refund", order_id="R-1", amount="80", refund_id="r2"
    )
    assert too_much.status_code == 400
    rest = await postback(tracker_client, token=token, event="chargeback", order_id="R-1")
    assert rest.json()["reversed"] == "7.50"
    assert rest.json()["status"] == "reversed"
    assert ledger(services) == [
        ("commission", "pending", 10_000_000),
        ("reversal", "pending", -2_500_000),
        ("reversal", "pending", -7_500_000),
    ]


async def test_a_refund_while_the_ledger_is_locked_is_refused_alone_and_retried(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    """PostgreSQL: an approval run or payout build holds the program's ledger lock; a refund
    postback then gets a 503 (nothing written) instead of holding up the writer's batch
    with every click in it, and goes through once the lock is free."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions serialise the ledger writers already")
    make_coupon(services, world.partner, world.offer)
    token = world.program.postback_token
    await postback(tracker_client, token=token, coupon="ANN10", order_id="L-1", amount="100")
    with services.engine.connect() as holder:
        holder.execute(select(func.pg_advisory_xact_lock(ledger_lock_key(world.program.id))))
        busy = await postback(tracker_client, token=token, event="refund", order_id="L-1")
        assert busy.status_code == 503
        assert busy.json()["error"] == "database_unavailable"
        assert (await click(tracker_client)).status_code == 302  # the batch went on
        holder.rollback()
    assert ledger(services) == [("commission", "pending", 10_000_000)]
    retried = await postback(tracker_client, token=token, event="refund", order_id="L-1")
    assert (retried.status_code, retried.json()["reversed"]) == (200, "10.00")


async def test_refund_reason_writes_round_amounts_without_an_exponent(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    make_coupon(services, world.partner, world.offer)
    token = world.program.postback_token
    await postback(tracker_client, token=token, coupon="ANN10", order_id="R-2", amount="200")
    refund = await postback(
        tracker_client, token=token, event="refund", order_id="R-2", amount="100"
    )
    assert refund.status_code == 200
    assert refund.json()["explanation"].startswith("refund of 100 EUR on order R-2")
    with services.engine.connect() as conn:
        reasons = (
            conn.execute(
                select(t.commission_entries.c.reason).where(
                    t.commission_entries.c.kind == "reversal"
                )
            )
            .scalars()
            .all()
        )
    assert reasons == ["refund of 100 EUR on order R-2 (partial, pro rata)"]  # not "1E+2"


def events(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(t.outbox_events.c.event_type).order_by(t.outbox_events.c.id))
        return list(rows.scalars())


def conversion_state(services: Services) -> tuple[str, int]:
    with services.engine.connect() as conn:
        row = conn.execute(select(t.conversions.c.status, t.conversions.c.refunded_micros)).one()
    return row.status, row.refunded_micros


ZERO_ORDER = (
    "the order's amount is zero (a lead or signup): there is nothing to refund; leave "
    "amount out to reverse its commission"
)


@pytest.fixture
def lead_coupon(services: Services, world: World) -> str:
    """A CPL offer (5.00 per lead) and its coupon, made before the tracker starts (it
    caches the plans it prices with)."""
    lead = make_offer(services, world.program, name="Quote", plan={"type": "cpl", "amount": "5"})
    return make_coupon(services, world.partner, lead, code="LEAD5").code


@pytest.mark.parametrize("kind", ["refund", "chargeback"])
@pytest.mark.parametrize("amount", [{}, {"amount": "0"}])
async def test_a_leads_commission_is_reversed_by_a_refund_without_amount(
    services: Services, world: World, lead_coupon: str, tracker_client: httpx.AsyncClient,
    kind: str, amount: dict[str, str],
) -> None:  # fmt: skip
    """A CPL lead (order amount 0, a fixed 5.00 commission) could not be reversed through
    the tracker: "refund amount must be positive". Without `amount` its whole commission
    comes back; an amount is refused (nothing to refund); a repeat is a duplicate."""
    token = world.program.postback_token
    placed = await postback(
        tracker_client, token=token, event="lead", order_id="L-1", coupon=lead_coupon, **amount
    )
    assert (placed.status_code, placed.json()["commission"]) == (200, "5.00"), placed.text
    refused = await postback(tracker_client, token=token, event=kind, order_id="L-1", amount="5")
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_input", "reason": ZERO_ORDER, "field": "amount"}
    assert ledger(services) == [("commission", "pending", 5_000_000)]
    assert conversion_state(services) == ("pending", 0)

    reversed_ = await postback(tracker_client, token=token, event=kind, order_id="L-1")
    assert reversed_.status_code == 200, reversed_.text
    body = reversed_.json()
    assert (body["kind"], body["duplicate"], body["status"], body["reversed"]) == (
        kind, False, "reversed", "5.00",
    )  # fmt: skip
    assert body["explanation"] == f"{kind} of order L-1 (amount zero: its whole commission)"
    assert ledger(services) == [
        ("commission", "pending", 5_000_000), ("reversal", "pending", -5_000_000),
    ]  # fmt: skip
    assert conversion_state(services) == ("reversed", 0)
    published = events(services)

    for again in ({}, {"refund_id": "another"}, {"amount": "5"}):
        repeat = await postback(tracker_client, token=token, event=kind, order_id="L-1", **again)
        assert repeat.status_code == 200
        assert (repeat.json()["duplicate"], repeat.json()["explanation"]) == (
            True, "refund already recorded",
        )  # fmt: skip
    assert len(ledger(services)) == 2
    assert events(services) == published  # nothing published twice


@pytest.mark.parametrize("coupon", [{"coupon": "ANN10"}, {}])
async def test_a_zero_order_without_commission_is_reversed_without_a_zero_entry(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    coupon: dict[str, str],
) -> None:  # fmt: skip
    """A signup on a percent-of-sale offer (commission 0.00) or an unattributed lead: the
    refund marks the conversion reversed and publishes it, and books no reversal of 0."""
    make_coupon(services, world.partner, world.offer)
    token = world.program.postback_token
    placed = await postback(
        tracker_client, token=token, event="signup", order_id="S-1", amount="0", **coupon
    )
    assert placed.status_code == 200
    booked = ledger(services)
    before = events(services)
    response = await postback(tracker_client, token=token, event="refund", order_id="S-1")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["reversed"]) == ("reversed", "0.00")
    assert ledger(services) == booked
    assert conversion_state(services) == ("reversed", 0)
    assert events(services) == [*before, "conversion.reversed"]
    repeat = await postback(tracker_client, token=token, event="refund", order_id="S-1")
    assert repeat.json()["duplicate"] is True
    assert events(services) == [*before, "conversion.reversed"]


async def test_refund_of_unknown_order_is_404(
    world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await postback(
        tracker_client, token=world.program.postback_token, event="refund", order_id="nope"
    )
    assert response.status_code == 404


async def test_head_on_a_link_shows_where_it_leads_and_records_nothing(
    world: World, services: Services, tracker_client: httpx.AsyncClient
) -> None:
    """Link checkers and chat previews send HEAD: not visitors, so no click, no cookie."""
    head = await tracker_client.head("/c/ann-shop", headers={"user-agent": UA})
    unknown = await tracker_client.head("/c/no-such-link")
    assert head.status_code == 302
    assert head.headers["location"] == "https://shop.example.com/landing"
    assert "set-cookie" not in head.headers
    assert unknown.status_code == 404
    assert count(services, t.clicks) == 0
    assert (await click(tracker_client)).status_code == 302  # a GET still is a click
    assert count(services, t.clicks) == 1


async def test_head_on_pixels_and_postbacks_records_nothing(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    """HEAD is what link checkers and monitors send: the impression and conversion pixels
    answer their headers (404/403 as a GET would) without recording; postbacks take GET or
    POST only."""
    token = world.program.postback_token
    impression = await tracker_client.head("/i/ann-shop", headers={"user-agent": UA})
    assert impression.status_code == 200
    assert impression.headers["content-type"] == "image/gif"
    assert (await tracker_client.head("/i/no-such-link")).status_code == 404
    pixel = await tracker_client.head(f"/px?token={token}&order_id=H-1&amount=5")
    assert pixel.status_code == 200
    assert (await tracker_client.head("/px?token=wrong&order_id=H-1&amount=5")).status_code == 403
    postback = await tracker_client.head(f"/postback?token={token}&order_id=H-2&amount=5")
    assert postback.status_code == 405
    assert count(services, t.impressions) == 0
    assert count(services, t.conversions) == 0
    assert (await tracker_client.get("/i/ann-shop", headers={"user-agent": UA})).status_code == 200
    assert count(services, t.impressions) == 1  # a GET still is a view


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_other_methods_on_links_and_pixels_are_405_and_record_nothing(
    services: Services, world: World, tracker_client: httpx.AsyncClient, method: str
) -> None:
    """Only GET records a click, an impression or a pixel conversion (HEAD on a link shows
    where it leads): a DELETE or OPTIONS on a tracking link set cookies and counted."""
    token = world.program.postback_token
    for path in ("/c/ann-shop", "/i/ann-shop", f"/px?token={token}&order_id=M-1&amount=5"):
        response = await tracker_client.request(method, path, headers={"user-agent": UA})
        assert response.status_code == 405, (path, response.status_code)
        assert response.json()["error"] == "method_not_allowed"
        assert "set-cookie" not in response.headers
        assert "location" not in response.headers
    assert count(services, t.clicks) == 0
    assert count(services, t.impressions) == 0
    assert count(services, t.conversions) == 0


def twice(key: str) -> dict[str, str]:
    return {"error": "invalid_input", "reason": f"{key} given twice with different values",
            "field": key}  # fmt: skip


@pytest.mark.parametrize("body", ["form", "json"])
async def test_a_post_body_cannot_override_the_query_strings_token(
    services: Services, world: World, tracker_client: httpx.AsyncClient, body: str
) -> None:
    """The body used to win: a POST to a postback URL holding program A's token, with
    program B's token in its body, was credited to program B."""
    make_coupon(services, world.partner, world.offer)
    other = make_program(services, slug="other")
    fields = {"token": other.postback_token, "order_id": "T-1", "amount": "10"}
    sent = {"data": fields} if body == "form" else {"json": fields}
    response = await tracker_client.post(
        "/postback", params={"token": world.program.postback_token}, **sent
    )
    assert response.status_code == 400
    assert response.json() == twice("token")
    assert count(services, t.conversions) == 0
    assert ledger(services) == []


@pytest.mark.parametrize(
    ("query", "fields", "key"),
    [
        ({"order_id": "Q-1"}, {"order_id": "Q-2"}, "order_id"),
        ({"amount": "10"}, {"amount": "1000"}, "amount"),
        ({"coupon": "ANN10"}, {"coupon": "BOB10"}, "coupon"),
        ({"event": "sale"}, {"event": "refund"}, "event"),
    ],
)
async def test_any_postback_parameter_in_query_and_body_must_agree(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    query: dict[str, str], fields: dict[str, str], key: str,
) -> None:  # fmt: skip
    make_coupon(services, world.partner, world.offer)
    base = {"token": world.program.postback_token, "order_id": "Q-1", "amount": "10"}
    response = await tracker_client.post(
        "/postback", params={**base, **query}, data={**base, **fields}
    )
    assert response.status_code == 400
    assert response.json() == twice(key)
    assert count(services, t.conversions) == 0


async def test_the_same_value_in_query_and_body_is_accepted(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    make_coupon(services, world.partner, world.offer)
    token = world.program.postback_token
    response = await tracker_client.post(
        "/postback",
        params={"token": token, "order_id": "S-1", "coupon": ""},  # blank: not a second value
        json={"token": token, "order_id": "S-1", "amount": 40, "coupon": "ANN10"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["attributed_by"], response.json()["commission"]) == ("coupon", "4.00")
    assert count(services, t.conversions) == 1


@pytest.mark.parametrize(
    ("method", "path", "sent"),
    [
        ("GET", "/postback", {"params": "token={a}&order_id=R-1&token={b}"}),
        ("GET", "/px", {"params": "token={a}&order_id=R-1&token={b}"}),
        ("POST", "/postback", {"content": "token={a}&order_id=R-1&token={b}",
                               "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("POST", "/postback", {"content": '{{"token": "{a}", "order_id": "R-1", "token": "{b}"}}',
                               "headers": {"content-type": "application/json"}}),
        ("POST", "/api/v1/orders",
         {"content": '{{"order_id": "R-1", "amount": "1", "amount": "{b}"}}',
          "headers": {"content-type": "application/json", "authorization": "Bearer {a}"}}),
    ],
)  # fmt: skip
async def test_a_parameter_repeated_in_one_source_with_different_values_is_refused(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    method: str, path: str, sent: dict[str, object],
) -> None:  # fmt: skip
    """urllib and json.loads keep the last of a repeated key, our query parser the first:
    which one counted depended on where it was. Now neither does."""
    other = make_program(services, slug="other")
    tokens = {"a": world.program.postback_token, "b": other.postback_token}
    if path == "/api/v1/orders":
        tokens["b"] = "100"

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return str(value).format(**tokens)

    response = await tracker_client.request(method, path, **fill(sent))
    assert response.status_code == 400
    assert response.json() == twice("amount" if path == "/api/v1/orders" else "token")
    assert count(services, t.conversions) == 0


async def test_order_webhook_takes_json_and_header_token(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    make_coupon(services, world.partner, world.offer)
    response = await tracker_client.post(
        "/api/v1/orders",
        json={"order_id": "W-1", "amount": 80.5, "currency": "EUR", "coupon": "ann10"},
        headers={"authorization": f"Bearer {world.program.postback_token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["commission"] == "8.05"
    with services.engine.connect() as conn:
        row = conn.execute(select(t.conversions)).one()
    assert row.amount_micros == 80_500_000
    assert row.coupon_code == "ANN10"


@pytest.mark.parametrize("path", ["/api/v1/orders", "/postback"])
@pytest.mark.parametrize("number", ["1E+9999999999999999999999", "1e-9999999999999999999999"])
async def test_json_number_beyond_decimal_limits_is_refused_not_a_500(
    services: Services, world: World, tracker_client: httpx.AsyncClient, path: str, number: str
) -> None:
    """json.loads(parse_float=Decimal) raises decimal.InvalidOperation for such a number,
    in any field: the body is refused as invalid JSON."""
    body = f'{{"order_id": "J-1", "amount": "1", "note": {number}}}'
    response = await tracker_client.post(
        path, content=body, headers={"content-type": "application/json",
        "authorization": f"Bearer {world.program.postback_token}"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["field"] == "body"
    assert count(services, t.conversions) == 0


@pytest.mark.parametrize(
    "customer_id",
    [
        "\ud800",  # a lone surrogate cannot be encoded for the database: it was a 500
        "cust\udc80",
        "cust\x7f",  # DEL and C1 controls are not printable either
        "cu\x85st",  # (U+0085 is whitespace to str.strip(): inside the value)
        "cust\x9f",
        "cust\u202e1",  # RIGHT-TO-LEFT OVERRIDE: reorders the id where it is shown
        "\u2066cust\u2069",
        "cu\u200bst",  # invisible: two different ids that look the same
        "cust\ufeff1",
        "cu\u2028st",  # (a line separator is whitespace to str.strip(): inside)
    ],
)
async def test_customer_id_with_control_characters_or_surrogates_is_refused(
    services: Services, world: World, tracker_client: httpx.AsyncClient, customer_id: str
) -> None:
    response = await tracker_client.post(
        "/api/v1/orders",
        content=json.dumps({"order_id": "U-1", "amount": "10", "customer_id": customer_id}),
        headers={
            "content-type": "application/json",
            "authorization": f"Bearer {world.program.postback_token}",
        },
    )
    assert response.status_code == 400
    assert response.json()["field"] == "customer_id"
    assert count(services, t.conversions) == 0


BIDI = "an invisible or bidirectional formatting character"


@pytest.mark.parametrize(
    ("customer_id", "reason"),
    [
        ("cus\u202e_1", f"customer_id must not contain U+202E ({BIDI})"),
        ("\u2067cus_1\u2069", f"customer_id must not contain U+2067 ({BIDI})"),
        ("cus_\u200b1", f"customer_id must not contain U+200B ({BIDI})"),
    ],
)
@pytest.mark.parametrize("via", ["get", "form", "json", "pixel"])
async def test_customer_id_with_bidi_characters_is_refused_on_every_intake(
    services: Services, world: World, tracker_client: httpx.AsyncClient,
    customer_id: str, reason: str, via: str,
) -> None:  # fmt: skip
    """Trojan Source: a U+202E in a stored customer id reorders it in the dashboard and
    in CSV exports. Refused with the field named, whichever way the order arrives."""
    make_coupon(services, world.partner, world.offer)
    fields = {"token": world.program.postback_token, "order_id": "B-1", "amount": "10",
              "coupon": "ANN10", "customer_id": customer_id}  # fmt: skip
    if via == "get":
        response = await tracker_client.get("/postback", params=fields)
    elif via == "form":
        response = await tracker_client.post("/postback", data=fields)
    elif via == "json":
        response = await tracker_client.post("/postback", json=fields)
    else:
        response = await tracker_client.get("/px", params=fields)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_input", "reason": reason, "field": "customer_id"}
    assert count(services, t.conversions) == 0
    assert ledger(services) == []


async def test_sub_ids_with_bidi_characters_are_dropped_like_control_ones(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await click(tracker_client, sub1="promo\u202egnp", sub2="ok", sub3="\u2066x\u2069")
    assert response.status_code == 302
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks)).one()
    assert (row.sub1, row.sub2, row.sub3) == (None, "ok", None)
    assert row.flags is not None
    assert "sub1:control characters" in row.flags and "sub3:control characters" in row.flags


async def test_pixel_attributes_by_cookie(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    await click(tracker_client)
    response = await tracker_client.get(
        "/px", params={"token": world.program.postback_token, "order_id": "P-1", "amount": "10"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    with services.engine.connect() as conn:
        row = conn.execute(select(t.conversions)).one()
    assert row.attributed_by == "cookie"
    assert row.partner_id == world.partner.id


async def test_impression_counts_and_returns_gif(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await tracker_client.get("/i/ann-shop")
    assert response.status_code == 200
    assert response.content.startswith(b"GIF89a")
    assert count(services, t.impressions) == 1


async def test_customer_id_attributes_repeat_purchase(
    services: Services, world: World, tracker_client: httpx.AsyncClient
) -> None:
    token = world.program.postback_token
    click_id = parse_qs(urlsplit((await click(tracker_client)).headers["location"]).query)[
        "click_id"
    ][0]
    await postback(
        tracker_client,
        token=token,
        click_id=click_id,
        order_id="C-1",
        amount="10",
        customer_id="cust-9",
    )
    tracker_client.cookies.clear()  # another device: no cookie, no click id
    second = await postback(
        tracker_client, token=token, order_id="C-2", amount="20", customer_id="cust-9"
    )
    assert second.json()["attributed_by"] == "customer"
    assert second.json()["partner_id"] == world.partner.id


async def test_healthz_reports_writer(tracker_client: httpx.AsyncClient) -> None:
    response = await tracker_client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["writer"]["running"] is True


@pytest.fixture
def suspended_world(services: Services) -> World:
    """A partner with a coupon, suspended before the tracker starts."""
    world = make_world(services)
    make_coupon(services, world.partner, world.offer)
    change_status(services.uow(), world.partner.id, "suspended", actor="test")
    return world


async def test_suspended_partners_conversion_is_rejected_without_commission(
    services: Services, suspended_world: World, tracker_client: httpx.AsyncClient
) -> None:
    response = await postback(
        tracker_client, token=suspended_world.program.postback_token, order_id="S-1",
        amount="80", coupon="ANN10",
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["commission"] is None
    with services.engine.connect() as conn:
        status = conn.execute(select(t.conversions.c.status)).scalar_one()
    assert status == "rejected"
    assert ledger(services) == []
