"""Payout batches: who gets paid how much for a period, and marking a batch paid."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from partnerflow.core.clock import ensure_utc
from partnerflow.core.errors import Conflict, Forbidden, InvalidInput
from partnerflow.core.money import Money

# Partner statuses (as in partners.model.PartnerStatus) that must never receive money.
BLOCKED_STATUSES = frozenset({"suspended", "banned", "rejected"})


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidInput("period end is before its start", field="period")

    def label(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True, slots=True)
class Payable:
    """A partner's approved balance in one currency (from the ledger's balances)."""

    partner_id: int
    amount: Money


@dataclass(frozen=True, slots=True)
class Payee:
    partner_id: int
    status: str
    name: str = ""
    payout_email: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutLine:
    partner_id: int
    amount: Money
    # Idempotency key of this partner's payment: "<batch id>:<partner id>", with
    # ":<currency>" appended when the partner has lines in several currencies.
    key: str


@dataclass(frozen=True, slots=True)
class HeldLine:
    partner_id: int
    amount: Money
    reason: str


@dataclass(frozen=True, slots=True)
class PayoutBatch:
    id: str
    program_id: int
    period: Period
    lines: tuple[PayoutLine, ...]
    held: tuple[HeldLine, ...]

    def totals(self) -> dict[str, Money]:
        out: dict[str, Money] = {}
        for line in self.lines:
            cur = line.amount.currency
            out[cur] = out.get(cur, Money.zero(cur)) + line.amount
        return out


@dataclass(frozen=True, slots=True)
class PaymentPosting:
    """One payment for the ledger to record (shape of `commissions.ledger.PaymentOrder`)."""

    partner_id: int
    amount: Money
    key: str
    batch_id: str


def _batch_id(program_id: int, period: Period, lines: Iterable[tuple[int, Money]]) -> str:
    # Content-derived: the same program, period and amounts give the same id, so a re-run
    # of the payout job recognises a batch that was already paid.
    text = f"{program_id}|{period.label()}|" + "|".join(
        f"{pid}:{m.amount}:{m.currency}" for pid, m in lines
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"po-{program_id}-{period.end.strftime('%Y%m%d')}-{digest}"


def build_batch(
    program_id: int,
    period: Period,
    payables: Iterable[Payable],
    payees: Mapping[int, Payee],
    minimums: Mapping[str, Money],
) -> PayoutBatch:
    """Lines for every approved balance that may be paid; everything else held with a reason.

    A currency without a configured minimum pays any positive balance. Negative balances
    (clawbacks) and balances below the minimum are carried forward to the next period.
    """
    lines: list[tuple[int, Money]] = []
    held: list[HeldLine] = []
    for p in sorted(payables, key=lambda x: (x.amount.currency, x.partner_id)):
        amount = p.amount.rounded()
        payee = payees.get(p.partner_id)
        minimum = minimums.get(amount.currency)
        if minimum is not None and minimum.currency != amount.currency:
            raise InvalidInput("minimum payout is keyed by the wrong currency", field="minimums")
        if payee is None:
            held.append(HeldLine(p.partner_id, amount, "unknown partner"))
        elif payee.status in BLOCKED_STATUSES:
            held.append(HeldLine(p.partner_id, amount, f"partner is {payee.status}"))
        elif amount.amount <= 0:
            why = (
                "negative balance (clawback) carried forward"
                if amount.amount < 0
                else "nothing due"
            )
            held.append(HeldLine(p.partner_id, amount, why))
        elif minimum is not None and amount < minimum:
            held.append(
                HeldLine(p.partner_id, amount, f"below the minimum payout of {minimum.format()}")
            )
        else:
            lines.append((p.partner_id, amount))
    batch_id = _batch_id(program_id, period, lines)
    # A partner paid in two currencies (e.g. an offer's flat amount in another currency)
    # has one line per currency, and each needs its own payment key.
    per_partner: dict[int, int] = {}
    for pid, _ in lines:
        per_partner[pid] = per_partner.get(pid, 0) + 1
    return PayoutBatch(
        batch_id,
        program_id,
        period,
        tuple(
            PayoutLine(pid, m, _payment_key(batch_id, pid, m, per_partner[pid] > 1))
            for pid, m in lines
        ),
        tuple(held),
    )


def _payment_key(batch_id: str, partner_id: int, amount: Money, several: bool) -> str:
    key = f"{batch_id}:{partner_id}"
    return f"{key}:{amount.currency}" if several else key


def mark_paid(
    batch: PayoutBatch,
    payees: Mapping[int, Payee],
    paid_batch_ids: Collection[str],
    paid_at: datetime,
) -> tuple[PaymentPosting, ...]:
    """The ledger postings for paying `batch`; refuses (producing nothing) when the batch
    was already paid or any of its partners is now suspended/banned or unknown."""
    ensure_utc(paid_at)
    if batch.id in paid_batch_ids:
        raise Conflict(f"payout batch {batch.id} was already paid", field="batch")
    if not batch.lines:
        raise InvalidInput(f"payout batch {batch.id} has nothing to pay", field="batch")
    for line in batch.lines:
        payee = payees.get(line.partner_id)
        if payee is None or payee.status in BLOCKED_STATUSES:
            status = payee.status if payee else "unknown"
            raise Forbidden(
                f"partner {line.partner_id} is {status}: remove them from batch {batch.id} "
                f"(rebuild it) before paying",
                field="partner",
            )
    return tuple(PaymentPosting(x.partner_id, x.amount, x.key, batch.id) for x in batch.lines)
