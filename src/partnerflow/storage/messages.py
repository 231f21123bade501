"""Communications storage: announcements to partner segments (portal inbox + e-mail outbox),
two-way partner/manager messages with unread counts, unsubscribes, the monthly shout-out and
automatic notices, and the sandboxed template renderer they share.

Templates are Jinja2 in a `SandboxedEnvironment` (a manager's template can't reach Python
internals) with `StrictUndefined` (a typo is an error at send time, not a blank in 500
e-mails). Bodies are plain text; the HTML version is the rendered text escaped and split into
paragraphs, so neither a manager's template nor a partner's name can inject markup into the
portal or a mail client. Rendering lives here, not in `messaging`, because capability
packages may not import jinja2, and the CLI, the API and the jobs all need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape
from sqlalchemy import Connection, Row, func, select, union, update

from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.ids import ProgramId
from partnerflow.messaging.audiences import (
    Segment,
    check_body,
    check_kind,
    check_subject,
    read_unsubscribe_token,
    unsubscribe_token,
)
from partnerflow.messaging.delivery import RetryPolicy
from partnerflow.messaging.shoutouts import Notice, PerformerTotals, rank, shoutout
from partnerflow.storage import tables as t
from partnerflow.storage.reports import Dimension, ReportQuery, report_sums

MAX_RENDERED = 200_000
_CENT = Decimal("0.01")
EMAIL_POLICY = RetryPolicy(base_seconds=60, max_attempts=6)
_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def render_text(template: str, context: dict[str, Any]) -> str:
    try:
        out = _ENV.from_string(template).render(**context)
    except TemplateError as exc:
        raise InvalidInput(f"template error: {exc}"[:300], field="body") from None
    if len(out) > MAX_RENDERED:
        raise InvalidInput("rendered message is too long", field="body")
    return out


def text_to_html(text: str) -> str:
    """Escaped paragraphs: blank lines split paragraphs, single newlines become <br>."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    parts = [
        Markup("<p>%s</p>") % Markup("<br>\n").join(escape(line) for line in p.split("\n"))
        for p in paragraphs
    ]
    return str(Markup("\n").join(parts))


def check_template(body: str) -> str:
    """Syntax check at creation time (values are only known per recipient)."""
    check_body(body)
    try:
        _ENV.parse(body)
    except TemplateError as exc:
        raise InvalidInput(f"template error: {exc}"[:300], field="body") from None
    return body


# --- recipients -----------------------------------------------------------------------------


def segment_partners(conn: Connection, program_id: int, segment: Segment) -> list[Row[Any]]:
    p = t.partners
    query = select(p).where(p.c.program_id == program_id, p.c.status.in_(segment.statuses))
    if segment.offer_ids:
        on_offer = union(
            select(t.tracking_links.c.partner_id).where(
                t.tracking_links.c.offer_id.in_(segment.offer_ids)
            ),
            select(t.coupon_codes.c.partner_id).where(
                t.coupon_codes.c.offer_id.in_(segment.offer_ids)
            ),
        ).subquery()
        query = query.where(p.c.id.in_(select(on_offer.c.partner_id)))
    if segment.partner_ids:
        query = query.where(p.c.id.in_(segment.partner_ids))
    return list(conn.execute(query.order_by(p.c.id)))


def is_unsubscribed(conn: Connection, program_id: int, partner_id: int) -> bool:
    u = t.unsubscribes
    return (
        conn.execute(
            select(u.c.id).where(u.c.program_id == program_id, u.c.partner_id == partner_id)
        ).first()
        is not None
    )


def unsubscribe_url(base_url: str, secret: str, program_id: int, partner_id: int) -> str:
    token = unsubscribe_token(secret, program_id, partner_id)
    return f"{base_url.rstrip('/')}/api/v1/unsubscribe?token={quote(token, safe='')}"


def unsubscribe(conn: Connection, secret: str, token: str, now: datetime) -> tuple[int, int]:
    """Honour an unsubscribe link (idempotent); returns (program id, partner id)."""
    program_id, partner_id = read_unsubscribe_token(secret, token)
    if not is_unsubscribed(conn, program_id, partner_id):
        exists = conn.execute(
            select(t.partners.c.id).where(
                t.partners.c.id == partner_id, t.partners.c.program_id == program_id
            )
        ).first()
        if exists is None:
            raise NotFound("unknown partner in unsubscribe token", field="token")
        conn.execute(
            t.unsubscribes.insert().values(
                program_id=program_id, partner_id=partner_id, created_at=now
            )
        )
        # Anything still queued for this partner in this program is not sent.
        conn.execute(
            update(t.email_outbox)
            .where(
                t.email_outbox.c.program_id == program_id,
                t.email_outbox.c.partner_id == partner_id,
                t.email_outbox.c.status == "pending",
            )
            .values(status="skipped", last_error="unsubscribed")
        )
    return program_id, partner_id


