"""The fraud scan: score recent conversions and partner windows, queue what the program's
policy says to act on. Safe to re-run: a finding already queued is never queued again.

Conversions (the last ``conversion_lookback_days``): click-to-conversion time from the
attributed click, duplicate orders, self-referral against the partner's e-mails, portal
IPs and customer id, ad-platform click ids on the click when the program forbids paid
search, and the click's own score. One review per conversion, ever (`conversion:<id>`).

Partners (a rolling ``partner_window_days``): `fraud.scoring.score_partner_quality` over
bot share, datacenter share, share of conversions under 10 s against the program's share,
late-conversion share, refund rate and conversion-rate bounds. A partner is not re-queued
for the same (or a weaker) action while a review is open, nor within one window of the
last one: the person who decided it has seen that window. Beyond the quality score, a
partner is flagged when `fraud.scoring.classify_partner` finds evidence of a fraud type
(cookie stuffing, refund abuse, conversion-rate outlier, ...).

Clicks (the last ``click_lookback_days``, UTC days): every click is rescored from what was
stored (user agent, IP range, the per-IP minute count replayed in time order, ad-platform
click ids) and flagged clicks are aggregated into one `click` review per partner, signal
(bot, datacenter, ip_burst, paid_search) and day, with counts, top IPs and sample click
ids (`click:<partner>:<signal>:<day>`). While that review is open, later scans update its
counts (the day was still running); a decided one is never rewritten.

Anomalous partner-days (`analytics.anomalies`, an isolation forest over the partner-day
features of the program's last ``partner_window_days``) on the same recent days are queued
as partner `flag` reviews (`anomaly:<partner>:<day>`) when one feature stands out by a
robust z-score of at least ``anomaly_flag_at``.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy import select

from partnerflow.analytics.anomalies import Anomaly, detect_anomalies
from partnerflow.bootstrap import Services
from partnerflow.fraud.bots import classify_user_agent
from partnerflow.fraud.identities import Identity
from partnerflow.fraud.networks import classify_ip
from partnerflow.fraud.policy import Action, FraudPolicy, Subject, conversion_action, partner_action
from partnerflow.fraud.ports import NewReview, ReviewStatus
from partnerflow.fraud.scoring import (
    ClickPolicy,
    classify_partner,
    score_click,
    score_conversion,
    score_partner_quality,
)
from partnerflow.fraud.services import Decision, open_review
from partnerflow.fraud.signals import (
    AD_CLICK_IDS,
    ClickFacts,
    ConversionFacts,
    PartnerWindowFacts,
    SignalCode,
    ad_click_ids_in_query,
)
from partnerflow.storage import fraud_queries as q
from partnerflow.storage import tables as t
from partnerflow.storage.fraud_reviews import SqlFraudPolicies, SqlReviews

ACTOR = "system:fraud-scan"
_STRENGTH = {Action.FLAG: 1, Action.HOLD: 2, Action.REJECT: 3, Action.SUSPEND: 3}
_MINUTE: Final = timedelta(seconds=60)


@dataclass
class ScanReport:
    programs: int = 0
    conversions_checked: int = 0
    partners_checked: int = 0
    clicks_checked: int = 0
    partner_days_checked: int = 0
    opened: list[Decision] = field(default_factory=list)
    already_queued: int = 0
    refreshed: int = 0


def _ad_click_ids(
    flags: str | None, referrer: str | None, sub_ids: Iterable[str]
) -> frozenset[str]:
    found: set[str] = set()
    for token in (flags or "").replace(":", ";").replace("=", ";").split(";"):
        if token.strip().lower() in AD_CLICK_IDS:
            found.add(token.strip().lower())
    if referrer:
        with contextlib.suppress(ValueError):  # a malformed URL has no ad click ids
            found |= ad_click_ids_in_query(urlsplit(referrer[:2048]).query)
    for value in sub_ids:
        if "=" in value:
            found |= ad_click_ids_in_query(value)
    return frozenset(found)


def ad_click_ids_of(row: q.ConversionRow) -> frozenset[str]:
    """Ad-platform click ids seen on a conversion's click: in the click's flags (the
    tracker records them), in the referrer's query, or passed through a sub-id."""
    return _ad_click_ids(row.click_flags, row.click_referrer, row.click_sub_ids)


