"""The rules both conversion paths share (tracking.conversions) and the click score cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from partnerflow.fraud.bots import classify_user_agent
from partnerflow.fraud.networks import classify_ip
from partnerflow.fraud.scoring import ClickFacts, score_click
from partnerflow.storage.counters import MemoryCounters
from partnerflow.tracking.conversions import (
    CapVerdict,
    ClickEvidence,
    ad_click_ids_in_flags,
    cap_reservation_id,
    cap_revenue,
    flags_text,
    score_attributed,
    score_flags,
)
from partnerflow.web.tracker import _click_risk, _risk_bits

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@given(st.integers(1, 10**9), st.text(min_size=1, max_size=128))
def test_reservation_ids_are_32_characters_and_depend_on_program_and_order(
    program_id: int, order_id: str
) -> None:
    rid = cap_reservation_id(program_id, order_id)
    assert len(rid) == 32 and rid.startswith("cv")
    assert rid == cap_reservation_id(program_id, order_id)
    assert rid != cap_reservation_id(program_id + 1, order_id)
    assert rid != cap_reservation_id(program_id, order_id + "x")


def test_ad_click_ids_are_read_back_from_click_flags() -> None:
    assert ad_click_ids_in_flags("no_referrer;paid_search:gclid:fbclid") == {"gclid", "fbclid"}
    assert ad_click_ids_in_flags("sub2:too_long;duplicate_click") == frozenset()
    assert ad_click_ids_in_flags(None) == frozenset()


def test_conversion_score_uses_ctit_and_the_clicks_own_score() -> None:
    fast = score_attributed(NOW, ClickEvidence(NOW - timedelta(seconds=2), 0, None))
    assert (fast.score, score_flags(fast), fast.flagged) == (80, "ctit_injection", True)
    calm = score_attributed(NOW, ClickEvidence(NOW - timedelta(minutes=20), 10, "no_referrer"))
    assert (calm.score, score_flags(calm), calm.flagged) == (0, None, False)
    paid = score_attributed(
        NOW, ClickEvidence(NOW - timedelta(minutes=20), 85, "paid_search:gclid")
    )
    assert score_flags(paid) == "invalid_click;paid_search"
    assert paid.score == 100
    assert score_attributed(NOW, None).score == 0  # coupon: nothing to judge here


def test_cap_verdicts_flags_and_revenue() -> None:
    refused = CapVerdict(False, "hard cap #3 … is full", 3)
    assert refused.flag == "cap:3"
    assert CapVerdict(True).flag is None
    assert flags_text("ctit_injection", refused.flag) == "ctit_injection;cap:3"
    assert flags_text(None, None) is None
    assert cap_revenue(Decimal("10"), "EUR", "EUR", None) == Decimal("10")
    assert cap_revenue(Decimal("10"), "USD", "EUR", Decimal("9.1")) == Decimal("9.1")
    assert cap_revenue(Decimal("10"), "USD", "EUR", None) == Decimal(0)


AGENTS = [
    None,
    "",
    "python-requests/2.31",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
]
IPS = [None, "not-an-ip", "10.0.0.1", "3.5.140.2", "81.2.69.160", "2001:db8::1"]


@given(
    st.sampled_from(AGENTS),
    st.sampled_from(IPS),
    st.integers(1, 200),
    st.integers(1, 20),
    st.integers(1, 1000),
    st.booleans(),
    st.booleans(),
    st.frozensets(st.sampled_from(["gclid", "fbclid", "ttclid"])),
)
def test_the_cached_click_score_equals_score_click(
    ua: str | None, ip: str | None, by_ip: int, by_visitor: int, by_partner: int,
    duplicate: bool, referrer: bool, ad_ids: frozenset[str],
) -> None:  # fmt: skip
    verdict, network = classify_user_agent(ua), classify_ip(ip)
    bits = _risk_bits(by_ip, by_visitor, by_partner, duplicate, referrer)
    cached = _click_risk(verdict, network, bits, ad_ids)
    direct = score_click(
        ClickFacts(
            verdict, network, referrer, by_ip, by_visitor, by_partner, duplicate, None, ad_ids
        )
    )
    assert cached[0] == direct.score
    assert {c.split(":")[0] for c in (cached[1] or "").split(";") if c} == {
        str(c) for c in direct.codes
    }
    assert _click_risk(verdict, network, bits, ad_ids) == cached  # and again, from the cache


def test_check_click_many_counts_ip_partner_and_returning_visitors() -> None:
    now = [100.0]
    counters = MemoryCounters(now=lambda: now[0])
    assert counters.check_click_many("f1", "v1", 30, "ip", "p", None, 60) == (False, 1, 1, 1)
    assert counters.check_click_many("f1", "v1", 30, "ip", "p", "vv", 60) == (True, 2, 2, 1)
    assert counters.check_click_many("f2", "v2", 30, "ip", "p", "vv", 60) == (False, 3, 3, 2)
    now[0] += 61  # the velocity window has passed; the dedupe window too
    assert counters.check_click_many("f1", "v1", 30, "ip", "p", "vv", 60) == (False, 1, 1, 1)


@given(
    st.one_of(st.none(), st.floats(-10, 200_000)),
    st.one_of(st.none(), st.integers(0, 100)),
    st.sampled_from([None, "no_referrer", "paid_search:gclid", "duplicate_click"]),
)
def test_the_shortcut_for_quiet_conversions_equals_the_scorer(
    ctit: float | None, click_score: int | None, flags: str | None
) -> None:
    from partnerflow.fraud.scoring import score_conversion
    from partnerflow.fraud.signals import ConversionFacts

    at = NOW - timedelta(seconds=ctit) if ctit is not None else None
    fast = score_attributed(NOW, ClickEvidence(at, click_score, flags))
    full = score_conversion(
        ConversionFacts(
            ctit_seconds=max((NOW - at).total_seconds(), 0.0) if at is not None else None,
            ad_click_ids=ad_click_ids_in_flags(flags),
            click_score=click_score,
        )
    )
    assert (fast.score, fast.codes) == (full.score, full.codes)
