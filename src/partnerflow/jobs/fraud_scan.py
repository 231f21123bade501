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
last one: the person who decided it has seen that window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from partnerflow.bootstrap import Services
from partnerflow.fraud.identities import Identity
from partnerflow.fraud.policy import Action, FraudPolicy, Subject, conversion_action, partner_action
from partnerflow.fraud.ports import NewReview, ReviewStatus
from partnerflow.fraud.scoring import score_conversion, score_partner_quality
from partnerflow.fraud.services import Decision, open_review
from partnerflow.fraud.signals import (
    AD_CLICK_IDS,
    ConversionFacts,
    PartnerWindowFacts,
    ad_click_ids_in_query,
)
from partnerflow.storage import fraud_queries as q
from partnerflow.storage import tables as t
from partnerflow.storage.fraud_reviews import SqlFraudPolicies, SqlFraudUnitOfWork, SqlReviews

ACTOR = "system:fraud-scan"
_STRENGTH = {Action.FLAG: 1, Action.HOLD: 2, Action.REJECT: 3, Action.SUSPEND: 3}


@dataclass
class ScanReport:
    programs: int = 0
    conversions_checked: int = 0
    partners_checked: int = 0
    opened: list[Decision] = field(default_factory=list)
    already_queued: int = 0


def ad_click_ids_of(row: q.ConversionRow) -> frozenset[str]:
    """Ad-platform click ids seen on a conversion's click: in the click's flags (the
    tracker records them), in the referrer's query, or passed through a sub-id."""
    found: set[str] = set()
    for token in (row.click_flags or "").replace(":", ";").replace("=", ";").split(";"):
        if token.strip().lower() in AD_CLICK_IDS:
            found.add(token.strip().lower())
    if row.click_referrer:
        with contextlib.suppress(ValueError):  # a malformed URL has no ad click ids
            found |= ad_click_ids_in_query(urlsplit(row.click_referrer[:2048]).query)
    for value in row.click_sub_ids:
        if "=" in value:
            found |= ad_click_ids_in_query(value)
    return frozenset(found)


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
        quality = score_partner_quality(
            windows.get(partner_id, PartnerWindowFacts()), policy.quality
        )
        action = partner_action(quality.score, policy)
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
                ),
                partner_id=partner_id,
                detail={
                    "quality": quality.score,
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


def _recently_reviewed(
    reviews: SqlReviews, finding: NewReview, now: datetime, window: timedelta
) -> bool:
    wanted = _STRENGTH[finding.action]
    for review in reviews.for_subject(Subject.PARTNER, finding.subject_id):
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
        conn.rollback()
    report.conversions_checked = len(rows)
    report.partners_checked = len(partners)
    for finding in findings:
        decision = open_review(
            SqlFraudUnitOfWork(services.engine, services.clock), services.clock, finding, actor
        )
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
        total.opened += one.opened
        total.already_queued += one.already_queued
    return total
