"""Device, OS and browser from the user agent, with `ua-parser` behind an LRU cache.

ua-parser's regex list costs 0.1-1 ms per user agent in pure Python, which alone would eat
the click budget; real traffic repeats a few thousand user agents, so a per-string cache
makes the hot path pay that once per distinct agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

MAX_USER_AGENT_LENGTH: Final = 1024
CACHE_SIZE: Final = 16_384


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device: str | None  # "desktop", "mobile", "tablet", "bot" or None when unknown
    os: str | None
    browser: str | None


UNKNOWN: Final = DeviceInfo(None, None, None)
_TABLET_HINTS: Final = ("ipad", "tablet", "kindle", "silk", "playbook", "nexus 7", "nexus 10")
_MOBILE_HINTS: Final = ("mobi", "iphone", "ipod", "android", "windows phone", "blackberry")


def describe_device(user_agent: str | None) -> DeviceInfo:
    """Parse a user agent; never raises, junk gives UNKNOWN."""
    if not user_agent:
        return UNKNOWN
    return _describe(user_agent[:MAX_USER_AGENT_LENGTH])


@lru_cache(maxsize=CACHE_SIZE)
def _describe(user_agent: str) -> DeviceInfo:
    from ua_parser import parse  # imported lazily: it loads its regex table on first use

    try:
        result = parse(user_agent)
    except Exception:
        return UNKNOWN
    os_name = result.os.family if result.os and result.os.family != "Other" else None
    browser = (
        result.user_agent.family
        if result.user_agent and result.user_agent.family != "Other"
        else None
    )
    family = (result.device.family if result.device else "") or ""
    lowered = user_agent.lower()
    if family == "Spider":
        kind: str | None = "bot"
    elif any(hint in lowered for hint in _TABLET_HINTS) or (
        "android" in lowered and "mobile" not in lowered
    ):
        kind = "tablet"
    elif any(hint in lowered for hint in _MOBILE_HINTS):
        kind = "mobile"
    elif os_name in {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora"}:
        kind = "desktop"
    else:
        kind = None
    return DeviceInfo(kind, _clip(os_name), _clip(browser))


def _clip(value: str | None) -> str | None:
    return value[:64] if value else None


def warm_up() -> None:
    """Load ua-parser's table now, so the first click doesn't pay for it."""
    describe_device("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0")
