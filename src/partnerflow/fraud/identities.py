"""Identities of partners and customers, normalised so that self-referral and duplicate
applicants are found despite trivial disguises (case, "+tags", Gmail dots, "www.").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

# Providers that ignore dots in the local part: "j.doe@gmail.com" is "jdoe@gmail.com".
_DOTLESS_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})
_NON_DIGITS: Final = re.compile(r"\D+")


def normalise_email(email: str | None) -> str | None:
    """Canonical mailbox for comparison, or None when the text is not an e-mail address.

    Lower-cases, drops a "+tag" (most providers deliver "ann+x@" to "ann@") and, for Gmail,
    the dots of the local part.
    """
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    domain = domain.strip().rstrip(".")
    local = local.split("+", 1)[0]
    if domain == "googlemail.com":
        domain = "gmail.com"
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def email_domain(email: str | None) -> str | None:
    """The domain of an e-mail address, lower-cased, or None."""
    normalised = normalise_email(email)
    return normalised.rpartition("@")[2] if normalised else None


def normalise_domain(domain: str | None) -> str | None:
    """ "https://WWW.Example.com/path" -> "example.com"; None when nothing is left."""
    if not domain:
        return None
    text = domain.strip().lower()
    text = text.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].rstrip(".")
    text = text.removeprefix("www.")
    return text or None


def normalise_phone(phone: str | None) -> str | None:
    """Digits only; fewer than 6 digits is not a usable phone number."""
    if not phone:
        return None
    digits = _NON_DIGITS.sub("", phone)
    return digits if len(digits) >= 6 else None


def _clean(values: Iterable[str | None]) -> frozenset[str]:
    return frozenset(value.strip().lower() for value in values if value and value.strip())


@dataclass(frozen=True, slots=True)
class Identity:
    """Whatever is known about who someone is. Every field is optional."""

    emails: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    customer_ids: tuple[str, ...] = ()
    payment_ids: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    label: str = field(default="", compare=False)

    def keys(self) -> dict[str, frozenset[str]]:
        """Normalised values per kind of identifier, for comparison."""
        return {
            "e-mail": frozenset(
                e for e in (normalise_email(x) for x in self.emails) if e is not None
            ),
            "IP": _clean(self.ips),
            "customer id": _clean(self.customer_ids),
            "payment account": _clean(self.payment_ids),
            "phone": frozenset(
                p for p in (normalise_phone(x) for x in self.phones) if p is not None
            ),
            "website": frozenset(
                d for d in (normalise_domain(x) for x in self.domains) if d is not None
            ),
        }


def _blank(identity: Identity) -> bool:
    return not (
        identity.emails or identity.ips or identity.customer_ids or identity.payment_ids
        or identity.phones or identity.domains
    )  # fmt: skip


def shared_identifiers(first: Identity, second: Identity) -> tuple[str, ...]:
    """Kinds of identifier the two identities share, in a stable order ("e-mail", "IP", ...)."""
    if _blank(first) or _blank(second):
        # Nothing to share; the tracker scores conversions with no identities at all, and
        # normalising twelve empty sets cost ~5 µs of a flagged conversion.
        return ()
    mine = first.keys()
    theirs = second.keys()
    return tuple(kind for kind, values in mine.items() if values & theirs[kind])