# --- announcements ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Announcement:
    id: int
    program_id: int
    kind: str
    subject: str
    recipients: int
    emails_queued: int
    created_at: datetime


def queue_announcement(
    conn: Connection,
    *,
    program_id: int,
    kind: str,
    subject: str,
    body: str,
    segment: Segment,
    author: str,
    now: datetime,
    secret: str,
    base_url: str,
    context: dict[str, Any] | None = None,
) -> Announcement:
    """Render the body for every partner of the segment, put it in their inbox and queue an
    e-mail for those who have not unsubscribed. All in the caller's transaction: a template
    that fails for one partner leaves nothing queued."""
    check_kind(kind)
    subject = check_subject(subject)
    check_template(body)
    program = conn.execute(select(t.programs).where(t.programs.c.id == program_id)).first()
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    partners = segment_partners(conn, program_id, segment)
    announcement_id = conn.execute(
        t.announcements.insert()
        .values(
            program_id=program_id,
            kind=kind,
            subject=subject,
            body=body,
            segment=segment.to_dict(),
            author=author[:200],
            recipients=len(partners),
            created_at=now,
        )
        .returning(t.announcements.c.id)
    ).scalar_one()
    queued = 0
    for partner in partners:
        link = unsubscribe_url(base_url, secret, program_id, partner.id)
        values = {
            **(context or {}),
            "partner": {"id": partner.id, "name": partner.name, "email": partner.email},
            "program": {"name": program.name, "brand": program.brand},
            "unsubscribe_url": link,
        }
        text = render_text(body, values)
        html = text_to_html(text)
        conn.execute(
            t.inbox_items.insert().values(
                announcement_id=announcement_id,
                partner_id=partner.id,
                subject=subject,
                body_html=html,
                created_at=now,
            )
        )
        if is_unsubscribed(conn, program_id, partner.id):
            continue
        footer = f"\n\n--\nUnsubscribe: {link}"
        queued += queue_email(
            conn,
            key=f"announcement:{announcement_id}:partner:{partner.id}",
            program_id=program_id,
            partner_id=partner.id,
            to=partner.email,
            subject=subject,
            text=text + footer,
            html=html
            + f'\n<p style="font-size:small"><a href="{escape(link)}">Unsubscribe</a></p>',
            headers={
                # RFC 2369 and RFC 8058 one-click unsubscribe.
                "List-Unsubscribe": f"<{link}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            now=now,
        )
    return Announcement(announcement_id, program_id, kind, subject, len(partners), queued, now)


def queue_email(
    conn: Connection,
    *,
    key: str,
    program_id: int | None,
    partner_id: int | None,
    to: str,
    subject: str,
    text: str,
    html: str,
    headers: dict[str, str],
    now: datetime,
) -> int:
    """Queue one e-mail; an existing idempotency key makes this a no-op (returns 0)."""
    exists = conn.execute(
        select(t.email_outbox.c.id).where(t.email_outbox.c.idempotency_key == key)
    ).first()
    if exists is not None:
        return 0
    conn.execute(
        t.email_outbox.insert().values(
            idempotency_key=key,
            program_id=program_id,
            partner_id=partner_id,
            to_address=to,
            subject=subject,
            body_text=text,
            body_html=html,
            headers=headers,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return 1


def list_announcements(conn: Connection, program_id: int, limit: int = 50) -> list[Row[Any]]:
    a = t.announcements
    return list(
        conn.execute(
            select(a).where(a.c.program_id == program_id).order_by(a.c.id.desc()).limit(limit)
        )
    )


# --- portal inbox ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    announcement_id: int
    kind: str
    subject: str
    body_html: str
    created_at: datetime
    read_at: datetime | None


def inbox(
    conn: Connection, partner_id: int, limit: int = 50, before_id: int | None = None
) -> list[InboxItem]:
    """A partner's inbox, newest first. `body_html` is already escaped: render it as is."""
    i, a = t.inbox_items, t.announcements
    query = (
        select(i, a.c.kind)
        .join(a, a.c.id == i.c.announcement_id)
        .where(i.c.partner_id == partner_id)
        .order_by(i.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(i.c.id < before_id)
    return [
        InboxItem(r.id, r.announcement_id, r.kind, r.subject, r.body_html, r.created_at, r.read_at)
        for r in conn.execute(query)
    ]


def inbox_unread(conn: Connection, partner_id: int) -> int:
    i = t.inbox_items
    return int(
        conn.execute(
            select(func.count())
            .select_from(i)
            .where(i.c.partner_id == partner_id, i.c.read_at.is_(None))
        ).scalar_one()
    )


def mark_inbox_read(conn: Connection, partner_id: int, item_id: int, now: datetime) -> None:
    i = t.inbox_items
    row = conn.execute(
        select(i.c.id).where(i.c.id == item_id, i.c.partner_id == partner_id)
    ).first()
    if row is None:
        raise NotFound(f"inbox item {item_id} not found", field="item")
    conn.execute(update(i).where(i.c.id == item_id, i.c.read_at.is_(None)).values(read_at=now))


# --- two-way messages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    program_id: int
    partner_id: int
    sender: str
    author: str
    body: str
    created_at: datetime
    read_at: datetime | None


def _message(row: Row[Any]) -> Message:
    return Message(
        row.id,
        row.program_id,
        row.partner_id,
        row.sender,
        row.author,
        row.body,
        row.created_at,
        row.read_at,
    )


def post_message(
    conn: Connection, *, partner_id: int, sender: str, author: str, body: str, now: datetime
) -> Message:
    if sender not in {"partner", "manager"}:
        raise InvalidInput("sender must be partner or manager", field="sender")
    check_body(body, limit=10_000)
    partner = conn.execute(select(t.partners).where(t.partners.c.id == partner_id)).first()
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    new_id = conn.execute(
        t.partner_messages.insert()
        .values(
            program_id=partner.program_id,
            partner_id=partner_id,
            sender=sender,
            author=author[:200],
            body=body,
            created_at=now,
        )
        .returning(t.partner_messages.c.id)
    ).scalar_one()
    return _message(
        conn.execute(select(t.partner_messages).where(t.partner_messages.c.id == new_id)).one()
    )


def thread(conn: Connection, partner_id: int, limit: int = 200) -> list[Message]:
    m = t.partner_messages
    rows = conn.execute(
        select(m).where(m.c.partner_id == partner_id).order_by(m.c.id.desc()).limit(limit)
    )
    return list(reversed([_message(r) for r in rows]))


def mark_thread_read(conn: Connection, partner_id: int, reader: str, now: datetime) -> int:
    """The reader ('partner' or 'manager') has read what the other side sent."""
    other = "manager" if reader == "partner" else "partner"
    m = t.partner_messages
    done = conn.execute(
        update(m)
        .where(m.c.partner_id == partner_id, m.c.sender == other, m.c.read_at.is_(None))
        .values(read_at=now)
    )
    return int(done.rowcount)


def unread_for_partner(conn: Connection, partner_id: int) -> int:
    m = t.partner_messages
    return int(
        conn.execute(
            select(func.count())
            .select_from(m)
            .where(m.c.partner_id == partner_id, m.c.sender == "manager", m.c.read_at.is_(None))
        ).scalar_one()
    )


def unread_for_managers(conn: Connection, program_id: int) -> dict[int, int]:
    """Unread partner messages per partner (the managers' inbox badge)."""
    m = t.partner_messages
    rows = conn.execute(
        select(m.c.partner_id, func.count())
        .where(m.c.program_id == program_id, m.c.sender == "partner", m.c.read_at.is_(None))
        .group_by(m.c.partner_id)
    )
    return {int(r[0]): int(r[1]) for r in rows}


# --- e-mail outbox (used by jobs.outbox) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Email:
    id: int
    idempotency_key: str
    to_address: str
    subject: str
    body_text: str
    body_html: str
    headers: dict[str, str]
    attempts: int


def due_email_ids(conn: Connection, now: datetime, limit: int = 100) -> list[int]:
    e = t.email_outbox
    rows = conn.execute(
        select(e.c.id)
        .where(e.c.status == "pending", e.c.next_attempt_at <= now)
        .order_by(e.c.id)
        .limit(limit)
    )
    return [int(r.id) for r in rows]


def claim_email(conn: Connection, email_id: int, now: datetime) -> Email | None:
    """Claim a due e-mail inside the caller's transaction (a conditional UPDATE that only one
    transaction can win); the caller sends it and marks it sent before committing."""
    e = t.email_outbox
    row = conn.execute(select(e).where(e.c.id == email_id)).first()
    if row is None or row.status != "pending" or row.next_attempt_at > now:
        return None
    done = conn.execute(
        update(e)
        .where(e.c.id == email_id, e.c.status == "pending", e.c.attempts == row.attempts)
        .values(attempts=row.attempts + 1)
    )
    if done.rowcount != 1:
        return None
    if (
        row.partner_id is not None
        and row.program_id is not None
        and is_unsubscribed(conn, row.program_id, row.partner_id)
    ):
        conn.execute(update(e).where(e.c.id == email_id).values(status="skipped"))
        return None
    return Email(
        row.id,
        row.idempotency_key,
        row.to_address,
        row.subject,
        row.body_text,
        row.body_html,
        dict(row.headers),
        row.attempts + 1,
    )


def mark_email_sent(conn: Connection, email_id: int, now: datetime) -> None:
    e = t.email_outbox
    conn.execute(
        update(e).where(e.c.id == email_id).values(status="sent", sent_at=now, last_error=None)
    )


def mark_email_failed(
    conn: Connection, email: Email, error: str, now: datetime, policy: RetryPolicy = EMAIL_POLICY
) -> str:
    retry_at = policy.next_attempt(email.attempts, now)
    status = "pending" if retry_at is not None else "failed"
    conn.execute(
        update(t.email_outbox)
        .where(t.email_outbox.c.id == email.id)
        .values(
            status=status,
            attempts=email.attempts,
            next_attempt_at=retry_at or now,
            last_error=error[:1000],
        )
    )
    return status


def email_counts(conn: Connection) -> dict[str, int]:
    e = t.email_outbox
    rows = conn.execute(select(e.c.status, func.count()).group_by(e.c.status))
    return {str(r[0]): int(r[1]) for r in rows}


# --- shout-outs and notices --------------------------------------------------------------------


def month_totals(conn: Connection, program_id: int, month: date) -> list[PerformerTotals]:
    program = conn.execute(select(t.programs).where(t.programs.c.id == program_id)).first()
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    first = month.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    sums = report_sums(
        conn,
        ReportQuery(
            program_id=ProgramId(program_id),
            currency=program.currency,
            timezone=program.timezone,
            dimension=Dimension.PARTNER,
            first_day=first,
            last_day=last,
        ),
    )
    ids = [int(s.key) for s in sums if isinstance(s.key, int)]
    names = dict(
        conn.execute(
            select(t.partners.c.id, t.partners.c.name).where(t.partners.c.id.in_(ids))
        ).all()
    )
    return [
        PerformerTotals(
            int(s.key), str(names.get(s.key, f"#{s.key}")), s.conversions, s.revenue, s.commission
        )
        for s in sums
        if isinstance(s.key, int)
    ]


def queue_shoutout(
    conn: Connection,
    *,
    program_id: int,
    month: date,
    now: datetime,
    secret: str,
    base_url: str,
    top: int = 3,
    author: str = "system:shoutout",
) -> Announcement:
    """The monthly top-performers announcement to every approved/active partner. Once per
    program and month: a second run returns the first announcement's result unchanged."""
    program = conn.execute(select(t.programs).where(t.programs.c.id == program_id)).first()
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    best = rank(month_totals(conn, program_id, month), top)
    subject, body = shoutout(program.name, month, best, program.currency)
    a = t.announcements
    existing = conn.execute(
        select(a).where(
            a.c.program_id == program_id, a.c.kind == "shoutout", a.c.subject == subject[:200]
        )
    ).first()
    if existing is not None:
        return Announcement(
            existing.id,
            program_id,
            "shoutout",
            existing.subject,
            existing.recipients,
            0,
            existing.created_at,
        )
    return queue_announcement(
        conn,
        program_id=program_id,
        kind="shoutout",
        subject=subject,
        body=body,
        segment=Segment(),
        author=author,
        now=now,
        secret=secret,
        base_url=base_url,
        context={
            "top": [
                {
                    "name": p.name,
                    "conversions": p.conversions,
                    "revenue": str(p.revenue.quantize(_CENT)),
                }
                for p in best
            ]
        },
    )


def send_notice(
    conn: Connection,
    notice: Notice,
    *,
    program_id: int,
    now: datetime,
    secret: str,
    base_url: str,
    offer_id: int | None = None,
    partner_ids: tuple[int, ...] = (),
    author: str = "system:notice",
) -> Announcement:
    """An automatic notice (see `messaging.shoutouts.*_notice`) to the partners it concerns:
    those working on `offer_id` when given, else the program's approved/active partners."""
    segment = Segment(offer_ids=(offer_id,) if offer_id else (), partner_ids=partner_ids)
    return queue_announcement(
        conn,
        program_id=program_id,
        kind="notice",
        subject=notice.subject,
        body=notice.body,
        segment=segment,
        author=author,
        now=now,
        secret=secret,
        base_url=base_url,
        context=notice.context,
    )
