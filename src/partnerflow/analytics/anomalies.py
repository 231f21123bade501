"""Anomalous partner-days: an isolation forest over traffic-quality features, for what the
fraud rules miss.

Features per partner and day: clicks (log), conversion rate, bot share, datacenter share,
median click-to-conversion time (log seconds) and refund rate. scikit-learn's
`IsolationForest` (Liu, Ting & Zhou 2008, "Isolation Forest", ICDM) isolates outliers with
random axis-parallel splits; the rows it isolates fastest are anomalous. Its random state
is fixed, so the same data gives the same answer.

A forest says *that* a row is odd, not *why*; each anomaly is therefore explained by the
features whose robust z-score (distance from the median in units of 1.4826 x MAD, the
normal-consistent median absolute deviation) is largest, e.g. "bot share 85% (typical
2%, z=+41.0)". The detector only suggests: it queues nothing by itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

FEATURES: Final = (
    "clicks",
    "conversion_rate",
    "bot_share",
    "datacenter_share",
    "median_ctit",
    "refund_rate",
)
_LABELS: Final = {
    "clicks": "clicks",
    "conversion_rate": "conversion rate",
    "bot_share": "bot share",
    "datacenter_share": "datacenter share",
    "median_ctit": "median click-to-conversion time",
    "refund_rate": "refund rate",
}
_MAD_TO_SIGMA: Final = 1.4826


class PartnerDayCounts(Protocol):
    """One partner's counts for one day (`storage.fraud_queries.PartnerDay` fits)."""

    @property
    def partner_id(self) -> int: ...
    @property
    def day(self) -> date: ...
    @property
    def clicks(self) -> int: ...
    @property
    def conversions(self) -> int: ...
    @property
    def bot_clicks(self) -> int: ...
    @property
    def datacenter_clicks(self) -> int: ...
    @property
    def refunded(self) -> int: ...
    @property
    def median_ctit_seconds(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Anomaly:
    partner_id: int
    day: date
    score: float  # scikit-learn's score_samples: lower is more anomalous
    z_scores: dict[str, float]
    reasons: tuple[str, ...]


def _pooled(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


def _smoothed(part: int, whole: int, prior: float, weight: float) -> float:
    """Additive smoothing toward the pooled rate: a day with 40 clicks and 2 bots is not
    5% bots with the confidence of a day with 4,000 clicks and 200 bots. Without it the
    forest mostly finds small partners' noisy days."""
    total = max(whole, 0) + weight
    return (max(part, 0) + prior * weight) / total if total > 0 else prior


def feature_matrix(
    rows: Sequence[PartnerDayCounts],
    *,
    click_weight: float = 200.0,
    conversion_weight: float = 20.0,
) -> NDArray[np.float64]:
    """One row per partner-day, columns as `FEATURES`. Rates are smoothed toward the
    pooled rate with `click_weight` pseudo-clicks (`conversion_weight` pseudo-conversions
    for the refund rate). A day without a measured CTIT gets the median of the days that
    have one (missing is not evidence)."""
    clicks = sum(max(r.clicks, 0) for r in rows)
    conversions = sum(max(r.conversions, 0) for r in rows)
    cr = _pooled(conversions, clicks)
    bots = _pooled(sum(r.bot_clicks for r in rows), clicks)
    hosted = _pooled(sum(r.datacenter_clicks for r in rows), clicks)
    refunds = _pooled(sum(r.refunded for r in rows), conversions)
    ctits = [r.median_ctit_seconds for r in rows if r.median_ctit_seconds is not None]
    fill = float(np.median(ctits)) if ctits else 0.0
    # Volume is judged against the partner's own usual day (a big partner is not an
    # anomaly; a partner with ten times their usual clicks is).
    volumes: dict[int, list[float]] = {}
    for r in rows:
        volumes.setdefault(r.partner_id, []).append(math.log1p(max(r.clicks, 0)))
    usual = {pid: float(np.median(v)) for pid, v in volumes.items()}
    data = [
        [
            math.log1p(max(r.clicks, 0)) - usual[r.partner_id],
            _smoothed(r.conversions, r.clicks, cr, click_weight),
            _smoothed(r.bot_clicks, r.clicks, bots, click_weight),
            _smoothed(r.datacenter_clicks, r.clicks, hosted, click_weight),
            math.log1p(
                max(r.median_ctit_seconds if r.median_ctit_seconds is not None else fill, 0.0)
            ),
            _smoothed(r.refunded, r.conversions, refunds, conversion_weight),
        ]
        for r in rows
    ]
    return np.asarray(data, dtype=np.float64).reshape(len(rows), len(FEATURES))


def robust_z_scores(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """(x - median) / (1.4826 MAD) per column; the standard deviation stands in when the
    MAD is 0 (most days identical), and a constant column scores 0."""
    median = np.median(matrix, axis=0)
    mad = np.median(np.abs(matrix - median), axis=0) * _MAD_TO_SIGMA
    std = matrix.std(axis=0)
    scale = np.where(mad > 0, mad, std)
    safe = np.where(scale > 0, scale, 1.0)
    z: NDArray[np.float64] = np.where(scale > 0, (matrix - median) / safe, 0.0)
    return z


def _shown(name: str, value: float) -> str:
    if name == "clicks":
        return f"{math.exp(value):.2g}x usual"
    if name == "median_ctit":
        return f"{math.expm1(value):.0f} s"
    return f"{value * 100:.3g}%"


def detect_anomalies(
    rows: Iterable[PartnerDayCounts],
    *,
    contamination: float = 0.01,
    random_state: int = 0,
    n_estimators: int = 200,
    min_rows: int = 20,
    z_threshold: float = 3.0,
    extreme_z: float | None = 10.0,
    max_reasons: int = 3,
) -> list[Anomaly]:
    """The partner-days the forest isolates as the `contamination` share of outliers, plus
    any day with one feature beyond `extreme_z` robust z-scores, most anomalous first,
    each with the features that stand out. Fewer than `min_rows` rows is too little to
    say what is normal: no anomalies.

    Why the second rule: an isolation forest picks a random feature per split, so a day
    that is extreme in a single feature (a median CTIT of 2 s, everything else normal) is
    isolated only by the trees that happen to split on that feature, and ranks below days
    that are mildly odd in several. The forest is for combinations; an extreme single
    feature is reported whatever the forest says."""
    if not 0 < contamination <= 0.5:
        raise ValueError("contamination must be in (0, 0.5]")
    items = list(rows)
    if len(items) < max(min_rows, 2):
        return []
    # Imported here: scikit-learn takes about a second to import, and the CLI and the scan
    # job import this module whether or not there is enough data to fit a forest.
    from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]

    matrix = feature_matrix(items)
    forest = IsolationForest(
        n_estimators=n_estimators, contamination=contamination, random_state=random_state
    )
    labels = forest.fit_predict(matrix)
    scores = forest.score_samples(matrix)
    z = robust_z_scores(matrix)
    # Reasons quote the raw (unsmoothed) values people can check against their reports.
    raw = feature_matrix(items, click_weight=0.0, conversion_weight=0.0)
    median = np.median(raw, axis=0)
    flagged = labels == -1
    if extreme_z is not None:
        flagged |= np.abs(z).max(axis=1) >= extreme_z
    out: list[Anomaly] = []
    for i in np.flatnonzero(flagged):
        row_z = {name: round(float(z[i, j]), 2) for j, name in enumerate(FEATURES)}
        ranked = sorted(FEATURES, key=lambda name: -abs(row_z[name]))
        standing_out = [n for n in ranked if abs(row_z[n]) >= z_threshold] or ranked[:1]
        reasons = tuple(
            f"{_LABELS[name]} {_shown(name, float(raw[i, FEATURES.index(name)]))} "
            f"(typical {_shown(name, float(median[FEATURES.index(name)]))}, "
            f"z={row_z[name]:+.1f})"
            for name in standing_out[:max_reasons]
        )
        item = items[int(i)]
        out.append(Anomaly(item.partner_id, item.day, float(scores[i]), row_z, reasons))
    out.sort(key=lambda a: a.score)
    return out
