"""The API's program-operations routes: caps (set, usage, history with reasons), goals and
partner targets, ad spend (record, report, suggestions), the fraud review queue, segments,
announcements, message threads, terms and creatives."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from tests.factories import make_coupon

from partnerflow.fraud.policy import Action, Subject
from partnerflow.fraud.ports import NewReview
from partnerflow.fraud.services import open_review
from partnerflow.storage import tables as t
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork

from .conftest import Api

V1 = "/api/v1"


def rows(api: Api, table: Any) -> int:
    with api.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_caps_are_set_with_reasons_and_refused_when_they_overlap(api: Api) -> None:
    url = f"{V1}/programs/1/caps"
    body = {"metric": "clicks", "limit": "100", "partner_id": 1, "offer_id": 1,
            "reason": "new partner"}  # fmt: skip
    created = api.client.post(url, json=body, headers=api.admin)
    assert created.status_code == 201, created.text
    cap = created.json()
    assert (cap["scope"], cap["metric"], cap["period"], cap["limit"], cap["mode"]) == (
        "partner_offer",
        "clicks",
        "day",
        "100",
        "hard",
    )
    twin = api.client.post(url, json=body, headers=api.admin)
    assert twin.status_code == 409 and rows(api, t.caps) == 1
    no_scope = api.client.post(url, json={"metric": "clicks", "limit": "5"}, headers=api.admin)
    assert (no_scope.status_code, no_scope.json()["field"]) == (422, "scope")
    changed = api.client.put(
        f"{url}/{cap['id']}",
        json={**body, "limit": "150", "reason": "good EPC"},
        headers=api.admin,
    )
    assert changed.status_code == 200 and changed.json()["limit"] == "150"
    assert [c["limit"] for c in api.client.get(url, headers=api.reader).json()["items"]] == ["150"]
    usage = api.client.get(f"{url}/usage", headers=api.reader).json()["items"]
    assert [(u["used"], u["remaining"], u["period_key"]) for u in usage] == [
        ("0", "150", "2026-03-02")
    ]
    history = api.client.get(f"{url}/history", headers=api.reader).json()["items"]
    assert [h["reason"] for h in history] == [
        "good EPC: changed 100 → 150",
        "new partner: set to 100",
    ]
    assert rows(api, t.outbox_events) >= 2  # cap.changed for each change
    assert api.client.put(f"{url}/999", json=body, headers=api.admin).status_code == 404


def test_goals_and_partner_targets_report_progress(api: Api) -> None:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "g-1", "amount": "50", "coupon": "ANN10"},
        headers=api.admin,
    )
    goal = api.client.post(
        f"{V1}/programs/1/goals",
        json={"metric": "sales", "period": "month", "target": "10"},
        headers=api.admin,
    )
    assert goal.status_code == 201, goal.text
    assert api.client.get(f"{V1}/programs/1/goals", headers=api.reader).json() == [goal.json()]
    [progress] = api.client.get(f"{V1}/programs/1/goals/progress", headers=api.reader).json()
    assert (progress["progress"]["actual"], progress["progress"]["target"]) == ("1", "10")
    assert progress["progress"]["period_key"] == "2026-03"
    target = api.client.post(
        f"{V1}/programs/1/targets",
        json={"partner_id": 1, "metric": "revenue", "target": "200"},
        headers=api.admin,
    )
    assert target.status_code == 201 and target.json()["kind"] == "absolute"
    both = api.client.post(
        f"{V1}/programs/1/targets",
        json={"partner_id": 1, "metric": "sales", "target": "2", "growth_percent": "10"},
        headers=api.admin,
    )
    assert both.status_code == 422
    listed = api.client.get(f"{V1}/programs/1/targets", headers=api.reader).json()["items"]
    assert [x["metric"] for x in listed] == ["revenue"]
    [tp] = api.client.get(f"{V1}/programs/1/targets/progress", headers=api.reader).json()
    assert (tp["progress"]["actual"], tp["progress"]["target"], tp["progress"]["met"]) == (
        "50.00",
        "200.00",
        False,
    )
    mine = api.client.get(f"{V1}/me/targets", headers=api.partner).json()
    assert [x["target"]["id"] for x in mine] == [target.json()["id"]]


def test_ad_spend_rows_report_and_suggestions(api: Api) -> None:
    url = f"{V1}/programs/1/ad-spend"
    row = {"day": "2026-03-01", "channel": "TikTok", "campaign": "spring", "amount": "40"}
    bad = api.client.post(
        url,
        json={"rows": [row, {**row, "partner": "nobody@x.example"}]},
        headers=api.admin,
    )
    assert bad.status_code == 422
    assert "row 2: unknown partner 'nobody@x.example'" in bad.json()["reason"]
    assert rows(api, t.ad_spend) == 0
    ok = api.client.post(url, json={"rows": [row, {**row, "partner": "1"}]}, headers=api.admin)
    assert ok.status_code == 201 and ok.json() == {"imported": 2}
    report = api.client.get(f"{url}/report", headers=api.reader).json()
    assert [(r["key"], r["spend"], r["roas"]) for r in report["rows"]] == [("tiktok", "80", "0")]
    suggestions = api.client.get(f"{url}/suggestions", headers=api.reader).json()
    [s] = suggestions["suggestions"]
    assert (s["key"], s["verdict"]) == ("tiktok", "hold")
    assert s["reason"].startswith("not enough data yet")
    over = api.client.get(f"{url}/suggestions?target_roas=1000.5", headers=api.reader)
    assert (over.status_code, over.json()) == (422, {
        "error": "invalid_input", "field": "target_roas",
        "reason": "target_roas must be a decimal number above 0 and at most 1000 (e.g. 2 or 1.5)",
    })  # fmt: skip
    assert (
        api.client.get(f"{url}/report", params={"by": "geo"}, headers=api.reader).status_code == 422
    )


def _held_review(api: Api) -> tuple[int, int]:
    make_coupon(api.services, api.world.partner, api.world.offer, code="ANN10")
    created = api.client.post(
        f"{V1}/conversions",
        json={"program_id": 1, "order_id": "f-1", "amount": "100", "coupon": "ANN10"},
        headers=api.admin,
    ).json()
    cid = created["conversion"]["id"]
    svc = api.services
    decision = open_review(
        SqlFraudUnitOfWork(svc.engine, svc.clock),
        svc.clock,
        NewReview(
            program_id=1,
            subject=Subject.CONVERSION,
            subject_id=str(cid),
            action=Action.HOLD,
            score=60,
            reasons=("conversion 3 s after its click",),
            partner_id=1,
        ),
        actor="test",
    )
    assert decision is not None
    return decision.review.id, cid


def test_fraud_reviews_are_decided_in_bulk_and_reversed_with_a_note(api: Api) -> None:
    review_id, _ = _held_review(api)
    queue = api.client.get(
        f"{V1}/fraud-reviews", params={"status": "open"}, headers=api.reader
    ).json()
    assert [(r["id"], r["action"], r["reasons"]) for r in queue["items"]] == [
        (review_id, "hold", ["conversion 3 s after its click"])
    ]
    unknown = api.client.post(
        f"{V1}/fraud-reviews/decisions",
        json={"ids": [review_id, 999], "decision": "reject"},
        headers=api.admin,
    )
    assert unknown.status_code == 404
    assert (
        api.client.get(f"{V1}/fraud-reviews/{review_id}", headers=api.reader).json()["status"]
        == "open"
    )
    rejected = api.client.post(
        f"{V1}/fraud-reviews/decisions",
        json={"ids": [review_id], "decision": "reject", "note": "injected clicks"},
        headers=api.admin,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()[0]["status"] == "rejected"
    again = api.client.post(
        f"{V1}/fraud-reviews/decisions",
        json={"ids": [review_id], "decision": "approve"},
        headers=api.admin,
    )
    assert again.status_code == 409
    no_note = api.client.post(
        f"{V1}/fraud-reviews/reversals", json={"ids": [review_id]}, headers=api.admin
    )
    assert (no_note.status_code, no_note.json()["error"]) == (422, "invalid_input")
    reversed_ = api.client.post(
        f"{V1}/fraud-reviews/reversals",
        json={"ids": [review_id], "note": "customer confirmed the order"},
        headers=api.admin,
    ).json()
    assert reversed_[0]["status"] == "reversed" and reversed_[0]["reopened_as"] is not None
    reopened = api.client.get(
        f"{V1}/fraud-reviews/{reversed_[0]['reopened_as']}", headers=api.reader
    ).json()
    assert (reopened["status"], reopened["reopened_from"]) == ("open", review_id)


def test_segments_announcements_threads_and_terms(api: Api) -> None:
    seg = api.client.get(f"{V1}/programs/1/segments/partners", headers=api.reader).json()
    assert [(p["partner_id"], p["segment"]) for p in seg["partners"]] == [(1, "dormant")]
    assert seg["counts"] == {"dormant": 1}
    customers = api.client.get(f"{V1}/programs/1/segments/customers", headers=api.reader)
    assert customers.status_code == 422, customers.text  # too few customers to segment
    assert customers.json() == {
        "error": "invalid_input",
        "reason": "segmentation needs at least 10 customers with purchases; got 0",
    }

    sent = api.client.post(
        f"{V1}/announcements",
        json={"program_id": 1, "subject": "Spring sale", "body": "Hi {{ partner.name }}"},
        headers=api.admin,
    )
    assert sent.status_code == 201
    listed = api.client.get(f"{V1}/announcements", headers=api.reader).json()["items"]
    assert [(a["subject"], a["recipients"]) for a in listed] == [("Spring sale", 1)]
    api.client.post(f"{V1}/me/messages", json={"body": "When is payday?"}, headers=api.partner)
    threads = api.client.get(f"{V1}/programs/1/message-threads", headers=api.reader).json()
    assert threads == [{"partner_id": 1, "name": "Ann", "unread": 1}]

    doc = api.client.post(
        f"{V1}/programs/1/terms",
        json={"kind": "terms", "title": "Programme terms", "body": "Be honest."},
        headers=api.admin,
    )
    assert doc.status_code == 201 and doc.json()["version"] == 1
    wrong = api.client.post(
        f"{V1}/programs/1/terms",
        json={"kind": "poem", "title": "x", "body": "y"},
        headers=api.admin,
    )
    assert (wrong.status_code, wrong.json()["field"]) == (422, "kind")
    mine = api.client.get(f"{V1}/me/terms", headers=api.partner).json()
    assert [(d["id"], d["accepted"]) for d in mine] == [(doc.json()["id"], False)]
    accept = f"{V1}/me/terms/{doc.json()['id']}/accept"
    assert api.client.post(accept, headers=api.partner).json()["newly"] is True
    assert api.client.post(accept, headers=api.partner).json()["newly"] is False
    terms = api.client.get(f"{V1}/programs/1/terms", headers=api.reader).json()
    assert [(d["version"], d["accepted"]) for d in terms] == [(1, 1)]
    assert api.client.get(f"{V1}/me/creatives", headers=api.partner).json() == []


@pytest.mark.parametrize("number", ["1.5", "-0.0", "1e309", "0E0"])
def test_a_number_is_not_an_announcement_segment(api: Api, number: str) -> None:
    # Fractions are read as Decimal (routing.ExactJsonRoute) and FastAPI validates bodies
    # with from_attributes: a Decimal passed as a SegmentIn of defaults, so the announcement
    # went to every approved and active partner.
    sent = api.client.post(
        f"{V1}/announcements",
        content=f'{{"program_id": 1, "subject": "S", "body": "B", "segment": {number}}}',
        headers={**api.admin, "Content-Type": "application/json"},
    )
    assert (sent.status_code, sent.json()["field"]) == (422, "segment"), sent.text
    assert rows(api, t.announcements) == 0


def test_customer_segments_with_historical_clv(api: Api) -> None:
    for i in range(12):
        for n in range(1 + i % 3):
            api.client.post(
                f"{V1}/conversions",
                json={"program_id": 1, "order_id": f"c{i}-{n}", "amount": str(20 + 10 * i),
                      "customer_id": f"cust-{i}"},
                headers=api.admin,
            )  # fmt: skip
    found = api.client.get(
        f"{V1}/programs/1/segments/customers", params={"members": 3}, headers=api.reader
    )
    assert found.status_code == 200, found.text
    data = found.json()
    assert (data["customers"], data["purchases"], data["clv_method"]) == (12, 24, "historical")
    assert sum(x["customers"] for x in data["segments"]) == 12
    assert len(data["members"]) == 3


def test_status_filters_take_only_known_statuses(api: Api) -> None:
    """An unknown status (or one with a NUL byte, which PostgreSQL refuses outright) is a
    422 naming the field, never a 500."""
    for path, status in (("conversions", "jx}\x00"), ("conversions", "paid"),
                         ("partners", "nobody")):  # fmt: skip
        bad = api.client.get(f"{V1}/{path}", params={"status": status}, headers=api.reader)
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"] == "invalid_input"
        assert "status" in bad.text
    ok = api.client.get(f"{V1}/conversions", params={"status": "pending"}, headers=api.reader)
    assert ok.status_code == 200
    assert all(c["status"] == "pending" for c in ok.json()["items"])
    active = api.client.get(f"{V1}/partners", params={"status": "active"}, headers=api.reader)
    assert active.status_code == 200 and active.json()["items"]
    assert {p["status"] for p in active.json()["items"]} == {"active"}
