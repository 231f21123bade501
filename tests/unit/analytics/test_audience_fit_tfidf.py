from decimal import Decimal

import pytest

from partnerflow.analytics.audience_fit import (
    Applicant,
    partner_profile_text,
    phrases,
    score_applicants,
    terms,
    to_score,
)
from partnerflow.core.errors import InvalidInput

AUDIENCE = (
    "Runners and trail-running enthusiasts who train for marathons; "
    "fitness, running shoes and outdoor gear."
)


def applicants() -> list[Applicant]:
    return [
        Applicant(
            1,
            "Ann",
            partner_profile_text(
                "Ann",
                "https://www.trail-running-blog.com/about",
                "DE",
                {"instagram": "Marathon training plans and running shoes reviews", "followers": 1},
            ),
        ),
        Applicant(
            2,
            "Bob",
            partner_profile_text(
                "Bob", "vegan-recipes.example", "FR", {"youtube": "Vegan family recipes"}
            ),
        ),
        Applicant(3, "Cid", ""),
    ]


def test_profile_text_uses_website_words_country_and_social_strings() -> None:
    text = partner_profile_text(
        "Ann",
        "https://www.trail-running-blog.com/about",
        "DE",
        {"instagram": "Marathon plans", "followers": 12000, "tags": ["gear", "shoes"]},
    )
    assert text == (
        "Ann. website trail running blog. country DE. instagram: Marathon plans. tags: gear shoes"
    )
    assert partner_profile_text("", None, None, None) == ""


def test_terms_fold_plurals_drop_stop_words_and_add_bigrams() -> None:
    assert terms("The runners love running shoes") == [
        "runner",
        "love",
        "running",
        "shoe",
        "runner love",
        "love running",
        "running shoe",
    ]
    assert phrases("Runners; trail, fitness. Gear") == ["Runners", "trail", "fitness", "Gear"]


def test_tfidf_ranks_the_matching_applicant_first_with_shared_terms() -> None:
    fits = score_applicants(AUDIENCE, applicants(), method="tfidf")
    assert [f.partner_id for f in fits] == [1, 2, 3]
    ann, bob, cid = fits
    assert ann.method == "tfidf"
    assert ann.score == 24
    assert ann.similarity == Decimal("0.2391")
    assert [m.applicant for m in ann.matches] == ["running", "marathon", "running shoe"]
    assert ann.explanation == 'shared terms: "running", "marathon", "running shoe"'
    assert (bob.score, bob.matches) == (0, ())
    assert bob.explanation == "nothing in the profile matches the target audience"
    assert cid.score == 0
    assert cid.explanation.startswith("no profile text to compare")


def test_score_is_cosine_clipped_and_scaled() -> None:
    assert [to_score(x) for x in (-0.3, 0.0, 0.004, 0.005, 0.425, 1.0, 1.2)] == [
        0,
        0,
        0,
        1,
        43,
        100,
        100,
    ]
    assert to_score(float("nan")) == 0


def test_identical_text_scores_100() -> None:
    [fit] = score_applicants(AUDIENCE, [Applicant(1, "Twin", AUDIENCE)], method="tfidf")
    assert fit.score == 100


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        score_applicants("  ", applicants(), method="tfidf")
    with pytest.raises(InvalidInput, match="no meaningful words"):
        score_applicants("the and of", applicants(), method="tfidf")
    assert score_applicants(AUDIENCE, [], method="tfidf") == []
