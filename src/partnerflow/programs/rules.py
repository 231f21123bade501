"""Validation of program and offer fields (pure)."""

from __future__ import annotations

import re
import zoneinfo
from urllib.parse import urlsplit

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import describe_character, unsafe_character

_SLUG_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
_DOMAIN_RE = re.compile(r"\A(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")


def check_slug(value: str, *, field: str = "slug") -> str:
    if not _SLUG_RE.match(value):
        raise InvalidInput(
            f"{field} must be 1-64 lower-case letters, digits or dashes: {value[:70]!r}",
            field=field,
        )
    return value


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown IANA timezone {value[:64]!r}", field="timezone") from None
    return value


def check_http_url(value: str, *, field: str) -> str:
    if len(value) > 2048:
        raise InvalidInput(f"{field} is longer than 2048 characters", field=field)
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"{field} must be an absolute http(s) URL", field=field)
    if any(ch in value for ch in "\r\n\t ") or "\\" in value:
        raise InvalidInput(f"{field} contains whitespace or backslashes", field=field)
    unsafe = unsafe_character(value)
    if unsafe is not None:  # a redirect target shown in dashboards and sent as Location
        raise InvalidInput(f"{field} must not contain {describe_character(unsafe)}", field=field)
    return value


def check_domain(value: str) -> str:
    """A deep-link domain: 'shop.example.com' or a wildcard '*.example.com'."""
    normalised = value.strip().lower().rstrip(".")
    if not _DOMAIN_RE.match(normalised):
        raise InvalidInput(f"not a domain name: {value[:80]!r}", field="allowed_domains")
    return normalised


def check_range(value: int, *, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}", field=field)
    return value


def landing_domain(landing_url: str) -> str:
    host = urlsplit(landing_url).hostname
    assert host is not None  # checked by check_http_url
    return host.lower()


def domain_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """True when `host` equals an allowed domain or is under an allowed '*.' wildcard."""
    host = host.lower().rstrip(".")
    for domain in allowed:
        if domain.startswith("*."):
            base = domain[2:]
            if host == base or host.endswith("." + base):
                return True
        elif host == domain:
            return True
    return False
