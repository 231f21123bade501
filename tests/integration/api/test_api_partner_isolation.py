"""Isolation of the new routes: a partner key sees its own payouts, targets, caps and terms
only — another partner's (or program's) ids answer 404 like missing ones — and a key bound
to one program can't reach another program's plans, caps, payouts, reviews or rates."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import make_coupon, make_offer, make_partner, make_program

from partnerflow.commissions.services import approve_commissions
from partnerflow.core.clock import FixedClock
from partnerflow.storage.api_keys import create_key
from partnerflow.storage.payouts import SqlMoneyUnitOfWork

from .conftest import Api, bearer

V1 = "/api/v1"


def _zed_world(api: Api) -> dict[str, object]:
    """Zed (partner 2) earns 40 approved and is paid by a batch that does not pay Ann;
    Zed has a cap and a target of their own."""
    svc = api.services
    zed = make_partner(svc, api.world.program, email="zed@x.example")
    make_coupon(svc, zed, api.world.offer, code="ZED")
    api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "z-1", "amount": "400", "coupon": "ZED"},
        headers=api.admin,
    )
    clock = svc.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(days=31))
    approve_commissions(SqlMoneyUnitOfWork(svc.engine, svc.clock), svc.clock, 1, set())
    batch = api.client.post(
        f"{V1}/payouts",
        json={"program_id": 1, "period_end": "2026-04-02", "minimums": {"EUR": "10"}},
        headers=api.admin,
    ).json()
    cap = api.client.post(
        f"{V1}/programs/1/caps",
        json={"metric": "conversions", "limit": "5", "partner_id": zed.id, "reason": "trial"},
        headers=api.admin,
    ).json()
    target = api.client.post(
        f"{V1}/programs/1/targets",
        json={"partner_id": zed.id, "metric": "sales", "target": "3"},
        headers=api.admin,
    ).json()
    return {"zed": zed.id, "batch": batch["id"], "cap": cap["id"], "target": target["id"]}


def test_partner_key_never_sees_another_partners_payouts_caps_or_targets(api: Api) -> None:
    z = _zed_world(api)
    assert api.client.get(f"{V1}/me/payouts", headers=api.partner).json() == {
        "items": [],
        "next_cursor": None,
    }
    other = api.client.get(f"{V1}/me/payouts/{z['batch']}", headers=api.partner)
    assert (other.status_code, other.json()["error"]) == (404, "not_found")
    missing = api.client.get(f"{V1}/me/payouts/no-such-batch", headers=api.partner)
    assert missing.json() == other.json()  # the same answer: nothing to tell them apart
    assert api.client.get(f"{V1}/me/caps", headers=api.partner).json() == {
        "caps": [],
        "changes": [],
    }
    assert api.client.get(f"{V1}/me/targets", headers=api.partner).json() == []

    # Zed's own key sees exactly Zed's things, with the reasons.
    with api.services.engine.begin() as conn:
        _, token = create_key(
            conn, name="zed", scopes=["partner"], now=api.services.clock.now(),
            partner_id=int(str(z["zed"])),
        )  # fmt: skip
    zed = bearer(token)
    [mine] = api.client.get(f"{V1}/me/payouts", headers=zed).json()["items"]
    assert (mine["batch_id"], mine["line"]["amount"], mine["held"]) == (z["batch"], "40", None)
    detail = api.client.get(f"{V1}/me/payouts/{z['batch']}", headers=zed).json()
    assert [st["partner_id"] for st in detail["statements"]] == [z["zed"]]
    caps = api.client.get(f"{V1}/me/caps", headers=zed).json()
    assert [c["id"] for c in caps["caps"]] == [z["cap"]]
    assert [ch["reason"] for ch in caps["changes"]] == ["trial: set to 5"]
    assert [x["target"]["id"] for x in api.client.get(f"{V1}/me/targets", headers=zed).json()] == [
        z["target"]
    ]
    # Partner keys can't use admin routes at all.
    for path in (f"/payouts/{z['batch']}", "/programs/1/caps", "/fraud-reviews"):
        assert api.client.get(f"{V1}{path}", headers=zed).status_code == 403


def test_partner_cannot_accept_another_programs_terms(api: Api) -> None:
    other = make_program(api.services, slug="other")
    doc = api.client.post(
        f"{V1}/programs/{other.id}/terms",
        json={"kind": "terms", "title": "Other terms", "body": "x"},
        headers=api.admin,
    ).json()
    refused = api.client.post(f"{V1}/me/terms/{doc['id']}/accept", headers=api.partner)
    assert refused.status_code == 404
    assert api.client.get(f"{V1}/me/terms", headers=api.partner).json() == []


def test_program_bound_key_cannot_reach_another_program(api: Api) -> None:
    z = _zed_world(api)
    other = make_program(api.services, slug="other")
    make_offer(api.services, other)
    with api.services.engine.begin() as conn:
        _, token = create_key(conn, name="other-admin", scopes=["admin:write"],
                              now=api.services.clock.now(), program_id=other.id)  # fmt: skip
    bound = bearer(token)
    for path in (
        "/programs/1/plan/revisions",
        "/programs/1/caps",
        "/programs/1/goals",
        "/programs/1/segments/partners",
        "/programs/1/terms",
        f"/payouts/{z['batch']}",
        f"/payouts/{z['batch']}/export",
        "/conversions/1/explanation",
    ):
        assert api.client.get(f"{V1}{path}", headers=bound).status_code == 404, path
    assert api.client.get(f"{V1}/payouts", headers=bound).json()["items"] == []
    assert api.client.get(f"{V1}/fraud-reviews", headers=bound).json()["items"] == []
    paid = api.client.post(f"{V1}/payouts/{z['batch']}/paid", headers=bound)
    assert paid.status_code == 404
    status = api.client.get(f"{V1}/payouts/{z['batch']}", headers=api.reader).json()["status"]
    assert status == "open"
    rates = api.client.post(
        f"{V1}/exchange-rates",
        json={"rows": [{"valid_from": "2026-03-01", "source": "USD", "target": "EUR",
                        "rate": "0.9"}]},
        headers=bound,
    )  # fmt: skip
    assert rates.status_code == 403
