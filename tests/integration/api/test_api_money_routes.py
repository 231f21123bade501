"""The API's money routes: commission plans (set, revisions, simulate), conversion
explanations, payout batches (build, statements, CSV, paid once) and exchange rates."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from tests.factories import make_coupon, make_partner

from partnerflow.commissions.services import approve_commissions
from partnerflow.core.clock import FixedClock
from partnerflow.storage import tables as t
from partnerflow.storage.payouts import SqlMoneyUnitOfWork

from .conftest import Api

V1 = "/api/v1"

PLAN: dict[str, Any] = {
    "id": "standard",
    "currency": "EUR",
    "versions": [
        {
            "version": 1,
            "effective_from": "2026-03-02T12:00:00+00:00",
            "rules": [{"id": "sales", "type": "cps", "percent": "15"}],
        }
    ],
}


def rows(api: Api, table: Any) -> int:
    with api.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def sale(api: Api, order: str, amount: str, coupon: str = "ANN10") -> dict[str, Any]:
    response = api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": order, "amount": amount, "coupon": coupon},
        headers=api.admin,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_plan_is_validated_by_the_engine_and_stored_as_a_revision(api: Api) -> None:
    url = f"{V1}/programs/1/plan"
    assert api.client.get(url, headers=api.reader).status_code == 404
    bad = {**PLAN, "versions": [{**PLAN["versions"][0], "rules": [{"type": "cps"}]}]}
    refused = api.client.post(url, json={"plan": bad}, headers=api.admin)
    assert refused.status_code == 422
    assert refused.json()["field"].startswith("versions[0].rules[0]")
    assert rows(api, t.commission_plans) == 0

    stored = api.client.post(url, json={"plan": PLAN}, headers=api.admin)
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert (body["scope"], body["revision"], body["plan_id"], body["author"]) == (
        "program",
        1,
        "standard",
        "api:" + api.admin_prefix + ":admin",
    )
    assert body["versions"] == [
        {
            "version": 1,
            "effective_from": "2026-03-02T12:00:00Z",
            "effective_to": None,
            "rules": ["sales (cps)"],
            "overrides": {},
            "bonuses": [],
        }
    ]
    # A started version can't be rewritten: the engine's own history rule answers.
    rewrite = {**PLAN, "versions": [{**PLAN["versions"][0], "rules": [
        {"id": "sales", "type": "cps", "percent": "20"}]}]}  # fmt: skip
    refused_rewrite = api.client.post(url, json={"plan": rewrite}, headers=api.admin)
    assert refused_rewrite.status_code == 422
    assert "cannot be changed" in refused_rewrite.json()["reason"]
    v2 = {"version": 2, "effective_from": "2026-03-01",
          "rules": [{"id": "flat", "type": "cpa", "amount": "30"}]}  # fmt: skip
    past = {**PLAN, "versions": [PLAN["versions"][0], v2]}
    refused_past = api.client.post(url, json={"plan": past}, headers=api.admin)
    assert refused_past.status_code == 422
    assert rows(api, t.commission_plans) == 1
    revisions = api.client.get(f"{url}/revisions", headers=api.reader).json()
    assert [r["revision"] for r in revisions["items"]] == [1]
    scopes = api.client.get(f"{V1}/programs/1/plans", headers=api.reader).json()
    assert [(x["scope"], x["revision"]) for x in scopes] == [("program", 1)]
    denied = api.client.post(url, json={"plan": PLAN}, headers=api.reader)
    assert denied.status_code == 403


def test_simulation_replays_conversions_under_a_proposed_plan(api: Api) -> None:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    sale(api, "s-1", "100")
    sale(api, "s-2", "300")
    proposed = {
        "id": "flat",
        "currency": "EUR",
        "versions": [
            {
                "version": 1,
                "effective_from": "2026-01-01",
                "rules": [{"id": "flat", "type": "cpa", "amount": "12"}],
            }
        ],
    }
    sim = api.client.post(
        f"{V1}/programs/1/plan/simulate",
        json={"plan": proposed, "date_from": "2026-03-01", "date_to": "2026-03-31"},
        headers=api.reader,
    )
    assert sim.status_code == 200, sim.text
    data = sim.json()
    assert (data["conversions"], data["revenue"], data["current_cost"], data["proposed_cost"]) == (
        2,
        "400",
        "40",
        "24",
    )
    assert data["partners"] == [
        {"partner_id": 1, "conversions": 2, "current": "40", "proposed": "24", "delta": "-16"}
    ]
    assert rows(api, t.commission_plans) == 0
    usd = {**proposed, "currency": "USD"}
    refused = api.client.post(
        f"{V1}/programs/1/plan/simulate",
        json={"plan": usd, "date_from": "2026-03-01", "date_to": "2026-03-31"},
        headers=api.reader,
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "currency")


def test_conversion_explanation_names_source_rule_and_ledger(api: Api) -> None:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    created = sale(api, "e-1", "80.00")
    cid = created["conversion"]["id"]
    x = api.client.get(f"{V1}/conversions/{cid}/explanation", headers=api.reader).json()
    assert (x["order_id"], x["status"], x["amount"], x["pending"], x["net"]) == (
        "e-1",
        "pending",
        "80",
        "8",
        "8",
    )
    # The wording belongs to the commission engine; the facts it must name are checked.
    assert x["booked"].startswith("coupon ANN10; ")
    assert "80.00 EUR x 10% = 8.00" in x["booked"] and "-> 8.00 EUR" in x["booked"]
    assert x["recomputed"]["amount"] == "8" and x["recomputed"]["source"] == "offer simple plan"
    assert [(e["kind"], e["bucket"], e["amount"]) for e in x["ledger"]] == [
        ("commission", "pending", "8")
    ]
    assert any("coupon" in line for line in x["attribution"])
    assert x["lines"][0].startswith(f"conversion {cid}: order e-1")
    missing = api.client.get(f"{V1}/conversions/999/explanation", headers=api.reader)
    assert missing.status_code == 404


def _approved_world(api: Api) -> None:
    """Ann earns 30 and Bob 4 (below a 5 EUR minimum), both approved after the lock."""
    bob = make_partner(api.services, api.world.program, email="bob@blog.example")
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    make_coupon(api.services, bob, api.world.offer, code="BOB10")
    sale(api, "p-1", "100")
    sale(api, "p-2", "200")
    sale(api, "p-3", "40", coupon="BOB10")
    clock = api.services.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(days=31))
    svc = api.services
    approve_commissions(SqlMoneyUnitOfWork(svc.engine, svc.clock), svc.clock, 1, set())


def test_payout_batch_builds_exports_and_is_paid_exactly_once(api: Api) -> None:
    _approved_world(api)
    body = {"program_id": 1, "period_end": "2026-04-02", "minimums": {"EUR": "5"}}
    built = api.client.post(f"{V1}/payouts", json=body, headers=api.admin)
    assert built.status_code == 201, built.text
    batch = built.json()
    assert batch["status"] == "open"
    assert [(x["partner_id"], x["amount"]) for x in batch["lines"]] == [(1, "30")]
    assert [(h["partner_id"], h["amount"]) for h in batch["held"]] == [(2, "4")]
    assert batch["totals"] == [{"amount": "30", "currency": "EUR"}]
    again = api.client.post(f"{V1}/payouts", json=body, headers=api.admin).json()
    assert again["id"] == batch["id"]

    listed = api.client.get(f"{V1}/payouts", params={"program_id": 1}, headers=api.reader)
    assert [b["id"] for b in listed.json()["items"]] == [batch["id"]]
    detail = api.client.get(f"{V1}/payouts/{batch['id']}", headers=api.reader).json()
    ann = next(st for st in detail["statements"] if st["partner_id"] == 1)
    assert (ann["opening"], ann["closing"]) == ("0", "30")
    csv_file = api.client.get(f"{V1}/payouts/{batch['id']}/export", headers=api.reader)
    assert csv_file.headers["content-type"].startswith("text/csv")
    assert csv_file.text.splitlines()[0].startswith("batch_id,period_start,period_end")
    assert len(csv_file.text.splitlines()) == 2

    entries_before = rows(api, t.commission_entries)
    paid = api.client.post(f"{V1}/payouts/{batch['id']}/paid", headers=api.admin).json()
    assert (paid["already_paid"], paid["payments"], paid["batch"]["status"]) == (False, 1, "paid")
    entries_paid = rows(api, t.commission_entries)
    assert entries_paid > entries_before
    repeat = api.client.post(f"{V1}/payouts/{batch['id']}/paid", headers=api.admin)
    assert repeat.status_code == 200
    assert (repeat.json()["already_paid"], repeat.json()["payments"]) == (True, 0)
    assert rows(api, t.commission_entries) == entries_paid
    balances = api.client.get(f"{V1}/partners/1/balances", headers=api.reader).json()
    assert balances["balances"] == [
        {"currency": "EUR", "pending": "0", "approved": "0", "paid": "30"}
    ]
    assert api.client.get(f"{V1}/payouts/nope", headers=api.reader).status_code == 404


def test_exchange_rates_import_all_or_nothing_and_never_overwrite(api: Api) -> None:
    url = f"{V1}/exchange-rates"
    good = {"valid_from": "2026-03-01", "source": "USD", "target": "EUR", "rate": "0.92"}
    bad = {"valid_from": "2026-03-01", "source": "GBP", "target": "GBP", "rate": "1"}
    refused = api.client.post(url, json={"rows": [good, bad]}, headers=api.admin)
    assert refused.status_code == 422
    assert "line 3: from and to are the same currency" in refused.json()["reason"]
    assert rows(api, t.exchange_rates) == 0
    done = api.client.post(url, json={"rows": [good]}, headers=api.admin)
    assert (done.status_code, done.json()["added"], done.json()["unchanged"]) == (201, 1, 0)
    same = api.client.post(url, json={"rows": [good]}, headers=api.admin).json()
    assert (same["added"], same["unchanged"]) == (0, 1)
    other = api.client.post(url, json={"rows": [{**good, "rate": "0.93"}]}, headers=api.admin)
    assert other.status_code == 422 and "never overwritten" in other.json()["reason"]
    listed = api.client.get(url, params={"source": "usd"}, headers=api.reader).json()["items"]
    assert [(r["source"], r["target"], r["valid_from"], r["rate"]) for r in listed] == [
        ("USD", "EUR", "2026-03-01", "0.92")
    ]


def test_plan_numbers_sent_as_json_numbers_are_stored_and_read_back_exactly(api: Api) -> None:
    """JSON numbers in a plan never pass through a binary float: `12.50` is stored as
    `12.50` (a float gave `12.5`), fifteen significant digits stay fifteen, and a number
    with more decimals than the engine allows is refused, not rounded to one it allows
    (`10.0000000000000001` was read as the float 10.0 and stored as a 10% rule)."""
    url = f"{V1}/programs/1/plan"
    h = {**api.admin, "Content-Type": "application/json"}
    text = (
        '{"plan": {"id": "exact", "currency": "EUR", "versions": [{"version": 1,'
        ' "effective_from": "2026-03-02T12:00:00Z", "rules": ['
        '{"id": "big", "type": "cps", "percent": 12.50,'
        ' "when": {"min_order": 999999999.999999}},'
        '{"id": "small", "type": "cpa", "amount": 0.100000, "when": {"max_order": 1E+3}},'
        '{"id": "rest", "type": "cps", "percent": 33.333333}]}]}}'
    )
    stored = api.client.post(url, content=text.encode(), headers=h)
    assert stored.status_code == 201, stored.text
    rules = api.client.get(url, headers=api.reader).json()["document"]["versions"][0]["rules"]
    assert [(r["id"], r.get("percent"), r.get("amount"), r.get("when")) for r in rules] == [
        ("big", "12.50", None, {"min_order": "999999999.999999"}),
        ("small", None, "0.100000", {"max_order": "1E+3"}),
        ("rest", "33.333333", None, None),
    ]
    with api.services.engine.connect() as conn:
        [document] = conn.execute(select(t.commission_plans.c.document)).scalars().all()
    stored_rules = (json.loads(document) if isinstance(document, str) else document)["versions"][0][
        "rules"
    ]
    assert stored_rules[0]["percent"] == "12.50" and stored_rules[2]["percent"] == "33.333333"

    for number in ("10.0000000000000001", "33.333333333333333333"):
        refused = api.client.post(
            url,
            content=text.replace("33.333333}", f"{number}}}").encode(),
            headers=h,
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "versions[0].rules[2].percent"
        assert "more than 6 decimal places" in refused.json()["reason"]
    assert rows(api, t.commission_plans) == 1


def test_every_api_route_reads_json_numbers_exactly(api: Api) -> None:
    """A router added without `route_class=ExactJsonRoute` would read floats again."""
    from fastapi.routing import APIRoute

    from partnerflow.web.api import create_api_app
    from partnerflow.web.api.routing import ExactJsonRoute

    def api_routes(routes: list[Any]) -> list[APIRoute]:
        found: list[APIRoute] = []
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):  # FastAPI >= 0.160 wraps included routers
                found.extend(api_routes(route.original_router.routes))
        return found

    routes = api_routes(create_api_app(api.services).routes)
    assert len(routes) > 50
    assert [r.path for r in routes if not isinstance(r, ExactJsonRoute)] == []


def test_a_plan_with_a_lone_surrogate_or_a_huge_version_is_refused_and_not_stored(
    api: Api,
) -> None:
    # A rule id "\ud800" (a valid JSON escape) used to be stored, then the answer (and every
    # later GET of the revisions) failed with a 500; a version of 2**63 overflowed the column.
    url = f"{V1}/programs/1/plan"
    version = PLAN["versions"][0]
    for bad, field in (
        ({**version, "rules": [{"id": "\ud800", "type": "cps", "percent": "15"}]}, ".rules[0].id"),
        ({**version, "version": 2**63}, ".version"),
    ):
        body = json.dumps({"plan": {**PLAN, "versions": [bad]}})  # "\ud800" stays an escape
        refused = api.client.post(
            url, content=body, headers={**api.admin, "Content-Type": "application/json"}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == f"versions[0]{field}"
    assert rows(api, t.commission_plans) == 0
    assert api.client.get(f"{url}/revisions", headers=api.reader).status_code == 200


def test_rate_and_spend_csv_imports_with_a_huge_field_are_refused_not_a_500(api: Api) -> None:
    big = b"x" * 200_000  # over the csv module's 128 KiB field limit
    for url, header in (
        (f"{V1}/imports/exchange-rates", b"date,from,to,rate\n"),
        (f"{V1}/imports/ad-spend?program_id=1", b"day,channel,campaign,partner,amount\n"),
    ):
        for body in (big + b"\n", header + b"2026-03-01," + big + b",a,,1\n"):
            refused = api.client.post(url, content=body, headers=api.admin)
            assert refused.status_code == 422, (url, refused.text)
            assert "field larger than field limit" in refused.json()["reason"]
    assert rows(api, t.exchange_rates) == 0
    assert rows(api, t.ad_spend) == 0


def test_absurd_exchange_rates_are_refused_and_huge_converted_orders_do_not_crash(
    api: Api,
) -> None:
    # "1e999999" used to be stored; every later USD order then failed with a 500 (decimal
    # overflow), and a rate of 1e7 on a 1e9 order overflowed the ledger's 64-bit micros.
    url = f"{V1}/exchange-rates"
    row = {"valid_from": "2026-03-01", "source": "USD", "target": "EUR"}
    for rate in ("1e999999", "1000000001"):
        refused = api.client.post(url, json={"rows": [{**row, "rate": rate}]}, headers=api.admin)
        assert refused.status_code == 422, refused.text
        assert "rate must be at most 1000000000" in refused.json()["reason"]
    csv_body = b"date,from,to,rate\n2026-03-01,USD,EUR,1E+999999\n"
    refused = api.client.post(f"{V1}/imports/exchange-rates", content=csv_body, headers=api.admin)
    assert refused.status_code == 422
    assert rows(api, t.exchange_rates) == 0
    stored = api.client.post(url, json={"rows": [{**row, "rate": "10000000"}]}, headers=api.admin)
    assert stored.status_code == 201, stored.text
    make_coupon(api.services, api.world.partner, api.world.offer)
    response = api.client.post(
        f"{V1}/conversions",
        json={
            "program_id": 1,
            "order_id": "huge",
            "amount": "1000000000",
            "currency": "USD",
            "coupon": "ANN10",
        },
        headers=api.admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["commission"] is None
    assert "out of range (max 1000000000 EUR); no commission computed" in body["explanation"]
    assert rows(api, t.commission_entries) == 0


def test_rate_and_spend_csv_imports_report_rows_and_write_nothing_on_error(api: Api) -> None:
    rates = f"{V1}/imports/exchange-rates"
    bad = b"date,from,to,rate\n2026-03-01,USD,EUR,0.92\n2026-13-01,USD,EUR,0.9\n"
    refused = api.client.post(rates, content=bad, headers=api.admin)
    assert refused.status_code == 422
    assert "line 3: date '2026-13-01' is not YYYY-MM-DD" in refused.json()["reason"]
    assert rows(api, t.exchange_rates) == 0
    ok = api.client.post(rates, content=bad.rsplit(b"\n", 2)[0] + b"\n", headers=api.admin)
    assert ok.json()["added"] == 1
    spend = f"{V1}/imports/ad-spend?program_id=1"
    latin1 = "day,channel,campaign,partner,amount\n2026-03-01,tv,Café,,10\n".encode("latin-1")
    assert api.client.post(spend, content=latin1, headers=api.admin).status_code == 422
    good = b"day,channel,campaign,partner,amount\n2026-03-01,tv,spring,ann@blog.example,10\n"
    assert api.client.post(spend, content=good, headers=api.admin).json() == {"imported": 1}
    assert rows(api, t.ad_spend) == 1
