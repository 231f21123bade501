from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.commissions.ledger import (
    accrue,
    adjust,
    approve_due,
    balances,
    record_payments,
    reverse,
)
from partnerflow.core.errors import Conflict, Forbidden, InvalidInput
from partnerflow.core.money import Money
from partnerflow.payouts.batches import (
    HeldLine,
    Payable,
    Payee,
    Period,
    build_batch,
    mark_paid,
)
from partnerflow.payouts.exports import generic_csv, paypal_csv
from partnerflow.payouts.statements import statement

JAN = Period(date(2024, 1, 1), date(2024, 1, 31))
PAID_AT = datetime(2024, 2, 5, tzinfo=UTC)
MINIMUMS = {"EUR": Money.of("50", "EUR"), "USD": Money.of("100", "USD")}


def eur(x) -> Money:
    return Money.of(str(x), "EUR")


def payees(**statuses):
    base = {
        1: Payee(1, "active", "Ann", "ann@example.com"),
        2: Payee(2, "active", "=cmd()", "bob@example.com"),
        3: Payee(3, "active", "Cy", None),
    }
    for key, status in statuses.items():
        pid = int(key[1:])
        base[pid] = Payee(pid, status, base[pid].name, base[pid].payout_email)
    return base


def test_batch_pays_balances_over_the_minimum_and_holds_the_rest_with_reasons():
    batch = build_batch(
        1,
        JAN,
        [
            Payable(1, eur("120.50")),
            Payable(2, eur("49.99")),
            Payable(3, eur(-20)),
            Payable(4, eur(80)),
            Payable(5, Money.of("100", "USD")),
        ],
        {**payees(), 5: Payee(5, "active", "Eve", "eve@example.com")},
        MINIMUMS,
    )
    assert [(x.partner_id, x.amount) for x in batch.lines] == [
        (1, eur("120.50")),
        (5, Money.of("100", "USD")),
    ]
    assert batch.held == (
        HeldLine(2, eur("49.99"), "below the minimum payout of 50.00 EUR"),
        HeldLine(3, eur(-20), "negative balance (clawback) carried forward"),
        HeldLine(4, eur(80), "unknown partner"),
    )
    assert batch.lines[0].key == f"{batch.id}:1"
    assert batch.totals() == {"EUR": eur("120.50"), "USD": Money.of("100", "USD")}


def test_suspended_partners_are_held_and_a_batch_with_one_cannot_be_paid():
    batch = build_batch(1, JAN, [Payable(1, eur(60))], payees(p1="suspended"), MINIMUMS)
    assert batch.lines == ()
    assert batch.held[0].reason == "partner is suspended"
    ready = build_batch(1, JAN, [Payable(1, eur(60))], payees(), MINIMUMS)
    with pytest.raises(Forbidden, match="partner 1 is suspended"):
        mark_paid(ready, payees(p1="suspended"), set(), PAID_AT)


def test_batch_ids_are_stable_and_a_batch_is_paid_once():
    a = build_batch(1, JAN, [Payable(1, eur(60))], payees(), MINIMUMS)
    b = build_batch(1, JAN, [Payable(1, eur(60))], payees(), MINIMUMS)
    assert a.id == b.id
    postings = mark_paid(a, payees(), set(), PAID_AT)
    assert [(p.partner_id, p.amount, p.key) for p in postings] == [(1, eur(60), f"{a.id}:1")]
    with pytest.raises(Conflict):
        mark_paid(a, payees(), {a.id}, PAID_AT)


def test_marking_paid_writes_ledger_entries_and_the_next_batch_has_nothing_left():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ledger = accrue(
        [], program_id=1, partner_id=1, conversion_id=1, amount=eur(75), at=t0, reason="cps"
    )
    ledger += approve_due(ledger, t0 + timedelta(days=14), 14)
    payable = [Payable(pid, b.approved) for (pid, _), b in balances(ledger).items()]
    batch = build_batch(1, JAN, payable, payees(), MINIMUMS)
    ledger += record_payments(ledger, mark_paid(batch, payees(), set(), PAID_AT), 1, PAID_AT)
    assert balances(ledger)[(1, "EUR")].paid == eur(75)
    # Re-recording the same postings is refused by the ledger too.
    with pytest.raises(Conflict):
        record_payments(ledger, mark_paid(batch, payees(), set(), PAID_AT), 1, PAID_AT)
    again = build_batch(
        1, JAN, [Payable(1, balances(ledger)[(1, "EUR")].approved)], payees(), MINIMUMS
    )
    assert again.lines == ()


