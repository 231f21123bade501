"""Partner application screening: an explainable score from supplied or imported data.

No live web: the website's domain age, backlink count, social followers and engagement,
review rating and audience countries come with the application or from an import. Each
supplied factor earns 0..1 of its weight; the score is the weighted mean over the factors
that were supplied (a creator without a website is not punished for it), scaled to 100.
Red flags (disposable e-mail domain, identity shared with an existing partner) subtract
points and block auto-approval. With no evidence at all the score is a neutral 50, which
lands in manual review under the default thresholds.

Disposable domains come from the PyPI package ``disposable-email-domains`` (the community
list github.com/disposable-email-domains/disposable-email-domains).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from disposable_email_domains import blocklist as _disposable_domains

from partnerflow.fraud.identities import Identity, email_domain, shared_identifiers

Decision = Literal["approve", "review", "reject"]


@dataclass(frozen=True, slots=True)
class ScreeningPolicy:
    """Per-program weights and auto-decision thresholds (defaults in docs/fraud.md)."""

    auto_approve_at: int = 75
    auto_reject_at: int = 25
    domain_age_weight: float = 20
    backlinks_weight: float = 15
    followers_weight: float = 20
    engagement_weight: float = 15
    rating_weight: float = 10
    country_fit_weight: float = 20
    young_domain_days: int = 30  # younger: no credit at all
    mature_domain_days: int = 730  # full credit from two years
    backlinks_for_full_credit: int = 1000
    followers_for_full_credit: int = 100_000
    engagement_low: float = 0.005  # under 0.5%: bought or inactive audience
    engagement_healthy: float = 0.01
    engagement_suspicious: float = 0.20  # over 20% on a sizeable audience: engagement pods
    disposable_email_penalty: int = 50
    duplicate_identity_penalty: int = 60


@dataclass(frozen=True, slots=True)
class Application:
    """What an applicant supplied (or what was imported about them). All optional."""

    identity: Identity = field(default_factory=Identity)
    domain_age_days: int | None = None
    backlinks: int | None = None
    social_followers: int | None = None
    engagement_rate: float | None = None  # interactions / followers per post, 0..1
    review_rating: float | None = None  # 1..5 stars
    audience_countries: Mapping[str, float] | None = None  # ISO country -> share of audience


@dataclass(frozen=True, slots=True)
class ScreeningFactor:
    """One factor: what it earned of its weight and why."""

    name: str
    earned: float
    weight: float
    reason: str


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    score: int
    decision: Decision
    factors: tuple[ScreeningFactor, ...]
    red_flags: tuple[str, ...]
    #: Factors that could not be scored, each with why (no data supplied or imported, or
    #: no target countries): they neither help nor hurt, and a person should know that.
    missing: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.red_flags + tuple(factor.reason for factor in self.factors)


DEFAULT_SCREENING_POLICY: Final = ScreeningPolicy()


def is_disposable_email(email: str | None) -> bool:
    """True when the address's domain (or a parent domain) is a known disposable one."""
    domain = email_domain(email)
    if domain is None:
        return False
    labels = domain.split(".")
    return any(".".join(labels[i:]) in _disposable_domains for i in range(len(labels) - 1))


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _log_credit(value: int, full: int) -> float:
    """0 at 0, 1 at ``full``, logarithmic between: 10 → 100 matters as much as 100 → 1000."""
    if value <= 0:
        return 0.0
    return _clamp(math.log10(value + 1) / math.log10(full + 1))


