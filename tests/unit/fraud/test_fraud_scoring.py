from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.fraud.bots import BotVerdict, classify_user_agent
from partnerflow.fraud.identities import Identity
from partnerflow.fraud.networks import IpVerdict, classify_ip
from partnerflow.fraud.scoring import (
    ConversionPolicy,
    score_click,
    score_conversion,
    score_partner_quality,
)
from partnerflow.fraud.signals import (
    ClickFacts,
    ConversionFacts,
    PartnerWindowFacts,
    SignalCode,
    ad_click_ids_in_query,
)

HUMAN = BotVerdict(bot=False)
HOME = IpVerdict("residential")


def click(**overrides: object) -> ClickFacts:
    values: dict[str, object] = {"user_agent": HUMAN, "ip": HOME}
    values.update(overrides)
    return ClickFacts(**values)  # type: ignore[arg-type]


def test_clean_click_scores_zero_without_reasons() -> None:
    score = score_click(click())
    assert (score.score, score.reasons, score.level, score.flagged) == (0, (), "clean", False)


def test_declared_crawler_is_invalid_traffic() -> None:
    ua = classify_user_agent(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    )
    score = score_click(click(user_agent=ua))
    assert (score.score, score.reasons, score.level) == (
        100,
        ("declared crawler: Googlebot",),
        "invalid",
    )


def test_datacenter_ip_is_flagged_with_its_provider() -> None:
    score = score_click(click(ip=classify_ip("52.95.110.1")))
    assert (score.score, score.reasons, score.level) == (
        60,
        ("datacenter IP: Amazon AWS",),
        "suspicious",
    )


def test_signals_add_up_strongest_first_and_cap_at_100() -> None:
    score = score_click(
        click(
            user_agent=classify_user_agent("curl/8"),
            ip=classify_ip("52.95.110.1"),
            referrer_present=False,
        )
    )
    assert score.score == 100
    assert score.reasons == ("scripted client: curl", "datacenter IP: Amazon AWS", "no referrer")


def test_velocity_thresholds_are_exclusive() -> None:
    assert score_click(click(clicks_last_minute_ip=60)).score == 0
    over = score_click(click(clicks_last_minute_ip=61))
    assert over.reasons == ("61 clicks in the last minute from this IP (limit 60)",)
    assert over.codes == {SignalCode.IP_VELOCITY}


def test_fast_clicker_under_800_ms() -> None:
    assert score_click(click(seconds_since_previous_click=0.8)).score == 0
    fast = score_click(click(seconds_since_previous_click=0.25))
    assert (fast.score, fast.reasons) == (
        60,
        ("clicked 250 ms after the previous click (under 800 ms)",),
    )


def test_weak_signals_alone_do_not_flag() -> None:
    for facts in (
        click(referrer_present=False),
        click(duplicate=True),
        click(ip=IpVerdict("vpn", "Mullvad")),
        click(clicks_last_minute_partner=5000),
        click(ip=IpVerdict("invalid")),
    ):
        assert score_click(facts).flagged is False


def test_paid_search_click_id_flags_unless_allowed() -> None:
    ids = ad_click_ids_in_query("?utm_source=x&gclid=abc&fbclid=")
    assert ids == {"gclid"}
    score = score_click(click(ad_click_ids=ids))
    assert score.reasons == ("ad click id on partner traffic: Google Ads (gclid)",)
    assert score.score == 50


def test_ad_click_ids_parser_tolerates_garbage() -> None:
    assert ad_click_ids_in_query(None) == frozenset()
    assert ad_click_ids_in_query("%%%&&==") == frozenset()
    assert ad_click_ids_in_query("TTCLID=1&msclkid=2") == {"ttclid", "msclkid"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_ad_click_ids_parser_never_raises(query: str) -> None:
    assert isinstance(ad_click_ids_in_query(query), frozenset)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.booleans(),
    st.none() | st.floats(0, 1e6),
    st.booleans(),
)
def test_click_score_stays_in_range(
    ip_count: int, visitor_count: int, partner_count: int, dup: bool, gap: float | None, ref: bool
) -> None:
    score = score_click(
        click(
            user_agent=classify_user_agent("curl/1"),
            ip=IpVerdict("tor", "Tor"),
            clicks_last_minute_ip=ip_count,
            clicks_last_minute_visitor=visitor_count,
            clicks_last_minute_partner=partner_count,
            duplicate=dup,
            seconds_since_previous_click=gap,
            referrer_present=ref,
            ad_click_ids=frozenset({"gclid"}),
        )
    )
    assert 0 <= score.score <= 100
    assert len(score.reasons) == len(score.codes)


# --- conversions --------------------------------------------------------------------------


def test_ctit_bands_follow_everflow_defaults() -> None:
    assert score_conversion(ConversionFacts(ctit_seconds=3.0)).reasons == (
        "converted 3.0 s after the click (under 5 s: click injection or coupon poaching)",
    )
    short = score_conversion(ConversionFacts(ctit_seconds=12.0))
    assert (short.score, short.reasons) == (60, ("converted 12.0 s after the click (under 15 s)",))
    assert score_conversion(ConversionFacts(ctit_seconds=15.0)).score == 0
    long = score_conversion(ConversionFacts(ctit_seconds=90_000.0))
    assert (long.score, long.reasons) == (10, ("converted 25.0 h after the click (over 24 h)",))


def test_ctit_thresholds_are_configurable_per_program() -> None:
    lead_gen = ConversionPolicy(suspicious_ctit_seconds=60.0, long_ctit_seconds=None)
    assert score_conversion(ConversionFacts(ctit_seconds=30.0), lead_gen).score == 60
    assert score_conversion(ConversionFacts(ctit_seconds=10**7), lead_gen).score == 0