def conversion_findings(
    rows: Iterable[q.ConversionRow],
    duplicates: dict[int, str],
    identities: dict[int, Identity],
    policy: FraudPolicy,
) -> list[NewReview]:
    """The reviews the policy calls for on these conversions (pure: no I/O)."""
    out: list[NewReview] = []
    for row in rows:
        facts = ConversionFacts(
            ctit_seconds=row.ctit_seconds,
            duplicate_order=row.id in duplicates,
            partner=identities.get(row.partner_id, Identity()),
            customer=q.customer_identity(row),
            ad_click_ids=ad_click_ids_of(row),
            click_score=row.click_score,
        )
        scored = score_conversion(facts, policy.conversion)
        action = conversion_action(scored.score, policy)
        if action is None:
            continue
        reasons = list(scored.reasons)
        if row.id in duplicates:
            reasons = [
                f"duplicate order: {duplicates[row.id]}" if r == "duplicate order" else r
                for r in reasons
            ]
        out.append(
            NewReview(
                program_id=row.program_id,
                subject=Subject.CONVERSION,
                subject_id=str(row.id),
                action=action,
                score=scored.score,
                reasons=tuple(reasons),
                partner_id=row.partner_id,
                detail={
                    "codes": sorted(str(code) for code in scored.codes),
                    "order_id": row.order_id,
                    "ctit_seconds": row.ctit_seconds,
                    "click_id": row.click_id,
                },
                scan_key=f"conversion:{row.id}",
            )
        )
    return out


def partner_findings(
    program_id: int,
    partners: Iterable[int],
    windows: dict[int, PartnerWindowFacts],
    policy: FraudPolicy,
    day: str,
) -> list[NewReview]:
    """The reviews the policy calls for on these partners' windows (pure)."""
    out: list[NewReview] = []
    for partner_id in partners:
        verdict = classify_partner(windows.get(partner_id, PartnerWindowFacts()), policy.quality)
        quality = verdict.quality
        action = partner_action(quality.score, policy)
        if action is None and verdict.flagged and policy.actions.partner_flag_below is not None:
            # Evidence of a fraud type flags the partner even when the score is still high
            # (FirstPromoter flags any partner over 25% refunds).
            action = Action.FLAG
        if action is None:
            continue
        out.append(
            NewReview(
                program_id=program_id,
                subject=Subject.PARTNER,
                subject_id=str(partner_id),
                action=action,
                score=quality.score,
                reasons=(
                    f"traffic quality {quality.score}/100 over "
                    f"{policy.actions.partner_window_days} days",
                    *quality.reasons,
                    *verdict.reasons,
                ),
                partner_id=partner_id,
                detail={
                    "quality": quality.score,
                    "types": sorted(verdict.types),
                    "window_days": policy.actions.partner_window_days,
                    "signals": [
                        {
                            "code": s.code,
                            "value": s.value,
                            "threshold": s.threshold,
                            "penalty": s.penalty,
                            "reason": s.reason,
                        }
                        for s in quality.signals
                    ],
                },
                scan_key=f"partner:{partner_id}:{action}:{day}",
            )
        )
    return out


# --- clicks ------------------------------------------------------------------------------

