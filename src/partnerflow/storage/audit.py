"""The audit log table behind `core.audit.AuditLog`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from partnerflow.storage import tables as t


class SqlAudit:
    def __init__(self, conn: Connection, now: Callable[[], datetime]) -> None:
        self.conn = conn
        self._now = now

    def record(
        self, *, actor: str, action: str, entity_type: str, entity_id: str, detail: dict[str, Any]
    ) -> None:
        self.conn.execute(
            t.audit_log.insert().values(
                at=self._now(),
                actor=actor[:200],
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                detail=detail,
            )
        )

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute(select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]
