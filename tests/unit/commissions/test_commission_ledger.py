import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.commissions.ledger import (
    Balance,
    accrue,
    adjust,
    approve_due,
    balances,
    conversion_total,
    record_payments,
    reverse,
)
from partnerflow.commissions.model import EntryKind, LedgerBucket
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.money import Money

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def eur(x) -> Money:
    return Money.of(str(x), "EUR")


@dataclass(frozen=True)
class Pay:
    partner_id: int
    amount: Money
    key: str


def book(entries, conversion_id, amount, partner=1, at=T0):
    return entries + accrue(
        entries,
        program_id=1,
        partner_id=partner,
        conversion_id=conversion_id,
        amount=eur(amount),
        at=at,
        reason="cps 10%",
    )


def bal(entries, partner=1):
    return balances(entries)[(partner, "EUR")]


def test_commission_is_pending_then_approved_after_the_lock_period():
    ledger = book([], 1, "12.345")  # rounded half-up when written
    assert bal(ledger) == Balance(eur("12.35"), eur(0), eur(0))
    assert approve_due(ledger, T0 + timedelta(days=29), 30) == []
    approval = approve_due(ledger, T0 + timedelta(days=30), 30)
    assert [(e.bucket, e.amount) for e in approval] == [
        (LedgerBucket.PENDING, eur("-12.35")),
        (LedgerBucket.APPROVED, eur("12.35")),
    ]
    assert {e.txn_id for e in approval} == {"approval:1"}
    ledger += approval
    assert bal(ledger) == Balance(eur(0), eur("12.35"), eur(0))
    assert approve_due(ledger, T0 + timedelta(days=60), 30) == []


def test_held_conversions_stay_pending():
    ledger = book([], 1, 10)
    assert approve_due(ledger, T0 + timedelta(days=90), 30, held={1}) == []


def test_accruing_twice_for_one_conversion_is_refused():
    ledger = book([], 1, 10)
    with pytest.raises(Conflict):
        book(ledger, 1, 10)


def test_full_reversal_cancels_pending_commission_exactly():
    ledger = book([], 1, "9.99")
    ledger += reverse(ledger, 1, T0, "refund")
    assert conversion_total(ledger, 1) == 0
    assert bal(ledger) == Balance(eur(0), eur(0), eur(0))
    with pytest.raises(Conflict):
        reverse(ledger, 1, T0, "refund")


def test_refund_after_payout_carries_a_negative_approved_balance_forward():
    ledger = book([], 1, 40)
    ledger += approve_due(ledger, T0 + timedelta(days=30), 30)
    ledger += record_payments(ledger, [Pay(1, eur(40), "b1:1")], 1, T0 + timedelta(days=31))
    ledger += reverse(ledger, 1, T0 + timedelta(days=40), "chargeback")
    assert bal(ledger) == Balance(eur(0), eur(-40), eur(40))
    # The next commission nets the clawback off.
    ledger = book(ledger, 2, 100, at=T0 + timedelta(days=41))
    ledger += approve_due(ledger, T0 + timedelta(days=80), 30)
    assert bal(ledger).approved == eur(60)


def test_partial_refunds_reverse_proportionally_and_never_leave_a_cent():
    order = eur(30)
    ledger = book([], 1, 10)  # 10 EUR commission on a 30 EUR order
    ledger += reverse(ledger, 1, T0, "partial refund", refund=eur(10), order_total=order)
    assert conversion_total(ledger, 1) == Decimal("6.67")
    ledger += reverse(ledger, 1, T0, "partial refund", refund=eur(10), order_total=order)
    assert conversion_total(ledger, 1) == Decimal("3.34")
    ledger += reverse(ledger, 1, T0, "last refund", refund=eur(10), order_total=order)
    assert conversion_total(ledger, 1) == 0


def test_refund_larger_than_the_order_is_refused():
    ledger = book([], 1, 10)
    ledger += reverse(ledger, 1, T0, "refund", refund=eur(20), order_total=eur(30))
    with pytest.raises(InvalidInput, match="exceeds what is left of the order"):
        reverse(ledger, 1, T0, "refund", refund=eur("10.01"), order_total=eur(30))


def test_adjustments_need_a_reason_and_an_author_and_are_idempotent():
    kw = {"program_id": 1, "partner_id": 1, "amount": eur(5), "at": T0, "key": "k1"}
    with pytest.raises(InvalidInput, match="reason"):
        adjust([], reason=" ", author="ann", **kw)
    with pytest.raises(InvalidInput, match="author"):
        adjust([], reason="goodwill", author="", **kw)
    ledger = adjust([], reason="goodwill", author="ann", **kw)
    assert (ledger[0].kind, ledger[0].bucket, ledger[0].author) == (
        EntryKind.ADJUSTMENT,
        LedgerBucket.APPROVED,
        "ann",
    )
    with pytest.raises(Conflict):
        adjust(ledger, reason="goodwill", author="ann", **kw)