def test_empty_batches_cannot_be_paid():
    empty = build_batch(1, JAN, [], payees(), MINIMUMS)
    with pytest.raises(InvalidInput):
        mark_paid(empty, payees(), set(), PAID_AT)


def test_generic_csv_lists_every_line_and_neutralises_formulas():
    batch = build_batch(1, JAN, [Payable(1, eur("60.5")), Payable(2, eur(70))], payees(), MINIMUMS)
    text = generic_csv(batch, payees())
    assert text.splitlines() == [
        "batch_id,period_start,period_end,partner_id,partner_name,payout_email,amount,"
        "currency,payment_key",
        f"{batch.id},2024-01-01,2024-01-31,1,Ann,ann@example.com,60.50,EUR,{batch.id}:1",
        f"{batch.id},2024-01-01,2024-01-31,2,'=cmd(),bob@example.com,70.00,EUR,{batch.id}:2",
    ]


def test_paypal_csv_has_one_currency_and_needs_an_email():
    batch = build_batch(
        1, JAN, [Payable(1, eur(60)), Payable(2, Money.of("150", "USD"))], payees(), MINIMUMS
    )
    assert paypal_csv(batch, payees(), "EUR") == (
        "ann@example.com,60.00,EUR,partner-1,Commission 2024-01-01..2024-01-31\n"
    )
    no_email = build_batch(1, JAN, [Payable(3, eur(60))], payees(), MINIMUMS)
    with pytest.raises(InvalidInput, match="no PayPal e-mail"):
        paypal_csv(no_email, payees(), "EUR")


def test_statement_shows_opening_movements_and_closing_balance():
    dec = datetime(2023, 12, 1, tzinfo=UTC)
    ledger = accrue(
        [],
        program_id=1,
        partner_id=1,
        conversion_id=1,
        amount=eur(30),
        at=dec,
        reason="cps 10% of 300",
    )
    ledger += approve_due(ledger, dec + timedelta(days=14), 14)  # approved in December
    ledger += accrue(
        ledger,
        program_id=1,
        partner_id=1,
        conversion_id=2,
        amount=eur(20),
        at=datetime(2024, 1, 2, tzinfo=UTC),
        reason="cps",
    )
    ledger += approve_due(ledger, datetime(2024, 1, 20, tzinfo=UTC), 14)
    ledger += reverse(ledger, 1, datetime(2024, 1, 21, tzinfo=UTC), "refund of order A-1")
    ledger += adjust(
        ledger,
        program_id=1,
        partner_id=1,
        amount=eur(5),
        reason="goodwill",
        author="ann",
        at=datetime(2024, 1, 22, tzinfo=UTC),
        key="g1",
    )
    ledger += accrue(
        ledger,
        program_id=1,
        partner_id=1,
        conversion_id=3,
        amount=eur(9),
        at=datetime(2024, 1, 30, tzinfo=UTC),
        reason="cps",
    )
    s = statement(1, JAN, "EUR", ledger)
    assert s.opening == eur(30)
    assert [(x.kind, x.amount, x.balance) for x in s.lines] == [
        ("approval", eur(20), eur(50)),
        ("reversal", eur(-30), eur(20)),
        ("adjustment", eur(5), eur(25)),
    ]
    assert s.lines[2].description == "goodwill by ann"
    assert s.closing == eur(25)
    assert s.pending == eur(9)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.decimals(min_value=0, max_value=500, places=2)),
        max_size=20,
    ),
    st.lists(st.integers(0, 3), max_size=6),
)
def test_nothing_is_paid_twice_across_repeated_payout_runs(commissions, runs):
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ledger: list = []
    for i, (partner, amount) in enumerate(commissions):
        ledger += accrue(
            ledger,
            program_id=1,
            partner_id=partner,
            conversion_id=i,
            amount=eur(amount),
            at=t0,
            reason="r",
        )
    ledger += approve_due(ledger, t0 + timedelta(days=30), 30)
    everyone = {p: Payee(p, "active", f"P{p}", f"p{p}@example.com") for p in range(1, 5)}
    paid_batches: set[str] = set()
    for offset in runs:
        payable = [Payable(pid, b.approved) for (pid, _), b in balances(ledger).items()]
        batch = build_batch(1, JAN, payable, everyone, {"EUR": eur(offset * 100)})
        try:
            postings = mark_paid(batch, everyone, paid_batches, PAID_AT)
        except (Conflict, InvalidInput):
            continue
        ledger += record_payments(ledger, postings, 1, PAID_AT)
        paid_batches.add(batch.id)
    for (pid, _), b in balances(ledger).items():
        earned = sum((a for p, a in commissions if p == pid), start=0)
        assert b.paid.amount + b.approved.amount == earned
        assert 0 <= b.paid.amount <= earned
