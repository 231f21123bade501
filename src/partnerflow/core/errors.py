"""Domain errors. Entry points map them to HTTP 4xx / CLI exit codes with their message."""

from __future__ import annotations


class PartnerflowError(Exception):
    """Base of every error we raise on purpose; `code` is a stable machine-readable reason."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        out = {"error": self.code, "reason": self.message}
        if self.field:
            out["field"] = self.field
        return out


class InvalidInput(PartnerflowError):
    code = "invalid_input"


class NotFound(PartnerflowError):
    code = "not_found"


class Conflict(PartnerflowError):
    code = "conflict"


class Forbidden(PartnerflowError):
    code = "forbidden"


# The tracker's HTTP refusals. Defined here, not in `web.tracker` or `storage.event_writer`:
# those modules may run compiled (`partnerflow.speedups`), and an exception class's `code`
# must stay a plain class attribute (compiled, a subclass's `code` was the base's).
class BodyTooLarge(PartnerflowError):
    code = "payload_too_large"


class MethodNotAllowed(PartnerflowError):
    code = "method_not_allowed"


class DatabaseUnavailable(PartnerflowError):
    """The database cannot be written right now (the tracker answers 503: retry later)."""

    code = "database_unavailable"


class InvalidTransition(PartnerflowError):
    code = "invalid_transition"
