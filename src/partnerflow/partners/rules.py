"""Partner lifecycle rules (pure)."""

from __future__ import annotations

import re

from partnerflow.core.errors import InvalidInput, InvalidTransition
from partnerflow.core.text import describe_character, display_text, unsafe_character
from partnerflow.partners.model import PartnerStatus

S = PartnerStatus
TRANSITIONS: dict[PartnerStatus, frozenset[PartnerStatus]] = {
    S.APPLIED: frozenset({S.APPROVED, S.REJECTED, S.BANNED}),
    S.APPROVED: frozenset({S.ACTIVE, S.SUSPENDED, S.BANNED}),
    S.REJECTED: frozenset({S.APPROVED, S.BANNED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.BANNED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.BANNED}),
    S.BANNED: frozenset(),
}
# Partners whose links redirect and whose conversions earn commission.
EARNING_STATUSES = frozenset({S.APPROVED, S.ACTIVE})
SOCIAL_NETWORKS = frozenset(
    {"instagram", "tiktok", "youtube", "x", "facebook", "linkedin", "twitch"}
)
_EMAIL_RE = re.compile(r"\A[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}\Z")


def check_transition(current: PartnerStatus, target: PartnerStatus) -> PartnerStatus:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
        raise InvalidTransition(
            f"a partner cannot go from {current} to {target} (allowed: {allowed})",
            field="status",
        )
    return target


def check_email(value: str) -> str:
    normalised = value.strip().lower()
    unsafe = unsafe_character(normalised)
    if unsafe is not None:  # shown in every partner list: no bidi or invisible characters
        raise InvalidInput(f"email must not contain {describe_character(unsafe)}", field="email")
    if not _EMAIL_RE.match(normalised):
        raise InvalidInput(f"not an e-mail address: {value[:80]!r}", field="email")
    return normalised


def check_social(social: dict[str, str]) -> dict[str, str]:
    out = {}
    for network, handle in social.items():
        if network not in SOCIAL_NETWORKS:
            raise InvalidInput(f"unknown social network {network[:32]!r}", field="social")
        out[network] = display_text(handle, field="social", label=f"{network} handle")
    return out
