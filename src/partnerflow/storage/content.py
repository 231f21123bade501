"""Partner content: versioned terms and their acceptances, creatives, resources; and the
program-settings writer used by `programs.services.update_program`.

Titles and texts are display text (`core.text.display_text`), checked here, where every way
in (the dashboard, the REST API) stores them.

Terms are append-only: publishing a new text adds the next version, so an acceptance always
points at the exact words the partner accepted. Every read that serves a partner takes the
partner's program id in SQL, so another program's document, creative or resource is simply
not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, and_, func, select

from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.text import display_text
from partnerflow.programs.model import Program
from partnerflow.storage import tables as t
from partnerflow.storage.audit import SqlAudit
from partnerflow.storage.unit_of_work import SqlUnitOfWork

# Characters in a terms document, a resource or a social post (the forms say so too:
# `web.content.check_text`).
MAX_TEXT = 50_000


def _title(value: str) -> str:
    return display_text(value, field="title")


def _text(value: str, field: str) -> str:
    return display_text(value, field=field, max_length=MAX_TEXT, multiline=True)


class SqlProgramSettings:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def save_settings(self, program: Program) -> None:
        self.conn.execute(
            t.programs.update()
            .where(t.programs.c.id == program.id)
            .values(
                cookie_window_days=program.cookie_window_days,
                lock_period_days=program.lock_period_days,
                attribution_model=program.attribution_model.value,
                fallback_url=program.fallback_url,
            )
        )


class SettingsUnitOfWork(SqlUnitOfWork):
    """The ordinary unit of work plus the program-settings writer."""

    def __enter__(self) -> Self:
        super().__enter__()
        self.program_settings = SqlProgramSettings(self.connection)
        return self


# Terms and guidelines ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TermsDocument:
    id: int
    program_id: int
    kind: str
    version: int
    title: str
    body: str
    created_by: str
    created_at: datetime
    accepted: int = 0


def _doc(row: Any, accepted: int = 0) -> TermsDocument:
    return TermsDocument(
        id=row.id,
        program_id=row.program_id,
        kind=row.kind,
        version=row.version,
        title=row.title,
        body=row.body,
        created_by=row.created_by,
        created_at=row.created_at,
        accepted=accepted,
    )


def publish_terms(
    conn: Connection,
    program_id: int,
    kind: str,
    title: str,
    body: str,
    actor: str,
    now: datetime,
) -> TermsDocument:
    """Add the next version of `kind` (the unique constraint refuses a concurrent twin)."""
    title, body = _title(title), _text(body, "body")
    d = t.terms_documents
    current = conn.execute(
        select(func.max(d.c.version)).where(d.c.program_id == program_id, d.c.kind == kind)
    ).scalar()
    version = int(current or 0) + 1
    new_id = conn.execute(
        d.insert().values(
            program_id=program_id,
            kind=kind,
            version=version,
            title=title,
            body=body,
            created_by=actor[:200],
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    SqlAudit(conn, lambda: now).record(
        actor=actor,
        action="terms.published",
        entity_type="program",
        entity_id=str(program_id),
        detail={"document": int(new_id), "kind": kind, "version": version},
    )
    row = conn.execute(select(d).where(d.c.id == new_id)).one()
    return _doc(row)


def terms_documents(conn: Connection, program_id: int) -> list[TermsDocument]:
    """Every version, newest first, with how many partners accepted each."""
    d, a = t.terms_documents, t.terms_acceptances
    counts = select(a.c.document_id, func.count().label("n")).group_by(a.c.document_id).subquery()
    rows = conn.execute(
        select(d, func.coalesce(counts.c.n, 0).label("n"))
        .outerjoin(counts, counts.c.document_id == d.c.id)
        .where(d.c.program_id == program_id)
        .order_by(d.c.kind, d.c.version.desc())
    )
    return [_doc(r, int(r.n)) for r in rows]


def current_terms(conn: Connection, program_id: int) -> list[TermsDocument]:
    """The latest version of each kind."""
    d = t.terms_documents
    latest = (
        select(d.c.kind, func.max(d.c.version).label("v"))
        .where(d.c.program_id == program_id)
        .group_by(d.c.kind)
        .subquery()
    )
    rows = conn.execute(
        select(d)
        .join(latest, and_(latest.c.kind == d.c.kind, latest.c.v == d.c.version))
        .where(d.c.program_id == program_id)
        .order_by(d.c.kind)
    )
    return [_doc(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Acceptance:
    partner_id: int
    partner_name: str
    kind: str
    version: int
    accepted_by: str
    accepted_at: datetime


def acceptances(
    conn: Connection, program_id: int, partner_id: int | None = None, limit: int = 500
) -> list[Acceptance]:
    d, a, p = t.terms_documents, t.terms_acceptances, t.partners
    query = (
        select(a.c.partner_id, p.c.name, d.c.kind, d.c.version, a.c.accepted_by, a.c.accepted_at)
        .join(d, d.c.id == a.c.document_id)
        .join(p, p.c.id == a.c.partner_id)
        .where(d.c.program_id == program_id)
        .order_by(a.c.accepted_at.desc(), a.c.id.desc())
        .limit(limit)
    )
    if partner_id is not None:
        query = query.where(a.c.partner_id == partner_id)
    return [Acceptance(*r) for r in conn.execute(query)]


def pending_terms(conn: Connection, program_id: int, partner_id: int) -> list[TermsDocument]:
    """Current documents the partner has not accepted yet (the portal's blocking banner)."""
    current = current_terms(conn, program_id)
    if not current:
        return []
    a = t.terms_acceptances
    accepted = set(
        conn.execute(
            select(a.c.document_id).where(
                a.c.partner_id == partner_id, a.c.document_id.in_([x.id for x in current])
            )
        ).scalars()
    )
    return [x for x in current if x.id not in accepted]


def accept_terms(
    conn: Connection,
    program_id: int,
    partner_id: int,
    document_id: int,
    accepted_by: str,
    ip: str | None,
    now: datetime,
) -> bool:
    """Record the acceptance of a *current* document of the partner's own program. Another
    program's document is NotFound; an outdated version is refused. True when recorded,
    False when it was already accepted (accepting twice changes nothing)."""
    current = {x.id: x for x in current_terms(conn, program_id)}
    d = t.terms_documents
    exists = conn.execute(
        select(d.c.id).where(d.c.id == document_id, d.c.program_id == program_id)
    ).first()
    if exists is None:
        raise NotFound("no such document", field="document")
    if document_id not in current:
        raise InvalidInput("a newer version of this document exists", field="document")
    a = t.terms_acceptances
    already = conn.execute(
        select(a.c.id).where(a.c.document_id == document_id, a.c.partner_id == partner_id)
    ).first()
    if already is not None:
        return False
    doc = current[document_id]
    conn.execute(
        a.insert().values(
            document_id=document_id,
            partner_id=partner_id,
            accepted_by=accepted_by[:320],
            ip=(ip or None) and ip[:45],
            accepted_at=now,
        )
    )
    SqlAudit(conn, lambda: now).record(
        actor=accepted_by,
        action="terms.accepted",
        entity_type="partner",
        entity_id=str(partner_id),
        detail={"document": document_id, "kind": doc.kind, "version": doc.version},
    )
    return True


# Creatives -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Creative:
    id: int
    program_id: int
    kind: str
    title: str
    text: str | None
    content_type: str | None
    size: int
    is_active: bool
    created_by: str
    created_at: datetime


_CREATIVE_COLUMNS = [c for c in t.creatives.c if c.name != "data"]


def add_creative(
    conn: Connection,
    program_id: int,
    *,
    kind: str,
    title: str,
    text: str | None,
    content_type: str | None,
    data: bytes | None,
    actor: str,
    now: datetime,
) -> int:
    title = _title(title)
    text = _text(text, "text") if text is not None and text.strip() else None
    new_id = int(
        conn.execute(
            t.creatives.insert().values(
                program_id=program_id,
                kind=kind,
                title=title,
                text=text,
                content_type=content_type,
                size=len(data or b""),
                data=data,
                is_active=True,
                created_by=actor[:200],
                created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    SqlAudit(conn, lambda: now).record(
        actor=actor,
        action="creative.added",
        entity_type="creative",
        entity_id=str(new_id),
        detail={"kind": kind, "size": len(data or b""), "content_type": content_type},
    )
    return new_id


def set_creative_active(
    conn: Connection, program_id: int, creative_id: int, active: bool, actor: str, now: datetime
) -> None:
    c = t.creatives
    done = conn.execute(
        c.update()
        .where(c.c.id == creative_id, c.c.program_id == program_id)
        .values(is_active=active)
    ).rowcount
    if not done:
        raise NotFound("no such creative", field="creative")
    SqlAudit(conn, lambda: now).record(
        actor=actor,
        action="creative.activated" if active else "creative.withdrawn",
        entity_type="creative",
        entity_id=str(creative_id),
        detail={},
    )


def creatives(conn: Connection, program_id: int, *, active_only: bool) -> list[Creative]:
    c = t.creatives
    query = select(*_CREATIVE_COLUMNS).where(c.c.program_id == program_id)
    if active_only:
        query = query.where(c.c.is_active.is_(True))
    return [Creative(**r._mapping) for r in conn.execute(query.order_by(c.c.id.desc()))]


def creative_file(
    conn: Connection, program_id: int, creative_id: int, *, active_only: bool
) -> tuple[Creative, bytes] | None:
    c = t.creatives
    query = select(*_CREATIVE_COLUMNS, c.c.data).where(
        c.c.id == creative_id, c.c.program_id == program_id, c.c.data.is_not(None)
    )
    if active_only:
        query = query.where(c.c.is_active.is_(True))
    row = conn.execute(query).first()
    if row is None:
        return None
    values = dict(row._mapping)
    data = values.pop("data")
    return Creative(**values), bytes(data)


# Resources -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resource:
    id: int
    program_id: int
    kind: str
    title: str
    body: str
    created_by: str
    created_at: datetime


def add_resource(
    conn: Connection,
    program_id: int,
    *,
    kind: str,
    title: str,
    body: str,
    actor: str,
    now: datetime,
) -> int:
    title, body = _title(title), _text(body, "body")
    new_id = int(
        conn.execute(
            t.resources.insert().values(
                program_id=program_id,
                kind=kind,
                title=title,
                body=body,
                created_by=actor[:200],
                created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    SqlAudit(conn, lambda: now).record(
        actor=actor,
        action="resource.published",
        entity_type="resource",
        entity_id=str(new_id),
        detail={"kind": kind, "title": title[:200]},
    )
    return new_id


def resources(conn: Connection, program_id: int) -> list[Resource]:
    r = t.resources
    rows = conn.execute(
        select(r).where(r.c.program_id == program_id).order_by(r.c.created_at.desc(), r.c.id)
    )
    return [Resource(**x._mapping) for x in rows]


def resource(conn: Connection, program_id: int, resource_id: int) -> Resource | None:
    r = t.resources
    row = conn.execute(select(r).where(r.c.id == resource_id, r.c.program_id == program_id)).first()
    return None if row is None else Resource(**row._mapping)
