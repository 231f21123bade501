"""Who an announcement goes to (a partner segment), and the signed unsubscribe token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import display_text
from partnerflow.partners.model import PartnerStatus

# Announcements go to partners who can act on them unless the sender picks statuses.
DEFAULT_STATUSES = (PartnerStatus.APPROVED.value, PartnerStatus.ACTIVE.value)
KINDS = frozenset({"announcement", "newsletter", "shoutout", "notice"})


@dataclass(frozen=True, slots=True)
class Segment:
    """Partners of a program with one of `statuses` and, when `offer_ids` is set, a link or
    coupon on one of those offers."""

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    offer_ids: tuple[int, ...] = field(default_factory=tuple)
    partner_ids: tuple[int, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "statuses": list(self.statuses),
            "offer_ids": list(self.offer_ids),
            "partner_ids": list(self.partner_ids),
        }


def parse_segment(data: dict[str, Any] | None) -> Segment:
    data = data or {}
    unknown = set(data) - {"statuses", "offer_ids", "partner_ids"}
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InvalidInput(f"unknown segment field(s) {names}", field="segment")
    statuses = data.get("statuses") or list(DEFAULT_STATUSES)
    valid = {s.value for s in PartnerStatus}
    if not isinstance(statuses, list) or any(s not in valid for s in statuses):
        raise InvalidInput(
            f"segment.statuses must be a list of {', '.join(sorted(valid))}",
            field="segment.statuses",
        )
    ids: dict[str, tuple[int, ...]] = {}
    for key in ("offer_ids", "partner_ids"):
        values = data.get(key) or []
        if not isinstance(values, list) or any(
            not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values
        ):
            raise InvalidInput(f"segment.{key} must be a list of ids", field=f"segment.{key}")
        ids[key] = tuple(values)
    return Segment(tuple(dict.fromkeys(statuses)), ids["offer_ids"], ids["partner_ids"])


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(sorted(KINDS))}", field="kind")
    return kind


def check_subject(subject: str) -> str:
    return display_text(subject, field="subject")


def check_body(body: str, *, field: str = "body", limit: int = 100_000) -> str:
    """Checked as multi-line display text; stored as written (a template's own spacing)."""
    if len(body) > limit:
        raise InvalidInput(f"{field} must be 1-{limit} characters", field=field)
    display_text(body, field=field, max_length=limit, multiline=True)
    return body


def _mac(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def unsubscribe_token(secret: str, program_id: int, partner_id: int) -> str:
    """A link token that needs no login (mail clients and RFC 8058 one-click POSTs can't
    log in) and can't be forged for another partner."""
    message = f"{program_id}.{partner_id}".encode()
    return f"{program_id}.{partner_id}.{_mac(secret, message)}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[int, int]:
    parts = token.split(".") if isinstance(token, str) and len(token) <= 100 else []
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise InvalidInput("malformed unsubscribe token", field="token")
    expected = _mac(secret, f"{parts[0]}.{parts[1]}".encode())
    if not hmac.compare_digest(expected, parts[2]):
        raise InvalidInput("unsubscribe token does not verify", field="token")
    return int(parts[0]), int(parts[1])
