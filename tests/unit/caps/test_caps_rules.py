"""Cap validation, charges, all-or-nothing reservations, alerts and decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.caps.memory import InMemoryCapCounter
from partnerflow.caps.model import CapMetric, CapMode, CapRule, CapScope, Refused, Reservation
from partnerflow.caps.periods import Period
from partnerflow.caps.rules import (
    CapEvent,
    EventKind,
    ProposedCap,
    charges_for,
    check_limit,
    crossed_alerts,
    decide,
    parse_thresholds,
    validate_caps,
)
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.ids import OfferId, PartnerId, ProgramId

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
P = ProgramId(1)


def cap(
    cap_id: int,
    limit: str,
    *,
    metric: CapMetric = CapMetric.CLICKS,
    offer: int | None = 10,
    partner: int | None = None,
    mode: CapMode = CapMode.HARD,
    period: Period = Period.DAY,
) -> CapRule:
    return CapRule(
        id=cap_id,
        program_id=P,
        scope=CapScope(OfferId(offer) if offer else None, PartnerId(partner) if partner else None),
        metric=metric,
        period=period,
        limit=Decimal(limit),
        mode=mode,
    )


def click(partner: int = 7, offer: int = 10) -> CapEvent:
    return CapEvent(EventKind.CLICK, P, OfferId(offer), PartnerId(partner), AT)


def test_negative_and_fractional_limits_are_refused() -> None:
    with pytest.raises(InvalidInput, match="must not be negative"):
        check_limit(CapMetric.CLICKS, "-5")
    with pytest.raises(InvalidInput, match="whole number"):
        check_limit(CapMetric.CONVERSIONS, "2.5")
    assert check_limit(CapMetric.REVENUE, "1500.25") == Decimal("1500.25")


def test_thresholds_parse_sorted_and_bounded() -> None:
    assert parse_thresholds("90, 50,90%") == (Decimal(50), Decimal(90))
    with pytest.raises(InvalidInput, match=r"\(0, 100\]"):
        parse_thresholds("120")


def test_a_limit_below_current_usage_is_refused_with_the_reason() -> None:
    proposed = [ProposedCap(cap(0, "50"), Decimal(73), "2026-03-02")]
    with pytest.raises(InvalidInput) as err:
        validate_caps(proposed, [])
    assert "limit 50 is below the usage already counted this period (73 clicks in 2026-03-02)" in (
        err.value.message
    )
    validate_caps(proposed, [], force=True)  # forced: accepted


def test_overlapping_rules_are_refused_in_storage_and_in_the_same_batch() -> None:
    existing = [cap(3, "100")]
    with pytest.raises(Conflict, match="overlaps cap #3"):
        validate_caps([ProposedCap(cap(0, "200"), Decimal(0), "d")], existing)
    batch = [
        ProposedCap(cap(0, "1", offer=11), None, "d"),
        ProposedCap(cap(0, "2", offer=11), None, "d"),
    ]
    with pytest.raises(Conflict, match="cap 2 overlaps cap 1 in the same request"):
        validate_caps(batch, [])
    # Changing cap 3 itself is not an overlap; a different period is not either.
    validate_caps([ProposedCap(cap(3, "200"), Decimal(0), "d")], existing)
    validate_caps([ProposedCap(cap(0, "200", period=Period.WEEK), Decimal(0), "w")], existing)


def test_charges_cover_every_matching_scope_in_key_order() -> None:
    caps = [
        cap(1, "100"),  # offer 10
        cap(2, "10", offer=None, partner=7),  # partner 7
        cap(3, "5", partner=7),  # partner 7 on offer 10
        cap(4, "5", partner=8),  # another partner
        cap(5, "5", metric=CapMetric.CONVERSIONS),  # not charged by clicks
    ]
    charges = charges_for(caps, click(), "Europe/Berlin")
    assert [(c.cap_id, c.key, c.limit) for c in charges] == [
        (1, "cap:1:2026-03-02", 100),
        (2, "cap:2:2026-03-02", 10),
        (3, "cap:3:2026-03-02", 5),
    ]


def test_money_caps_charge_micro_units_and_soft_caps_have_no_limit() -> None:
    caps = [
        cap(1, "100.50", metric=CapMetric.REVENUE),
        cap(2, "20", metric=CapMetric.PAYOUT, mode=CapMode.SOFT),
    ]
    event = CapEvent(
        EventKind.CONVERSION, P, OfferId(10), PartnerId(7), AT, Decimal("80.25"), Decimal("8.03")
    )
    charges = charges_for(caps, event, "UTC")
    assert [(c.amount, c.limit) for c in charges] == [(80_250_000, 100_500_000), (8_030_000, None)]


def test_reservation_is_all_or_nothing() -> None:
    counter = InMemoryCapCounter()
    caps = [cap(1, "3"), cap(2, "2", offer=None, partner=7)]
    charges = charges_for(caps, click(), "UTC")
    assert isinstance(counter.reserve(charges), Reservation)
    assert isinstance(counter.reserve(charges), Reservation)
    refused = counter.reserve(charges)
    assert isinstance(refused, Refused) and refused.cap_id == 2 and refused.used == 2
    # Cap 1 was not charged by the refused attempt.
    assert counter.usage(["cap:1:2026-03-02", "cap:2:2026-03-02"]) == {
        "cap:1:2026-03-02": 2,
        "cap:2:2026-03-02": 2,
    }


def test_release_gives_capacity_back_once() -> None:
    counter = InMemoryCapCounter()
    charges = charges_for([cap(1, "1")], click(), "UTC")
    granted = counter.reserve(charges)
    assert isinstance(granted, Reservation)
    assert isinstance(counter.reserve(charges), Refused)
    assert counter.release(granted.id) is True
    assert counter.release(granted.id) is False
    assert isinstance(counter.reserve(charges), Reservation)


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=30),
    amounts=st.lists(st.integers(min_value=1, max_value=5), max_size=40),
)
def test_usage_never_exceeds_a_hard_limit(limit: int, amounts: list[int]) -> None:
    counter = InMemoryCapCounter()
    rule = cap(1, str(limit), metric=CapMetric.REVENUE)
    granted = 0
    for amount in amounts:
        event = CapEvent(EventKind.CONVERSION, P, OfferId(10), None, AT, Decimal(amount))
        if isinstance(counter.reserve(charges_for([rule], event, "UTC")), Reservation):
            granted += amount
    used = counter.usage(["cap:1:2026-03-02"])["cap:1:2026-03-02"]
    assert used == granted * 1_000_000 <= limit * 1_000_000


def test_each_threshold_alerts_once_when_crossed() -> None:
    rule = CapRule(
        id=1,
        program_id=P,
        scope=CapScope(OfferId(10)),
        metric=CapMetric.CLICKS,
        period=Period.DAY,
        limit=Decimal(10),
        mode=CapMode.SOFT,
        alert_thresholds=(Decimal(50), Decimal(90)),
    )
    assert [a.threshold for a in crossed_alerts(rule, "d", 4, 5)] == [Decimal(50)]
    assert crossed_alerts(rule, "d", 5, 6) == []
    alerts = crossed_alerts(rule, "d", 8, 11)
    assert [a.threshold for a in alerts] == [Decimal(90), Decimal(100)]
    assert alerts[1].message == (
        "soft cap #1: 10 clicks per day for offer 10 exceeded 100% in d: 11 of 10"
    )


def test_refused_click_goes_to_fallback_and_conversion_is_not_payable() -> None:
    rule = cap(1, "0")
    counter = InMemoryCapCounter()
    outcome = counter.reserve(charges_for([rule], click(), "UTC"))
    decision = decide({1: rule}, outcome, click(), fallback_url="https://fallback.example")
    assert decision.allowed is False
    assert decision.fallback_url == "https://fallback.example"
    assert decision.reason == (
        "hard cap #1: 0 clicks per day for offer 10 is full for 2026-03-02 (0 of 0): "
        "click sent to the fallback URL"
    )
    conv_rule = cap(2, "0", metric=CapMetric.CONVERSIONS)
    conv = CapEvent(EventKind.CONVERSION, P, OfferId(10), PartnerId(7), AT)
    outcome = counter.reserve(charges_for([conv_rule], conv, "UTC"))
    decision = decide({2: conv_rule}, outcome, conv)
    assert decision.allowed is False and decision.fallback_url is None
    assert decision.reason is not None and decision.reason.endswith("recorded but not payable")
