from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.segments.model import PartnerPeriodFeatures, PartnerSegment
from partnerflow.segments.rules import (
    PartnerSegmentPolicy,
    percentile,
    segment_partners,
)


def active(pid: int, **kw: object) -> PartnerPeriodFeatures:
    base: dict[str, object] = {"partner_id": pid, "days_since_last_activity": 1}
    base.update(kw)
    return PartnerPeriodFeatures(**base)  # type: ignore[arg-type]


def test_percentile_interpolates_like_numpy() -> None:
    values = [Decimal(v) for v in (100, 200, 300)]
    assert percentile(values, Decimal(80)) == Decimal("260.0")
    assert percentile([Decimal(7)], Decimal(80)) == Decimal(7)


def test_high_refund_rate_is_risky_with_reason() -> None:
    [a] = segment_partners([active(1, conversions=20, refunds=6, revenue=Decimal(900))])
    assert a.segment is PartnerSegment.RISKY
    assert a.rule == "risky.refund_rate"
    assert a.reason == "6 of 20 conversions refunded (30.0%), at or above 25.0%"


def test_refund_rate_needs_enough_conversions() -> None:
    [a] = segment_partners([active(1, conversions=4, refunds=3, revenue=Decimal(10))])
    assert a.segment is not PartnerSegment.RISKY


def test_low_quality_score_is_risky_even_for_the_top_earner() -> None:
    rows = [active(1, conversions=50, revenue=Decimal(5000), quality_score=30), active(2)]
    [a, _] = segment_partners(rows)
    assert (a.segment, a.rule) == (PartnerSegment.RISKY, "risky.quality")
    assert a.reason == "traffic quality score 30 is below 50"


def test_quality_scores_mapping_overrides_features() -> None:
    [a] = segment_partners([active(1, quality_score=90)], quality_scores={1: 10})
    assert a.segment is PartnerSegment.RISKY


def test_dormant_after_thirty_days_and_never_active() -> None:
    rows = [
        PartnerPeriodFeatures(partner_id=1, days_since_last_activity=30),
        PartnerPeriodFeatures(partner_id=2, days_since_last_activity=29),
        PartnerPeriodFeatures(partner_id=3),
    ]
    a, b, c = segment_partners(rows)
    assert a.segment is PartnerSegment.DORMANT
    assert a.reason == "last click or conversion 30 days ago (dormant after 30 days)"
    assert b.segment is PartnerSegment.STEADY
    assert (c.segment, c.rule) == (PartnerSegment.DORMANT, "dormant.never_active")


def test_star_is_top_fifth_by_revenue_with_enough_conversions() -> None:
    rows = [
        active(1, conversions=10, revenue=Decimal(1000), previous_revenue=Decimal(1000)),
        active(2, conversions=10, revenue=Decimal(300), previous_revenue=Decimal(300)),
        active(3, conversions=10, revenue=Decimal(200), previous_revenue=Decimal(200)),
        active(4, conversions=2, revenue=Decimal(2000), previous_revenue=Decimal(2000)),
    ]
    segs = [a.segment for a in segment_partners(rows, currency="EUR")]
    # 80th percentile of (200, 300, 1000, 2000) is 1400: partner 4 is above it but has only
    # 2 conversions, partner 1 is below it.
    assert segs == [PartnerSegment.STEADY] * 4
    rows[3] = replace(rows[3], conversions=5)
    [_, _, _, star] = segment_partners(rows, currency="EUR")
    assert star.segment is PartnerSegment.STARS
    assert star.reason == (
        "revenue 2,000.00 EUR is at or above the program's 80th percentile (1,400.00 EUR) "
        "with 5 conversions"
    )


def test_program_without_revenue_ranks_by_conversions() -> None:
    rows = [active(1, conversions=40), active(2, conversions=5), active(3, conversions=6)]
    a = segment_partners(rows)[0]
    assert a.segment is PartnerSegment.STARS
    assert a.reason == (
        "conversions 40 is at or above the program's 80th percentile (26.4) with 40 conversions"
    )


def test_rising_on_revenue_growth_and_on_new_revenue() -> None:
    rows = [
        active(1, conversions=3, revenue=Decimal(150), previous_revenue=Decimal(100)),
        active(2, conversions=3, revenue=Decimal(149), previous_revenue=Decimal(100)),
        active(3, conversions=3, revenue=Decimal(50)),
        active(9, conversions=100, revenue=Decimal(100_000), previous_revenue=Decimal(100_000)),
    ]
    a, b, c, _ = segment_partners(rows, currency="EUR")
    assert (a.segment, a.rule) == (PartnerSegment.RISING, "rising.metric_growth")
    assert a.reason == ("revenue 150.00 EUR is up 50.0% on the previous period (100.00 EUR)")
    assert b.segment is PartnerSegment.STEADY
    assert c.segment is PartnerSegment.RISING
    assert c.reason == "revenue 50.00 EUR is from nothing the previous period (0.00 EUR)"


