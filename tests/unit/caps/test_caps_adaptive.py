"""Adaptive cap decisions: direction, bounds, steps, guards and the reason text."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.caps.adaptive import PerformanceInputs, decide
from partnerflow.caps.model import AdaptiveBounds, CapMetric

BOUNDS = AdaptiveBounds(Decimal(50), Decimal(300), Decimal(20))


def inputs(**kw: object) -> PerformanceInputs:
    base: dict[str, object] = dict(
        clicks=1000,
        conversions=21,
        refunds=0,
        earnings=Decimal("420"),
        program_clicks=10_000,
        program_conversions=200,
        program_refunds=0,
        program_earnings=Decimal("3100"),
        currency="EUR",
        quality=92,
    )
    base.update(kw)
    return PerformanceInputs(**base)  # type: ignore[arg-type]


def test_strong_partner_is_raised_by_at_most_the_max_step() -> None:
    d = decide(CapMetric.CONVERSIONS, Decimal(100), BOUNDS, inputs())
    assert d.new_limit == Decimal(120)
    assert d.reason == (
        "EPC 0.42 EUR (+35% vs program 0.31 EUR), CR 2.1% (+5% vs program), quality 92, "
        "refunds 0.0% → cap raised 100 → 120 (max step 20%)"
    )
    assert d.inputs["epc"] == "0.4200" and d.inputs["quality"] == 92


def test_low_quality_lowers_by_a_full_step() -> None:
    d = decide(CapMetric.CONVERSIONS, Decimal(100), BOUNDS, inputs(quality=30))
    assert d.new_limit == Decimal(80)
    assert d.reason.startswith("traffic quality 30 < 40 → cap lowered 100 → 80")


def test_refund_heavy_partner_is_lowered() -> None:
    d = decide(CapMetric.CONVERSIONS, Decimal(100), BOUNDS, inputs(refunds=7))
    assert d.new_limit == Decimal(80)
    assert d.reason.startswith("refund rate 33.3% > 25.0%")


def test_too_little_data_holds_the_cap() -> None:
    d = decide(CapMetric.CONVERSIONS, Decimal(100), BOUNDS, inputs(clicks=40))
    assert not d.changed
    assert d.reason == "not enough data (40 clicks < 100) → cap held at 100 (max step 20%)"


def test_bounds_clamp_the_proposal() -> None:
    d = decide(CapMetric.CONVERSIONS, Decimal(290), BOUNDS, inputs())
    assert d.new_limit == Decimal(300)
    assert d.reason.endswith("cap raised 290 → 300 (max step 20%, maximum 300)")


def test_money_caps_move_to_cents() -> None:
    d = decide(
        CapMetric.PAYOUT,
        Decimal("333.33"),
        AdaptiveBounds(Decimal(0), Decimal(1000), Decimal(10)),
        inputs(),
    )
    assert d.new_limit == Decimal("366.66")


@settings(max_examples=200, deadline=None)
@given(
    current=st.integers(min_value=50, max_value=300),
    clicks=st.integers(min_value=0, max_value=5000),
    conversions=st.integers(min_value=0, max_value=200),
    refunds=st.integers(min_value=0, max_value=200),
    earnings=st.integers(min_value=0, max_value=10_000),
    quality=st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
)
def test_decisions_stay_within_bounds_and_step(
    current: int, clicks: int, conversions: int, refunds: int, earnings: int, quality: int | None
) -> None:
    d = decide(
        CapMetric.CONVERSIONS,
        Decimal(current),
        BOUNDS,
        inputs(
            clicks=clicks,
            conversions=conversions,
            refunds=min(refunds, conversions),
            earnings=Decimal(earnings),
            quality=quality,
        ),
    )
    assert BOUNDS.minimum <= d.new_limit <= BOUNDS.maximum
    assert d.new_limit == d.new_limit.to_integral_value()
    step = Decimal(current) * BOUNDS.max_step_percent / 100
    within = abs(d.new_limit - current) <= step
    clamped_up = d.new_limit == BOUNDS.minimum and current < BOUNDS.minimum
    assert within or clamped_up
