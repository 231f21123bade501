"""Payout run: build the period's batch and, when asked, mark it paid.

Re-running is harmless: the same content gives the same batch id (found, not duplicated),
and a paid batch can never be paid again (the batch's open -> paid update happens once and
the ledger refuses a payment key it has seen).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from partnerflow.bootstrap import Services
from partnerflow.payouts.ports import StoredBatch
from partnerflow.payouts.services import build_payout, mark_batch_paid
from partnerflow.storage.payouts import SqlMoneyUnitOfWork


def run_payout(
    services: Services,
    program_id: int,
    period_end: date,
    *,
    minimums: Mapping[str, Decimal] | None = None,
    author: str = "system:payout-job",
    pay: bool = False,
) -> StoredBatch:
    """Build (or find) the batch up to `period_end`; with `pay`, record it as paid."""
    batch = build_payout(
        SqlMoneyUnitOfWork(services.engine, services.clock),
        services.clock,
        program_id=program_id,
        period_end=period_end,
        minimums=minimums,
        author=author,
    )
    if pay and batch.status == "open" and batch.batch.lines:
        return mark_batch_paid(
            SqlMoneyUnitOfWork(services.engine, services.clock),
            services.clock,
            batch.batch.id,
            author=author,
        ).batch
    return batch
