"""The commission ledger on real storage: approval, refunds, clawbacks, adjustments, explain."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.factories import make_coupon, make_offer
from tests.integration.commissions.money_world import (
    MoneyWorld,
    approved_sum,
    count,
    make_money_world,
)

from partnerflow.attribution.services import explain_conversion
from partnerflow.bootstrap import Services
from partnerflow.commissions import ledger as pure_ledger
from partnerflow.commissions.services import (
    adjust_balance,
    approve_commissions,
    balances,
    reverse_conversion,
)
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.money import Money
from partnerflow.payouts.services import build_payout, mark_batch_paid
from partnerflow.storage import tables as t
from partnerflow.tracking.services import RecordConversion, record_conversion


def _net(svc: Services, conversion_id: int) -> Decimal:
    from tests.integration.commissions.money_world import MoneyWorld  # noqa: F401

    from partnerflow.commissions.ledger import conversion_total
    from partnerflow.storage.payouts import SqlMoneyUnitOfWork

    with SqlMoneyUnitOfWork(svc.engine, svc.clock) as uow:
        return conversion_total(uow.ledger.entries(conversion_ids=[conversion_id]), conversion_id)


def test_approval_happens_after_the_lock_period_exactly_once(services: Services) -> None:
    w = make_money_world(services, lock_days=30)
    w.sale("A-1", "120.00")
    first = approve_commissions(w.uow(), w.clock, w.program.id)
    assert first.approved == 0
    w.advance(30)
    second = approve_commissions(w.uow(), w.clock, w.program.id)
    third = approve_commissions(w.uow(), w.clock, w.program.id)
    assert (second.approved, third.approved) == (1, 0)
    assert second.amount == {"EUR": Money(Decimal("12.00"), "EUR")}
    assert approved_sum(services, w.ann.id) == Decimal("12.00")
    assert count(services, t.commission_entries) == 3  # commission + approval pair
    [bal] = balances(w.uow(), partner_id=w.ann.id)
    assert (bal.pending.amount, bal.approved.amount, bal.paid.amount) == (0, 12, 0)


def test_held_and_flagged_conversions_stay_pending(services: Services) -> None:
    w = make_money_world(services, lock_days=0)
    held = w.sale("A-1", "100")
    flagged = w.sale("A-2", "100")
    w.sale("A-3", "100")
    with services.engine.begin() as conn:
        conn.execute(
            update(t.conversions).where(t.conversions.c.id == flagged).values(is_flagged=True)
        )
    run = approve_commissions(w.uow(), w.clock, w.program.id, held={held})
    assert (run.approved, run.held) == (1, 2)
    assert approved_sum(services, w.ann.id) == Decimal("10.00")


def test_partial_then_full_refund_cancels_the_commission_exactly(services: Services) -> None:
    w = make_money_world(services, lock_days=0, percent="7")
    conv = w.sale("A-1", "99.99")  # commission 7.00 (6.9993 rounded)
    approve_commissions(w.uow(), w.clock, w.program.id)
    part = reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                              amount=Decimal("33.33"), reason="damaged", author="ops")  # fmt: skip
    assert part.reversed == Money(Decimal("2.33"), "EUR")
    assert not part.fully_refunded
    rest = reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                              amount=None, reason="returned", author="ops")  # fmt: skip
    assert rest.reversed == Money(Decimal("4.67"), "EUR")
    assert rest.fully_refunded
    assert _net(services, conv) == Decimal(0)
    with services.engine.connect() as conn:
        row = conn.execute(t.conversions.select().where(t.conversions.c.id == conv)).one()
    assert (row.status, row.refunded_micros) == ("reversed", 99_990_000)


def test_a_refund_names_the_order_as_it_was_stored_whatever_its_padding(
    services: Services,
) -> None:
    """Order ids are stored stripped on every path (" A-1 " is order A-1), so a refund of
    " A-1 " is a refund of A-1, not "never recorded"."""
    w = make_money_world(services, lock_days=0, percent="10")
    conv = w.sale(" A-1 ", "50")
    with services.engine.connect() as conn:
        assert conn.execute(select(t.conversions.c.order_id)).scalar_one() == "A-1"
    result = reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="\tA-1 ",
                                amount=None, reason="returned", author="ops")  # fmt: skip
    assert (result.order_id, result.fully_refunded) == ("A-1", True)
    assert result.reversed == Money(Decimal("5.00"), "EUR")
    assert _net(services, conv) == Decimal(0)


def test_refund_larger_than_the_order_is_refused_and_writes_nothing(services: Services) -> None:
    w = make_money_world(services)
    w.sale("A-1", "50")
    before = count(services, t.commission_entries)
    with pytest.raises(InvalidInput, match="larger than what is left"):
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                           amount=Decimal("50.01"), reason="x", author="ops")  # fmt: skip
    assert count(services, t.commission_entries) == before
    with pytest.raises(InvalidInput, match="reason"):
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                           amount=None, reason=" ", author="ops")  # fmt: skip
    assert count(services, t.commission_entries) == before


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (Decimal("0.000001"), "0.000001 has more decimal places than EUR allows (2)"),
        (Decimal("12.345"), "12.345 has more decimal places than EUR allows (2)"),
        (Decimal(0), "refund amount must be positive"),
    ],
)
def test_refund_finer_than_the_currency_or_of_nothing_is_refused(
    services: Services, amount: Decimal, reason: str
) -> None:
    """`commissions reverse --amount 0.000001` reversed "0.00" and stored a refund nobody
    made; the order's currency decides what a refund can be."""
    w = make_money_world(services)
    w.sale("A-1", "50")
    before = count(services, t.commission_entries)
    with pytest.raises(InvalidInput) as refused:
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                           amount=amount, reason="x", author="ops")  # fmt: skip
    assert (refused.value.message, refused.value.field) == (reason, "amount")
    assert count(services, t.commission_entries) == before
    with services.engine.connect() as conn:
        assert conn.execute(select(t.conversions.c.refunded_micros)).scalar_one() == 0


