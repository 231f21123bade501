"""Datacenter, hosting, VPN and Tor classification of client IP addresses.

The data is the range table that ships inside the PyPI package ``iporigin`` (about 38,800
IPv4/IPv6 ranges from 49 providers' published feeds and CC0 aggregations, see its NOTICE
and docs/fraud.md). Only its offline ``classify`` is used, never ``iporigin.online``: the
hot path must not make network calls, and the online service is a third party.

"residential" means "global unicast address in none of the datacenter / VPN / Tor lists we
ship": absence of evidence, not proof of a home connection (iporigin itself says so).
"unknown" means the dataset could not be read, so nothing could be said.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

import iporigin

IpKind = Literal["datacenter", "vpn", "tor", "residential", "private", "invalid", "unknown"]

#: Distinct addresses remembered; an IPv6 key is at most ~45 characters.
CACHE_SIZE: Final = 65_536

#: Longer strings cannot be an address (the longest IPv6 text with a zone id is well under).
_MAX_ADDRESS_LENGTH: Final = 100

# iporigin kinds -> ours. A declared crawler's range ("bot": Googlebot, GPTBot, ...) and a
# CDN edge are machines in a datacenter as far as traffic quality goes.
_KINDS: Final[dict[str, IpKind]] = {
    iporigin.HOSTING: "datacenter",
    iporigin.CDN: "datacenter",
    iporigin.BOT: "datacenter",
    iporigin.VPN: "vpn",
    iporigin.TOR: "tor",
}


@dataclass(frozen=True, slots=True)
class IpVerdict:
    """What kind of network an address belongs to, and the provider when known."""

    kind: IpKind
    provider: str | None = None

    @property
    def datacenter(self) -> bool:
        """True for addresses that are servers rather than people's lines."""
        return self.kind in ("datacenter", "vpn", "tor")

    @property
    def description(self) -> str:
        """Readable form used in reasons, e.g. "datacenter (Amazon AWS)"."""
        return f"{self.kind} ({self.provider})" if self.provider else self.kind


INVALID: Final = IpVerdict(kind="invalid")
PRIVATE: Final = IpVerdict(kind="private")
RESIDENTIAL: Final = IpVerdict(kind="residential")
UNKNOWN: Final = IpVerdict(kind="unknown")


def warm_up() -> None:
    """Load iporigin's table now (tens of ms) so the first click does not pay for it."""
    try:
        iporigin.dataset_info()  # type: ignore[no-untyped-call]
    except iporigin.DatasetError:
        return


def classify_ip(ip: str | None) -> IpVerdict:
    """Classify an IPv4 or IPv6 address; malformed input is "invalid", never an error."""
    if not isinstance(ip, str):
        return INVALID
    try:
        return _classify_cached(ip[:_MAX_ADDRESS_LENGTH])
    except Exception:  # the hot path must never crash on a client address
        return INVALID


@lru_cache(maxsize=CACHE_SIZE)
def _classify_cached(text: str) -> IpVerdict:
    address = _parse(text)
    if address is None:
        return INVALID
    if not address.is_global:
        return PRIVATE
    try:
        origin = iporigin.classify(address)  # type: ignore[no-untyped-call]
    except (iporigin.DatasetError, ValueError, OSError):
        return UNKNOWN
    kind = _KINDS.get(origin.kind)
    if kind is None:
        # iporigin's "unknown": in none of the lists.
        return RESIDENTIAL
    return IpVerdict(kind=kind, provider=origin.provider or None)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address as proxies and servers write it, or None.

    Accepts surrounding whitespace and brackets ("[2001:db8::1]"); an IPv4-mapped IPv6
    address ("::ffff:52.95.110.1", as dual-stack sockets report IPv4 peers) is looked up
    as the IPv4 address it carries.
    """
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            # A zone id only makes sense on a link-local address; look up the bare one.
            return ipaddress.IPv6Address(candidate.split("%", 1)[0])
    return address


def cache_info() -> str:
    """Hit/miss counts of the per-address cache, for the benchmark and operators."""
    return str(_classify_cached.cache_info())