#: Click signals worth a person's look, grouped as the review names them. Weak signals
#: (duplicate, no referrer, VPN) never make a click review on their own.
CLICK_REVIEW_SIGNALS: Final[dict[SignalCode, str]] = {
    SignalCode.DECLARED_CRAWLER: "bot",
    SignalCode.HEADLESS_BROWSER: "bot",
    SignalCode.SCRIPTED_CLIENT: "bot",
    SignalCode.EMPTY_USER_AGENT: "bot",
    SignalCode.MALFORMED_USER_AGENT: "bot",
    SignalCode.DATACENTER_IP: "datacenter",
    SignalCode.TOR_EXIT: "datacenter",
    SignalCode.IP_VELOCITY: "ip_burst",
    SignalCode.PAID_SEARCH: "paid_search",
}
_SIGNAL_TEXT: Final = {
    "bot": "bot clicks (crawler, headless or scripted user agent)",
    "datacenter": "clicks from datacenter or Tor IPs",
    "ip_burst": "clicks in bursts of over {limit} a minute from one IP",
    "paid_search": "clicks carrying ad-platform click ids (paid search is not allowed)",
}
_SAMPLE: Final = 20


@dataclass
class _ClickGroup:
    clicks: int = 0
    top_score: int = 0
    ids: list[str] = field(default_factory=list)
    ips: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)


def click_findings(
    program_id: int, rows: Iterable[q.ClickRow], policy: FraudPolicy
) -> list[NewReview]:
    """One review per partner, signal and UTC day over these clicks (pure: no I/O).

    Rows must come in time order: the per-IP minute count is replayed as the hot path
    keeps it. Bot and datacenter clicks are only reported once there are
    ``click_flag_at`` of them on the day *and* they exceed the partner-quality share of
    that partner's clicks (5% bots, 10% datacenter): a few crawlers and link previews a
    day are normal. Paid search and IP bursts are reported from the first click."""
    minimum = policy.actions.click_flag_at
    if minimum is None:
        return []
    click_policy = ClickPolicy(paid_search_allowed=policy.conversion.paid_search_allowed)
    per_ip: dict[str, deque[datetime]] = defaultdict(deque)
    totals: Counter[tuple[int, date]] = Counter()
    groups: dict[tuple[int, str, date], _ClickGroup] = defaultdict(_ClickGroup)
    for row in rows:
        day = row.created_at.date()
        totals[(row.partner_id, day)] += 1
        ip_count = 1
        if row.ip:
            seen = per_ip[row.ip]
            seen.append(row.created_at)
            while seen and seen[0] <= row.created_at - _MINUTE:
                seen.popleft()
            ip_count = len(seen)
        verdict = classify_user_agent(row.user_agent)
        address = classify_ip(row.ip)
        facts = ClickFacts(
            user_agent=verdict,
            ip=address,
            clicks_last_minute_ip=ip_count,
            ad_click_ids=_ad_click_ids(row.flags, row.referrer, row.sub_ids),
        )
        scored = score_click(facts, click_policy)
        if not scored.flagged:
            continue
        for signal in {CLICK_REVIEW_SIGNALS[c] for c in scored.codes if c in CLICK_REVIEW_SIGNALS}:
            group = groups[(row.partner_id, signal, day)]
            group.clicks += 1
            group.top_score = max(group.top_score, scored.score)
            if len(group.ids) < _SAMPLE:
                group.ids.append(row.id)
            if row.ip:
                group.ips[row.ip] += 1
            if signal == "bot":
                group.details[verdict.reason or "bot user agent"] += 1
            elif signal == "datacenter":
                group.details[address.provider or address.kind] += 1
            elif signal == "paid_search":
                group.details.update(sorted(facts.ad_click_ids))
            else:
                group.details["peak"] = max(group.details["peak"], ip_count)
    out: list[NewReview] = []
    for (partner_id, signal, day), group in sorted(groups.items()):
        total = totals[(partner_id, day)]
        share = group.clicks / total
        floor = {"bot": policy.quality.bot_share, "datacenter": policy.quality.datacenter_share}
        if signal in floor and (group.clicks < minimum or share <= floor[signal]):
            continue
        text = _SIGNAL_TEXT[signal].format(limit=click_policy.max_clicks_per_minute_ip)
        reasons = [
            f"{group.clicks} {text} on {day.isoformat()} ({share * 100:.3g}% of the "
            f"partner's {total} clicks that day)"
        ]
        top_ips = ", ".join(f"{ip} ({n})" for ip, n in group.ips.most_common(3))
        if signal == "ip_burst":
            reasons.append(f"peak {group.details['peak']} clicks a minute; IPs: {top_ips}")
        else:
            what = ", ".join(f"{k} ({n})" for k, n in group.details.most_common(3))
            reasons.append(f"{what}; IPs: {top_ips}" if top_ips else what)
        out.append(
            NewReview(
                program_id=program_id,
                subject=Subject.CLICK,
                subject_id=group.ids[0],
                action=Action.FLAG,
                score=group.top_score,
                reasons=tuple(reasons),
                partner_id=partner_id,
                detail={
                    "signal": signal,
                    "day": day.isoformat(),
                    "clicks": group.clicks,
                    "partner_clicks": total,
                    "click_ids": group.ids,
                    "ips": dict(group.ips.most_common(10)),
                    "details": dict(group.details.most_common(10)),
                },
                scan_key=f"click:{partner_id}:{signal}:{day.isoformat()}",
            )
        )
    return out


