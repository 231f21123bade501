"""The commission ledger as pure functions over an append-only list of entries.

Every function takes the entries written so far and returns the *new* entries to append;
nothing is ever updated or deleted, and a refusal raises before anything is returned, so a
caller that appends only on success writes nothing on bad input.

Each entry moves a signed amount into one bucket (pending, approved, paid). Moves between
buckets are two entries sharing a `txn_id` whose amounts sum to zero (an approval is
-pending +approved; a payment is -approved +paid). A refund or chargeback is a reversal that
takes the conversion's commission back out of the bucket it sits in; once approved (paid or
not) it comes out of `approved`, so a refund after payout leaves a negative approved
balance that the next payouts net off — the clawback carried forward. Balances are always
derived by summing; there is no stored total to drift.

Transaction ids are derived from what they record (`commission:<conversion>`,
`payment:<key>` …) so replaying the same command is detected as a duplicate instead of
paying or accruing twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from partnerflow.commissions.model import EntryKind, LedgerBucket
from partnerflow.core.clock import ensure_utc
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.money import Money, check_minor_units

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Entry:
    """One signed movement of money into a bucket.

    `refund` is set on reversals caused by a (possibly partial) refund: the order amount
    refunded, so later refunds can be checked against the order total.
    """

    txn_id: str
    program_id: int
    partner_id: int
    conversion_id: int | None
    kind: EntryKind
    bucket: LedgerBucket
    amount: Money
    reason: str
    author: str
    created_at: datetime
    refund: Money | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    pending: Money
    approved: Money
    paid: Money

    @property
    def earned(self) -> Money:
        """Everything still owed or already paid: pending + approved + paid."""
        return self.pending + self.approved + self.paid


class PaymentOrder(Protocol):
    """What a payout run hands the ledger (payouts' `PaymentPosting` has this shape)."""

    @property
    def partner_id(self) -> int: ...

    @property
    def amount(self) -> Money: ...

    @property
    def key(self) -> str: ...


def _same_currency(entries: Iterable[Entry], partner_id: int, currency: str) -> None:
    for e in entries:
        if e.partner_id == partner_id and e.amount.currency != currency:
            raise InvalidInput(
                f"partner {partner_id} is booked in {e.amount.currency}, not {currency}: "
                f"convert to the program currency first",
                field="amount",
            )


def _txn_ids(entries: Iterable[Entry]) -> set[str]:
    return {e.txn_id for e in entries}


def _conversion_entries(entries: Iterable[Entry], conversion_id: int) -> list[Entry]:
    return [e for e in entries if e.conversion_id == conversion_id]


def _sum(entries: Iterable[Entry], currency: str, bucket: LedgerBucket | None = None) -> Money:
    total = Money.zero(currency)
    for e in entries:
        if bucket is None or e.bucket is bucket:
            total = total + e.amount
    return total


def accrue(
    entries: Sequence[Entry],
    *,
    program_id: int,
    partner_id: int,
    conversion_id: int,
    amount: Money,
    at: datetime,
    reason: str,
    author: str = SYSTEM,
) -> list[Entry]:
    """A conversion's commission, pending until its lock period ends.

    `at` is the conversion time: the lock period counts from it. `reason` should be the
    commission explanation (plan version, rule, arithmetic) so the entry explains itself.
    """
    txn = f"commission:{conversion_id}"
    if txn in _txn_ids(entries):
        raise Conflict(f"conversion {conversion_id} already has a commission", field="conversion")
    if amount.amount < 0:
        raise InvalidInput("a commission must not be negative", field="amount")
    _same_currency(entries, partner_id, amount.currency)
    return [
        Entry(
            txn,
            program_id,
            partner_id,
            conversion_id,
            EntryKind.COMMISSION,
            LedgerBucket.PENDING,
            amount.rounded(),
            reason,
            author,
            ensure_utc(at),
        )
    ]


def _move(
    txn: str,
    source: Entry,
    kind: EntryKind,
    src: LedgerBucket,
    dst: LedgerBucket,
    amount: Money,
    reason: str,
    author: str,
    at: datetime,
    conversion_id: int | None,
) -> list[Entry]:
    common = (source.program_id, source.partner_id, conversion_id, kind)
    return [
        Entry(txn, *common, src, -amount, reason, author, at),
        Entry(txn, *common, dst, amount, reason, author, at),
    ]


def approve_due(
    entries: Sequence[Entry],
    now: datetime,
    lock_period_days: int,
    held: Collection[int] = (),
) -> list[Entry]:
    """Approve every pending commission whose lock period has ended.

    `held` lists conversion ids under a fraud or cap hold: they stay pending whatever
    their age. Re-running is harmless: an approved conversion has no pending balance left.
    """
    if lock_period_days < 0:
        raise InvalidInput("lock period must not be negative", field="lock_period_days")
    now = ensure_utc(now)
    lock = timedelta(days=lock_period_days)
    out: list[Entry] = []
    by_conversion: dict[int, list[Entry]] = {}
    for e in entries:
        if e.conversion_id is not None:
            by_conversion.setdefault(e.conversion_id, []).append(e)
    for conversion_id, conv_entries in by_conversion.items():
        commission = next((e for e in conv_entries if e.kind is EntryKind.COMMISSION), None)
        if commission is None or conversion_id in held or commission.created_at + lock > now:
            continue
        pending = _sum(conv_entries, commission.amount.currency, LedgerBucket.PENDING)
        if pending.amount <= 0:
            continue
        out += _move(
            f"approval:{conversion_id}",
            commission,
            EntryKind.APPROVAL,
            LedgerBucket.PENDING,
            LedgerBucket.APPROVED,
            pending,
            f"lock period of {lock_period_days} day(s) ended "
            f"{(commission.created_at + lock).isoformat()}",
            SYSTEM,
            now,
            conversion_id,
        )
    return out


def reverse(
    entries: Sequence[Entry],
    conversion_id: int,
    now: datetime,
    reason: str,
    author: str = SYSTEM,
    refund: Money | None = None,
    order_total: Money | None = None,
) -> list[Entry]:
    """Take a conversion's commission back (refund, chargeback, fraud).

    Without `refund` the whole remaining commission is reversed: afterwards the conversion's
    entries sum to exactly zero. With `refund` (part of `order_total`) the same fraction of
    the commission is reversed, rounded half-up; the refund that brings the refunded total
    to the order total reverses whatever remains, so partial refunds never leave a cent
    behind. Refunding more than the order is refused.
    """
    if not reason.strip():
        raise InvalidInput("a reversal needs a reason", field="reason")
    now = ensure_utc(now)
    mine = _conversion_entries(entries, conversion_id)
    commission = next((e for e in mine if e.kind is EntryKind.COMMISSION), None)
    if commission is None:
        raise InvalidInput(f"conversion {conversion_id} has no commission", field="conversion")
    currency = commission.amount.currency
    remaining = _sum(mine, currency)
    if remaining.amount <= 0:
        raise Conflict(f"conversion {conversion_id} has no commission left to reverse")
    if refund is None:
        to_reverse = remaining
    else:
        if order_total is None:
            raise InvalidInput("a partial refund needs the order total", field="order_total")
        if refund.currency != order_total.currency:
            raise InvalidInput("refund and order total currencies differ", field="refund")
        if refund.amount <= 0:
            raise InvalidInput("refund must be positive", field="refund")
        before = sum(
            (e.refund.amount for e in mine if e.refund is not None),
            Decimal(0),
        )
        refunded = before + refund.amount
        if refunded > order_total.amount:
            raise InvalidInput(
                f"refund of {refund.format()} exceeds what is left of the order "
                f"({Money(order_total.amount - before, order_total.currency).format()})",
                field="refund",
            )
        if refunded == order_total.amount:
            to_reverse = remaining
        else:
            share = commission.amount.amount * refund.amount / order_total.amount
            minor = Decimal(1).scaleb(-commission.amount.minor_units)
            to_reverse = Money(
                min(share.quantize(minor, ROUND_HALF_UP), remaining.amount), currency
            )
    seq = len({e.txn_id for e in mine if e.kind is EntryKind.REVERSAL}) + 1
    txn = f"reversal:{conversion_id}:{seq}"
    # Pending money goes first (it was never approved); the rest leaves `approved`, even if
    # it was already paid — that negative approved balance is the clawback.
    pending = max(_sum(mine, currency, LedgerBucket.PENDING).amount, Decimal(0))
    from_pending = min(pending, to_reverse.amount)
    parts = [
        (LedgerBucket.PENDING, from_pending),
        (LedgerBucket.APPROVED, to_reverse.amount - from_pending),
    ]
    moves = [(b, a) for b, a in parts if a > 0] or [parts[0] if pending > 0 else parts[1]]
    return [
        Entry(
            txn,
            commission.program_id,
            commission.partner_id,
            conversion_id,
            EntryKind.REVERSAL,
            bucket,
            Money(-amount, currency),
            reason,
            author,
            now,
            # The refund is recorded on the first entry only, so summing counts it once.
            refund if i == 0 else None,
        )
        for i, (bucket, amount) in enumerate(moves)
    ]


def adjust(
    entries: Sequence[Entry],
    *,
    program_id: int,
    partner_id: int,
    amount: Money,
    reason: str,
    author: str,
    at: datetime,
    key: str,
) -> list[Entry]:
    """A manual correction into `approved` (positive or negative), e.g. a goodwill bonus.

    People must say why and who: both are shown on the partner's statement. `key` makes
    the adjustment idempotent (a double-submitted form is refused, not booked twice).
    """
    if not reason.strip():
        raise InvalidInput("an adjustment needs a reason", field="reason")
    if not author.strip():
        raise InvalidInput("an adjustment needs an author", field="author")
    if amount.amount == 0:
        raise InvalidInput("an adjustment of zero changes nothing", field="amount")
    # Booked as given, never rounded: 0.004 EUR became a 0.00 entry (past the zero check)
    # and 10.005 silently 10.01.
    check_minor_units(amount.amount, amount.currency)
    txn = f"adjustment:{key}"
    if txn in _txn_ids(entries):
        raise Conflict(f"adjustment {key!r} was already booked", field="key")
    _same_currency(entries, partner_id, amount.currency)
    return [
        Entry(
            txn,
            program_id,
            partner_id,
            None,
            EntryKind.ADJUSTMENT,
            LedgerBucket.APPROVED,
            amount.rounded(),
            reason.strip(),
            author.strip(),
            ensure_utc(at),
        )
    ]


def record_payments(
    entries: Sequence[Entry], orders: Iterable[PaymentOrder], program_id: int, at: datetime
) -> list[Entry]:
    """Move paid amounts from approved to paid, all or nothing.

    Refuses a payment key already in the ledger (never paid twice), a non-positive amount
    and an amount above the partner's approved balance.
    """
    at = ensure_utc(at)
    seen = _txn_ids(entries)
    current = balances(entries)
    out: list[Entry] = []
    for order in orders:
        txn = f"payment:{order.key}"
        if txn in seen:
            raise Conflict(f"payment {order.key!r} was already recorded", field="key")
        seen.add(txn)
        if order.amount.amount <= 0:
            raise InvalidInput("a payment must be positive", field="amount")
        bal = current.get((order.partner_id, order.amount.currency))
        approved = bal.approved if bal else Money.zero(order.amount.currency)
        already = sum(
            (
                e.amount.amount
                for e in out
                if e.partner_id == order.partner_id
                and e.amount.currency == order.amount.currency
                and e.amount.amount > 0
            ),
            Decimal(0),
        )
        if order.amount.amount > approved.amount - already:
            raise InvalidInput(
                f"payment of {order.amount.format()} to partner {order.partner_id} exceeds "
                f"the approved balance {approved.format()}",
                field="amount",
            )
        common = (program_id, order.partner_id, None, EntryKind.PAYMENT)
        why = f"payout {order.key}"
        out.append(Entry(txn, *common, LedgerBucket.APPROVED, -order.amount, why, SYSTEM, at))
        out.append(Entry(txn, *common, LedgerBucket.PAID, order.amount, why, SYSTEM, at))
    return out


def balances(entries: Iterable[Entry]) -> dict[tuple[int, str], Balance]:
    """Pending / approved / paid per (partner, currency), derived by summing entries."""
    sums: dict[tuple[int, str], dict[LedgerBucket, Decimal]] = {}
    for e in entries:
        per = sums.setdefault(
            (e.partner_id, e.amount.currency), {b: Decimal(0) for b in LedgerBucket}
        )
        per[e.bucket] += e.amount.amount
    return {
        (pid, cur): Balance(
            Money(per[LedgerBucket.PENDING], cur),
            Money(per[LedgerBucket.APPROVED], cur),
            Money(per[LedgerBucket.PAID], cur),
        )
        for (pid, cur), per in sums.items()
    }


def conversion_total(entries: Iterable[Entry], conversion_id: int) -> Decimal:
    """Net commission still standing for a conversion (0 after a full reversal)."""
    return sum((e.amount.amount for e in entries if e.conversion_id == conversion_id), Decimal(0))
