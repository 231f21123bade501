"""Payout use cases: build a batch from the ledger, show statements, export, mark paid.

The composition `ledger.balances -> build_batch -> mark_paid -> ledger.record_payments`
runs here, each step in one unit of work. Marking a batch paid is one transaction: the
batch moves open -> paid by a conditional update (a concurrent second attempt finds it no
longer open and is refused), the payment entries are appended (the ledger's unique
`payment:<key>` refuses a replay) and a suspended partner refuses the whole batch before
anything is written.

Events: a newly stored batch publishes `payout.created`; paying it publishes one
`commission.paid` per payment and `payout.paid`, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from partnerflow.commissions import ledger as pure_ledger
from partnerflow.commissions.ledger import Entry
from partnerflow.commissions.model import EntryKind, LedgerBucket
from partnerflow.commissions.services import publish_commission
from partnerflow.core.clock import Clock
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.events import COMMISSION_PAID, PAYOUT_CREATED, PAYOUT_PAID, money_fields
from partnerflow.core.money import Money, check_currency, parse_amount
from partnerflow.core.text import display_text
from partnerflow.payouts.batches import Payable, Period, build_batch, mark_paid
from partnerflow.payouts.exports import generic_csv, paypal_csv
from partnerflow.payouts.ports import PayoutsUnitOfWork, StoredBatch
from partnerflow.payouts.statements import Statement, statement

# Below this approved balance a partner is carried forward to the next batch. Payment
# fees make tiny transfers wasteful; 50 in the currency's unit is a common default among
# affiliate platforms (configurable per currency with --minimum CUR=AMOUNT).
DEFAULT_MINIMUM = Decimal("50")


def parse_minimums(raw: list[str]) -> dict[str, Decimal]:
    """`["EUR=50", "USD=25"]` -> {"EUR": 50, "USD": 25}."""
    out: dict[str, Decimal] = {}
    for item in raw:
        cur, sep, amount = item.partition("=")
        if not sep:
            raise InvalidInput(f"--minimum must be CUR=AMOUNT, got {item[:30]!r}", field="minimum")
        code = check_currency(cur, field="minimum")
        if code in out:
            raise InvalidInput(f"--minimum for {code} given twice", field="minimum")
        out[code] = parse_amount(amount.strip(), field="minimum")
    return out


def _cutoff(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def payables(entries: list[Entry], period_end: date) -> list[Payable]:
    """Approved balances earned up to the end of `period_end`, net of every payment so far,
    and never more than the approved balance now (a later clawback lowers it)."""
    cutoff = _cutoff(period_end)
    as_of = pure_ledger.balances(
        e for e in entries if e.created_at < cutoff or e.kind is EntryKind.PAYMENT
    )
    now = pure_ledger.balances(entries)
    out = []
    for key, bal in sorted(as_of.items()):
        current = now[key].approved
        amount = bal.approved if bal.approved.amount <= current.amount else current
        out.append(Payable(key[0], amount))
    return out


def payout_payload(stored: StoredBatch) -> dict[str, Any]:
    """The `payout` object of payout events (see docs/webhooks.md)."""
    batch = stored.batch
    return {
        "id": batch.id,
        "program_id": batch.program_id,
        "period_start": batch.period.start.isoformat(),
        "period_end": batch.period.end.isoformat(),
        "status": stored.status,
        "lines": [
            {"partner_id": line.partner_id, **money_fields(line.amount), "payment_key": line.key}
            for line in batch.lines
        ],
        "held": [
            {"partner_id": h.partner_id, **money_fields(h.amount), "reason": h.reason}
            for h in batch.held
        ],
        "totals": [money_fields(m) for _, m in sorted(batch.totals().items())],
        "created_by": stored.created_by,
        "created_at": stored.created_at.isoformat(),
        "paid_by": stored.paid_by,
        "paid_at": stored.paid_at.isoformat() if stored.paid_at else None,
    }


def build_payout(
    uow: PayoutsUnitOfWork,
    clock: Clock,
    *,
    program_id: int,
    period_end: date,
    minimums: Mapping[str, Decimal] | None = None,
    author: str,
) -> StoredBatch:
    """Build (or find again) the batch paying approved balances up to `period_end`.

    The batch id is derived from its content, so building twice gives the same batch. A
    different open batch of the program is superseded: only the newest can be paid.
    """
    author = display_text(author, field="author")  # shown on the batch: "created by"
    now = clock.now()
    with uow:
        program = uow.facts.program(program_id)
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program")
        uow.ledger.lock_program(program_id)
        paid = [b for b in uow.payouts.list(program_id) if b.status == "paid"]
        last_end = max((b.batch.period.end for b in paid), default=None)
        if last_end is not None and period_end <= last_end:
            raise InvalidInput(
                f"a batch up to {last_end.isoformat()} was already paid: choose a later "
                f"--period-end",
                field="period_end",
            )
        entries = uow.ledger.entries(program_id=program_id)
        first = min((e.created_at.date() for e in entries), default=period_end)
        start = last_end + timedelta(days=1) if last_end else min(first, period_end)
        wanted = dict(minimums or {})
        currencies = {e.amount.currency for e in entries} | {program.currency}
        limits = {c: Money(wanted.get(c, DEFAULT_MINIMUM), c) for c in currencies}
        batch = build_batch(
            program_id,
            Period(start, period_end),
            payables(entries, period_end),
            uow.payees.payees(program_id),
            limits,
        )
        existing = uow.payouts.get(batch.id)
        if existing is not None and existing.status != "superseded":
            return existing
        uow.payouts.supersede_open(program_id)
        if existing is not None:
            # Built before, then superseded by a batch of other content: building it again
            # makes it the open batch again (it was refused by mark-paid for good).
            uow.payouts.reopen(batch.id)
            uow.audit.record(
                actor=author,
                action="payout_batch.reopened",
                entity_type="payout_batch",
                entity_id=batch.id,
                detail={"period": batch.period.label()},
            )
            return StoredBatch(existing.batch, "open", existing.created_by, existing.created_at)
        uow.payouts.add(batch, author, now)
        uow.audit.record(
            actor=author,
            action="payout_batch.built",
            entity_type="payout_batch",
            entity_id=batch.id,
            detail={
                "period": batch.period.label(),
                "lines": len(batch.lines),
                "held": len(batch.held),
                "totals": {c: str(m.amount) for c, m in batch.totals().items()},
            },
        )
        created = StoredBatch(batch, "open", author, now)
        uow.events.publish(
            PAYOUT_CREATED, {"payout": payout_payload(created)}, program_id=program_id
        )
    return created


def _stored_batch(uow: PayoutsUnitOfWork, batch_id: str) -> StoredBatch | None:
    # Batch ids are printable (`po-1-20260301-…`): one with a NUL names no batch, and
    # PostgreSQL cannot compare it (a DataError).
    return None if "\x00" in batch_id else uow.payouts.get(batch_id)


def get_batch(uow: PayoutsUnitOfWork, batch_id: str) -> StoredBatch:
    with uow:
        found = _stored_batch(uow, batch_id)
    if found is None:
        raise NotFound(f"payout batch {batch_id!r} not found", field="batch")
    return found


def list_batches(uow: PayoutsUnitOfWork, program_id: int | None = None) -> list[StoredBatch]:
    with uow:
        return uow.payouts.list(program_id)


@dataclass(frozen=True, slots=True)
class Paid:
    batch: StoredBatch
    entries: tuple[Entry, ...]

    def total(self) -> dict[str, Money]:
        return self.batch.batch.totals()


def mark_batch_paid(uow: PayoutsUnitOfWork, clock: Clock, batch_id: str, *, author: str) -> Paid:
    """Record the batch's payments in the ledger, once. Refused — nothing written — when the
    batch was already paid or superseded, or when one of its partners is now suspended."""
    author = display_text(author, field="author")
    now = clock.now()
    with uow:
        stored = _stored_batch(uow, batch_id)
        if stored is None:
            raise NotFound(f"payout batch {batch_id!r} not found", field="batch")
        uow.ledger.lock_program(stored.batch.program_id)
        # Read again under the lock: a concurrent build may have superseded it meanwhile.
        stored = _stored_batch(uow, batch_id)
        assert stored is not None
        if stored.status == "superseded":
            raise Conflict(
                f"payout batch {batch_id} was superseded by a newer batch: build it again"
            )
        batch = stored.batch
        paid_ids = uow.payouts.paid_ids(batch.program_id)
        postings = mark_paid(batch, uow.payees.payees(batch.program_id), paid_ids, now)
        entries = uow.ledger.entries(program_id=batch.program_id)
        new = pure_ledger.record_payments(entries, postings, batch.program_id, now)
        if not uow.payouts.mark_paid(batch_id, author, now):
            raise Conflict(f"payout batch {batch_id} was already paid", field="batch")
        uow.ledger.append_entries(new)
        uow.audit.record(
            actor=author,
            action="payout_batch.paid",
            entity_type="payout_batch",
            entity_id=batch_id,
            detail={"payments": len(postings)},
        )
        done = StoredBatch(batch, "paid", stored.created_by, stored.created_at, author, now)
        keys = {p.key: p for p in postings}
        for e in new:
            if e.bucket is LedgerBucket.PAID:
                posting = keys.get(e.txn_id.removeprefix("payment:"))
                publish_commission(
                    uow.events,
                    COMMISSION_PAID,
                    e,
                    e.amount,
                    batch_id=batch_id,
                    payment_key=posting.key if posting else None,
                )
        uow.events.publish(
            PAYOUT_PAID, {"payout": payout_payload(done)}, program_id=batch.program_id
        )
    return Paid(done, tuple(new))


def batch_statements(uow: PayoutsUnitOfWork, batch_id: str) -> list[Statement]:
    """A statement for every partner in the batch (paid or held), over the batch period."""
    with uow:
        stored = _stored_batch(uow, batch_id)
        if stored is None:
            raise NotFound(f"payout batch {batch_id!r} not found", field="batch")
        batch = stored.batch
        entries = uow.ledger.entries(program_id=batch.program_id)
    people = [(x.partner_id, x.amount.currency) for x in batch.lines]
    people += [(x.partner_id, x.amount.currency) for x in batch.held]
    return [statement(pid, batch.period, cur, entries) for pid, cur in sorted(set(people))]


def export_batch(
    uow: PayoutsUnitOfWork, batch_id: str, fmt: str, currency: str | None = None
) -> str:
    """The batch as a payment file. Re-exporting (also after payment) gives the same file."""
    with uow:
        stored = _stored_batch(uow, batch_id)
        if stored is None:
            raise NotFound(f"payout batch {batch_id!r} not found", field="batch")
        payees = uow.payees.payees(stored.batch.program_id)
        program = uow.facts.program(stored.batch.program_id)
    batch = stored.batch
    if fmt == "generic":
        return generic_csv(batch, payees)
    if fmt == "paypal":
        currencies = sorted(batch.totals())
        if currency is None:
            if len(currencies) > 1:
                raise InvalidInput(
                    f"PayPal files hold one currency; this batch has {', '.join(currencies)}: "
                    f"pass --currency",
                    field="currency",
                )
            currency = currencies[0] if currencies else (program.currency if program else "EUR")
        return paypal_csv(batch, payees, check_currency(currency))
    raise InvalidInput("--format must be generic or paypal", field="format")
