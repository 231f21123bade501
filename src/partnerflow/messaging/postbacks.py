"""Partner postbacks: a partner's own URL with {macros}, called when they earn a conversion.

A partner controls the URL, so it is treated as hostile: http(s) only, no credentials in
it, and (checked again at send time, after DNS resolution) never a private, loopback,
link-local or otherwise non-public address — the server must not become a proxy into its
own network (SSRF).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from partnerflow.core.errors import InvalidInput

MACROS = (
    "click_id",
    "order_id",
    "amount",
    "currency",
    "commission",
    "event_type",
    "conversion_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
)
_MACRO_RE = re.compile(r"\{([a-z0-9_]+)\}")
#: The events a partner's postback is called for (their own conversions only).
POSTBACK_EVENTS = frozenset({"conversion.created", "conversion.reversed"})


def postback_values(event_type: str, payload: Mapping[str, Any]) -> dict[str, str | None]:
    """Macro values of one event. For `conversion.reversed`, `{commission}` is the
    commission taken back as a negative amount (the usual convention of trackers for a
    reversal), and `{amount}` the order amount refunded by this reversal."""
    conv = payload.get("conversion") or {}
    values: dict[str, str | None] = {
        "click_id": conv.get("click_id"),
        "order_id": conv.get("order_id"),
        "amount": conv.get("amount"),
        "currency": conv.get("currency"),
        "commission": conv.get("commission"),
        "event_type": conv.get("event_type"),
        "conversion_id": str(conv["id"]) if conv.get("id") is not None else None,
    }
    if event_type == "conversion.reversed":
        reversal = payload.get("reversal") or {}
        taken = reversal.get("commission_reversed") or {}
        refund = reversal.get("refund") or {}
        values["commission"] = f"-{taken['amount']}" if taken.get("amount") else "0"
        values["amount"] = refund.get("amount")
    values.update((conv.get("sub_ids") or {}).items())
    return values


def check_target_url(url: str, *, field: str = "url", allow_private: bool = False) -> str:
    """An outgoing URL (webhook endpoint or postback template): absolute http(s), no user
    info, no literal private address."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise InvalidInput(f"{field} must be an http(s) URL (max 2048 characters)", field=field)
    if any(ord(ch) < 33 or ch == "\\" for ch in url):
        raise InvalidInput(f"{field} has spaces, control characters or backslashes", field=field)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"{field} must be an absolute http or https URL", field=field)
    if parts.username or parts.password:
        raise InvalidInput(f"{field} must not contain credentials", field=field)
    try:
        _ = parts.port
    except ValueError:
        raise InvalidInput(f"{field} has an invalid port", field=field) from None
    host = parts.hostname
    if not allow_private:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise InvalidInput(f"{field} points to a local host", field=field)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and not is_public_address(str(address)):
            raise InvalidInput(f"{field} points to a non-public address", field=field)
    return url


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 is unwrapped)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global and not ip.is_multicast)


def all_public(addresses: Iterable[str]) -> bool:
    found = list(addresses)
    return bool(found) and all(is_public_address(a) for a in found)


def check_template(url: str, *, allow_private: bool = False) -> str:
    """A postback template: a valid target URL whose {macros} are all known."""
    unknown = sorted({m for m in _MACRO_RE.findall(url) if m not in MACROS})
    if unknown:
        raise InvalidInput(
            f"unknown macro(s) {', '.join(unknown)} (known: {', '.join(MACROS)})",
            field="url_template",
        )
    sample = expand(url, {})
    check_target_url(sample, field="url_template", allow_private=allow_private)
    if urlsplit(sample).hostname != urlsplit(_MACRO_RE.sub("x", url)).hostname:
        raise InvalidInput("macros may not be used in the host name", field="url_template")
    return url


def expand(template: str, values: Mapping[str, str | None]) -> str:
    """Replace each {macro} by its URL-encoded value (empty when unknown), so a value can
    never add a parameter or change the path."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return quote(value or "", safe="")

    return _MACRO_RE.sub(one, template)
