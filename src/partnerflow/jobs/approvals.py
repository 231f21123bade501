"""Approval job: pending commissions whose lock period is over become approved.

Idempotent and safe to re-run (or to run from two schedulers at once): an approved
conversion has nothing pending left, and the ledger's unique `approval:<id>` key makes the
database refuse a racing duplicate. Held conversions — the `held` list handed in (fraud
review, cap holds) and every conversion flagged by the tracker — stay pending.
"""

from __future__ import annotations

from collections.abc import Collection

from partnerflow.bootstrap import Services
from partnerflow.commissions.services import ApprovalRun, approve_commissions


def run_approvals(
    services: Services, program_id: int | None = None, held: Collection[int] = ()
) -> list[ApprovalRun]:
    """Approve due commissions of one program, or of every program (one transaction each)."""
    if program_id is None:
        with services.money_uow() as uow:
            ids = [p.id for p in uow.facts.programs()]
    else:
        ids = [program_id]
    return [
        approve_commissions(services.money_uow(),
                            services.clock, pid, held)
        for pid in ids
    ]  # fmt: skip
