"""Scores for clicks, conversions and partners, each explained reason by reason.

Click and conversion scores add the points of the signals that fire and cap at 100; a
score at or above the policy's ``flag_at`` marks the event for review, at or above
``invalid_at`` it is invalid traffic. A score never blocks a redirect: tracking records
it, and the actions policy (hold, reject, suspend) decides what happens to money.

The partner quality score starts at 100 and loses points signal by signal; every signal
is reported with its measured value and threshold even when it costs nothing, so a
manager can see what was checked, not only what was found.

Thresholds and their sources are listed in docs/fraud.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from partnerflow.fraud.identities import shared_identifiers
from partnerflow.fraud.signals import (
    AD_CLICK_IDS,
    ClickFacts,
    ConversionFacts,
    PartnerWindowFacts,
    Signal,
    SignalCode,
)

Level = Literal["clean", "suspicious", "invalid"]


@dataclass(frozen=True, slots=True)
class ClickPolicy:
    """Thresholds and weights for click scoring (defaults documented in docs/fraud.md)."""

    flag_at: int = 50
    invalid_at: int = 80
    max_clicks_per_minute_ip: int = 60  # Voluum anti-fraud kit: > 60 events / min / IP
    max_clicks_per_minute_visitor: int = 10
    max_clicks_per_minute_partner: int = 600
    fast_click_seconds: float = 0.8  # Voluum "fast clickers": under 800 ms
    paid_search_allowed: bool = False
    declared_crawler_points: int = 100
    automation_points: int = 90  # headless browsers and scripted clients
    empty_user_agent_points: int = 70
    malformed_user_agent_points: int = 70
    datacenter_points: int = 60
    tor_points: int = 60
    vpn_points: int = 25
    invalid_ip_points: int = 30
    ip_velocity_points: int = 60
    visitor_velocity_points: int = 60
    partner_velocity_points: int = 20
    duplicate_points: int = 25
    fast_click_points: int = 60
    no_referrer_points: int = 10
    paid_search_points: int = 50


@dataclass(frozen=True, slots=True)
class ConversionPolicy:
    """Thresholds and weights for conversion scoring, configurable per program."""

    flag_at: int = 50
    invalid_at: int = 80
    injection_ctit_seconds: float = 5.0  # Everflow, e-commerce: < 5 s coupon poaching
    suspicious_ctit_seconds: float = 15.0  # Everflow: < 15 s "almost always suspicious"
    long_ctit_seconds: float | None = 86_400.0  # Everflow, e-commerce: 24 h+ click stuffing
    paid_search_allowed: bool = False
    injection_points: int = 80
    short_ctit_points: int = 60
    long_ctit_points: int = 10
    duplicate_order_points: int = 80
    self_referral_points: int = 90
    self_referral_ip_points: int = 60
    paid_search_points: int = 50
    invalid_click_points: int = 60
    suspicious_click_points: int = 25


@dataclass(frozen=True, slots=True)
class _Score:
    score: int
    signals: tuple[Signal, ...]
    flag_at: int
    invalid_at: int

    @property
    def reasons(self) -> tuple[str, ...]:
        """Readable reasons, strongest first."""
        return tuple(signal.reason for signal in self.signals)

    @property
    def codes(self) -> frozenset[SignalCode]:
        return frozenset(signal.code for signal in self.signals)

    @property
    def level(self) -> Level:
        if self.score >= self.invalid_at:
            return "invalid"
        if self.score >= self.flag_at:
            return "suspicious"
        return "clean"

    @property
    def flagged(self) -> bool:
        return self.score >= self.flag_at


@dataclass(frozen=True, slots=True)
class ClickScore(_Score):
    """0 (clean) to 100 (certainly invalid), with the signals that produced it."""


@dataclass(frozen=True, slots=True)
class ConversionScore(_Score):
    """0 (clean) to 100 (certainly fraudulent), with the signals that produced it."""


DEFAULT_CLICK_POLICY: Final = ClickPolicy()
DEFAULT_CONVERSION_POLICY: Final = ConversionPolicy()


def _total(signals: list[Signal]) -> tuple[int, tuple[Signal, ...]]:
    signals.sort(key=lambda signal: -signal.points)
    return min(100, sum(signal.points for signal in signals)), tuple(signals)


def _ad_platforms(ids: frozenset[str]) -> str:
    return ", ".join(sorted(f"{AD_CLICK_IDS.get(key, key)} ({key})" for key in ids))


def score_click(facts: ClickFacts, policy: ClickPolicy = DEFAULT_CLICK_POLICY) -> ClickScore:
    """Score one click from what the hot path knows; pure and allocation-light."""
    signals: list[Signal] = []
    ua = facts.user_agent
    if ua.bot:
        category = ua.category
        reason = ua.reason or "bot user agent"
        if category == "crawler":
            signals.append(
                Signal(SignalCode.DECLARED_CRAWLER, policy.declared_crawler_points, reason)
            )
        elif category == "headless":
            signals.append(Signal(SignalCode.HEADLESS_BROWSER, policy.automation_points, reason))
        elif category == "empty":
            signals.append(
                Signal(SignalCode.EMPTY_USER_AGENT, policy.empty_user_agent_points, reason)
            )
        elif category == "malformed":
            signals.append(
                Signal(SignalCode.MALFORMED_USER_AGENT, policy.malformed_user_agent_points, reason)
            )
        else:
            signals.append(Signal(SignalCode.SCRIPTED_CLIENT, policy.automation_points, reason))

    kind = facts.ip.kind
    if kind == "datacenter":
        signals.append(
            Signal(
                SignalCode.DATACENTER_IP,
                policy.datacenter_points,
                f"datacenter IP: {facts.ip.provider or 'hosting range'}",
            )
        )
    elif kind == "tor":
        signals.append(Signal(SignalCode.TOR_EXIT, policy.tor_points, "Tor exit node"))
    elif kind == "vpn":
        signals.append(
            Signal(SignalCode.VPN_IP, policy.vpn_points, f"VPN IP: {facts.ip.provider or 'VPN'}")
        )
    elif kind == "invalid":
        signals.append(
            Signal(SignalCode.INVALID_IP, policy.invalid_ip_points, "missing or malformed IP")
        )

    if facts.clicks_last_minute_ip > policy.max_clicks_per_minute_ip:
        signals.append(
            Signal(
                SignalCode.IP_VELOCITY,
                policy.ip_velocity_points,
                f"{facts.clicks_last_minute_ip} clicks in the last minute from this IP "
                f"(limit {policy.max_clicks_per_minute_ip})",
            )
        )
    if facts.clicks_last_minute_visitor > policy.max_clicks_per_minute_visitor:
        signals.append(
            Signal(
                SignalCode.VISITOR_VELOCITY,
                policy.visitor_velocity_points,
                f"{facts.clicks_last_minute_visitor} clicks in the last minute from this "
                f"visitor (limit {policy.max_clicks_per_minute_visitor})",
            )
        )
    if facts.clicks_last_minute_partner > policy.max_clicks_per_minute_partner:
        signals.append(
            Signal(
                SignalCode.PARTNER_VELOCITY,
                policy.partner_velocity_points,
                f"{facts.clicks_last_minute_partner} clicks in the last minute for this "
                f"partner (limit {policy.max_clicks_per_minute_partner})",
            )
        )
    gap = facts.seconds_since_previous_click
    if gap is not None and gap < policy.fast_click_seconds:
        signals.append(
            Signal(
                SignalCode.FAST_CLICKER,
                policy.fast_click_points,
                f"clicked {gap * 1000:.0f} ms after the previous click "
                f"(under {policy.fast_click_seconds * 1000:.0f} ms)",
            )
        )
    if facts.duplicate:
        signals.append(
            Signal(SignalCode.DUPLICATE_CLICK, policy.duplicate_points, "duplicate click")
        )
    if not facts.referrer_present:
        signals.append(Signal(SignalCode.NO_REFERRER, policy.no_referrer_points, "no referrer"))
    if facts.ad_click_ids and not policy.paid_search_allowed:
        signals.append(
            Signal(
                SignalCode.PAID_SEARCH,
                policy.paid_search_points,
                f"ad click id on partner traffic: {_ad_platforms(facts.ad_click_ids)}",
            )
        )
    if not signals:
        return ClickScore(0, (), policy.flag_at, policy.invalid_at)
    score, ordered = _total(signals)
    return ClickScore(score, ordered, policy.flag_at, policy.invalid_at)


def score_conversion(
    facts: ConversionFacts, policy: ConversionPolicy = DEFAULT_CONVERSION_POLICY
) -> ConversionScore:
    """Score one conversion; its reasons say which rule fired and with which value."""
    signals: list[Signal] = []
    ctit = facts.ctit_seconds
    if ctit is not None:
        if ctit < policy.injection_ctit_seconds:
            signals.append(
                Signal(
                    SignalCode.CTIT_INJECTION,
                    policy.injection_points,
                    f"converted {ctit:.1f} s after the click (under "
                    f"{policy.injection_ctit_seconds:g} s: click injection or coupon poaching)",
                )
            )
        elif ctit < policy.suspicious_ctit_seconds:
            signals.append(
                Signal(
                    SignalCode.CTIT_TOO_SHORT,
                    policy.short_ctit_points,
                    f"converted {ctit:.1f} s after the click "
                    f"(under {policy.suspicious_ctit_seconds:g} s)",
                )
            )
        elif policy.long_ctit_seconds is not None and ctit > policy.long_ctit_seconds:
            signals.append(
                Signal(
                    SignalCode.CTIT_TOO_LONG,
                    policy.long_ctit_points,
                    f"converted {ctit / 3600:.1f} h after the click "
                    f"(over {policy.long_ctit_seconds / 3600:g} h)",
                )
            )
    if facts.duplicate_order:
        signals.append(
            Signal(SignalCode.DUPLICATE_ORDER, policy.duplicate_order_points, "duplicate order")
        )
    shared = shared_identifiers(facts.partner, facts.customer)
    strong = [kind for kind in shared if kind != "IP"]
    if strong:
        signals.append(
            Signal(
                SignalCode.SELF_REFERRAL,
                policy.self_referral_points,
                f"self-referral: the customer's {', '.join(strong)} is the partner's",
            )
        )
    elif "IP" in shared:
        signals.append(
            Signal(
                SignalCode.SELF_REFERRAL_IP,
                policy.self_referral_ip_points,
                "possible self-referral: the customer's IP is the partner's",
            )
        )
    if facts.ad_click_ids and not policy.paid_search_allowed:
        signals.append(
            Signal(
                SignalCode.PAID_SEARCH,
                policy.paid_search_points,
                f"paid search / brand bidding: {_ad_platforms(facts.ad_click_ids)}",
            )
        )
    if facts.click_score is not None:
        if facts.click_score >= DEFAULT_CLICK_POLICY.invalid_at:
            signals.append(
                Signal(
                    SignalCode.INVALID_CLICK,
                    policy.invalid_click_points,
                    f"the attributed click was invalid traffic (score {facts.click_score})",
                )
            )
        elif facts.click_score >= DEFAULT_CLICK_POLICY.flag_at:
            signals.append(
                Signal(
                    SignalCode.SUSPICIOUS_CLICK,
                    policy.suspicious_click_points,
                    f"the attributed click was suspicious (score {facts.click_score})",
                )
            )
    if not signals:
        return ConversionScore(0, (), policy.flag_at, policy.invalid_at)
    score, ordered = _total(signals)
    return ConversionScore(score, ordered, policy.flag_at, policy.invalid_at)


# --- partner traffic quality -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    """Thresholds for the per-partner quality score (defaults documented in docs/fraud.md).

    Each penalty grows linearly from 0 at the threshold to its maximum at the saturation
    point, so a partner just over a line loses little and a flagrant one loses all of it.
    """

    bot_share: float = 0.05
    bot_share_saturation: float = 0.50
    bot_penalty: int = 30
    datacenter_share: float = 0.10
    datacenter_share_saturation: float = 0.50
    datacenter_penalty: int = 25
    fast_conversion_ratio: float = 3.0  # TUNE: partner share of CTIT < 10 s vs program share
    fast_conversion_ratio_saturation: float = 8.0
    fast_conversion_min_share: float = 0.05
    fast_conversion_penalty: int = 25
    slow_conversion_share: float = 0.30  # Everflow: > 30% after 24 h suggests click spamming
    slow_conversion_share_saturation: float = 0.80
    slow_conversion_penalty: int = 15
    refund_rate: float = 0.25  # FirstPromoter flags partners above 25% by default
    refund_rate_saturation: float = 0.75
    refund_penalty: int = 25
    min_conversion_rate: float = 0.0002  # Easy Affiliate: 0.02% - 20%
    max_conversion_rate: float = 0.20
    conversion_rate_penalty: int = 20
    # Cookie stuffing (Anura, Fraudlogix: many programs or partners per visitor, a high
    # share of existing customers); the numbers are our defaults, see docs/fraud.md.
    stuffed_click_share: float = 0.20
    stuffed_click_share_saturation: float = 0.80
    stuffed_click_penalty: int = 20
    existing_customer_share: float = 0.50
    existing_customer_ratio: float = 2.0  # and at least twice the program's own share
    existing_customer_share_saturation: float = 0.90
    existing_customer_penalty: int = 20
    min_clicks: int = 100  # below this, click shares are not judged
    min_conversions: int = 10  # below this, conversion shares are not judged
    min_clicks_for_low_conversion_rate: int = 10_000  # 2 expected conversions at 0.02%
    # The partner classifier calls a rate over (under) its threshold only when the
    # one-sided Wilson score bound at this z agrees (1.645: 95% confidence).
    evidence_z: float = 1.645


@dataclass(frozen=True, slots=True)
class QualitySignal:
    """One checked signal of the partner quality score, whether it cost points or not."""

    code: str
    value: float | None
    threshold: float
    penalty: int
    reason: str


@dataclass(frozen=True, slots=True)
class PartnerQuality:
    """Traffic quality 0 (worst) to 100 (clean) over a window, explained signal by signal."""

    score: int
    signals: tuple[QualitySignal, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """Reasons of the signals that cost points, largest penalty first."""
        costly = sorted((s for s in self.signals if s.penalty), key=lambda s: -s.penalty)
        return tuple(signal.reason for signal in costly)


DEFAULT_QUALITY_POLICY: Final = QualityPolicy()


def _ramp(value: float, threshold: float, saturation: float, maximum: int) -> int:
    """0 up to the threshold, ``maximum`` from saturation, linear in between."""
    if value <= threshold:
        return 0
    if value >= saturation or saturation <= threshold:
        return maximum
    return max(1, round(maximum * (value - threshold) / (saturation - threshold)))


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def score_partner_quality(
    facts: PartnerWindowFacts, policy: QualityPolicy = DEFAULT_QUALITY_POLICY
) -> PartnerQuality:
    """Quality score of a partner's traffic over a window, explained signal by signal."""
    signals = [
        _share_signal(
            "bot_share",
            "bot clicks",
            facts.bot_clicks,
            facts.clicks,
            policy.min_clicks,
            "clicks",
            policy.bot_share,
            policy.bot_share_saturation,
            policy.bot_penalty,
        ),
        _share_signal(
            "datacenter_share",
            "datacenter / VPN / Tor clicks",
            facts.datacenter_clicks,
            facts.clicks,
            policy.min_clicks,
            "clicks",
            policy.datacenter_share,
            policy.datacenter_share_saturation,
            policy.datacenter_penalty,
        ),
        _fast_conversion_signal(facts, policy),
        _share_signal(
            "slow_conversion_share",
            "conversions over 24 h after the click",
            facts.slow_conversions,
            facts.conversions,
            policy.min_conversions,
            "conversions",
            policy.slow_conversion_share,
            policy.slow_conversion_share_saturation,
            policy.slow_conversion_penalty,
        ),
        _share_signal(
            "refund_rate",
            "refunded or charged back",
            facts.refunded_conversions,
            facts.conversions,
            policy.min_conversions,
            "conversions",
            policy.refund_rate,
            policy.refund_rate_saturation,
            policy.refund_penalty,
        ),
        _conversion_rate_signal(facts, policy),
    ]
    if facts.stuffed_clicks is not None:
        signals.append(
            _share_signal(
                "stuffed_click_share",
                "clicks from visitors who clicked several partners or programs in a day",
                facts.stuffed_clicks,
                facts.clicks,
                policy.min_clicks,
                "clicks",
                policy.stuffed_click_share,
                policy.stuffed_click_share_saturation,
                policy.stuffed_click_penalty,
            )
        )
    if facts.existing_customer_conversions is not None:
        threshold = _existing_customer_threshold(facts, policy)
        signals.append(
            _share_signal(
                "existing_customer_share",
                "conversions by customers who had bought before the click",
                facts.existing_customer_conversions,
                facts.conversions,
                policy.min_conversions,
                "conversions",
                threshold,
                max(threshold, policy.existing_customer_share_saturation),
                policy.existing_customer_penalty,
            )
        )
    penalty = sum(signal.penalty for signal in signals)
    return PartnerQuality(max(0, 100 - penalty), tuple(signals))