def _lead(services: Services, w: MoneyWorld, order_id: str, coupon: str | None) -> int:
    result = record_conversion(
        services.uow(), services.clock,
        RecordConversion(token=w.program.postback_token, order_id=order_id, amount="0",
                         coupon=coupon, event_type="lead"),
    )  # fmt: skip
    return int(result.conversion.id)


def test_a_leads_commission_is_reversed_without_an_amount_and_only_once(
    services: Services,
) -> None:
    """The same rule as the tracker's refund postback: an order of amount zero (a CPL lead)
    is reversed without an amount, its whole commission taken back; an amount is refused;
    a second reversal is refused like one of a fully refunded order (it used to be
    recorded, audited and published again)."""
    w = make_money_world(services, lock_days=0)
    lead = make_offer(services, w.program, name="Quote", plan={"type": "cpl", "amount": "5"})
    make_coupon(services, w.ann, lead, code="LEAD5")
    conv = _lead(services, w, "L-1", "LEAD5")
    approve_commissions(w.uow(), w.clock, w.program.id)
    with pytest.raises(InvalidInput) as refused:
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="L-1",
                           amount=Decimal(5), reason="x", author="ops")  # fmt: skip
    assert refused.value.message == (
        "order L-1's amount is zero (a lead or signup): there is nothing to refund; reverse "
        "it without an amount to take its commission back"
    )
    assert _net(services, conv) == Decimal(5)
    done = reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="L-1",
                              amount=None, reason="fake lead", author="ops")  # fmt: skip
    assert (done.reversed, done.fully_refunded) == (Money(Decimal(5), "EUR"), True)
    assert (
        done.entries[0].reason
        == "refund of order L-1 (amount zero: its whole commission): fake lead"
    )
    assert _net(services, conv) == Decimal(0)
    entries, events = count(services, t.commission_entries), count(services, t.outbox_events)
    with pytest.raises(Conflict, match="order L-1 is already fully refunded"):
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="L-1",
                           amount=None, reason="again", author="ops", key="other")  # fmt: skip
    assert (count(services, t.commission_entries), count(services, t.outbox_events)) == (
        entries, events,
    )  # fmt: skip


@pytest.mark.parametrize("coupon", ["ANN10", None])
def test_a_zero_order_without_commission_is_reversed_without_a_zero_entry(
    services: Services, coupon: str | None
) -> None:
    w = make_money_world(services)
    _lead(services, w, "S-1", coupon)  # 10% of 0.00, or unattributed
    entries = count(services, t.commission_entries)
    done = reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="S-1",
                              amount=None, reason="cancelled", author="ops")  # fmt: skip
    assert (done.reversed, done.entries, done.fully_refunded) == (None, (), True)
    assert count(services, t.commission_entries) == entries
    with services.engine.connect() as conn:
        assert conn.execute(select(t.conversions.c.status)).scalar_one() == "reversed"
    with pytest.raises(Conflict):
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="S-1",
                           amount=None, reason="again", author="ops")  # fmt: skip