# --- anomalous partner-days -------------------------------------------------------------


def anomaly_findings(
    program_id: int,
    anomalies: Iterable[Anomaly],
    days: Mapping[tuple[int, date], q.PartnerDay],
    partners: Iterable[int],
    since: date,
    policy: FraudPolicy,
    history_days: int,
) -> list[NewReview]:
    """Flag reviews for anomalous recent days of scannable partners whose strongest
    feature reaches ``anomaly_flag_at`` robust z-scores (pure)."""
    at = policy.actions.anomaly_flag_at
    if at is None:
        return []
    wanted = set(partners)
    out: list[NewReview] = []
    for anomaly in anomalies:
        strongest = max((abs(z) for z in anomaly.z_scores.values()), default=0.0)
        if anomaly.partner_id not in wanted or anomaly.day < since or strongest < at:
            continue
        row = days[(anomaly.partner_id, anomaly.day)]
        quality = score_partner_quality(
            PartnerWindowFacts(
                clicks=row.clicks,
                bot_clicks=row.bot_clicks,
                datacenter_clicks=row.datacenter_clicks,
                conversions=row.conversions,
                refunded_conversions=row.refunded,
            ),
            policy.quality,
        )
        out.append(
            NewReview(
                program_id=program_id,
                subject=Subject.PARTNER,
                subject_id=str(anomaly.partner_id),
                action=Action.FLAG,
                score=quality.score,
                reasons=(
                    f"anomalous day {anomaly.day.isoformat()}: stands out among the "
                    f"program's partner-days of the last {history_days} days",
                    *anomaly.reasons,
                ),
                partner_id=anomaly.partner_id,
                detail={
                    "anomaly": True,
                    "day": anomaly.day.isoformat(),
                    "forest_score": round(anomaly.score, 4),
                    "z_scores": anomaly.z_scores,
                    "clicks": row.clicks,
                    "conversions": row.conversions,
                },
                scan_key=f"anomaly:{anomaly.partner_id}:{anomaly.day.isoformat()}",
            )
        )
    return out


def _recently_reviewed(
    reviews: SqlReviews, finding: NewReview, now: datetime, window: timedelta
) -> bool:
    wanted = _STRENGTH[finding.action]
    for review in reviews.for_subject(Subject.PARTNER, finding.subject_id):
        if (review.scan_key or "").startswith("anomaly:"):
            continue  # a one-day anomaly does not stand for the partner's window
        if _STRENGTH[review.action] < wanted:
            continue
        if review.status is ReviewStatus.OPEN:
            return True
        last = review.decided_at or review.created_at
        if now - last < window:
            return True
    return False