def _existing_customer_threshold(facts: PartnerWindowFacts, policy: QualityPolicy) -> float:
    """The floor, raised to a multiple of the program's own share when it is known (a shop
    whose customers mostly come back has a high baseline)."""
    baseline = facts.program_existing_customer_share or 0.0
    return max(policy.existing_customer_share, policy.existing_customer_ratio * baseline)


def _share_signal(
    code: str,
    what: str,
    part: int,
    whole: int,
    minimum: int,
    unit: str,
    threshold: float,
    saturation: float,
    maximum: int,
) -> QualitySignal:
    if whole < max(minimum, 1):
        return QualitySignal(
            code, None, threshold, 0, f"{what}: not judged, only {whole} {unit} (need {minimum})"
        )
    share = max(0, min(part, whole)) / whole
    penalty = _ramp(share, threshold, saturation, maximum)
    verdict = f"-{penalty}" if penalty else "ok"
    return QualitySignal(
        code,
        share,
        threshold,
        penalty,
        f"{what}: {_percent(share)} of {whole} {unit} (limit {_percent(threshold)}): {verdict}",
    )


def _fast_conversion_signal(facts: PartnerWindowFacts, policy: QualityPolicy) -> QualitySignal:
    code = "fast_conversion_share"
    what = "conversions under 10 s after the click"
    if facts.conversions < max(policy.min_conversions, 1):
        return QualitySignal(
            code,
            None,
            policy.fast_conversion_ratio,
            0,
            f"{what}: not judged, only {facts.conversions} conversions "
            f"(need {policy.min_conversions})",
        )
    share = max(0, min(facts.fast_conversions, facts.conversions)) / facts.conversions
    baseline = facts.program_fast_conversion_share
    if share < policy.fast_conversion_min_share:
        return QualitySignal(
            code,
            share,
            policy.fast_conversion_ratio,
            0,
            f"{what}: {_percent(share)} (under {_percent(policy.fast_conversion_min_share)}): ok",
        )
    # TUNE compares with the program's own share; without a baseline, assume a small one
    # so that the absolute floor above is what decides.
    assumed = policy.fast_conversion_min_share / policy.fast_conversion_ratio
    reference = baseline if baseline else assumed
    ratio = share / reference
    penalty = _ramp(
        ratio,
        policy.fast_conversion_ratio,
        policy.fast_conversion_ratio_saturation,
        policy.fast_conversion_penalty,
    )
    verdict = f"-{penalty}" if penalty else "ok"
    baseline_text = _percent(baseline) if baseline else "unknown"
    return QualitySignal(
        code,
        ratio,
        policy.fast_conversion_ratio,
        penalty,
        f"{what}: {_percent(share)} vs {baseline_text} program-wide ({ratio:.1f}x, limit "
        f"{policy.fast_conversion_ratio:g}x): {verdict}",
    )


