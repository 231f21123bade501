"""The audit port: every state change made by a person or an automated rule is recorded
with who did it and why."""

from __future__ import annotations

from typing import Any, Protocol


class AuditLog(Protocol):
    def record(
        self, *, actor: str, action: str, entity_type: str, entity_id: str, detail: dict[str, Any]
    ) -> None: ...
