"""Signals: the facts a score is computed from, and the named reasons it can give.

The facts are what the tracking hot path already knows when it handles a click or a
conversion (verdicts on the user agent and IP, counters it keeps, the landing query), so
scoring needs no lookup of its own. Every signal that fires becomes a ``Signal`` with a
stable code (for policies, reports and the simulator) and a sentence for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qsl

from partnerflow.fraud.bots import BotVerdict
from partnerflow.fraud.identities import Identity
from partnerflow.fraud.networks import IpVerdict

#: Click ids that ad platforms append to their landing URLs. Seen on partner traffic they
#: mean the partner bought the click (paid search / brand bidding / paid social).
AD_CLICK_IDS: Final[dict[str, str]] = {
    "gclid": "Google Ads",
    "gbraid": "Google Ads",
    "wbraid": "Google Ads",
    "dclid": "Google Display & Video",
    "msclkid": "Microsoft Advertising",
    "fbclid": "Meta",
    "ttclid": "TikTok Ads",
    "twclid": "X Ads",
    "li_fat_id": "LinkedIn Ads",
    "epik": "Pinterest Ads",
    "sccid": "Snapchat Ads",
    "yclid": "Yandex Direct",
}

#: A visitor who clicks links of this many partners (or programs) on one day is what forced
#: clicks look like (cookie stuffing: "many programs or partners per visitor", Anura,
#: Fraudlogix). Our default: a shopper comparing two review sites clicks two partners.
STUFFED_VISITOR_PARTNERS: Final = 3

#: Query strings longer than this are cut before looking for ad click ids.
_MAX_QUERY_LENGTH: Final = 8192


class SignalCode(StrEnum):
    """Stable names of everything a score can say."""

    # clicks
    DECLARED_CRAWLER = "declared_crawler"
    HEADLESS_BROWSER = "headless_browser"
    SCRIPTED_CLIENT = "scripted_client"
    EMPTY_USER_AGENT = "empty_user_agent"
    MALFORMED_USER_AGENT = "malformed_user_agent"
    DATACENTER_IP = "datacenter_ip"
    TOR_EXIT = "tor_exit"
    VPN_IP = "vpn_ip"
    INVALID_IP = "invalid_ip"
    IP_VELOCITY = "ip_velocity"
    VISITOR_VELOCITY = "visitor_velocity"
    PARTNER_VELOCITY = "partner_velocity"
    DUPLICATE_CLICK = "duplicate_click"
    FAST_CLICKER = "fast_clicker"
    NO_REFERRER = "no_referrer"
    PAID_SEARCH = "paid_search"
    # conversions
    CTIT_INJECTION = "ctit_injection"
    CTIT_TOO_SHORT = "ctit_too_short"
    CTIT_TOO_LONG = "ctit_too_long"
    DUPLICATE_ORDER = "duplicate_order"
    SELF_REFERRAL = "self_referral"
    SELF_REFERRAL_IP = "self_referral_ip"
    INVALID_CLICK = "invalid_click"
    SUSPICIOUS_CLICK = "suspicious_click"


@dataclass(frozen=True, slots=True)
class Signal:
    """One reason contributing ``points`` (0-100) to a score."""

    code: SignalCode
    points: int
    reason: str


@dataclass(frozen=True, slots=True)
class ClickFacts:
    """What the hot path knows about a click.

    Velocity counts include the click being scored and cover the last 60 seconds.
    ``seconds_since_previous_click`` is for the same visitor (cookie, or IP + user agent
    when there is no cookie); None for a first click.
    """

    user_agent: BotVerdict
    ip: IpVerdict
    referrer_present: bool = True
    clicks_last_minute_ip: int = 1
    clicks_last_minute_visitor: int = 1
    clicks_last_minute_partner: int = 1
    duplicate: bool = False
    seconds_since_previous_click: float | None = None
    ad_click_ids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class ConversionFacts:
    """What is known about a conversion when it is recorded.

    ``ctit_seconds`` is the click-to-conversion time (None when no click is attributed,
    e.g. a coupon); ``click_score`` the score of the attributed click, if any.
    """

    ctit_seconds: float | None = None
    duplicate_order: bool = False
    partner: Identity = field(default_factory=Identity)
    customer: Identity = field(default_factory=Identity)
    ad_click_ids: frozenset[str] = field(default_factory=frozenset)
    click_score: int | None = None


@dataclass(frozen=True, slots=True)
class PartnerWindowFacts:
    """Aggregates for one partner over a rolling window (e.g. the last 30 days).

    ``program_fast_conversion_share`` is the program-wide share of conversions with a
    click-to-conversion time under 10 s, the baseline TUNE compares a partner with.

    Cookie-stuffing facts (None = not measured, e.g. by an older caller):
    ``stuffed_clicks`` are clicks from visitors (IP + user agent) who clicked links of
    several partners or programs within a day; ``existing_customer_conversions`` are
    conversions by customers who had bought before the attributed click, compared with
    the program-wide share ``program_existing_customer_share``.
    """

    clicks: int = 0
    bot_clicks: int = 0
    datacenter_clicks: int = 0
    conversions: int = 0
    fast_conversions: int = 0
    slow_conversions: int = 0
    refunded_conversions: int = 0
    program_fast_conversion_share: float | None = None
    stuffed_clicks: int | None = None
    existing_customer_conversions: int | None = None
    program_existing_customer_share: float | None = None


def ad_click_ids_in_query(query: str | None) -> frozenset[str]:
    """The ad-platform click id parameters present (with a value) in a URL query string.

    Accepts the query with or without its leading "?"; never raises.
    """
    if not query:
        return frozenset()
    text = query[:_MAX_QUERY_LENGTH].lstrip("?")
    try:
        pairs = parse_qsl(text, keep_blank_values=False)
    except ValueError:
        return frozenset()
    return frozenset(key.lower() for key, value in pairs if key.lower() in AD_CLICK_IDS and value)