def _conversion_rate_signal(facts: PartnerWindowFacts, policy: QualityPolicy) -> QualitySignal:
    code = "conversion_rate"
    what = "conversion rate"
    bounds = f"{_percent(policy.min_conversion_rate)}-{_percent(policy.max_conversion_rate)}"
    if facts.clicks < max(policy.min_clicks, 1):
        return QualitySignal(
            code,
            None,
            policy.max_conversion_rate,
            0,
            f"{what}: not judged, only {facts.clicks} clicks (need {policy.min_clicks})",
        )
    rate = facts.conversions / facts.clicks
    if rate > policy.max_conversion_rate:
        penalty = policy.conversion_rate_penalty
        text = f"{_percent(rate)} of {facts.clicks} clicks, above {bounds}: -{penalty}"
        return QualitySignal(code, rate, policy.max_conversion_rate, penalty, f"{what}: {text}")
    if rate < policy.min_conversion_rate:
        if facts.clicks < policy.min_clicks_for_low_conversion_rate:
            return QualitySignal(
                code,
                rate,
                policy.min_conversion_rate,
                0,
                f"{what}: {_percent(rate)}, too few clicks to call it low "
                f"({facts.clicks} < {policy.min_clicks_for_low_conversion_rate})",
            )
        penalty = policy.conversion_rate_penalty
        text = f"{_percent(rate)} of {facts.clicks} clicks, below {bounds}: -{penalty}"
        return QualitySignal(code, rate, policy.min_conversion_rate, penalty, f"{what}: {text}")
    return QualitySignal(
        code,
        rate,
        policy.max_conversion_rate,
        0,
        f"{what}: {_percent(rate)} of {facts.clicks} clicks, within {bounds}: ok",
    )


