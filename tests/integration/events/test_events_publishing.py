"""Every change publishes its event in its own transaction: exactly once per change, and
not at all when the change is refused (rolled back)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from tests.factories import make_partner, make_world
from tests.integration.caps.test_caps_services import add_clicks, add_sales
from tests.integration.commissions.money_world import MoneyWorld, make_money_world

from partnerflow.bootstrap import Services
from partnerflow.caps.services import SetCap, recompute_caps, set_caps
from partnerflow.commissions.services import adjust_balance, approve_commissions, reverse_conversion
from partnerflow.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.core.money import Money
from partnerflow.fraud.policy import Action, Subject
from partnerflow.fraud.ports import NewReview
from partnerflow.fraud.services import decide_reviews, open_review
from partnerflow.partners.services import CreatePartner, change_status, create_partner
from partnerflow.payouts.services import build_payout, mark_batch_paid
from partnerflow.storage import tables as t
from partnerflow.storage.cap_reservations import SqlCapCounter
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork


def events(svc: Services, prefix: str = "") -> list[tuple[str, dict[str, Any], int | None]]:
    e = t.outbox_events.c
    with svc.engine.connect() as conn:
        rows = conn.execute(select(e.event_type, e.payload, e.partner_id).order_by(e.id)).all()
    return [
        (r.event_type, r.payload, r.partner_id) for r in rows if r.event_type.startswith(prefix)
    ]


def types(svc: Services, prefix: str = "") -> list[str]:
    return [kind for kind, _, _ in events(svc, prefix)]


@pytest.fixture
def world(services: Services) -> MoneyWorld:
    return make_money_world(services, lock_days=30)


# --- partners ---------------------------------------------------------------------------


def test_an_application_publishes_partner_applied_once(
    services: Services, world: MoneyWorld
) -> None:
    cmd = CreatePartner(program_id=world.program.id, name="Cy", email="cy@site.example")
    cy = create_partner(services.uow(), services.clock, cmd, actor="signup")
    [(kind, payload, partner_id)] = events(services, "partner.")
    assert (kind, partner_id) == ("partner.applied", cy.id)
    assert payload == {
        "partner": {
            "id": cy.id,
            "program_id": world.program.id,
            "name": "Cy",
            "email": "cy@site.example",
            "status": "applied",
            "website": None,
            "country": None,
            "created_at": "2026-03-02T12:00:00+00:00",
        },
        "previous_status": None,
        "reason": "",
        "actor": "signup",
    }
    with pytest.raises(Conflict):
        create_partner(services.uow(), services.clock, cmd, actor="signup")
    assert types(services, "partner.") == ["partner.applied"]


def test_approval_publishes_status_changed_and_approved_refusal_nothing(
    services: Services, world: MoneyWorld
) -> None:
    cy = make_partner(services, world.program, email="cy@site.example", status="applied")
    change_status(services.uow(), cy.id, "approved", actor="mia", reason="good fit")
    assert types(services, "partner.") == [
        "partner.applied",
        "partner.status_changed",
        "partner.approved",
    ]
    _, changed, _ = events(services, "partner.")[1]
    assert (changed["partner"]["status"], changed["previous_status"], changed["reason"]) == (
        "approved",
        "applied",
        "good fit",
    )
    with pytest.raises(InvalidTransition):
        change_status(services.uow(), cy.id, "applied", actor="mia")
    change_status(services.uow(), cy.id, "active", actor="mia")
    assert types(services, "partner.")[3:] == ["partner.status_changed"]


# --- commissions ------------------------------------------------------------------------


def test_approval_job_publishes_conversion_and_commission_approved_once(
    services: Services, world: MoneyWorld
) -> None:
    cid = world.sale("o-1", "200.00")
    world.advance(31)
    approve_commissions(world.uow(), services.clock, world.program.id)
    approve_commissions(world.uow(), services.clock, world.program.id)  # re-run: nothing new
    assert types(services, "co") == ["commission.approved", "conversion.approved"]
    (_, commission, pid), (_, conversion, _) = events(services, "co")
    assert pid == world.ann.id
    assert commission["commission"]["conversion_id"] == cid
    assert (commission["commission"]["amount"], commission["commission"]["currency"]) == (
        "20",
        "EUR",
    )
    assert commission["commission"]["txn_id"] == f"approval:{cid}"
    assert conversion["conversion"]["order_id"] == "o-1"
    assert conversion["conversion"]["amount"] == "200"
    assert conversion["commission"] == {"amount": "20", "currency": "EUR", "bucket": "approved"}


def test_refund_publishes_conversion_and_commission_reversed_refusal_nothing(
    services: Services, world: MoneyWorld
) -> None:
    world.sale("o-1", "200.00")
    reverse_conversion(
        world.uow(), services.clock, program_id=world.program.id, order_id="o-1",
        amount=Decimal("50"), reason="returned a shoe", author="mia",
    )  # fmt: skip
    assert types(services, "co") == ["commission.reversed", "conversion.reversed"]
    (_, commission, _), (_, conversion, pid) = events(services, "co")
    assert pid == world.ann.id
    assert (commission["commission"]["amount"], commission["commission"]["kind"]) == (
        "5",
        "reversal",
    )
    assert conversion["reversal"] == {
        "kind": "refund",
        "refund": {"amount": "50", "currency": "EUR"},
        "refunded_total": {"amount": "50", "currency": "EUR"},
        "fully_refunded": False,
        "commission_reversed": {"amount": "5", "currency": "EUR"},
        "reason": "returned a shoe",
    }
    with pytest.raises(InvalidInput):  # more than what is left of the order
        reverse_conversion(
            world.uow(), services.clock, program_id=world.program.id, order_id="o-1",
            amount=Decimal("151"), reason="x", author="mia",
        )  # fmt: skip
    assert len(events(services, "co")) == 2


def test_adjustment_publishes_commission_adjusted_once(
    services: Services, world: MoneyWorld
) -> None:
    adjust_balance(
        world.uow(), services.clock, partner_id=world.ann.id, amount=Money(Decimal("15"), "EUR"),
        reason="goodwill", author="mia", key="k1",
    )  # fmt: skip
    with pytest.raises(Conflict):
        adjust_balance(
            world.uow(), services.clock, partner_id=world.ann.id,
            amount=Money(Decimal("15"), "EUR"), reason="goodwill", author="mia", key="k1",
        )  # fmt: skip
    [(kind, payload, pid)] = events(services, "commission.")
    assert (kind, pid) == ("commission.adjusted", world.ann.id)
    assert payload["commission"]["amount"] == "15"
    assert payload["commission"]["reason"] == "goodwill"


# --- payouts ----------------------------------------------------------------------------


def test_payout_publishes_created_then_commission_paid_and_payout_paid_once(
    services: Services, world: MoneyWorld
) -> None:
    world.sale("o-1", "600.00")
    world.sale("o-2", "700.00", partner="bob")
    world.advance(31)
    approve_commissions(world.uow(), services.clock, world.program.id)
    end = services.clock.now().date()
    batch = build_payout(
        world.uow(), services.clock, program_id=world.program.id, period_end=end, author="mia"
    )
    build_payout(  # same content: found again, not created again
        world.uow(), services.clock, program_id=world.program.id, period_end=end, author="mia"
    )
    assert types(services, "payout.") == ["payout.created"]
    [(_, created, _)] = events(services, "payout.")
    assert created["payout"]["totals"] == [{"amount": "130", "currency": "EUR"}]
    assert [(line["partner_id"], line["amount"]) for line in created["payout"]["lines"]] == [
        (world.ann.id, "60"),
        (world.bob.id, "70"),
    ]
    mark_batch_paid(world.uow(), services.clock, batch.batch.id, author="mia")
    with pytest.raises(Conflict):
        mark_batch_paid(world.uow(), services.clock, batch.batch.id, author="mia")
    assert types(services, "payout.") == ["payout.created", "payout.paid"]
    paid = [(p["commission"]["partner_id"], p["commission"]["amount"])
            for kind, p, _ in events(services) if kind == "commission.paid"]  # fmt: skip
    assert paid == [(world.ann.id, "60"), (world.bob.id, "70")]
    assert events(services, "payout.")[1][1]["payout"]["status"] == "paid"


# --- fraud ------------------------------------------------------------------------------


def _finding(world: MoneyWorld, conversion_id: int, action: Action) -> NewReview:
    return NewReview(
        program_id=world.program.id,
        subject=Subject.CONVERSION,
        subject_id=str(conversion_id),
        action=action,
        score=95,
        reasons=("self-referral",),
        partner_id=world.ann.id,
        scan_key=f"conversion:{conversion_id}",
    )


def test_fraud_rejection_publishes_flag_and_commission_reversal_once(
    services: Services, world: MoneyWorld
) -> None:
    cid = world.sale("o-1", "100.00")
    uow = SqlFraudUnitOfWork(services.engine, services.clock)
    decision = open_review(uow, services.clock, _finding(world, cid, Action.REJECT), "scan")
    assert decision is not None
    again = open_review(
        SqlFraudUnitOfWork(services.engine, services.clock),
        services.clock,
        _finding(world, cid, Action.REJECT),
        "scan",
    )
    assert again is None
    assert types(services, "co") == ["commission.reversed", "conversion.flagged"]
    (_, reversal, _), (_, flagged, pid) = events(services, "co")
    assert reversal["commission"]["amount"] == "10"
    assert reversal["commission"]["fraud_review_id"] == decision.review.id
    assert pid == world.ann.id
    assert flagged["conversion"] == {
        "id": cid,
        "partner_id": world.ann.id,
        "status": "rejected",
        "flags": "reject",
    }
    assert flagged["review"]["action"] == "reject"
    assert flagged["review"]["reasons"] == ["self-referral"]
    # A person clears it: the commission comes back as an adjustment, published once.
    decide_reviews(
        SqlFraudUnitOfWork(services.engine, services.clock),
        services.clock,
        [decision.review.id],
        "approve",
        "mia",
    )
    with pytest.raises(Conflict):
        decide_reviews(
            SqlFraudUnitOfWork(services.engine, services.clock),
            services.clock,
            [decision.review.id],
            "approve",
            "mia",
        )
    assert types(services, "co")[2:] == ["commission.adjusted"]


def test_fraud_suspension_publishes_partner_status_changed(
    services: Services, world: MoneyWorld
) -> None:
    finding = NewReview(
        program_id=world.program.id,
        subject=Subject.PARTNER,
        subject_id=str(world.bob.id),
        action=Action.SUSPEND,
        score=10,
        reasons=("traffic quality 10/100",),
        partner_id=world.bob.id,
        scan_key="partner:bob",
    )
    open_review(SqlFraudUnitOfWork(services.engine, services.clock), services.clock, finding, "s")
    [(kind, payload, pid)] = events(services, "partner.")
    assert (kind, pid, payload["partner"]["status"]) == (
        "partner.status_changed",
        world.bob.id,
        "suspended",
    )


# --- caps -------------------------------------------------------------------------------


def _cap(world: MoneyWorld, **kw: Any) -> SetCap:
    values: dict[str, Any] = {
        "program_id": world.program.id,
        "metric": "conversions",
        "period": "day",
        "limit": "100",
        "offer_id": world.offer.id,
        "partner_id": world.ann.id,
        "adaptive_min": "50",
        "adaptive_max": "300",
        "adaptive_step_percent": "20",
    }
    values.update(kw)
    return SetCap(**values)


def test_manual_cap_set_publishes_cap_changed_refusal_nothing(
    services: Services, world: MoneyWorld
) -> None:
    counter = SqlCapCounter(services.engine, services.clock)
    uow = SqlCapsUnitOfWork(services.engine, services.clock)
    [cap] = set_caps(uow, counter, services.clock, [_cap(world, reason="launch")], "mia")
    with pytest.raises(InvalidInput):
        set_caps(uow, counter, services.clock, [_cap(world, cap_id=cap.id, limit="-1")], "mia")
    with pytest.raises(NotFound):
        set_caps(uow, counter, services.clock, [_cap(world, cap_id=999)], "mia")
    [(kind, payload, pid)] = events(services, "cap.")
    assert (kind, pid) == ("cap.changed", world.ann.id)
    assert payload["cap"]["limit"] == "100"
    assert payload["cap"]["currency"] is None
    assert payload["change"]["source"] == "manual"
    assert payload["change"]["old_limit"] is None
    assert payload["change"]["reason"] == "launch: set to 100"
    set_caps(uow, counter, services.clock, [_cap(world, cap_id=cap.id, limit="80")], "mia")
    assert [p["change"]["old_limit"] for _, p, _ in events(services, "cap.")] == [None, "100"]


def test_adaptive_change_publishes_cap_changed_once(services: Services) -> None:
    # The scenario of the caps tests: ann converts far better than the program.
    w = make_world(services)
    rival = make_partner(services, w.program, email="bob@x.example")
    counter = SqlCapCounter(services.engine, services.clock)
    uow = SqlCapsUnitOfWork(services.engine, services.clock)
    cap = SetCap(
        program_id=w.program.id, metric="conversions", period="day", limit="100",
        offer_id=w.offer.id, partner_id=w.partner.id, adaptive_min="50", adaptive_max="300",
        adaptive_step_percent="20",
    )  # fmt: skip
    set_caps(uow, counter, services.clock, [cap], "mia")
    past = services.clock.now() - timedelta(days=3)
    add_clicks(services, w, 200, past)
    add_sales(services, w, 6, past, commission=20)
    add_clicks(services, w, 800, past, partner=rival.id)
    add_sales(services, w, 8, past, commission=10, partner=rival.id)
    pid = ProgramId(w.program.id)
    first = recompute_caps(uow, services.clock, pid, quality={w.partner.id: 95})
    again = recompute_caps(uow, services.clock, pid, quality={w.partner.id: 95})
    assert again == []
    assert [(o.decision.old_limit, o.decision.new_limit) for o in first] == [
        (Decimal(100), Decimal(120))
    ]
    [manual, adaptive] = [p for _, p, _ in events(services, "cap.")]
    assert manual["change"]["source"] == "manual"
    assert adaptive["change"]["source"] == "adaptive"
    assert (adaptive["change"]["old_limit"], adaptive["change"]["new_limit"]) == ("100", "120")
    assert adaptive["change"]["reason"] == first[0].decision.reason
    assert adaptive["cap"]["limit"] == "120"
    assert adaptive["cap"]["partner_id"] == PartnerId(w.partner.id)


def test_payload_dates_are_iso_and_period_end_used(services: Services, world: MoneyWorld) -> None:
    # A batch built for an explicit past period keeps its dates as ISO strings.
    world.sale("o-1", "900.00")
    world.advance(31)
    approve_commissions(world.uow(), services.clock, world.program.id)
    end = services.clock.now().date() - timedelta(days=0)
    build_payout(
        world.uow(), services.clock, program_id=world.program.id, period_end=end, author="mia"
    )
    [(_, payload, _)] = events(services, "payout.")
    assert date.fromisoformat(payload["payout"]["period_end"]) == end
