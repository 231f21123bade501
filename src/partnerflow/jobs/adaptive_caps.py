"""Adaptive caps job: recompute every adaptive partner x offer cap of a program.

Run it daily (cron: `partnerflow caps recompute --program SLUG`) or on demand. Safe to
re-run: each cap is evaluated once per run key (default: the program-local date), so a
second run the same day changes, stores and announces nothing.

Each change publishes `cap.changed` and queues a `cap_notices` row in the same transaction;
`jobs.notices` turns the queued notices into portal inbox messages and e-mails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import select

from partnerflow.bootstrap import Services
from partnerflow.caps.services import AdaptiveOutcome, recompute_caps, resolve_program
from partnerflow.core.ids import PartnerId
from partnerflow.storage import tables as t
from partnerflow.storage.caps import SqlCapsUnitOfWork

QualitySource = Mapping[int, int] | Callable[[PartnerId], int | None]


def run(
    services: Services,
    program_ref: str,
    *,
    quality: QualitySource | None = None,
    window_days: int = 14,
    run_key: str | None = None,
    actor: str = "adaptive-caps",
) -> list[AdaptiveOutcome]:
    """`quality` gives each partner's traffic-quality score (0-100), e.g. from
    `partnerflow.fraud.scoring.score_partner_quality(...).score`; None counts as neutral."""
    uow = SqlCapsUnitOfWork(services.engine, services.clock)
    program = resolve_program(uow, program_ref)
    return recompute_caps(
        uow,
        services.clock,
        program.id,
        quality=quality,
        window_days=window_days,
        run_key=run_key,
        actor=actor,
    )


def run_all(services: Services, *, window_days: int = 14) -> list[AdaptiveOutcome]:
    """Every program (the scheduler's entry point); idempotent per program-local day."""
    with services.engine.connect() as conn:
        slugs = [
            row.slug for row in conn.execute(select(t.programs.c.slug).order_by(t.programs.c.id))
        ]
    out: list[AdaptiveOutcome] = []
    for slug in slugs:
        out += run(services, slug, window_days=window_days)
    return out