# --- partner classification ---------------------------------------------------------------

PartnerFraudType = Literal[
    "bots",
    "datacenter",
    "click_injection",
    "cookie_stuffing",
    "refund_abuse",
    "conversion_rate_outlier",
]

#: Which fraud each partner-quality signal points to. A conversion rate far *below* the
#: bounds is cookie stuffing / click spamming (Adjust, Anura: huge click counts that
#: claim organic sales), far *above* them an outlier of its own (conversions without
#: fresh traffic: leaked coupons, incentivised or self-made sales).
SIGNAL_TYPES: Final[dict[str, PartnerFraudType]] = {
    "bot_share": "bots",
    "datacenter_share": "datacenter",
    "fast_conversion_share": "click_injection",
    "slow_conversion_share": "cookie_stuffing",
    "stuffed_click_share": "cookie_stuffing",
    "existing_customer_share": "cookie_stuffing",
    "refund_rate": "refund_abuse",
    "low_conversion_rate": "cookie_stuffing",
    "high_conversion_rate": "conversion_rate_outlier",
}


@dataclass(frozen=True, slots=True)
class PartnerEvidence:
    """One signal over its threshold with enough evidence: the measured share, the
    one-sided Wilson bound that cleared the threshold, and the sample."""

    code: str
    fraud_type: PartnerFraudType
    share: float
    bound: float
    threshold: float
    sample: int
    reason: str