def test_clawback_after_payout_carries_a_negative_balance_forward(services: Services) -> None:
    w = make_money_world(services, lock_days=0)
    w.sale("A-1", "600")  # 60.00
    approve_commissions(w.uow(), w.clock, w.program.id)
    batch = build_payout(w.uow(), w.clock, program_id=w.program.id,
                         period_end=date(2026, 3, 2), author="ops")  # fmt: skip
    mark_batch_paid(w.uow(), w.clock, batch.batch.id, author="ops")
    reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1", amount=None,
                       reason="chargeback", author="psp", kind="chargeback")  # fmt: skip
    [bal] = balances(w.uow(), partner_id=w.ann.id)
    assert (bal.approved.amount, bal.paid.amount) == (Decimal("-60.00"), Decimal("60.00"))
    w.advance(31)
    w.sale("A-2", "1000")  # 100.00, nets to 40.00: below the 50 minimum, held
    approve_commissions(w.uow(), w.clock, w.program.id)
    nxt = build_payout(w.uow(), w.clock, program_id=w.program.id,
                       period_end=date(2026, 4, 2), author="ops")  # fmt: skip
    assert nxt.batch.lines == ()
    assert [(h.partner_id, h.amount.amount) for h in nxt.batch.held] == [
        (w.ann.id, Decimal("40.00"))
    ]
    assert "below the minimum payout" in nxt.batch.held[0].reason


def test_adjustment_needs_reason_and_author_and_is_idempotent(services: Services) -> None:
    w = make_money_world(services)
    with pytest.raises(InvalidInput, match="reason"):
        adjust_balance(w.uow(), w.clock, partner_id=w.ann.id,
                       amount=Money(Decimal("5"), "EUR"), reason="", author="kim")  # fmt: skip
    with pytest.raises(InvalidInput, match="author"):
        adjust_balance(w.uow(), w.clock, partner_id=w.ann.id,
                       amount=Money(Decimal("5"), "EUR"), reason="goodwill", author="")  # fmt: skip
    assert count(services, t.commission_entries) == 0
    adjust_balance(w.uow(), w.clock, partner_id=w.ann.id, amount=Money(Decimal("5"), "EUR"),
                   reason="goodwill", author="kim", key="ticket-9")  # fmt: skip
    with pytest.raises(Conflict):
        adjust_balance(w.uow(), w.clock, partner_id=w.ann.id, amount=Money(Decimal("5"), "EUR"),
                       reason="goodwill", author="kim", key="ticket-9")  # fmt: skip
    assert approved_sum(services, w.ann.id) == Decimal("5.00")


def test_explain_shows_source_plan_holds_and_every_entry(services: Services) -> None:
    w = make_money_world(services, lock_days=14)
    conv = w.sale("A-1", "80")
    reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                       amount=Decimal("20"), reason="one item back", author="ops")  # fmt: skip
    x = explain_conversion(w.uow(), conv)
    text = "\n".join(x.lines())
    assert "coupon ANN10 belongs to partner" in text
    assert "model last_click (program setting), 30-day lookback window" in text
    assert "a coupon beats cookies" in text
    assert "lock period of 14 day(s): pending until 2026-03-16T12:00:00+00:00" in text
    assert "priced again from the stored plans: 8.00 EUR" in text
    assert [(e.kind.value, e.amount.amount) for e in x.ledger] == [
        ("commission", Decimal("8.00")),
        ("reversal", Decimal("-2.00")),
    ]
    assert "refund of 20.00 EUR on order A-1 (partial, pro rata): one item back" in text
    assert x.net == Money(Decimal("6.00"), "EUR")


def test_refund_racing_the_approval_job_never_leaves_an_approved_commission(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The approval job reads the pending commission; before it writes, a full refund
    # reverses it from `pending` and commits. Without a lock the job then moved the
    # (already reversed) commission to `approved`: pending -7, approved +7, so the next
    # payout paid a refunded commission. (On SQLite the write lock already serialises them.)
    w = make_money_world(services, lock_days=30)
    conv = w.sale("A-1", "70")  # ann 7.00
    w.advance(31)
    read = threading.Event()
    refunded = threading.Event()
    real = pure_ledger.approve_due

    def slow_approve_due(*args: Any, **kw: Any) -> list[Any]:
        read.set()
        refunded.wait(timeout=3)  # with the lock, the refund waits for us instead
        return real(*args, **kw)

    monkeypatch.setattr(pure_ledger, "approve_due", slow_approve_due)
    job = threading.Thread(target=lambda: approve_commissions(w.uow(), w.clock, w.program.id))
    job.start()
    assert read.wait(timeout=30)

    def refund() -> None:
        reverse_conversion(w.uow(), w.clock, program_id=w.program.id, order_id="A-1",
                           amount=None, reason="refund", author="ops")  # fmt: skip
        refunded.set()

    refunder = threading.Thread(target=refund)
    refunder.start()
    job.join(timeout=60)
    refunder.join(timeout=60)
    assert _net(services, conv) == 0
    [bal] = balances(w.uow(), partner_id=w.ann.id)
    assert (bal.pending.amount, bal.approved.amount) == (0, 0)