@pytest.mark.parametrize("amount", ["0.004", "10.005", "-0.001"])
def test_adjustments_finer_than_the_currency_are_refused_not_rounded(amount: str) -> None:
    """0.004 EUR was booked as a 0.00 adjustment (past the zero check), 10.005 as 10.01."""
    with pytest.raises(InvalidInput, match="more decimal places than EUR allows"):
        adjust([], program_id=1, partner_id=1, amount=eur(amount), at=T0, key="k",
               reason="goodwill", author="ann")  # fmt: skip
    [entry] = adjust([], program_id=1, partner_id=1, amount=eur("10.50"), at=T0, key="k",
                     reason="goodwill", author="ann")  # fmt: skip
    assert entry.amount == eur("10.50")


def test_payments_are_refused_twice_and_above_the_approved_balance():
    ledger = book([], 1, 50)
    ledger += approve_due(ledger, T0 + timedelta(days=30), 30)
    with pytest.raises(InvalidInput, match="exceeds the approved balance"):
        record_payments(ledger, [Pay(1, eur(30), "a"), Pay(1, eur(30), "b")], 1, T0)
    ledger += record_payments(ledger, [Pay(1, eur(50), "a")], 1, T0)
    with pytest.raises(Conflict):
        record_payments(ledger, [Pay(1, eur(0.01), "a")], 1, T0)


def test_a_partner_stays_in_one_currency():
    ledger = book([], 1, 50)
    with pytest.raises(InvalidInput, match="convert"):
        accrue(
            ledger,
            program_id=1,
            partner_id=1,
            conversion_id=2,
            amount=Money.of("1", "USD"),
            at=T0,
            reason="x",
        )


# -- properties ---------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10_000, places=2)
ops = st.lists(
    st.tuples(
        st.sampled_from(["accrue", "approve", "reverse", "partial", "pay", "adjust"]),
        st.integers(1, 6),  # conversion id
        amounts,
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_ledger_sums_match_and_nothing_is_paid_twice(operations):
    ledger: list = []
    day = 0
    paid_keys: list[str] = []
    for i, (op, conv, amount) in enumerate(operations):
        day += 7
        now = T0 + timedelta(days=day)
        partner = conv % 2 + 1
        try:
            if op == "accrue":
                new = accrue(
                    ledger,
                    program_id=1,
                    partner_id=partner,
                    conversion_id=conv,
                    amount=eur(amount),
                    at=now,
                    reason="r",
                )
            elif op == "approve":
                new = approve_due(ledger, now, 14)
            elif op == "reverse":
                new = reverse(ledger, conv, now, "refund")
            elif op == "partial":
                new = reverse(
                    ledger, conv, now, "refund", refund=eur(amount), order_total=eur(10_000)
                )
            elif op == "pay":
                key = f"k{conv % 3}"
                approved = balances(ledger).get((partner, "EUR"))
                amt = approved.approved if approved else eur(0)
                new = record_payments(ledger, [Pay(partner, amt, key)], 1, now)
                paid_keys.append(key)
            else:
                new = adjust(
                    ledger,
                    program_id=1,
                    partner_id=partner,
                    amount=eur(amount),
                    reason="fix",
                    author="ann",
                    at=now,
                    key=str(i),
                )
        except (InvalidInput, Conflict):
            continue
        # Every bucket move nets to zero within its transaction.
        by_txn: dict[str, Decimal] = {}
        for e in new:
            by_txn[e.txn_id] = by_txn.get(e.txn_id, Decimal(0)) + e.amount.amount
        for txn, total in by_txn.items():
            if txn.startswith(("approval:", "payment:")):
                assert total == 0
        ledger += new
    # Derived balances equal the sum of all entries, bucket by bucket.
    for (partner, _), b in balances(ledger).items():
        mine = [e for e in ledger if e.partner_id == partner]
        assert b.earned.amount == sum((e.amount.amount for e in mine), Decimal(0))
        paid = sum((e.amount.amount for e in mine if e.bucket is LedgerBucket.PAID), Decimal(0))
        assert b.paid.amount == paid >= 0
        assert b.pending.amount >= 0
    payment_txns = [e.txn_id for e in ledger if e.kind is EntryKind.PAYMENT and e.amount.amount > 0]
    assert len(payment_txns) == len(set(payment_txns))
    # No conversion has more reversed than was accrued.
    for conv in {e.conversion_id for e in ledger if e.conversion_id is not None}:
        assert conversion_total(ledger, conv) >= 0


@settings(max_examples=150, deadline=None)
@given(amounts, st.booleans(), st.booleans(), st.lists(amounts, max_size=3))
def test_a_reversal_exactly_cancels_its_entry(amount, approve, pay, partials):
    ledger = book([], 7, amount)
    for p in partials:
        with contextlib.suppress(InvalidInput, Conflict):
            ledger += reverse(ledger, 7, T0, "r", refund=eur(p), order_total=eur(20_000))
    if approve:
        ledger += approve_due(ledger, T0 + timedelta(days=30), 30)
    approved = bal(ledger).approved
    if pay and approved.amount > 0:
        ledger += record_payments(ledger, [Pay(1, approved, "p")], 1, T0 + timedelta(days=31))
    if conversion_total(ledger, 7) > 0:
        ledger += reverse(ledger, 7, T0 + timedelta(days=40), "chargeback")
    assert conversion_total(ledger, 7) == 0
    b = bal(ledger)
    # Whatever was paid stays paid; a clawback shows as the matching negative approved.
    assert b.pending == eur(0)
    assert b.approved.amount == -b.paid.amount
