"""Notices job: automatic notices to partners when caps, commissions or terms change.

Notices are queued as rows of the per-partner notice queue (`cap_notices`: kind, ref,
partner, subject, text; unique on kind + ref + partner, so queueing twice is a no-op):

- `cap_changed` rows are queued by the adaptive-caps job with the change and its reason;
- `commission_changed` rows are queued here for every new commission plan revision, for the
  partners it concerns who existed when it was set;
- `terms_changed` rows are queued by `queue_terms_change` (CLI `partnerflow jobs
  notify-terms`).

`deliver` claims queued rows with a conditional UPDATE (queued -> delivered: only one runner
wins a row) and, in the same transaction, puts the notice in the partners' portal inbox and
queues the e-mail through the e-mail outbox (`storage.messages.send_notice`, which skips
unsubscribed partners). A row is therefore delivered once; the e-mail outbox then sends each
e-mail at most once (`jobs.outbox`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select, update

from partnerflow.bootstrap import Services
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.core.text import display_text
from partnerflow.messaging.audiences import Segment
from partnerflow.messaging.shoutouts import plan_change_text, queued_notice, terms_change_text
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage.caps import SqlCapNotices

#: Plan revisions older than this are not looked at again: a scheduler running every few
#: minutes has long queued their notices, and the scan stays bounded as plans accumulate.
PLAN_LOOKBACK = timedelta(days=7)
AUTHOR = "system:notice"


@dataclass(frozen=True)
class NoticeRun:
    queued: int  # notice rows queued by this run (plan changes)
    delivered: int  # notice rows delivered (inbox + e-mail queued)
    announcements: int


def _queue_all(
    conn: Connection,
    *,
    program_id: int,
    partners: Iterable[Row[Any]],
    kind: str,
    ref: str,
    subject: str,
    text: str,
    now: datetime,
) -> int:
    queue = SqlCapNotices(conn)
    return sum(
        queue.queue(
            program_id=ProgramId(program_id),
            partner_id=PartnerId(p.id),
            kind=kind,
            ref=ref,
            subject=subject,
            body=text,
            at=now,
        )
        for p in partners
    )


def queue_plan_changes(conn: Connection, now: datetime) -> int:
    """Queue a `commission_changed` notice for each recent plan revision, to the partners it
    concerns (the program's, or those working on the offer) who existed when it was set."""
    plans = t.commission_plans
    rows = conn.execute(
        select(plans, t.offers.c.name.label("offer_name"))
        .select_from(plans.outerjoin(t.offers, t.offers.c.id == plans.c.offer_id))
        .where(plans.c.created_at >= now - PLAN_LOOKBACK)
        .order_by(plans.c.id)
    ).all()
    queued = 0
    for plan in rows:
        segment = Segment(offer_ids=(plan.offer_id,) if plan.offer_id else ())
        partners = [
            p
            for p in msg.segment_partners(conn, plan.program_id, segment)
            if p.created_at <= plan.created_at
        ]
        scope = f"offer {plan.offer_name}" if plan.offer_id else "the program"
        subject, text = plan_change_text(scope, plan.revision, plan.plan_id)
        queued += _queue_all(
            conn,
            program_id=plan.program_id,
            partners=partners,
            kind="commission_changed",
            ref=f"plan:{plan.id}",
            subject=subject,
            text=text,
            now=now,
        )
    return queued


def queue_terms_change(
    conn: Connection, *, program_id: int, version: str, summary: str, now: datetime
) -> int:
    """Queue a `terms_changed` notice to the program's approved and active partners; once
    per program and version (a second call queues nothing)."""
    # Both are shown to partners (the subject names the version): display text.
    version = display_text(version, field="version", max_length=40)
    summary = display_text(summary, field="summary", max_length=5000, multiline=True)
    if conn.execute(select(t.programs.c.id).where(t.programs.c.id == program_id)).first() is None:
        raise NotFound(f"program {program_id} not found", field="program")
    subject, text = terms_change_text(version, summary)
    return _queue_all(
        conn,
        program_id=program_id,
        partners=msg.segment_partners(conn, program_id, Segment()),
        kind="terms_changed",
        ref=f"terms:{program_id}:{version}",
        subject=subject,
        text=text,
        now=now,
    )


def _claim(conn: Connection, row_id: int, now: datetime) -> bool:
    c = t.cap_notices.c
    done = conn.execute(
        update(t.cap_notices)
        .where(c.id == row_id, c.status == "queued")
        .values(status="delivered", delivered_at=now)
    )
    return done.rowcount == 1


def deliver(services: Services, *, limit: int = 200) -> tuple[int, int]:
    """Deliver queued notices: (rows delivered, announcements created). Rows with the same
    program, kind, ref and text become one announcement to all their partners."""
    clock = services.clock
    secret = services.settings.secret_key.get_secret_value()
    base_url = services.settings.public_base_url
    c = t.cap_notices.c
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(t.cap_notices).where(c.status == "queued").order_by(c.id).limit(limit)
        ).all()
        conn.rollback()
    groups: dict[tuple[int, str, str, str, str], list[Row[Any]]] = {}
    for row in rows:
        groups.setdefault((row.program_id, row.kind, row.ref, row.subject, row.body), []).append(
            row
        )
    delivered = announcements = 0
    for (program_id, _kind, _ref, subject, body), members in groups.items():
        # One transaction per notice: the claim, the inbox rows and the e-mails commit together.
        with services.engine.begin() as conn:
            now = clock.now()
            claimed = [r.partner_id for r in members if _claim(conn, r.id, now)]
            if not claimed:
                continue
            delivered += len(claimed)
            recipients = msg.segment_partners(conn, program_id, Segment(partner_ids=tuple(claimed)))
            if not recipients:
                continue  # no longer approved or active: nothing to tell
            msg.send_notice(
                conn,
                queued_notice(subject, body),
                program_id=program_id,
                partner_ids=tuple(claimed),
                now=now,
                secret=secret,
                base_url=base_url,
                author=AUTHOR,
            )
            announcements += 1
    return delivered, announcements


def run(services: Services, *, limit: int = 200) -> NoticeRun:
    """One pass: queue notices of recent plan changes, then deliver what is queued."""
    with services.engine.begin() as conn:
        queued = queue_plan_changes(conn, services.clock.now())
    delivered, announcements = deliver(services, limit=limit)
    return NoticeRun(queued, delivered, announcements)
