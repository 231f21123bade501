"""Channels: where a click or a conversion came from, derived (no one types it in).

- a conversion attributed by a coupon code is `coupon` (the audience typed the code it
  heard in a video or podcast; there is no click);
- a click whose referrer is a known social network or search engine is that network
  (`tiktok`, `instagram`, ..., `search`);
- a click with any other referrer is `web` (a blog, a review site, a newsletter's web view);
- a click without a referrer takes the partner's social network when the partner has one
  (in-app browsers such as TikTok's and Instagram's often send no referrer), else `direct`.

Pure: hosts are matched by their registrable suffix, so `m.facebook.com` and
`www.tiktok.com` match, and `evil-tiktok.com` does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

COUPON = "coupon"
WEB = "web"
DIRECT = "direct"
SEARCH = "search"

# host suffix -> channel. Short links of the networks (t.co, lnkd.in, youtu.be) included.
_HOSTS: Mapping[str, str] = {
    "tiktok.com": "tiktok",
    "instagram.com": "instagram",
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "fb.me": "facebook",
    "youtube.com": "youtube",
    "youtu.be": "youtube",
    "twitter.com": "x",
    "x.com": "x",
    "t.co": "x",
    "pinterest.com": "pinterest",
    "pin.it": "pinterest",
    "reddit.com": "reddit",
    "linkedin.com": "linkedin",
    "lnkd.in": "linkedin",
    "snapchat.com": "snapchat",
    "threads.net": "threads",
    "twitch.tv": "twitch",
    "google.com": SEARCH,
    "bing.com": SEARCH,
    "duckduckgo.com": SEARCH,
    "search.yahoo.com": SEARCH,
    "ecosia.org": SEARCH,
}
NETWORKS = frozenset(v for v in _HOSTS.values() if v != SEARCH)
ALL_CHANNELS = frozenset({COUPON, WEB, DIRECT, SEARCH, *NETWORKS})


@lru_cache(maxsize=4096)
def referrer_channel(referrer: str | None) -> str | None:
    """The channel a referrer URL names, or None when there is no usable referrer."""
    if not referrer:
        return None
    text = referrer.strip()
    if "//" not in text:
        text = "//" + text
    try:
        host = (urlsplit(text).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if not host:
        return None
    labels = host.split(".")
    for i in range(len(labels) - 1):
        found = _HOSTS.get(".".join(labels[i:]))
        if found is not None:
            return found
    return WEB


def partner_network(social: Mapping[str, object] | None) -> str | None:
    """The partner's main social network: the first known network in their profile."""
    for name in social or {}:
        key = str(name).strip().lower()
        if key in NETWORKS:
            return key
        if key == "twitter":
            return "x"
    return None


def click_channel(referrer: str | None, partner_net: str | None) -> str:
    return referrer_channel(referrer) or partner_net or DIRECT


def conversion_channel(
    attributed_by: str | None, referrer: str | None, partner_net: str | None
) -> str:
    if attributed_by == "coupon":
        return COUPON
    return click_channel(referrer, partner_net)
