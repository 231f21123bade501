from partnerflow.fraud.identities import Identity
from partnerflow.fraud.screening import (
    Application,
    ScreeningPolicy,
    is_disposable_email,
    screen_application,
)

STRONG = Application(
    identity=Identity(emails=("ann@annsblog.example",), domains=("https://www.annsblog.example/",)),
    domain_age_days=1200,
    backlinks=1000,
    social_followers=100_000,
    engagement_rate=0.03,
    review_rating=5.0,
    audience_countries={"DE": 0.7, "AT": 0.2, "US": 0.1},
)


def test_strong_applicant_is_auto_approved_with_every_factor_explained() -> None:
    result = screen_application(STRONG, target_countries=("de", "AT"))
    assert (result.score, result.decision, result.red_flags) == (98, "approve", ())
    assert [factor.reason for factor in result.factors] == [
        "website domain age 1200 days",
        "1000 backlinks",
        "100000 social followers",
        "engagement rate 3.00% (healthy)",
        "review rating 5.0 / 5",
        "90% of the audience in the program's target countries",
    ]


def test_weak_new_site_is_auto_rejected() -> None:
    result = screen_application(
        Application(domain_age_days=5, backlinks=0, social_followers=40, engagement_rate=0.001),
    )
    assert result.decision == "reject"
    assert result.score == 9  # 40 followers earn 6.45 of 70 points
    assert result.reasons[0] == "website domain age 5 days (registered under 30 days ago)"


def test_missing_factors_are_left_out_not_counted_as_zero() -> None:
    creator = Application(social_followers=100_000, engagement_rate=0.04)
    result = screen_application(creator)
    assert (result.score, result.decision) == (100, "approve")
    assert [factor.name for factor in result.factors] == ["followers", "engagement"]


def test_no_data_is_neutral_and_goes_to_review() -> None:
    result = screen_application(Application())
    assert (result.score, result.decision, result.red_flags) == (
        50,
        "review",
        ("no screening data supplied",),
    )


def test_disposable_email_costs_points_and_blocks_auto_approval() -> None:
    assert is_disposable_email("someone@0-mail.com") is True
    assert is_disposable_email("Someone@Mail.0-MAIL.com") is True
    assert is_disposable_email("someone@gmail.com") is False
    assert is_disposable_email("not an email") is False
    application = Application(
        identity=Identity(emails=("x@0-mail.com",)),
        domain_age_days=1200,
        backlinks=1000,
        social_followers=100_000,
        engagement_rate=0.03,
        review_rating=5.0,
    )
    result = screen_application(application)
    assert (result.score, result.decision) == (50, "review")
    assert result.red_flags == ("disposable e-mail domain: 0-mail.com",)


def test_duplicate_identity_is_named() -> None:
    existing = Identity(emails=("Ann+old@annsblog.example",), label="partner #12")
    result = screen_application(STRONG, existing_partners=[existing])
    assert result.red_flags == ("same e-mail as partner #12",)
    assert result.decision == "review"
    assert result.score == 40


def test_thresholds_are_per_program() -> None:
    strict = ScreeningPolicy(auto_approve_at=99, auto_reject_at=60)
    assert screen_application(STRONG, target_countries=("DE", "AT"), policy=strict).decision == (
        "review"
    )


def test_implausible_engagement_on_a_big_account_earns_little() -> None:
    result = screen_application(Application(social_followers=50_000, engagement_rate=0.35))
    assert result.factors[1].reason == (
        "engagement rate 35.00% (implausibly high for the audience size: engagement pods?)"
    )
    assert result.factors[1].earned == 0.3 * 15


def test_screening_names_the_factors_it_had_no_data_for() -> None:
    result = screen_application(Application(social_followers=50_000, engagement_rate=0.03))
    assert [f.name for f in result.factors] == ["followers", "engagement"]
    assert result.missing == (
        "domain_age: no website domain age",
        "backlinks: no backlink count",
        "review_rating: no review rating",
        "country_fit: the program has no target countries",
    )
    targeted = screen_application(Application(review_rating=4.5), target_countries=("US",))
    assert "country_fit: no audience countries" in targeted.missing
