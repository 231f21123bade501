"""The two refund paths take back the same money, to the cent.

A refund or chargeback reaches the ledger two ways: through the tracker's writer
(`tracking.postbacks.reversal_for`, integer micro-units, for `/postback?event=refund`) and
through `commissions.ledger.reverse` (`Money`, for `partnerflow commissions reverse`, the
REST API and the shop webhooks). Both promise the same rule — commission × refund ÷ order,
rounded half-up to the currency's minor unit, and the refund that completes the order takes
back whatever still stands — so the same sequence of refunds must reverse the same amounts
on either path, step by step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.commissions.ledger import accrue, conversion_total, reverse
from partnerflow.core.errors import Conflict
from partnerflow.core.money import MINOR_UNITS, Money
from partnerflow.tracking.postbacks import reversal_for

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MICROS = 1_000_000


def _money(minor: int, currency: str) -> Money:
    return Money(Decimal(minor).scaleb(-MINOR_UNITS[currency]), currency)


def _micros(minor: int, currency: str) -> int:
    return minor * 10 ** (6 - MINOR_UNITS[currency])


@settings(max_examples=400, deadline=None)
@given(
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
    order=st.integers(1, 10**9),
    commission=st.integers(1, 10**8),
    cuts=st.lists(st.integers(1, 1000), min_size=1, max_size=6),
    rest=st.booleans(),
)
def test_the_tracker_and_the_ledger_reverse_the_same_amounts(
    currency: str, order: int, commission: int, cuts: list[int], rest: bool
) -> None:
    """Orders and commissions in minor units of the currency (cents, yen, fils); each cut
    refunds that many thousandths of the order, capped at what is left; `rest` ends with a
    refund without amount (the rest of the order)."""
    minor = MINOR_UNITS[currency]
    ledger = accrue(
        [], program_id=1, partner_id=1, conversion_id=7,
        amount=_money(commission, currency), at=T0, reason="test",
    )  # fmt: skip
    standing = _micros(commission, currency)  # the tracker's view: net micros in `pending`
    refunded = 0  # minor units of the order refunded so far
    steps: list[int | None] = [min(order * cut // 1000, order) for cut in cuts]
    if rest:
        steps.append(None)
    for step in steps:
        if refunded >= order:
            break
        amount = None if step is None else min(step, order - refunded)
        if amount == 0:
            continue
        tracker = reversal_for(
            _micros(order, currency),
            _micros(refunded, currency),
            None if amount is None else _micros(amount, currency),
            _micros(commission, currency),
            {"pending": standing},
            minor,
        )
        taken_by_tracker = -sum(m for _, m in tracker.entries)
        partial = {} if amount is None else {
            "refund": _money(amount, currency), "order_total": _money(order, currency)
        }  # fmt: skip
        try:
            entries = reverse(ledger, 7, T0, "refund", **partial)
        except Conflict:  # nothing left to reverse: the tracker books no entry either
            entries = []
        taken_by_ledger = -sum(e.amount.to_micros() for e in entries)
        assert taken_by_tracker == taken_by_ledger, (step, refunded)
        ledger += entries
        standing -= taken_by_tracker
        refunded += order - refunded if amount is None else amount
        assert conversion_total(ledger, 7) * MICROS == standing
        assert standing >= 0
    if refunded >= order:
        assert standing == 0  # a fully refunded order leaves no cent of its commission
