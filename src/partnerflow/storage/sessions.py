"""The web's auth store: users, server-side sessions, password reset tokens, login attempts.

Tokens handed to browsers (session cookies, reset links) are random; only their SHA-256
digests are stored, so a copy of the database cannot be replayed as a login. Every method
runs on a connection the caller owns (one transaction per request step).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update

from partnerflow.core.ids import PartnerId, UserId
from partnerflow.storage import tables as t


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a bearer token; a slow hash is unnecessary because the tokens
    carry 256 bits of randomness and cannot be guessed."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str
    password_hash: str
    role: str
    partner_id: PartnerId | None
    is_active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebSession:
    token_hash: str
    user: User
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _user(row: Row[Any]) -> User:
    return User(
        id=UserId(row.id),
        email=row.email,
        password_hash=row.password_hash,
        role=row.role,
        partner_id=PartnerId(row.partner_id) if row.partner_id is not None else None,
        is_active=bool(row.is_active),
        created_at=row.created_at,
    )


class SqlAuthStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # Users -------------------------------------------------------------------------
    def user_by_email(self, email: str) -> User | None:
        row = self.conn.execute(
            select(t.users).where(func.lower(t.users.c.email) == email.strip().lower())
        ).first()
        return _user(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        row = self.conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return _user(row) if row else None

    def add_user(
        self,
        *,
        email: str,
        password_hash: str,
        role: str,
        partner_id: int | None,
        now: datetime,
    ) -> User:
        new_id = self.conn.execute(
            t.users.insert()
            .values(
                email=email.strip().lower(),
                password_hash=password_hash,
                role=role,
                partner_id=partner_id,
                is_active=True,
                created_at=now,
            )
            .returning(t.users.c.id)
        ).scalar_one()
        found = self.user_by_id(new_id)
        assert found is not None
        return found

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self.conn.execute(
            update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
        )

    # Sessions ----------------------------------------------------------------------
    def add_session(
        self,
        *,
        token: str,
        user_id: int,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        self.conn.execute(
            t.web_sessions.insert().values(
                token_hash=token_digest(token),
                user_id=user_id,
                csrf_token=csrf_token,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                ip=ip[:45] if ip else None,
                user_agent=user_agent[:300] if user_agent else None,
            )
        )

    def session(self, token: str) -> WebSession | None:
        """The session and its user in one query (it runs on every page view)."""
        s, u = t.web_sessions, t.users
        row = self.conn.execute(
            select(
                s.c.token_hash,
                s.c.csrf_token,
                s.c.created_at.label("s_created_at"),
                s.c.last_seen_at,
                s.c.expires_at,
                u,
            )
            .join(u, u.c.id == s.c.user_id)
            .where(s.c.token_hash == token_digest(token))
        ).first()
        if row is None:
            return None
        return WebSession(
            token_hash=row.token_hash,
            user=_user(row),
            csrf_token=row.csrf_token,
            created_at=row.s_created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
        )

    def touch_session(self, token_hash: str, now: datetime, expires_at: datetime) -> None:
        self.conn.execute(
            update(t.web_sessions)
            .where(t.web_sessions.c.token_hash == token_hash)
            .values(last_seen_at=now, expires_at=expires_at)
        )

    def delete_session(self, token_hash: str) -> None:
        self.conn.execute(delete(t.web_sessions).where(t.web_sessions.c.token_hash == token_hash))

    def delete_user_sessions(self, user_id: int) -> None:
        self.conn.execute(delete(t.web_sessions).where(t.web_sessions.c.user_id == user_id))

    def purge_expired_sessions(self, now: datetime) -> int:
        result = self.conn.execute(delete(t.web_sessions).where(t.web_sessions.c.expires_at < now))
        return int(result.rowcount or 0)

    # Login attempts ----------------------------------------------------------------
    def record_login_attempt(self, *, email: str, ip: str, now: datetime, succeeded: bool) -> None:
        self.conn.execute(
            t.login_attempts.insert().values(
                email=email.strip().lower()[:320], ip=ip[:45], at=now, succeeded=succeeded
            )
        )

    def failed_logins_since(self, *, email: str, ip: str, since: datetime) -> int:
        a = t.login_attempts
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(a)
                .where(
                    a.c.email == email.strip().lower()[:320],
                    a.c.ip == ip[:45],
                    a.c.at >= since,
                    a.c.succeeded.is_(False),
                )
            ).scalar_one()
        )

    # Password reset tokens -----------------------------------------------------------
    def add_reset_token(
        self, *, token: str, user_id: int, now: datetime, expires_at: datetime
    ) -> None:
        self.conn.execute(
            t.password_reset_tokens.insert().values(
                token_hash=token_digest(token),
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
            )
        )

    def usable_reset_token(self, token: str, now: datetime) -> tuple[int, int] | None:
        """(token row id, user id) of an unused, unexpired token, else None."""
        r = t.password_reset_tokens
        row = self.conn.execute(
            select(r.c.id, r.c.user_id).where(
                r.c.token_hash == token_digest(token),
                r.c.used_at.is_(None),
                r.c.expires_at > now,
            )
        ).first()
        return (int(row.id), int(row.user_id)) if row else None

    def use_reset_token(self, token_id: int, now: datetime) -> bool:
        """Mark a token used; False when another request used it first (single use)."""
        r = t.password_reset_tokens
        result = self.conn.execute(
            update(r).where(r.c.id == token_id, r.c.used_at.is_(None)).values(used_at=now)
        )
        return bool(result.rowcount)
