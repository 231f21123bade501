"""API keys: created with scopes, shown once, stored as a SHA-256 digest, revocable.

A token is `pf_<prefix>_<secret>`: the prefix (public, 8 chars) names the key in lists and
logs; the secret is 32 random bytes. Only sha256(token) is stored. A fast hash is right here:
the token has 256 bits of entropy, so its digest can't be brute-forced, and a slow password
KDF (argon2) would add its cost to every API request for no gain.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.text import display_text
from partnerflow.storage import tables as t

SCOPES = frozenset({"admin:read", "admin:write", "partner"})


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    prefix: str
    name: str
    scopes: tuple[str, ...]
    program_id: int | None
    partner_id: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def is_partner(self) -> bool:
        return self.partner_id is not None

    def allows(self, scope: str) -> bool:
        # admin:write implies admin:read: a key that may change something may also read it.
        return scope in self.scopes or (scope == "admin:read" and "admin:write" in self.scopes)


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        scopes=tuple(row.scopes),
        program_id=row.program_id,
        partner_id=row.partner_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: list[str], partner_id: int | None) -> tuple[str, ...]:
    unknown = sorted(set(scopes) - SCOPES)
    if unknown or not scopes:
        raise InvalidInput(f"scopes must be among {', '.join(sorted(SCOPES))}", field="scopes")
    if ("partner" in scopes) != (partner_id is not None):
        raise InvalidInput(
            "a 'partner' key needs a partner, and only a partner key may have one",
            field="scopes",
        )
    if "partner" in scopes and len(set(scopes)) > 1:
        raise InvalidInput("a partner key can't also have admin scopes", field="scopes")
    return tuple(sorted(set(scopes)))


def create_key(
    conn: Connection,
    *,
    name: str,
    scopes: list[str],
    now: datetime,
    program_id: int | None = None,
    partner_id: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it and the token, which is never retrievable again."""
    name = display_text(name, field="name")
    clean = check_scopes(scopes, partner_id)
    if partner_id is not None:
        row = conn.execute(
            select(t.partners.c.program_id).where(t.partners.c.id == partner_id)
        ).first()
        if row is None:
            raise NotFound(f"partner {partner_id} not found", field="partner_id")
        program_id = row.program_id
    elif (
        program_id is not None
        and conn.execute(select(t.programs.c.id).where(t.programs.c.id == program_id)).first()
        is None
    ):
        raise NotFound(f"program {program_id} not found", field="program_id")
    prefix = secrets.token_hex(4)
    token = f"pf_{prefix}_{secrets.token_urlsafe(32)}"
    new_id = conn.execute(
        t.api_keys.insert()
        .values(
            prefix=prefix,
            token_hash=digest(token),
            name=name,
            scopes=list(clean),
            program_id=program_id,
            partner_id=partner_id,
            created_at=now,
        )
        .returning(t.api_keys.c.id)
    ).scalar_one()
    row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == new_id)).one()
    return _key(row), token


MAX_ID_DIGITS = 9  # an id fits the INTEGER column; longer numbers are not ids


def authenticate(conn: Connection, token: str, now: datetime) -> ApiKey | None:
    """The live key for `token`, or None (unknown, malformed or revoked)."""
    if not token.startswith("pf_") or len(token) > 100:
        return None
    row = conn.execute(select(t.api_keys).where(t.api_keys.c.token_hash == digest(token))).first()
    # The lookup is by digest; the extra constant-time compare guards against a database
    # collation that would match differently-cased digests.
    if row is None or not hmac.compare_digest(row.token_hash, digest(token)):
        return None
    if row.revoked_at is not None:
        return None
    conn.execute(update(t.api_keys).where(t.api_keys.c.id == row.id).values(last_used_at=now))
    return _key(row)


def revoke(conn: Connection, ref: str, now: datetime) -> ApiKey:
    """Revoke by prefix or id; revoking twice keeps the first revocation time.

    A prefix is 8 random hex digits, so about one in 40 is all decimal digits: the prefix
    is looked up first, and a number is taken as an id only when no prefix matches."""
    keys = t.api_keys.c
    row = conn.execute(select(t.api_keys).where(keys.prefix == ref)).first()
    if row is None and ref.isascii() and ref.isdigit() and len(ref) <= MAX_ID_DIGITS:
        row = conn.execute(select(t.api_keys).where(keys.id == int(ref))).first()
    if row is None:
        raise NotFound(f"API key {ref[:32]!r} not found", field="key")
    if row.revoked_at is None:
        conn.execute(update(t.api_keys).where(t.api_keys.c.id == row.id).values(revoked_at=now))
    return _key(conn.execute(select(t.api_keys).where(t.api_keys.c.id == row.id)).one())


def list_keys(conn: Connection) -> list[ApiKey]:
    return [_key(r) for r in conn.execute(select(t.api_keys).order_by(t.api_keys.c.id))]