def test_rising_on_click_growth() -> None:
    [a, _] = segment_partners(
        [active(1, clicks=300, previous_clicks=100), active(2, conversions=9, revenue=Decimal(1))]
    )
    assert (a.segment, a.rule) == (PartnerSegment.RISING, "rising.click_growth")
    assert a.reason == "300 clicks, up 200.0% on the previous period (100)"


def test_invalid_features_are_refused() -> None:
    with pytest.raises(InvalidInput):
        PartnerPeriodFeatures(partner_id=1, conversions=1, refunds=2)
    with pytest.raises(InvalidInput):
        PartnerPeriodFeatures(partner_id=1, quality_score=101)
    with pytest.raises(InvalidInput):
        segment_partners([active(1), active(1)])
    with pytest.raises(InvalidInput):
        PartnerSegmentPolicy(star_percentile=Decimal(120))


# --------------------------------------------------------------------------- properties

money = st.integers(min_value=0, max_value=10_000).map(Decimal)


@st.composite
def features(draw: st.DrawFn, pid: int) -> PartnerPeriodFeatures:
    conversions = draw(st.integers(0, 60))
    return PartnerPeriodFeatures(
        partner_id=pid,
        clicks=draw(st.integers(0, 1000)),
        conversions=conversions,
        refunds=draw(st.integers(0, conversions)),
        revenue=draw(money),
        commission=draw(money),
        previous_clicks=draw(st.integers(0, 1000)),
        previous_conversions=draw(st.integers(0, 60)),
        previous_revenue=draw(money),
        days_since_last_activity=draw(st.none() | st.integers(0, 120)),
        quality_score=draw(st.none() | st.integers(0, 100)),
    )


@st.composite
def programs(draw: st.DrawFn) -> list[PartnerPeriodFeatures]:
    n = draw(st.integers(1, 8))
    return [draw(features(pid)) for pid in range(1, n + 1)]


@settings(max_examples=150, deadline=None)
@given(programs())
def test_every_partner_gets_exactly_one_segment_with_a_reason(
    rows: list[PartnerPeriodFeatures],
) -> None:
    out = segment_partners(rows)
    assert [a.partner_id for a in out] == [f.partner_id for f in rows]
    for a in out:
        assert a.segment in PartnerSegment
        assert a.rule.startswith(a.segment.value + ".")
        assert a.reason
    assert [a.segment for a in segment_partners(reversed(rows))] == [
        a.segment for a in reversed(out)
    ]


@settings(max_examples=150, deadline=None)
@given(programs(), st.data())
def test_more_recent_activity_never_makes_a_partner_dormant(
    rows: list[PartnerPeriodFeatures], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(rows) - 1))
    before = segment_partners(rows)[i]
    days = rows[i].days_since_last_activity
    fresher = data.draw(st.integers(0, days if days is not None else 120))
    changed = list(rows)
    changed[i] = replace(rows[i], days_since_last_activity=fresher)
    after = segment_partners(changed)[i]
    if before.segment is not PartnerSegment.DORMANT:
        assert after.segment is not PartnerSegment.DORMANT


@settings(max_examples=150, deadline=None)
@given(programs(), st.data())
def test_better_quality_or_fewer_refunds_never_makes_a_partner_risky(
    rows: list[PartnerPeriodFeatures], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(rows) - 1))
    f = rows[i]
    before = segment_partners(rows)[i]
    better = replace(
        f,
        quality_score=None
        if f.quality_score is None
        else data.draw(st.integers(f.quality_score, 100)),
        refunds=data.draw(st.integers(0, f.refunds)),
    )
    changed = list(rows)
    changed[i] = better
    if before.segment is not PartnerSegment.RISKY:
        assert segment_partners(changed)[i].segment is not PartnerSegment.RISKY


@settings(max_examples=150, deadline=None)
@given(programs(), st.data())
def test_more_revenue_keeps_a_star_a_star(
    rows: list[PartnerPeriodFeatures], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(rows) - 1))
    if segment_partners(rows)[i].segment is not PartnerSegment.STARS or rows[i].revenue == 0:
        return
    changed = list(rows)
    changed[i] = replace(rows[i], revenue=rows[i].revenue + data.draw(money))
    assert segment_partners(changed)[i].segment is PartnerSegment.STARS
