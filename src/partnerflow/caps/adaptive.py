"""Adaptive caps: a partner x offer cap follows the partner's recent performance and traffic
quality, inside the bounds the manager set, one bounded step per run.

    EPC ratio  = partner EPC / program EPC    (EPC = partner earnings / clicks)
    CR ratio   = partner CR / program CR      (CR = conversions / clicks, gross clicks)
    performance = sqrt(EPC ratio x CR ratio)  (geometric mean: both must be good)
    quality factor = min(1.25, quality / 80)  (80 is neutral; unknown quality counts as 80)
    refund factor  = 1 - max(0, refund rate - program refund rate)
    index = performance x quality factor x refund factor

The proposal is `current x index`, moved at most `max_step_percent` from the current limit,
then clamped to [minimum, maximum]. An index within 5% of 1 holds the cap (no churn).
Two guards override the index and lower the cap by a full step: quality below 40, or a
refund rate above 25% (FirstPromoter's default flag for refund-heavy partners). Fewer than
`min_clicks` clicks in the window holds the cap: the ratios mean nothing yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from partnerflow.caps.model import AdaptiveBounds, CapMetric, format_amount


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    min_clicks: int = 100
    neutral_quality: int = 80
    max_quality_factor: Decimal = Decimal("1.25")
    min_quality: int = 40
    max_refund_rate: Decimal = Decimal("0.25")
    deadband: Decimal = Decimal("0.05")


@dataclass(frozen=True, slots=True)
class PerformanceInputs:
    """A partner's window on one offer, and the program's over the same window."""

    clicks: int
    conversions: int
    refunds: int
    earnings: Decimal  # partner commissions in the window
    program_clicks: int
    program_conversions: int
    program_refunds: int
    program_earnings: Decimal
    currency: str
    quality: int | None  # 0-100 from the fraud capability; None when not scored


@dataclass(frozen=True, slots=True)
class AdaptiveDecision:
    old_limit: Decimal
    new_limit: Decimal
    reason: str
    inputs: dict[str, Any]

    @property
    def changed(self) -> bool:
        return self.new_limit != self.old_limit


def _pct(value: Decimal) -> str:
    return f"{(value * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def _signed_pct(ratio: Decimal) -> str:
    delta = ((ratio - 1) * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return f"{'+' if delta >= 0 else ''}{delta}%"


def _round_limit(metric: CapMetric, value: Decimal, *, up: bool) -> Decimal:
    if metric.is_money:
        return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    # Counts move by whole units; rounding towards the current value keeps a step within
    # its bound.
    return value.to_integral_value(rounding=ROUND_FLOOR if up else "ROUND_CEILING")


def decide(
    metric: CapMetric,
    current: Decimal,
    bounds: AdaptiveBounds,
    inputs: PerformanceInputs,
    policy: AdaptivePolicy | None = None,
) -> AdaptiveDecision:
    p = policy or AdaptivePolicy()
    epc = inputs.earnings / inputs.clicks if inputs.clicks else Decimal(0)
    cr = Decimal(inputs.conversions) / inputs.clicks if inputs.clicks else Decimal(0)
    refund_rate = Decimal(inputs.refunds) / inputs.conversions if inputs.conversions else Decimal(0)
    p_epc = inputs.program_earnings / inputs.program_clicks if inputs.program_clicks else Decimal(0)
    p_cr = (
        Decimal(inputs.program_conversions) / inputs.program_clicks
        if inputs.program_clicks
        else Decimal(0)
    )
    p_refund = (
        Decimal(inputs.program_refunds) / inputs.program_conversions
        if inputs.program_conversions
        else Decimal(0)
    )
    quality = inputs.quality
    record: dict[str, Any] = {
        "clicks": inputs.clicks,
        "conversions": inputs.conversions,
        "refunds": inputs.refunds,
        "earnings": str(inputs.earnings),
        "epc": str(epc.quantize(Decimal("0.0001"))),
        "cr": str(cr.quantize(Decimal("0.000001"))),
        "refund_rate": str(refund_rate.quantize(Decimal("0.0001"))),
        "program_epc": str(p_epc.quantize(Decimal("0.0001"))),
        "program_cr": str(p_cr.quantize(Decimal("0.000001"))),
        "program_refund_rate": str(p_refund.quantize(Decimal("0.0001"))),
        "quality": quality,
        "currency": inputs.currency,
        "bounds": {
            "min": str(bounds.minimum),
            "max": str(bounds.maximum),
            "max_step_percent": str(bounds.max_step_percent),
        },
    }
    step = bounds.max_step_percent / 100

    def fmt(value: Decimal) -> str:
        return format_amount(metric, value)

    def result(new: Decimal, why: str, index: Decimal | None = None) -> AdaptiveDecision:
        record["index"] = None if index is None else str(index.quantize(Decimal("0.0001")))
        note = f"max step {bounds.max_step_percent.normalize():f}%"
        bounded = min(bounds.maximum, max(bounds.minimum, new))
        if bounded != new:
            side = "maximum" if bounded == bounds.maximum else "minimum"
            note += f", {side} {fmt(bounded)}"
        if bounded == current:
            verdict = f"cap held at {fmt(current)}"
        else:
            verb = "raised" if bounded > current else "lowered"
            verdict = f"cap {verb} {fmt(current)} → {fmt(bounded)}"
        return AdaptiveDecision(current, bounded, f"{why} → {verdict} ({note})", record)

    full_down = _round_limit(metric, current * (1 - step), up=False)
    if quality is not None and quality < p.min_quality:
        return result(full_down, f"traffic quality {quality} < {p.min_quality}")
    if inputs.conversions and refund_rate > p.max_refund_rate:
        return result(full_down, f"refund rate {_pct(refund_rate)} > {_pct(p.max_refund_rate)}")
    if inputs.clicks < p.min_clicks:
        return result(current, f"not enough data ({inputs.clicks} clicks < {p.min_clicks})")
    if p_epc == 0 or p_cr == 0:
        return result(current, "the program has no paid conversions in the window to compare with")

    epc_ratio = epc / p_epc
    cr_ratio = cr / p_cr
    performance = Decimal(str(math.sqrt(float(epc_ratio * cr_ratio))))
    q = p.neutral_quality if quality is None else quality
    quality_factor = min(p.max_quality_factor, Decimal(q) / p.neutral_quality)
    refund_factor = 1 - max(Decimal(0), refund_rate - p_refund)
    index = performance * quality_factor * refund_factor

    def money(value: Decimal) -> str:
        return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)} {inputs.currency}"

    why = (
        f"EPC {money(epc)} ({_signed_pct(epc_ratio)} vs program {money(p_epc)}), "
        f"CR {_pct(cr)} ({_signed_pct(cr_ratio)} vs program), "
        f"quality {'unknown' if quality is None else quality}, refunds {_pct(refund_rate)}"
    )
    if abs(index - 1) < p.deadband:
        return result(current, why, index)
    factor = min(1 + step, max(1 - step, index))
    return result(_round_limit(metric, current * factor, up=factor > 1), why, index)