def scan_program(services: Services, program_id: int, *, actor: str = ACTOR) -> ScanReport:
    report = ScanReport(programs=1)
    now = services.clock.now()
    with services.engine.connect() as conn:
        policy = SqlFraudPolicies(conn).get(program_id)
        lookback = timedelta(days=policy.actions.conversion_lookback_days)
        window = timedelta(days=policy.actions.partner_window_days)
        rows = q.recent_conversions(conn, program_id, now - lookback, now + timedelta(seconds=1))
        queued = {
            key
            for (key,) in conn.execute(
                select(t.fraud_reviews.c.scan_key).where(
                    t.fraud_reviews.c.program_id == program_id,
                    t.fraud_reviews.c.subject_type == Subject.CONVERSION.value,
                    t.fraud_reviews.c.scan_key.is_not(None),
                )
            )
        }
        fresh = [row for row in rows if f"conversion:{row.id}" not in queued]
        report.already_queued += len(rows) - len(fresh)
        duplicates = q.duplicate_orders(
            conn, fresh, timedelta(minutes=policy.actions.duplicate_order_minutes)
        )
        identities = q.partner_identities(conn, program_id)
        findings = conversion_findings(fresh, duplicates, identities, policy)
        partners = q.scannable_partners(conn, program_id)
        windows = q.partner_windows(conn, program_id, now - window, now + timedelta(seconds=1))
        candidates = partner_findings(
            program_id, sorted(partners), windows, policy, now.date().isoformat()
        )
        reviews = SqlReviews(conn)
        for finding in candidates:
            if _recently_reviewed(reviews, finding, now, window):
                report.already_queued += 1
            else:
                findings.append(finding)
        recent = datetime.combine(
            now.date() - timedelta(days=policy.actions.click_lookback_days - 1),
            time(0),
            tzinfo=UTC,
        )
        clicks = q.click_rows(conn, program_id, recent, now + timedelta(seconds=1))
        report.clicks_checked = len(clicks)
        click_reviews = click_findings(program_id, clicks, policy)
        open_clicks = reviews.open_scan_keys(program_id, "click:")
        days = q.partner_days(conn, program_id, now - window, now + timedelta(seconds=1))
        report.partner_days_checked = len(days)
        findings += anomaly_findings(
            program_id,
            detect_anomalies(days) if policy.actions.anomaly_flag_at is not None else [],
            {(d.partner_id, d.day): d for d in days},
            partners,
            recent.date(),
            policy,
            policy.actions.partner_window_days,
        )
        conn.rollback()
    report.conversions_checked = len(rows)
    report.partners_checked = len(partners)
    stale = [
        f
        for f in click_reviews
        if f.scan_key in open_clicks
        and open_clicks[f.scan_key].get("clicks") != (f.detail or {}).get("clicks")
    ]
    if stale:
        with services.engine.begin() as conn:
            refreshing = SqlReviews(conn)
            for f in stale:
                report.refreshed += refreshing.refresh(
                    f.scan_key or "", f.score, f.reasons, f.detail or {}
                )
    findings += [f for f in click_reviews if f.scan_key not in open_clicks]
    for finding in findings:
        decision = open_review(services.fraud_uow(), services.clock, finding, actor)
        if decision is None:
            report.already_queued += 1
        else:
            report.opened.append(decision)
    return report


def scan(services: Services, program_id: int | None = None, *, actor: str = ACTOR) -> ScanReport:
    """Scan one program, or every program."""
    if program_id is not None:
        return scan_program(services, program_id, actor=actor)
    with services.engine.connect() as conn:
        ids = q.program_ids(conn)
    total = ScanReport()
    for pid in ids:
        one = scan_program(services, pid, actor=actor)
        total.programs += 1
        total.conversions_checked += one.conversions_checked
        total.partners_checked += one.partners_checked
        total.clicks_checked += one.clicks_checked
        total.partner_days_checked += one.partner_days_checked
        total.opened += one.opened
        total.already_queued += one.already_queued
        total.refreshed += one.refreshed
    return total