@dataclass(frozen=True, slots=True)
class PartnerVerdict:
    """The quality score and the fraud types the evidence supports (empty: not flagged)."""

    quality: PartnerQuality
    evidence: tuple[PartnerEvidence, ...]

    @property
    def types(self) -> frozenset[PartnerFraudType]:
        return frozenset(e.fraud_type for e in self.evidence)

    @property
    def flagged(self) -> bool:
        return bool(self.evidence)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(e.reason for e in self.evidence)


def wilson_bounds(part: int, whole: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion (Wilson 1927; recommended over the
    normal approximation for small samples and rates near 0 or 1 by Brown, Cai & DasGupta
    2001). ``(0, 1)`` for an empty sample."""
    if whole <= 0:
        return 0.0, 1.0
    p = max(0, min(part, whole)) / whole
    z2 = z * z
    denominator = 1 + z2 / whole
    centre = (p + z2 / (2 * whole)) / denominator
    half = z * math.sqrt(p * (1 - p) / whole + z2 / (4 * whole * whole)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _measurements(
    facts: PartnerWindowFacts, policy: QualityPolicy
) -> list[tuple[str, int, int, int, float, bool]]:
    """(code, part, whole, minimum sample, threshold, above?) for every partner signal."""
    fast_threshold = max(
        policy.fast_conversion_min_share,
        policy.fast_conversion_ratio
        * (
            facts.program_fast_conversion_share
            or policy.fast_conversion_min_share / policy.fast_conversion_ratio
        ),
    )
    clicks, conversions = facts.clicks, facts.conversions
    out = [
        ("bot_share", facts.bot_clicks, clicks, policy.min_clicks, policy.bot_share, True),
        (
            "datacenter_share",
            facts.datacenter_clicks,
            clicks,
            policy.min_clicks,
            policy.datacenter_share,
            True,
        ),
        (
            "fast_conversion_share",
            facts.fast_conversions,
            conversions,
            policy.min_conversions,
            fast_threshold,
            True,
        ),
        (
            "slow_conversion_share",
            facts.slow_conversions,
            conversions,
            policy.min_conversions,
            policy.slow_conversion_share,
            True,
        ),
        (
            "refund_rate",
            facts.refunded_conversions,
            conversions,
            policy.min_conversions,
            policy.refund_rate,
            True,
        ),
        (
            "high_conversion_rate",
            conversions,
            clicks,
            policy.min_clicks,
            policy.max_conversion_rate,
            True,
        ),
        (
            "low_conversion_rate",
            conversions,
            clicks,
            policy.min_clicks_for_low_conversion_rate,
            policy.min_conversion_rate,
            False,
        ),
    ]
    if facts.stuffed_clicks is not None:
        out.append(
            (
                "stuffed_click_share",
                facts.stuffed_clicks,
                clicks,
                policy.min_clicks,
                policy.stuffed_click_share,
                True,
            )
        )
    if facts.existing_customer_conversions is not None:
        out.append(
            (
                "existing_customer_share",
                facts.existing_customer_conversions,
                conversions,
                policy.min_conversions,
                _existing_customer_threshold(facts, policy),
                True,
            )
        )
    return out


_PER_CLICK: Final = frozenset(
    {
        "bot_share",
        "datacenter_share",
        "high_conversion_rate",
        "low_conversion_rate",
        "stuffed_click_share",
    }
)
_EVIDENCE_TEXT: Final[dict[str, str]] = {
    "bot_share": "bot clicks",
    "datacenter_share": "datacenter / VPN / Tor clicks",
    "fast_conversion_share": "conversions under 10 s after the click",
    "slow_conversion_share": "conversions over 24 h after the click",
    "refund_rate": "refund + chargeback rate",
    "high_conversion_rate": "conversion rate",
    "low_conversion_rate": "conversion rate",
    "stuffed_click_share": "clicks from visitors who clicked several partners or programs",
    "existing_customer_share": "conversions by existing customers",
}


def classify_partner(
    facts: PartnerWindowFacts, policy: QualityPolicy = DEFAULT_QUALITY_POLICY
) -> PartnerVerdict:
    """Which fraud a partner's window points to, signal by signal.

    A signal counts as evidence only when its share is past the documented threshold *and*
    the one-sided Wilson bound at ``policy.evidence_z`` is past it too: 3 refunds out of 10
    conversions is 30%, over FirstPromoter's 25%, but a partner whose true rate is 6% gets
    there one time in 50, and a program has hundreds of small partners."""
    quality = score_partner_quality(facts, policy)
    evidence: list[PartnerEvidence] = []
    for code, part, whole, minimum, threshold, above in _measurements(facts, policy):
        if whole < max(minimum, 1):
            continue
        share = max(0, min(part, whole)) / whole
        low, high = wilson_bounds(part, whole, policy.evidence_z)
        bound = low if above else high
        if not (bound > threshold if above else bound < threshold):
            continue
        unit = "clicks" if code in _PER_CLICK else "conversions"
        side = "over" if above else "under"
        evidence.append(
            PartnerEvidence(
                code,
                SIGNAL_TYPES[code],
                share,
                bound,
                threshold,
                whole,
                f"{SIGNAL_TYPES[code].replace('_', ' ')}: {_EVIDENCE_TEXT[code]} "
                f"{_percent(share)} of {whole} {unit}, {side} {_percent(threshold)} "
                f"(confidence bound {_percent(bound)})",
            )
        )
    return PartnerVerdict(quality, tuple(evidence))