def _factors(
    application: Application, policy: ScreeningPolicy, targets: frozenset[str]
) -> list[ScreeningFactor]:
    factors: list[ScreeningFactor] = []
    age = application.domain_age_days
    if age is not None:
        span = policy.mature_domain_days - policy.young_domain_days
        credit = (
            0.0
            if age < policy.young_domain_days
            else _clamp((age - policy.young_domain_days) / span if span > 0 else 1.0)
        )
        note = " (registered under 30 days ago)" if age < policy.young_domain_days else ""
        factors.append(
            ScreeningFactor(
                "domain_age",
                credit * policy.domain_age_weight,
                policy.domain_age_weight,
                f"website domain age {age} days{note}",
            )
        )
    if application.backlinks is not None:
        credit = _log_credit(application.backlinks, policy.backlinks_for_full_credit)
        factors.append(
            ScreeningFactor(
                "backlinks",
                credit * policy.backlinks_weight,
                policy.backlinks_weight,
                f"{application.backlinks} backlinks",
            )
        )
    followers = application.social_followers
    if followers is not None:
        credit = _log_credit(followers, policy.followers_for_full_credit)
        factors.append(
            ScreeningFactor(
                "followers",
                credit * policy.followers_weight,
                policy.followers_weight,
                f"{followers} social followers",
            )
        )
    rate = application.engagement_rate
    if rate is not None:
        if rate < policy.engagement_low:
            credit, note = 0.0, "very low: bought or inactive audience?"
        elif rate < policy.engagement_healthy:
            credit, note = 0.5, "low"
        elif rate > policy.engagement_suspicious and (followers or 0) >= 10_000:
            credit, note = 0.3, "implausibly high for the audience size: engagement pods?"
        else:
            credit, note = 1.0, "healthy"
        factors.append(
            ScreeningFactor(
                "engagement",
                credit * policy.engagement_weight,
                policy.engagement_weight,
                f"engagement rate {rate * 100:.2f}% ({note})",
            )
        )
    rating = application.review_rating
    if rating is not None:
        credit = _clamp((rating - 1.0) / 4.0)
        factors.append(
            ScreeningFactor(
                "review_rating",
                credit * policy.rating_weight,
                policy.rating_weight,
                f"review rating {rating:.1f} / 5",
            )
        )
    countries = application.audience_countries
    if countries and targets:
        total = sum(share for share in countries.values() if share > 0)
        inside = sum(
            share
            for country, share in countries.items()
            if share > 0 and country.upper() in targets
        )
        fit = _clamp(inside / total) if total > 0 else 0.0
        factors.append(
            ScreeningFactor(
                "country_fit",
                fit * policy.country_fit_weight,
                policy.country_fit_weight,
                f"{fit * 100:.0f}% of the audience in the program's target countries",
            )
        )
    return factors


def screen_application(
    application: Application,
    *,
    target_countries: Iterable[str] = (),
    existing_partners: Iterable[Identity] = (),
    policy: ScreeningPolicy = DEFAULT_SCREENING_POLICY,
) -> ScreeningResult:
    """Score an application factor by factor and decide approve / review / reject."""
    targets = frozenset(country.upper() for country in target_countries)
    factors = _factors(application, policy, targets)
    weight = sum(factor.weight for factor in factors)
    base = 100.0 * sum(f.earned for f in factors) / weight if weight > 0 else 50.0

    red_flags: list[str] = []
    penalty = 0
    disposable = [e for e in application.identity.emails if is_disposable_email(e)]
    if disposable:
        penalty += policy.disposable_email_penalty
        red_flags.append(f"disposable e-mail domain: {email_domain(disposable[0])}")
    for partner in existing_partners:
        shared = shared_identifiers(application.identity, partner)
        if shared:
            penalty += policy.duplicate_identity_penalty
            who = partner.label or "an existing partner"
            red_flags.append(f"same {', '.join(shared)} as {who}")
            break
    if not factors:
        red_flags.append("no screening data supplied")

    scored = {factor.name for factor in factors}
    missing = tuple(
        f"{name}: {why}"
        for name, why in (
            ("domain_age", "no website domain age"),
            ("backlinks", "no backlink count"),
            ("followers", "no social follower count"),
            ("engagement", "no engagement rate"),
            ("review_rating", "no review rating"),
            (
                "country_fit",
                "no audience countries" if targets else "the program has no target countries",
            ),
        )
        if name not in scored
    )
    score = max(0, min(100, round(base) - penalty))
    decision: Decision
    if score <= policy.auto_reject_at:
        decision = "reject"
    elif score >= policy.auto_approve_at and not penalty:
        decision = "approve"
    else:
        decision = "review"
    return ScreeningResult(score, decision, tuple(factors), tuple(red_flags), missing)
