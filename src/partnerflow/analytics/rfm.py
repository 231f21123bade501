"""RFM scoring and named segments, as the R `rfm` package (0.2.x) defines them.

Scores are quintiles 1–5 of recency (days since last purchase, *reversed*: most recent = 5),
frequency (number of purchases) and monetary value (revenue). Breakpoints are the 20/40/60/80th
percentiles, and a value equal to a breakpoint falls in the lower bin, so equal values always
get the same score (many customers with one purchase all score F1 instead of being spread
across bins by an arbitrary tie order). Segments are score boxes checked in order; the first
box that contains the customer wins and customers in no box are "Others".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from partnerflow.core.errors import InvalidInput

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class SegmentRule:
    name: str
    recency: tuple[int, int]
    frequency: tuple[int, int]
    monetary: tuple[int, int]

    def matches(self, r: int, f: int, m: int) -> bool:
        return (
            self.recency[0] <= r <= self.recency[1]
            and self.frequency[0] <= f <= self.frequency[1]
            and self.monetary[0] <= m <= self.monetary[1]
        )


# rfm 0.2.2 `rfm_segment` example (rsquaredacademy/rfm), in its order: first match wins.
DEFAULT_SEGMENTS: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", (4, 5), (4, 5), (4, 5)),
    SegmentRule("Loyal Customers", (2, 5), (3, 5), (3, 5)),
    SegmentRule("Potential Loyalist", (3, 5), (1, 3), (1, 3)),
    SegmentRule("New Customers", (4, 5), (1, 1), (1, 1)),
    SegmentRule("Promising", (3, 4), (1, 1), (1, 1)),
    SegmentRule("Need Attention", (2, 3), (2, 3), (2, 3)),
    SegmentRule("About To Sleep", (2, 3), (1, 2), (1, 2)),
    SegmentRule("At Risk", (1, 2), (2, 5), (2, 5)),
    SegmentRule("Can't Lose Them", (1, 1), (4, 5), (4, 5)),
    SegmentRule("Lost", (1, 2), (1, 2), (1, 2)),
)
OTHERS = "Others"


@dataclass(frozen=True)
class RFMScores:
    recency: IntArray
    frequency: IntArray
    monetary: IntArray

    def cell(self, i: int) -> str:
        """The conventional three-digit RFM cell, e.g. "545"."""
        return f"{self.recency[i]}{self.frequency[i]}{self.monetary[i]}"


def quintile_scores(values: ArrayLike, *, reverse: bool = False) -> IntArray:
    """1–5 by the 20/40/60/80th percentiles (linear interpolation); ties share a score."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise InvalidInput("RFM scoring needs a non-empty list of values")
    if not np.all(np.isfinite(v)):
        raise InvalidInput("RFM values must be finite")
    breaks = np.percentile(v, [20.0, 40.0, 60.0, 80.0])
    score = 1 + np.searchsorted(breaks, v, side="left").astype(np.int64)
    return (6 - score) if reverse else score


def rfm_scores(recency_days: ArrayLike, frequency: ArrayLike, monetary: ArrayLike) -> RFMScores:
    r = np.asarray(recency_days, dtype=np.float64)
    f = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    if not (r.shape == f.shape == m.shape):
        raise InvalidInput("recency, frequency and monetary must have the same length")
    if np.any(r < 0) or np.any(f < 0) or np.any(m < 0):
        raise InvalidInput("recency, frequency and monetary must be non-negative")
    return RFMScores(
        recency=quintile_scores(r, reverse=True),
        frequency=quintile_scores(f),
        monetary=quintile_scores(m),
    )


def segment(r: int, f: int, m: int, rules: tuple[SegmentRule, ...] = DEFAULT_SEGMENTS) -> str:
    for rule in rules:
        if rule.matches(r, f, m):
            return rule.name
    return OTHERS


def segments(scores: RFMScores, rules: tuple[SegmentRule, ...] = DEFAULT_SEGMENTS) -> list[str]:
    return [
        segment(int(r), int(f), int(m), rules)
        for r, f, m in zip(scores.recency, scores.frequency, scores.monetary, strict=True)
    ]
