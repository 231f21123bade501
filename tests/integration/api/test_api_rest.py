"""The REST API: auth and scopes, partner isolation, pagination, errors, conversions with
their explanation, CSV imports and signed inbound order webhooks."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select
from tests.factories import make_coupon, make_partner, make_program

from partnerflow.core.errors import NotFound
from partnerflow.messaging.signatures import shopify_hmac, sign
from partnerflow.storage import tables as t
from partnerflow.storage.api_keys import create_key, revoke

from .conftest import Api, bearer

V1 = "/api/v1"


def count(api: Api, table: object) -> int:
    with api.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_openapi_spec_is_served(api: Api) -> None:
    spec = api.client.get(f"{V1}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/partners/{partner_id}/status" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_missing_unknown_and_revoked_keys_get_401(api: Api) -> None:
    assert api.client.get(f"{V1}/programs").json() == {
        "error": "unauthorized",
        "reason": "missing Authorization: Bearer <api key>",
    }
    assert api.client.get(f"{V1}/programs", headers=bearer("pf_x_y")).status_code == 401
    with api.services.engine.begin() as conn:
        key, token = create_key(
            conn, name="tmp", scopes=["admin:read"], now=api.services.clock.now()
        )
        revoke(conn, key.prefix, api.services.clock.now())
    response = api.client.get(f"{V1}/programs", headers=bearer(token))
    assert (response.status_code, response.json()["reason"]) == (401, "unknown or revoked API key")


@pytest.mark.parametrize("digit_prefix", ["27382657", "00000001"])
def test_a_key_whose_prefix_is_all_digits_is_revoked_by_its_prefix(
    api: Api, digit_prefix: str
) -> None:
    # About one random hex prefix in 40 is all decimal digits; it must not be read as an id
    # (and "00000001" must not revoke key number 1).
    now = api.services.clock.now()
    with api.services.engine.begin() as conn:
        first = conn.execute(select(func.min(t.api_keys.c.id))).scalar_one()
        key, token = create_key(conn, name="digits", scopes=["admin:read"], now=now)
        conn.execute(
            t.api_keys.update().where(t.api_keys.c.id == key.id).values(prefix=digit_prefix)
        )
        assert revoke(conn, digit_prefix, now).id == key.id
        by_id = revoke(conn, str(first), now)  # a number no prefix matches is an id
        assert by_id.id == first
        with pytest.raises(NotFound):
            revoke(conn, "9" * 40, now)  # too long for an id: not found, not a crash
    response = api.client.get(f"{V1}/programs", headers=bearer(token))
    assert response.status_code == 401


def test_stored_key_is_only_a_digest(api: Api) -> None:
    token = api.admin["Authorization"].split()[1]
    with api.services.engine.connect() as conn:
        hashes = conn.execute(select(t.api_keys.c.token_hash)).scalars().all()
    assert token not in hashes and all(len(h) == 64 for h in hashes)


def test_scopes_are_enforced(api: Api) -> None:
    body = {"program_id": 1, "name": "Bo", "email": "bo@x.example"}
    denied = api.client.post(f"{V1}/partners", json=body, headers=api.reader)
    assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
    assert api.client.get(f"{V1}/programs", headers=api.partner).status_code == 403
    assert api.client.get(f"{V1}/me", headers=api.admin).status_code == 403
    assert count(api, t.partners) == 1


def test_partner_key_sees_only_its_own_data(api: Api) -> None:
    w = api.world
    other = make_partner(api.services, w.program, email="zed@x.example")
    make_coupon(api.services, other, w.offer, code="ZED")
    make_coupon(api.services, w.partner, w.offer, code="ANN10")
    for code, order in (("ZED", "z1"), ("ANN10", "a1")):
        api.client.post(
            f"{V1}/conversions",
            json={"program_id": 1, "order_id": order, "amount": "100", "coupon": code},
            headers=api.admin,
        )
    me = api.client.get(f"{V1}/me", headers=api.partner).json()
    assert me["partner"]["email"] == "ann@blog.example"
    assert [
        c["code"] for c in api.client.get(f"{V1}/me/coupons", headers=api.partner).json()["items"]
    ] == ["ANN10"]
    convs = api.client.get(f"{V1}/me/conversions", headers=api.partner).json()["items"]
    assert [(c["order_id"], c["customer_id"]) for c in convs] == [("a1", None)]
    balances = api.client.get(f"{V1}/me/balances", headers=api.partner).json()
    assert balances == {
        "partner_id": w.partner.id,
        "balances": [{"currency": "EUR", "pending": "10", "approved": "0", "paid": "0"}],
    }


def test_partner_status_change_uses_the_lifecycle(api: Api) -> None:
    pid = api.world.partner.id
    ok = api.client.post(
        f"{V1}/partners/{pid}/status", json={"status": "suspended"}, headers=api.admin
    )
    assert (ok.status_code, ok.json()["status"]) == (200, "suspended")
    bad = api.client.post(
        f"{V1}/partners/{pid}/status", json={"status": "applied"}, headers=api.admin
    )
    assert bad.status_code == 409
    assert bad.json()["error"] == "invalid_transition" and bad.json()["field"] == "status"


def test_pagination_walks_every_item_once(api: Api) -> None:
    for i in range(5):
        make_partner(api.services, api.world.program, email=f"p{i}@x.example")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(f"{V1}/partners", params=params, headers=api.admin).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5, 6]
    bad = api.client.get(f"{V1}/partners", params={"cursor": "!!"}, headers=api.admin)
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_cursor")
    for path, kind in (("partners", "id"), ("conversions", "id"), ("payouts", "at")):
        superscript = base64.urlsafe_b64encode(f"{kind}:²".encode()).decode()  # was a 500
        bad = api.client.get(f"{V1}/{path}", params={"cursor": superscript}, headers=api.admin)
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_cursor")


def test_bad_bodies_get_clear_4xx(api: Api) -> None:
    h = {**api.admin, "Content-Type": "application/json"}
    malformed = api.client.post(f"{V1}/partners", content=b'{"name": ', headers=h)
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
    # Fractions are read as Decimal (routing.ExactJsonRoute): one Decimal cannot hold is
    # malformed JSON too, not a 500.
    beyond = api.client.post(
        f"{V1}/partners", content=b'{"program_id": 1e-9999999999999999999999}', headers=h
    )
    assert beyond.status_code == 400 and beyond.json()["error"] == "malformed_json"
    whole = api.client.post(
        f"{V1}/partners",
        content=b'{"program_id": 1.0, "name": "W", "email": "w@x.example"}',
        headers=h,
    )
    assert whole.status_code == 201 and whole.json()["program_id"] == 1  # as 1.0 was before
    unknown = api.client.post(
        f"{V1}/partners",
        json={"program_id": 1, "name": "X", "email": "x@x.example", "nick": "x"},
        headers=api.admin,
    )
    assert unknown.status_code == 422
    assert unknown.json() == {
        "error": "unknown_field",
        "reason": "unknown field 'nick'",
        "field": "nick",
    }
    rule = api.client.post(
        f"{V1}/partners", json={"program_id": 1, "name": "X", "email": "nope"}, headers=api.admin
    )
    assert (rule.status_code, rule.json()["field"]) == (422, "email")
    # A key given twice: which one did the client mean (a proxy may have checked the other)?
    # Nesting past the recursion limit, an integer past 4300 digits and text that is not
    # UTF-8 said "There was an error parsing the body" (`http_error`).
    for body, why in [
        (b'{"program_id": 1, "name": "X", "email": "x@x.example", "name": "Y"}',
         "duplicate key 'name'"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"program_id": 1' + b"0" * 5000 + b"}", "integer has too many digits"),
        (b'{"name": "\xff"}', "not UTF-8"),
    ]:  # fmt: skip
        bad = api.client.post(f"{V1}/partners", content=body, headers=h)
        assert (bad.status_code, bad.json()) == (
            400,
            {"error": "malformed_json", "reason": f"request body is not valid JSON: {why}"},
        )
    huge = api.client.post(f"{V1}/partners", content=b"{" + b" " * 2_000_000 + b"}", headers=h)
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"
    assert count(api, t.partners) == 2  # the world's Ann and W


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"program_id": 1, "name": "W", "email": "w@x.example"}'),
        ("application/x-www-form-urlencoded", b"program_id=1&name=W&email=w%40x.example"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--\r\n"),
    ],
)
def test_a_body_that_is_not_json_is_a_415_naming_the_media_type(
    api: Api, content_type: str, body: bytes
) -> None:
    before = count(api, t.partners)
    answer = api.client.post(
        f"{V1}/partners", content=body, headers={**api.admin, "content-type": content_type}
    )
    media = content_type.split(";")[0]
    assert (answer.status_code, answer.json()) == (
        415,
        {
            "error": "unsupported_media_type",
            "reason": f"send the body as application/json, not {media}",
            "field": "body",
        },
    )
    assert count(api, t.partners) == before
    # The same body as JSON is taken; a JSON body that is no object stays a 422.
    json_type = {**api.admin, "content-type": "application/json; charset=utf-8"}
    listed = api.client.post(f"{V1}/partners", content=b"[]", headers=json_type)
    assert listed.status_code == 422


def test_conversion_detail_explains_its_commission(api: Api) -> None:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    created = api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "o-9", "amount": "80.00", "coupon": "ANN10"},
        headers=api.admin,
    ).json()
    assert (created["duplicate"], created["commission"]) == (False, "8.00")
    detail = api.client.get(
        f"{V1}/conversions/{created['conversion']['id']}", headers=api.reader
    ).json()
    [why] = detail["explanation"]
    assert why.startswith("coupon ANN10; ") and "80.00 EUR x 10% = 8.00" in why
    assert "-> 8.00 EUR" in why
    assert [(e["kind"], e["bucket"], e["amount"]) for e in detail["ledger"]] == [
        ("commission", "pending", "8")
    ]
    again = api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "o-9", "amount": "80.00"},
        headers=api.admin,
    ).json()
    assert again["duplicate"] is True
    report = api.client.get(
        f"{V1}/reports", params={"program_id": 1, "group_by": "partner"}, headers=api.reader
    ).json()
    assert [
        (r["label"], r["conversions"], r["revenue"], r["commission"]) for r in report["rows"]
    ] == [("Ann", 1, "80", "8")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"amount": "10.5", "currency": "JPY"}, "10.5 has more decimal places than JPY allows (0)"),
        ({"amount": "0.001"}, "0.001 has more decimal places than EUR allows (2)"),  # program's
    ],
)
def test_conversion_amounts_finer_than_the_currency_are_refused(
    api: Api, body: dict[str, str], reason: str
) -> None:
    refused = api.client.post(
        f"{V1}/conversions", json={"program_id": 1, "order_id": "f-1", **body}, headers=api.admin
    )
    assert refused.status_code == 422
    assert refused.json() == {"error": "invalid_input", "reason": reason, "field": "amount"}
    assert count(api, t.conversions) == 0 and count(api, t.outbox_events) == 0
    accepted = api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "f-1", "amount": "1000.00", "currency": "JPY"},
        headers=api.admin,
    )
    assert accepted.status_code == 201
    assert accepted.json()["conversion"]["amount"] in {"1000", "1000.00"}


def test_csv_conversion_import_refuses_amounts_finer_than_the_currency(api: Api) -> None:
    url = f"{V1}/imports/conversions?program_id=1"
    bad = "order_id,amount,currency\nc1,10.00,\nc2,10.5,JPY\nc3,9.999,\n"
    refused = api.client.post(url, content=bad.encode(), headers=api.admin)
    assert refused.status_code == 422
    assert refused.json()["rows"] == [
        {"row": 3, "field": "amount", "reason": "10.5 has more decimal places than JPY allows (0)"},
        {
            "row": 4,
            "field": "amount",
            "reason": "9.999 has more decimal places than EUR allows (2)",
        },
    ]
    assert count(api, t.conversions) == 0


BIDI = "U+202E (an invisible or bidirectional formatting character)"


def test_conversion_customer_ids_with_bidi_characters_are_refused(api: Api) -> None:
    """The REST API and CSV imports store customer ids through `record_conversion`: the
    tracker's rule applies (a right-to-left override would reorder the id on every page and
    export that shows it)."""
    refused = api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "b-1", "amount": "10", "customer_id": "cus\u202e1"},
        headers=api.admin,
    )
    assert refused.status_code == 422
    assert refused.json() == {
        "error": "invalid_input", "reason": f"customer_id must not contain {BIDI}",
        "field": "customer_id",
    }  # fmt: skip
    csv = "order_id,amount,customer_id\nb-2,10,cus_2\nb-3,10,cus\u202e3\n"
    rows = api.client.post(
        f"{V1}/imports/conversions?program_id=1", content=csv.encode(), headers=api.admin
    )
    assert rows.status_code == 422
    assert rows.json()["rows"] == [
        {"row": 3, "field": "customer_id", "reason": f"customer_id must not contain {BIDI}"}
    ]
    assert count(api, t.conversions) == 0 and count(api, t.outbox_events) == 0


def test_short_text_fields_refuse_bidi_and_invisible_characters_at_validation(
    api: Api,
) -> None:
    """Every `Text200` field (names, e-mails, statuses, map keys and values, ...) refuses
    what `core.text` refuses, before the route runs: 422 naming the field and the code
    point, never the character itself."""
    partner = {"program_id": 1, "name": "Bo", "email": "bo@x.example"}
    zwsp = "U+200B (an invisible or bidirectional formatting character)"
    for changes, field, point in [
        ({"name": "Bo\u202e moc.evil"}, "name", BIDI),
        ({"email": "b\u200bo@x.example"}, "email", zwsp),
        ({"social": {"twitter": "@b\u200bo"}}, "social.twitter", zwsp),
        ({"social": {"tw\u202eitter": "@bo"}}, "social.tw\\u202eitter.[key]", BIDI),
    ]:
        refused = api.client.post(f"{V1}/partners", json=partner | changes, headers=api.admin)
        assert (refused.status_code, refused.json()) == (422, {
            "error": "invalid_input", "reason": f"{field} must not contain {point}",
            "field": field,
        }), changes  # fmt: skip
        assert "\u202e" not in refused.text and "\u200b" not in refused.text
    program = api.client.post(
        f"{V1}/programs",
        json={"slug": "rtl", "name": "\u05e2\u05de\u05d9\u05ea\u202e", "brand": "B"},
        headers=api.admin,
    )
    assert (program.status_code, program.json()["field"]) == (422, "name")
    assert count(api, t.partners) == 1 and count(api, t.programs) == 1  # the world's
    kept = api.client.post(
        f"{V1}/partners", json=partner | {"name": "\u05e2\u05de\u05d9\u05ea 🙂"},
        headers=api.admin,
    )  # fmt: skip
    assert (kept.status_code, kept.json()["name"]) == (201, "\u05e2\u05de\u05d9\u05ea 🙂")


def test_urls_and_imported_names_refuse_bidi_characters_too(api: Api) -> None:
    """Past `Text200`: a landing URL (`Text2k`, shown in dashboards and sent as the
    redirect's Location) and the names of a CSV import go through the use cases' own rule."""
    offer = {
        "program_id": 1, "name": "Spring", "landing_url": "https://shop.example/spring",
        "commission_plan": {"type": "cps", "percent": "10"},
    }  # fmt: skip
    before = count(api, t.offers)
    for field in ("landing_url", "fallback_url"):
        refused = api.client.post(
            f"{V1}/offers",
            json=offer | {field: "https://shop.example/\u202egnp.exe"},
            headers=api.admin,
        )
        assert (refused.status_code, refused.json()) == (422, {
            "error": "invalid_input", "reason": f"{field} must not contain {BIDI}",
            "field": field,
        }), field  # fmt: skip
    assert count(api, t.offers) == before
    csv = "name,email\nDee,dee@x.example\nEve\u202e,eve@x.example\n"
    rows = api.client.post(
        f"{V1}/imports/partners?program_id=1", content=csv.encode(), headers=api.admin
    )
    assert rows.status_code == 422
    assert rows.json()["rows"] == [
        {"row": 3, "field": "name", "reason": f"name must not contain {BIDI}"}
    ]
    assert count(api, t.partners) == 1  # the world's: all or nothing


def test_csv_partner_import_is_all_or_nothing(api: Api) -> None:
    url = f"{V1}/imports/partners?program_id=1"
    good = "name,email,status\nBo,bo@x.example,active\nCy,cy@x.example,\n"
    bad = "name,email\nDee,dee@x.example\nEve,not-an-email\nFay,ann@blog.example\n"
    refused = api.client.post(url, content=bad.encode(), headers=api.admin)
    assert refused.status_code == 422
    assert refused.json()["rows"] == [
        {"row": 3, "field": "email", "reason": "not an e-mail address: 'not-an-email'"},
        {
            "row": 4,
            "field": "email",
            "reason": "ann@blog.example is already a partner of this program",
        },
    ]
    assert count(api, t.partners) == 1
    latin1 = api.client.post(
        url, content="name,email\nJosé,j@x.example\n".encode("latin-1"), headers=api.admin
    )
    assert latin1.status_code == 422
    assert latin1.json()["reason"].startswith("file is not UTF-8: byte 0xe9 at offset 14 (line 2)")
    columns = api.client.post(url, content=b"name,mail\nBo,bo@x.example\n", headers=api.admin)
    assert columns.json()["field"] == "header"
    assert "missing column(s) email; unknown column(s) mail" in columns.json()["reason"]
    done = api.client.post(url, content=good.encode(), headers=api.admin)
    assert done.json() == {"kind": "partners", "rows": 2, "imported": 2, "duplicates": 0}
    assert count(api, t.partners) == 3


def test_csv_conversion_import_publishes_events(api: Api) -> None:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    url = f"{V1}/imports/conversions?program_id=1"
    bad = "order_id,amount,coupon\nc1,10.00,ANN10\nc2,ten,ANN10\n"
    assert api.client.post(url, content=bad.encode(), headers=api.admin).json()["rows"] == [
        {"row": 3, "field": "amount", "reason": "amount is not a number: 'ten'"}
    ]
    assert count(api, t.conversions) == 0 and count(api, t.outbox_events) == 0
    good = "order_id,amount,coupon\nc1,10.00,ANN10\nc2,20.00,\n"
    assert api.client.post(url, content=good.encode(), headers=api.admin).json()["imported"] == 2
    # c1 (coupon: a partner's) books a commission; c2 is unattributed.
    with api.services.engine.connect() as conn:
        types = select(t.outbox_events.c.event_type).order_by(t.outbox_events.c.id)
        assert conn.execute(types).scalars().all() == [
            "conversion.created",
            "commission.created",
            "conversion.created",
        ]


def _integrate(api: Api, provider: str, secret: str) -> None:
    r = api.client.put(
        f"{V1}/programs/1/integrations/{provider}", json={"secret": secret}, headers=api.admin
    )
    assert r.status_code == 204


def test_shopify_order_webhook_is_verified(api: Api) -> None:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    _integrate(api, "shopify", "shpss_secret")
    order = {
        "id": 4501,
        "total_price": "59.90",
        "currency": "EUR",
        "discount_codes": [{"code": "ann10"}],
    }
    body = json.dumps(order).encode()
    url = f"{V1}/inbound/shopify/acme"
    forged = api.client.post(
        url, content=body, headers={"X-Shopify-Hmac-Sha256": shopify_hmac("wrong", body)}
    )
    assert forged.status_code == 403 and count(api, t.conversions) == 0
    ok = api.client.post(
        url, content=body, headers={"X-Shopify-Hmac-Sha256": shopify_hmac("shpss_secret", body)}
    )
    assert ok.json() == {"status": "recorded", "conversion_id": 1, "duplicate": False}
    again = api.client.post(
        url, content=body, headers={"X-Shopify-Hmac-Sha256": shopify_hmac("shpss_secret", body)}
    )
    assert again.json()["duplicate"] is True
    garbage = b"not json"
    bad = api.client.post(
        url,
        content=garbage,
        headers={"X-Shopify-Hmac-Sha256": shopify_hmac("shpss_secret", garbage)},
    )
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_input")
    fractional_yen = json.dumps({"id": 4502, "total_price": "990.5", "currency": "JPY"}).encode()
    refused = api.client.post(
        url,
        content=fractional_yen,
        headers={"X-Shopify-Hmac-Sha256": shopify_hmac("shpss_secret", fractional_yen)},
    )
    assert refused.status_code == 422
    assert refused.json()["reason"] == "990.5 has more decimal places than JPY allows (0)"
    assert count(api, t.conversions) == 1


def test_stripe_invoice_webhook_checks_signature_and_replay(api: Api) -> None:
    _integrate(api, "stripe", "whsec_stripe")
    event = {
        "type": "invoice.paid",
        "data": {
            "object": {"id": "in_1", "amount_paid": 4900, "currency": "eur", "customer": "cus_9"}
        },
    }
    body = json.dumps(event).encode()
    now = int(api.services.clock.now().timestamp())
    url = f"{V1}/inbound/stripe/acme"
    replayed = api.client.post(
        url, content=body, headers={"Stripe-Signature": sign("whsec_stripe", body, now - 600)}
    )
    assert replayed.status_code == 403 and "replayed" in replayed.json()["reason"]
    ok = api.client.post(
        url, content=body, headers={"Stripe-Signature": sign("whsec_stripe", body, now)}
    )
    assert ok.json()["status"] == "recorded"
    with api.services.engine.connect() as conn:
        row = conn.execute(select(t.conversions)).one()
    assert (row.order_id, row.amount_micros, row.currency, row.customer_id) == (
        "stripe-in_1",
        49_000_000,
        "EUR",
        "cus_9",
    )
    other = json.dumps({"type": "customer.created", "data": {"object": {}}}).encode()
    ignored = api.client.post(
        url, content=other, headers={"Stripe-Signature": sign("whsec_stripe", other, now)}
    )
    assert ignored.json()["status"] == "ignored"


def test_unsubscribe_link_and_messages_roundtrip(api: Api) -> None:
    sent = api.client.post(f"{V1}/me/messages", json={"body": "Hello?"}, headers=api.partner)
    assert sent.status_code == 201
    assert api.client.get(f"{V1}/programs/1/unread-messages", headers=api.admin).json() == {"1": 1}
    thread = api.client.get(f"{V1}/partners/1/messages", headers=api.admin).json()
    assert [m["body"] for m in thread["messages"]] == ["Hello?"]
    assert api.client.get(f"{V1}/programs/1/unread-messages", headers=api.admin).json() == {}
    ann = api.client.post(
        f"{V1}/announcements",
        json={"program_id": 1, "subject": "Hi", "body": "Hello {{ partner.name }}"},
        headers=api.admin,
    ).json()
    assert (ann["recipients"], ann["emails_queued"]) == (1, 1)
    inbox = api.client.get(f"{V1}/me/inbox", headers=api.partner).json()
    assert inbox["unread"] == 1 and inbox["items"][0]["body_html"] == "<p>Hello Ann</p>"
    bad = api.client.get(f"{V1}/unsubscribe", params={"token": "1.1.forged"})
    assert bad.status_code == 422


def test_report_dates_default_to_the_programs_own_today(api: Api) -> None:
    """12:00 UTC on 2 March is already 3 March in Kiritimati (UTC+14): the default period
    ends on the program's local day, like every other report."""
    east = make_program(api.services, slug="kiritimati", timezone="Pacific/Kiritimati")
    report = api.client.get(
        f"{V1}/reports", params={"program_id": east.id}, headers=api.reader
    ).json()
    assert (report["date_from"], report["date_to"]) == ("2026-02-02", "2026-03-03")


@pytest.mark.parametrize(
    "params",
    [{"date_to": "0001-01-01"}, {"date_to": "0001-01-15", "date_from": "0001-01-01"},
     {"date_from": "9999-12-31", "date_to": "9999-12-31"}, {"date_to": "1999-12-31"}],
)  # fmt: skip
def test_report_dates_out_of_range_are_422(api: Api, params: dict[str, str]) -> None:
    # date_to=0001-01-01 was a 500: the default date_from (29 days before) overflowed first.
    got = api.client.get(f"{V1}/reports", params={"program_id": 1, **params}, headers=api.reader)
    assert (got.status_code, got.json()["reason"]) == (422, "dates must be in 2000-2200")
