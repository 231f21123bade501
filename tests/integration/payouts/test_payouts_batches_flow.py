"""Payout batches on real storage: build, export, pay once (also under concurrency)."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
from tests.factories import make_coupon, make_offer
from tests.integration.commissions.money_world import MoneyWorld, count, make_money_world

from partnerflow.bootstrap import Services
from partnerflow.commissions.services import approve_commissions, balances
from partnerflow.core.errors import Conflict, Forbidden, PartnerflowError
from partnerflow.partners.services import change_status
from partnerflow.payouts.services import (
    batch_statements,
    build_payout,
    export_batch,
    mark_batch_paid,
)
from partnerflow.storage import tables as t
from partnerflow.tracking.services import RecordConversion, record_conversion

END = date(2026, 3, 2)


def _ready(services: Services) -> MoneyWorld:
    w = make_money_world(services, lock_days=0)
    w.sale("A-1", "700")  # ann 70.00
    w.sale("B-1", "300", partner="bob")  # bob 30.00: below the 50 minimum
    approve_commissions(w.uow(), w.clock, w.program.id)
    return w


def test_batch_pays_balances_above_the_minimum_and_holds_the_rest(services: Services) -> None:
    w = _ready(services)
    stored = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                          author="ops")  # fmt: skip
    lines = [(x.partner_id, x.amount.amount) for x in stored.batch.lines]
    assert lines == [(w.ann.id, Decimal("70.00"))]
    assert [(h.partner_id, h.reason) for h in stored.batch.held] == [
        (w.bob.id, "below the minimum payout of 50.00 EUR")
    ]
    again = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                         author="ops")  # fmt: skip
    assert again.batch.id == stored.batch.id
    assert count(services, t.payout_batches) == 1
    lower = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                         minimums={"EUR": Decimal("20")}, author="ops")  # fmt: skip
    assert len(lower.batch.lines) == 2
    with w.uow() as uow:
        statuses = {b.batch.id: b.status for b in uow.payouts.list(w.program.id)}
    assert statuses == {stored.batch.id: "superseded", lower.batch.id: "open"}


def test_batch_is_exported_again_but_never_paid_twice(services: Services) -> None:
    w = _ready(services)
    stored = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                          author="ops")  # fmt: skip
    generic = export_batch(w.uow(), stored.batch.id, "generic")
    paypal = export_batch(w.uow(), stored.batch.id, "paypal")
    label = stored.batch.period.label()
    assert paypal == f"ann@blog.example,70.00,EUR,partner-{w.ann.id},Commission {label}\n"
    paid = mark_batch_paid(w.uow(), w.clock, stored.batch.id, author="ops")
    assert [e.amount.amount for e in paid.entries] == [Decimal("-70.00"), Decimal("70.00")]
    entries_after_first = count(services, t.commission_entries)
    with pytest.raises(Conflict, match="already paid"):
        mark_batch_paid(w.uow(), w.clock, stored.batch.id, author="ops")
    assert count(services, t.commission_entries) == entries_after_first
    assert export_batch(w.uow(), stored.batch.id, "generic") == generic
    bal = {b.partner_id: b for b in balances(w.uow(), program_id=w.program.id)}
    assert (bal[w.ann.id].approved.amount, bal[w.ann.id].paid.amount) == (0, Decimal("70"))
    [ann_statement, _bob] = batch_statements(w.uow(), stored.batch.id)
    assert ann_statement.closing.amount == 0
    assert [x.kind for x in ann_statement.lines] == ["approval", "payment"]


def test_two_concurrent_mark_paid_attempts_pay_once(services: Services) -> None:
    w = _ready(services)
    stored = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                          author="ops")  # fmt: skip
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        uow = w.uow()
        barrier.wait()
        try:
            mark_batch_paid(uow, w.clock, stored.batch.id, author="ops")
            outcomes.append("paid")
        except PartnerflowError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert sorted(outcomes) == ["Conflict", "paid"]
    e = t.commission_entries.c
    with services.engine.connect() as conn:
        payments = conn.execute(
            t.commission_entries.select().where(e.kind == "payment", e.bucket == "paid")
        ).all()
    assert [(p.partner_id, p.amount_micros) for p in payments] == [(w.ann.id, 70_000_000)]


def test_suspended_partner_in_the_batch_refuses_payment_and_writes_nothing(
    services: Services,
) -> None:
    w = _ready(services)
    stored = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                          author="ops")  # fmt: skip
    change_status(services.uow(), w.ann.id, "suspended", actor="ops")
    before = count(services, t.commission_entries)
    with pytest.raises(Forbidden, match="suspended"):
        mark_batch_paid(w.uow(), w.clock, stored.batch.id, author="ops")
    assert count(services, t.commission_entries) == before
    with w.uow() as uow:
        found = uow.payouts.get(stored.batch.id)
    assert found is not None and found.status == "open"


def test_partner_earning_in_two_currencies_is_paid_once_per_currency(services: Services) -> None:
    # An offer's flat amount in another currency than the program's is booked in that
    # currency: the partner then has a EUR and a USD balance. Building the batch crashed on
    # the duplicate payment key "<batch>:<partner>", so nobody in the program could be paid.
    w = make_money_world(services, lock_days=0)
    usd = make_offer(
        services, w.program, name="usd", plan={"type": "cpa", "amount": "60", "currency": "USD"}
    )
    make_coupon(services, w.ann, usd, code="ANNUSD")
    w.sale("A-1", "700")  # ann 70.00 EUR
    record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(
            token=w.program.postback_token, order_id="U-1", amount="100", coupon="ANNUSD"
        ),
    )  # ann 60.00 USD
    approve_commissions(w.uow(), w.clock, w.program.id)
    stored = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                          author="ops")  # fmt: skip
    lines = sorted((x.partner_id, x.amount.amount, x.amount.currency) for x in stored.batch.lines)
    assert lines == [(w.ann.id, Decimal("60.00"), "USD"), (w.ann.id, Decimal("70.00"), "EUR")]
    assert len({x.key for x in stored.batch.lines}) == 2
    mark_batch_paid(w.uow(), w.clock, stored.batch.id, author="ops")
    bal = {b.currency: b for b in balances(w.uow(), partner_id=w.ann.id)}
    assert {c: (b.approved.amount, b.paid.amount) for c, b in bal.items()} == {
        "EUR": (0, Decimal("70")),
        "USD": (0, Decimal("60")),
    }


def test_building_a_superseded_batch_again_reopens_it_and_it_can_be_paid(
    services: Services,
) -> None:
    """Build with the default minimum, try a lower one (it supersedes the first), go back to
    the default: the same content gives the same batch, which must be the open one again —
    not a superseded batch that mark-paid refuses with "build it again" forever."""
    w = _ready(services)
    first = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                         author="ops")  # fmt: skip
    lower = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                         minimums={"EUR": Decimal("20")}, author="ops")  # fmt: skip
    again = build_payout(w.uow(), w.clock, program_id=w.program.id, period_end=END,
                         author="ops")  # fmt: skip
    assert again.batch.id == first.batch.id
    assert again.status == "open"
    with w.uow() as uow:
        statuses = {b.batch.id: b.status for b in uow.payouts.list(w.program.id)}
    assert statuses == {first.batch.id: "open", lower.batch.id: "superseded"}
    paid = mark_batch_paid(w.uow(), w.clock, first.batch.id, author="ops")
    assert paid.batch.status == "paid"
    assert [e.amount.amount for e in paid.entries] == [Decimal("-70.00"), Decimal("70.00")]