def test_self_referral_by_normalised_email() -> None:
    facts = ConversionFacts(
        ctit_seconds=600.0,
        partner=Identity(emails=("Jane.Doe@gmail.com",)),
        customer=Identity(emails=("janedoe+shop@googlemail.com",)),
    )
    score = score_conversion(facts)
    assert (score.score, score.reasons, score.level) == (
        90,
        ("self-referral: the customer's e-mail is the partner's",),
        "invalid",
    )


def test_self_referral_by_ip_only_is_flagged_less_strongly() -> None:
    facts = ConversionFacts(
        partner=Identity(ips=("81.2.69.1",), emails=("a@x.com",)),
        customer=Identity(ips=("81.2.69.1",), emails=("b@y.com",)),
    )
    score = score_conversion(facts)
    assert (score.score, score.reasons) == (
        60,
        ("possible self-referral: the customer's IP is the partner's",),
    )


def test_self_referral_by_customer_and_payment_id() -> None:
    facts = ConversionFacts(
        partner=Identity(customer_ids=("C-1",), payment_ids=("acct_9",)),
        customer=Identity(customer_ids=("c-1",), payment_ids=("ACCT_9",)),
    )
    assert score_conversion(facts).reasons == (
        "self-referral: the customer's customer id, payment account is the partner's",
    )


def test_duplicate_order_paid_search_and_invalid_click_add_up() -> None:
    facts = ConversionFacts(
        ctit_seconds=3600.0,
        duplicate_order=True,
        ad_click_ids=frozenset({"msclkid"}),
        click_score=100,
    )
    score = score_conversion(facts)
    assert score.score == 100
    assert score.reasons == (
        "duplicate order",
        "the attributed click was invalid traffic (score 100)",
        "paid search / brand bidding: Microsoft Advertising (msclkid)",
    )


def test_clean_conversion_scores_zero() -> None:
    facts = ConversionFacts(
        ctit_seconds=1800.0,
        partner=Identity(emails=("p@blog.example",), ips=("81.2.69.1",)),
        customer=Identity(emails=("c@mail.example",), ips=("81.2.69.2",)),
        click_score=10,
    )
    assert score_conversion(facts).score == 0


# --- partner quality ----------------------------------------------------------------------


def test_clean_partner_scores_100_and_explains_every_signal() -> None:
    quality = score_partner_quality(
        PartnerWindowFacts(
            clicks=5000,
            bot_clicks=50,
            datacenter_clicks=100,
            conversions=100,
            fast_conversions=2,
            slow_conversions=10,
            refunded_conversions=5,
            program_fast_conversion_share=0.025,
        )
    )
    assert quality.score == 100
    assert quality.reasons == ()
    assert [s.reason for s in quality.signals] == [
        "bot clicks: 1% of 5000 clicks (limit 5%): ok",
        "datacenter / VPN / Tor clicks: 2% of 5000 clicks (limit 10%): ok",
        "conversions under 10 s after the click: 2% (under 5%): ok",
        "conversions over 24 h after the click: 10% of 100 conversions (limit 30%): ok",
        "refunded or charged back: 5% of 100 conversions (limit 25%): ok",
        "conversion rate: 2% of 5000 clicks, within 0.02%-20%: ok",
    ]


def test_tune_example_injecting_partner_loses_points() -> None:
    # TUNE's example: 2.5% of conversions under 10 s program-wide, 17% for one partner.
    quality = score_partner_quality(
        PartnerWindowFacts(
            clicks=2000, conversions=100, fast_conversions=17, program_fast_conversion_share=0.025
        )
    )
    assert quality.reasons == (
        "conversions under 10 s after the click: 17% vs 2.5% program-wide (6.8x, limit 3x): -19",
    )
    assert quality.score == 81


def test_refund_rate_above_25_percent_is_penalised() -> None:
    quality = score_partner_quality(
        PartnerWindowFacts(clicks=1000, conversions=20, refunded_conversions=10)
    )
    assert quality.reasons == ("refunded or charged back: 50% of 20 conversions (limit 25%): -12",)
    assert quality.score == 88


def test_conversion_rate_bounds_and_sample_sizes() -> None:
    spam = score_partner_quality(PartnerWindowFacts(clicks=100_000, conversions=10))
    assert spam.reasons == ("conversion rate: 0.01% of 100000 clicks, below 0.02%-20%: -20",)
    too_few = score_partner_quality(PartnerWindowFacts(clicks=2000, conversions=0))
    assert too_few.score == 100
    stuffing = score_partner_quality(PartnerWindowFacts(clicks=200, conversions=80))
    assert stuffing.reasons == ("conversion rate: 40% of 200 clicks, above 0.02%-20%: -20",)


def test_bot_heavy_partner_loses_most() -> None:
    quality = score_partner_quality(
        PartnerWindowFacts(clicks=1000, bot_clicks=600, datacenter_clicks=700)
    )
    assert quality.score == 45
    assert quality.reasons == (
        "bot clicks: 60% of 1000 clicks (limit 5%): -30",
        "datacenter / VPN / Tor clicks: 70% of 1000 clicks (limit 10%): -25",
    )


def test_new_partner_is_not_judged() -> None:
    quality = score_partner_quality(PartnerWindowFacts(clicks=3, bot_clicks=3))
    assert quality.score == 100
    assert quality.signals[0].reason == "bot clicks: not judged, only 3 clicks (need 100)"
