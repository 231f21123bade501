"""Domain objects and rows to response models."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from partnerflow.attribution.services import Explanation
from partnerflow.caps.goals import GoalMetric, PartnerTarget, ProgramGoal, Progress
from partnerflow.caps.model import CapChange, CapRule, CapUsage, format_amount
from partnerflow.caps.spend import SpendKpis, kpi_fields
from partnerflow.commissions.model import LedgerEntry
from partnerflow.commissions.plans import Plan
from partnerflow.commissions.ports import StoredPlan
from partnerflow.commissions.services import Simulation
from partnerflow.core.money import MICROS
from partnerflow.fraud.ports import Review
from partnerflow.messaging.events import money_text

__all__ = ["money_text"]
from partnerflow.partners.model import Partner
from partnerflow.payouts.batches import HeldLine, PayoutLine
from partnerflow.payouts.ports import StoredBatch
from partnerflow.payouts.statements import Statement
from partnerflow.programs.model import Offer, Program
from partnerflow.tracking.model import Conversion, Coupon, TrackingLink
from partnerflow.web.api import schemas as s


def program_out(p: Program) -> s.ProgramOut:
    return s.ProgramOut(
        id=p.id,
        slug=p.slug,
        name=p.name,
        brand=p.brand,
        currency=p.currency,
        timezone=p.timezone,
        cookie_window_days=p.cookie_window_days,
        attribution_model=p.attribution_model.value,
        lock_period_days=p.lock_period_days,
        fallback_url=p.fallback_url,
        postback_token=p.postback_token,
        created_at=p.created_at,
    )


def offer_out(o: Offer) -> s.OfferOut:
    return s.OfferOut(
        id=o.id,
        program_id=o.program_id,
        name=o.name,
        landing_url=o.landing_url,
        commission_plan=dict(o.commission_plan),
        status=o.status.value,
        allowed_domains=list(o.allowed_domains),
        fallback_url=o.fallback_url,
        created_at=o.created_at,
    )


def partner_out(p: Partner | Any) -> s.PartnerOut:
    return s.PartnerOut(
        id=p.id,
        program_id=p.program_id,
        name=p.name,
        email=p.email,
        status=str(p.status.value if hasattr(p.status, "value") else p.status),
        website=p.website,
        country=p.country,
        social=dict(p.social or {}),
        created_at=p.created_at,
    )


def link_out(link: TrackingLink | Any, base_url: str) -> s.LinkOut:
    return s.LinkOut(
        id=link.id,
        code=link.code,
        url=f"{base_url}/c/{link.code}",
        program_id=link.program_id,
        partner_id=link.partner_id,
        offer_id=link.offer_id,
        sub_ids=dict(link.sub_ids or {}),
        created_at=link.created_at,
    )


def coupon_out(c: Coupon | Any) -> s.CouponOut:
    return s.CouponOut(
        id=c.id,
        code=c.code,
        program_id=c.program_id,
        partner_id=c.partner_id,
        offer_id=c.offer_id,
        created_at=c.created_at,
    )


def _enum(value: Any) -> str:
    return str(value.value if hasattr(value, "value") else value)


def conversion_out(c: Conversion) -> s.ConversionOut:
    return s.ConversionOut(
        id=c.id,
        program_id=c.program_id,
        offer_id=c.offer_id,
        partner_id=c.partner_id,
        order_id=c.order_id,
        event_type=_enum(c.event_type),
        amount=money_text(c.amount),
        currency=c.currency,
        status=_enum(c.status),
        attributed_by=_enum(c.attributed_by),
        click_id=c.click_id,
        coupon_code=c.coupon_code,
        customer_id=c.customer_id,
        created_at=c.created_at,
    )


def conversion_row_out(r: Any) -> s.ConversionOut:
    return s.ConversionOut(
        id=r.id,
        program_id=r.program_id,
        offer_id=r.offer_id,
        partner_id=r.partner_id,
        order_id=r.order_id,
        event_type=r.event_type,
        amount=money_text(Decimal(r.amount_micros) / MICROS),
        currency=r.currency,
        status=r.status,
        attributed_by=r.attributed_by,
        click_id=r.click_id,
        coupon_code=r.coupon_code,
        customer_id=r.customer_id,
        created_at=r.created_at,
    )


def entry_out(e: LedgerEntry) -> s.LedgerEntryOut:
    return s.LedgerEntryOut(
        id=e.id,
        program_id=e.program_id,
        partner_id=e.partner_id,
        conversion_id=e.conversion_id,
        kind=e.kind.value,
        bucket=e.bucket.value,
        amount=money_text(e.amount.amount),
        currency=e.amount.currency,
        reason=e.reason,
        author=e.author,
        created_at=e.created_at,
    )


def explanation(c: Conversion, entries: list[LedgerEntry]) -> list[str]:
    reasons = list(dict.fromkeys(e.reason for e in entries if e.reason))
    if reasons:
        return reasons
    if c.partner_id is None:
        return ["not attributed to a partner: no commission"]
    return [f"{_enum(c.status)}: no commission entry"]


def balances_out(partner_id: int, entries: list[LedgerEntry]) -> s.BalancesOut:
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for e in entries:
        sums[e.amount.currency][e.bucket.value] += e.amount.amount
    return s.BalancesOut(
        partner_id=partner_id,
        balances=[
            s.BalanceOut(
                currency=currency,
                pending=money_text(b["pending"]),
                approved=money_text(b["approved"]),
                paid=money_text(b["paid"]),
            )
            for currency, b in sorted(sums.items())
        ],
    )


def money_text_micros(micros: int) -> str:
    return money_text(Decimal(micros) / MICROS)


# --- commission plans and explanations --------------------------------------------------------


def plan_versions_out(plan: Plan) -> list[s.PlanVersionOut]:
    return [
        s.PlanVersionOut(
            version=v.version,
            effective_from=v.effective_from,
            effective_to=v.effective_to,
            rules=[f"{r.id} ({r.type.value})" for r in v.rules],
            overrides={str(k): [r.id for r in rs] for k, rs in v.overrides.items()},
            bonuses=[b.id for b in v.bonuses],
        )
        for v in plan.versions
    ]


def plan_revision_out(stored: StoredPlan, plan: Plan) -> s.PlanRevisionOut:
    return s.PlanRevisionOut(
        program_id=stored.program_id,
        scope=stored.scope,
        offer_id=stored.offer_id,
        revision=stored.revision,
        plan_id=stored.plan_id,
        currency=stored.currency,
        author=stored.author,
        created_at=stored.created_at,
        versions=plan_versions_out(plan),
        document=dict(stored.document),
    )


def simulation_out(sim: Simulation) -> s.SimulationOut:
    return s.SimulationOut(
        program_id=sim.program_id,
        date_from=sim.start,
        date_to=sim.end,
        currency=sim.currency,
        conversions=sim.conversions,
        revenue=money_text(sim.revenue.amount),
        current_cost=money_text(sim.current_cost.amount),
        proposed_cost=money_text(sim.proposed_cost.amount),
        current_margin=money_text(sim.current_margin.amount),
        proposed_margin=money_text(sim.proposed_margin.amount),
        partners=[
            s.PartnerDeltaOut(
                partner_id=p.partner_id,
                conversions=p.conversions,
                current=money_text(p.current.amount),
                proposed=money_text(p.proposed.amount),
                delta=money_text(p.delta.amount),
            )
            for p in sim.partners
        ],
        notes=list(sim.notes),
    )


def explanation_out(x: Explanation) -> s.ExplanationOut:
    c, again = x.conversion, x.recomputed
    recomputed = None
    if again is not None:
        recomputed = s.RecomputedOut(
            amount=money_text(again.amount.amount) if again.amount else None,
            currency=again.amount.currency if again.amount else None,
            source=again.source,
            plan_id=again.plan_id,
            plan_version=again.plan_version,
            rule_id=again.rule_id,
            fx_rate=str(again.fx_rate) if again.fx_rate is not None else None,
            explanation=again.explanation,
        )
    return s.ExplanationOut(
        conversion_id=c.id,
        program_id=c.program_id,
        partner_id=c.partner_id,
        order_id=c.order_id,
        status=c.status,
        amount=money_text(c.amount.amount),
        currency=c.amount.currency,
        refunded=money_text(c.refunded.amount),
        attribution=list(x.attribution),
        booked=x.booked,
        recomputed=recomputed,
        holds=list(x.holds),
        ledger=[entry_out(e) for e in x.ledger],
        pending=money_text(x.pending.amount),
        approved=money_text(x.approved.amount),
        net=money_text(x.net.amount),
        lines=x.lines(),
    )


# --- payouts ----------------------------------------------------------------------------------


def payout_line_out(x: PayoutLine) -> s.PayoutLineOut:
    return s.PayoutLineOut(
        partner_id=x.partner_id,
        amount=money_text(x.amount.amount),
        currency=x.amount.currency,
        payment_key=x.key,
    )


def held_line_out(h: HeldLine) -> s.HeldLineOut:
    return s.HeldLineOut(
        partner_id=h.partner_id,
        amount=money_text(h.amount.amount),
        currency=h.amount.currency,
        reason=h.reason,
    )


def batch_out(stored: StoredBatch) -> s.PayoutBatchOut:
    b = stored.batch
    return s.PayoutBatchOut(
        id=b.id,
        program_id=b.program_id,
        period_start=b.period.start,
        period_end=b.period.end,
        status=stored.status,
        created_by=stored.created_by,
        created_at=stored.created_at,
        paid_by=stored.paid_by,
        paid_at=stored.paid_at,
        totals=[
            s.MoneyOut(amount=money_text(m.amount), currency=c)
            for c, m in sorted(b.totals().items())
        ],
        lines=[payout_line_out(x) for x in b.lines],
        held=[held_line_out(h) for h in b.held],
    )


def statement_out(st: Statement) -> s.StatementOut:
    return s.StatementOut(
        partner_id=st.partner_id,
        currency=st.currency,
        period_start=st.period.start,
        period_end=st.period.end,
        opening=money_text(st.opening.amount),
        closing=money_text(st.closing.amount),
        pending=money_text(st.pending.amount),
        lines=[
            s.StatementLineOut(
                at=x.at,
                kind=x.kind,
                conversion_id=x.conversion_id,
                description=x.description,
                amount=money_text(x.amount.amount),
                balance=money_text(x.balance.amount),
            )
            for x in st.lines
        ],
    )


# --- caps, goals, targets, spend ----------------------------------------------------------------


def cap_out(cap: CapRule, currency: str) -> s.CapOut:
    return s.CapOut(
        id=cap.id,
        program_id=cap.program_id,
        offer_id=cap.scope.offer_id,
        partner_id=cap.scope.partner_id,
        scope=cap.scope.kind.value,
        metric=cap.metric.value,
        period=cap.period.value,
        limit=format_amount(cap.metric, cap.limit),
        currency=currency if cap.metric.is_money else None,
        mode=cap.mode.value,
        alerts=[str(x) for x in cap.alert_thresholds],
        adaptive=None
        if cap.adaptive is None
        else s.AdaptiveOut(
            min=format_amount(cap.metric, cap.adaptive.minimum),
            max=format_amount(cap.metric, cap.adaptive.maximum),
            max_step_percent=str(cap.adaptive.max_step_percent),
        ),
        active=cap.active,
    )


def cap_usage_out(u: CapUsage, currency: str) -> s.CapUsageOut:
    return s.CapUsageOut(
        **cap_out(u.cap, currency).model_dump(),
        period_key=u.period_key,
        used=format_amount(u.cap.metric, u.used),
        remaining=format_amount(u.cap.metric, u.remaining),
        percent=str(u.percent),
        period_start=u.start,
        period_end=u.end,
    )


def cap_change_out(ch: CapChange, cap: CapRule) -> s.CapChangeOut:
    return s.CapChangeOut(
        id=ch.id,
        cap_id=ch.cap_id,
        partner_id=cap.scope.partner_id,
        offer_id=cap.scope.offer_id,
        at=ch.at,
        actor=ch.actor,
        source=ch.source.value,
        old_limit=None if ch.old_limit is None else format_amount(cap.metric, ch.old_limit),
        new_limit=format_amount(cap.metric, ch.new_limit),
        reason=ch.reason,
    )


def goal_number(metric: GoalMetric, value: Decimal | None) -> str | None:
    if value is None:
        return None
    if metric.is_money:
        return f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP)}"  # half-up, as all money
    return f"{value.normalize():f}"


def progress_out(p: Progress) -> s.ProgressOut:
    return s.ProgressOut(
        metric=p.metric.value,
        period_key=p.period_key,
        actual=goal_number(p.metric, p.actual) or "0",
        target=goal_number(p.metric, p.target) or "0",
        percent=str(p.percent),
        projected=goal_number(p.metric, p.projected),
        met=p.met,
        on_track=p.on_track,
        closed=p.closed,
    )


def goal_out(g: ProgramGoal) -> s.GoalOut:
    return s.GoalOut(
        id=g.id,
        program_id=g.program_id,
        metric=g.metric.value,
        period=g.period.value,
        period_key=g.period_key,
        target=goal_number(g.metric, g.target) or "0",
    )


def target_out(x: PartnerTarget) -> s.TargetOut:
    return s.TargetOut(
        id=x.id,
        program_id=x.program_id,
        partner_id=x.partner_id,
        metric=x.metric.value,
        period=x.period.value,
        period_key=x.period_key,
        kind=x.kind.value,
        target=goal_number(x.metric, x.target),
        growth_percent=None if x.growth_percent is None else str(x.growth_percent),
        bonus_id=x.bonus_id,
        description=x.describe(),
    )


def spend_kpis_out(k: SpendKpis) -> s.SpendKpisOut:
    return s.SpendKpisOut(**kpi_fields(k))


# --- fraud reviews ------------------------------------------------------------------------------


def review_out(r: Review) -> s.ReviewOut:
    return s.ReviewOut(
        id=r.id,
        program_id=r.program_id,
        partner_id=r.partner_id,
        subject=str(r.subject),
        subject_id=r.subject_id,
        action=str(r.action),
        score=r.score,
        reasons=list(r.reasons),
        status=str(r.status),
        reopened_from=r.reopened_from,
        created_by=r.created_by,
        created_at=r.created_at,
        decided_by=r.decided_by,
        note=r.note,
        decided_at=r.decided_at,
    )


def review_row_out(r: Any) -> s.ReviewOut:
    return s.ReviewOut(
        id=r.id,
        program_id=r.program_id,
        partner_id=r.partner_id,
        subject=r.subject_type,
        subject_id=r.subject_id,
        action=r.action,
        score=r.score,
        reasons=[str(x) for x in (r.reasons or ())],
        status=r.status,
        reopened_from=r.reopened_from,
        created_by=r.created_by,
        created_at=r.created_at,
        decided_by=r.decided_by,
        note=r.note,
        decided_at=r.decided_at,
    )
