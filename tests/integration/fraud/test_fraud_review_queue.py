"""The fraud scan, the review queue and the ledger, on SQLite and (when configured)
PostgreSQL: findings are queued once, decisions move money exactly, reversals follow."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.factories import World, make_link, make_partner, make_world

from partnerflow.bootstrap import Services
from partnerflow.commissions import ledger as pure_ledger
from partnerflow.core.clock import FixedClock
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.ids import new_click_id
from partnerflow.fraud.policy import Action, Subject
from partnerflow.fraud.ports import ReviewFilter, ReviewStatus
from partnerflow.fraud.services import decide_reviews, reverse_decisions, set_policy
from partnerflow.jobs.fraud_scan import scan
from partnerflow.storage import tables as t
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork, held_conversion_ids
from partnerflow.storage.ledger import SqlLedger
from partnerflow.tracking.services import RecordConversion, record_conversion


def _uow(svc: Services) -> SqlFraudUnitOfWork:
    return SqlFraudUnitOfWork(svc.engine, svc.clock)


def _click(svc: Services, world: World, seconds_ago: float, **kw: Any) -> str:
    click_id = new_click_id()
    values = {
        "id": click_id,
        "created_at": svc.clock.now() - timedelta(seconds=seconds_ago),
        "program_id": world.program.id,
        "offer_id": world.offer.id,
        "partner_id": kw.pop("partner_id", world.partner.id),
        "link_id": kw.pop("link_id", world.link.id),
        "ip": kw.pop("ip", "81.2.69.160"),
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36",
        "referrer": kw.pop("referrer", "https://blog.example/post"),
        "is_unique": True,
        "is_bot": kw.pop("is_bot", False),
        "is_qr": False,
        "fraud_score": kw.pop("fraud_score", 0),
        "flags": kw.pop("flags", None),
    }
    with svc.engine.begin() as conn:
        conn.execute(t.clicks.insert().values(values))
    return click_id


def _convert(svc: Services, world: World, order: str, amount: str = "100.00", **kw: Any) -> int:
    recorded = record_conversion(
        svc.uow(),  # type: ignore[arg-type]
        svc.clock,
        RecordConversion(token=world.program.postback_token, order_id=order, amount=amount, **kw),
    )
    return int(recorded.conversion.id)


def _standing(svc: Services, conversion_id: int) -> Decimal:
    with svc.engine.connect() as conn:
        entries = SqlLedger(conn).entries(conversion_ids=[conversion_id])
    return pure_ledger.conversion_total(entries, conversion_id)


def _conversion_status(svc: Services, conversion_id: int) -> str:
    with svc.engine.connect() as conn:
        return str(
            conn.execute(
                select(t.conversions.c.status).where(t.conversions.c.id == conversion_id)
            ).scalar_one()
        )


def _reviews(svc: Services, **kw: Any) -> list[Any]:
    with _uow(svc) as uow:
        return sorted(uow.reviews.find(ReviewFilter(**kw)), key=lambda r: r.id)


def _counts(svc: Services) -> tuple[int, int, int]:
    with svc.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(t.fraud_reviews)).scalar_one(),
            conn.execute(select(func.count()).select_from(t.commission_entries)).scalar_one(),
            conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one(),
        )


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


@pytest.fixture
def scenario(services: Services, world: World) -> dict[str, int]:
    """A clean sale (1 h after its click), a click-injection sale (3 s) and a self-referral
    (the customer id is the partner's own e-mail, disguised)."""
    clean_click = _click(services, world, 3600)
    fast_click = _click(services, world, 3)
    return {
        "clean": _convert(services, world, "o-clean", click_id=clean_click),
        "fast": _convert(services, world, "o-fast", click_id=fast_click),
        "self": _convert(
            services,
            world,
            "o-self",
            coupon=None,
            click_id=_click(services, world, 7200),
            customer_id="ANN+shop@blog.example",
        ),
    }


def test_scan_queues_each_finding_once_with_its_action_and_reasons(
    services: Services, world: World, scenario: dict[str, int], clock: FixedClock
) -> None:
    clock.advance(timedelta(minutes=5))
    report = scan(services)
    opened = {(d.review.subject_id, d.review.action) for d in report.opened}
    assert opened == {
        (str(scenario["fast"]), Action.HOLD),
        (str(scenario["self"]), Action.REJECT),
    }
    assert report.conversions_checked == 3
    fast = next(d.review for d in report.opened if d.review.subject_id == str(scenario["fast"]))
    assert fast.score == 80
    assert fast.reasons == (
        "converted 3.0 s after the click (under 5 s: click injection or coupon poaching)",
    )
    self_ref = next(d.review for d in report.opened if d.review.action is Action.REJECT)
    assert self_ref.reasons == ("self-referral: the customer's e-mail is the partner's",)

    # hold: nothing moves, the approval job must skip it; reject: reversed at once.
    with services.engine.connect() as conn:
        assert held_conversion_ids(conn, world.program.id) == {scenario["fast"]}
    assert _standing(services, scenario["fast"]) == Decimal("10.00")
    assert _standing(services, scenario["self"]) == Decimal("0.00")
    assert _conversion_status(services, scenario["self"]) == "rejected"
    assert _conversion_status(services, scenario["clean"]) == "pending"

    before = _counts(services)
    again = scan(services)
    assert again.opened == []
    assert (again.conversions_checked, again.already_queued) == (2, 1)  # rejected: not payable
    assert _counts(services) == before


def test_reject_reverses_the_commission_exactly_and_reverse_brings_it_back(
    services: Services, world: World, scenario: dict[str, int], clock: FixedClock
) -> None:
    scan(services)
    hold = _reviews(services, action=Action.HOLD)[0]
    [decision] = decide_reviews(_uow(services), clock, [hold.id], "reject", "maria", "bot sale")
    assert decision.effects == (
        f"commission reversed: 10.00 EUR (fraud:{hold.id}:reversal)",
        f"conversion {scenario['fast']} rejected",
    )
    assert _standing(services, scenario["fast"]) == Decimal("0.00")
    assert _conversion_status(services, scenario["fast"]) == "rejected"
    with services.engine.connect() as conn:
        assert held_conversion_ids(conn, world.program.id) == set()
        entries = SqlLedger(conn).entries(conversion_ids=[scenario["fast"]])
    assert [(e.kind.value, e.bucket.value, e.amount.amount) for e in entries] == [
        ("commission", "pending", Decimal("10.00")),
        ("reversal", "pending", Decimal("-10.00")),
    ]

    [back] = reverse_decisions(_uow(services), clock, [hold.id], "lead", "wrong call")
    assert back.reopened_as is not None
    assert _standing(services, scenario["fast"]) == Decimal("10.00")
    assert _conversion_status(services, scenario["fast"]) == "pending"
    with services.engine.connect() as conn:
        assert held_conversion_ids(conn, world.program.id) == {scenario["fast"]}  # the hold is back
    reopened = _reviews(services, status=ReviewStatus.OPEN, action=Action.HOLD)
    assert [(r.id, r.reopened_from) for r in reopened] == [(back.reopened_as, hold.id)]
    assert _reviews(services, status=ReviewStatus.REVERSED)[0].note == "wrong call"

    # reject again, then reverse again: the ledger follows every time
    decide_reviews(_uow(services), clock, [back.reopened_as], "reject", "maria")
    assert _standing(services, scenario["fast"]) == Decimal("0.00")
    reverse_decisions(_uow(services), clock, [back.reopened_as], "lead", "still wrong")
    assert _standing(services, scenario["fast"]) == Decimal("10.00")


def test_bulk_approve_releases_holds_and_reinstates_rejections(
    services: Services, world: World, scenario: dict[str, int], clock: FixedClock
) -> None:
    scan(services)
    ids = [r.id for r in _reviews(services, status=ReviewStatus.OPEN)]
    decisions = decide_reviews(_uow(services), clock, ids, "approve", "maria", "known customer")
    assert {d.status for d in decisions} == {ReviewStatus.APPROVED}
    assert _standing(services, scenario["self"]) == Decimal("10.00")
    assert _conversion_status(services, scenario["self"]) == "pending"
    with services.engine.connect() as conn:
        assert held_conversion_ids(conn, world.program.id) == set()
        entries = SqlLedger(conn).entries(conversion_ids=[scenario["self"]])
    assert [(e.txn_id, e.amount.amount) for e in entries][1:] == [
        (f"fraud:{ids[1]}:reversal", Decimal("-10.00")),
        (f"fraud:{ids[1]}:reinstatement", Decimal("10.00")),
    ]
    assert all(r.note == "known customer" for r in _reviews(services, status=ReviewStatus.APPROVED))


def test_deciding_a_decided_review_is_refused_and_changes_nothing(
    services: Services, scenario: dict[str, int], clock: FixedClock
) -> None:
    scan(services)
    first, second = (r.id for r in _reviews(services))
    decide_reviews(_uow(services), clock, [first], "approve", "maria")
    before = _counts(services)
    with pytest.raises(Conflict, match=rf"fraud review {first} was already approved by maria"):
        decide_reviews(_uow(services), clock, [second, first], "reject", "maria")
    with pytest.raises(NotFound, match="fraud review 999 not found"):
        decide_reviews(_uow(services), clock, [second, 999], "reject", "maria")
    with pytest.raises(InvalidInput, match="a note is required"):
        reverse_decisions(_uow(services), clock, [first], "maria", " ")
    with pytest.raises(Conflict, match="still open"):
        reverse_decisions(_uow(services), clock, [second], "maria", "why")
    assert _counts(services) == before
    assert _reviews(services, status=ReviewStatus.OPEN)[0].id == second
    assert _standing(services, scenario["self"]) == Decimal("0.00")


def _bad_traffic(services: Services, world: World) -> Any:
    """A second partner whose 150 clicks are bots from a datacenter."""
    bob = make_partner(services, world.program, email="bob@clicks.example")
    link = make_link(services, bob, world.offer, code="bob-shop")
    rows = [
        {
            "id": new_click_id(),
            "created_at": services.clock.now() - timedelta(hours=i + 1),
            "program_id": world.program.id,
            "offer_id": world.offer.id,
            "partner_id": bob.id,
            "link_id": link.id,
            "ip": "52.95.110.1",
            "user_agent": "python-requests/2.32",
            "referrer": None,
            "is_unique": True,
            "is_bot": True,
            "is_qr": False,
            "fraud_score": 100,
            "flags": None,
        }
        for i in range(150)
    ]
    with services.engine.begin() as conn:
        conn.execute(t.clicks.insert(), rows)
    return bob


def test_low_quality_partner_is_suspended_audited_and_reactivated_on_approval(
    services: Services, world: World, clock: FixedClock
) -> None:
    bob = _bad_traffic(services, world)
    set_policy(
        _uow(services), clock, world.program.id, {"actions": {"partner_suspend_below": 50}}, "lead"
    )
    report = scan(services)
    [opened] = [d for d in report.opened if d.review.subject is Subject.PARTNER]
    assert (opened.review.subject, opened.review.subject_id) == (Subject.PARTNER, str(bob.id))
    assert opened.review.action is Action.SUSPEND
    assert opened.review.score == 45
    assert opened.review.reasons[:3] == (
        "traffic quality 45/100 over 30 days",
        "bot clicks: 100% of 150 clicks (limit 5%): -30",
        "datacenter / VPN / Tor clicks: 100% of 150 clicks (limit 10%): -25",
    )
    with _uow(services) as uow:
        assert uow.partners.get(bob.id).status.value == "suspended"  # type: ignore[union-attr]
        audit = uow.audit.recent(10)
    change = next(a for a in audit if a["action"] == "partner.status_changed")
    assert change["actor"] == "system:fraud-scan"
    assert change["detail"]["to"] == "suspended"
    assert "traffic quality 45/100" in change["detail"]["reason"]

    assert scan(services).opened == []  # an open review: not queued again
    decide_reviews(_uow(services), clock, [opened.review.id], "approve", "maria", "known app")
    with _uow(services) as uow:
        assert uow.partners.get(bob.id).status.value == "active"  # type: ignore[union-attr]
    clock.advance(timedelta(days=1))
    assert scan(services).opened == []  # cleared by a person within the window
