"""Customer segments: RFM scores plus k-means on standardised log-RFM features.

Method (docs/segmentation.md has the reasoning and sources):

* Per customer: recency (days from the last purchase to the as-of day, in the program's
  timezone), frequency (number of purchases) and monetary value (revenue, Decimal).
* RFM quintile scores and named RFM segments come from `analytics.rfm`.
* Clustering features are log1p(recency), log1p(frequency), log1p(monetary), each
  standardised to mean 0 and variance 1: RFM values are heavily right-skewed and on very
  different scales, and k-means (Euclidean) would otherwise split on revenue alone.
* k is the value in 2..8 with the highest mean silhouette coefficient (Rousseeuw 1987);
  ties go to the smaller k. k-means uses k-means++ seeding, 10 restarts and a fixed
  random_state, so the same data always gives the same segments. Above
  `SILHOUETTE_SAMPLE` customers the silhouette is computed on a fixed random sample.
* Each cluster is named from the mean RFM scores of its members (`name_cluster`).
* CLV per segment: predicted 12-month CLV from BG/NBD + Gamma-Gamma (`analytics.clv`) when
  both models fit; otherwise historical CLV (revenue to date), and the result says which.

Revenue stays Decimal (exact sums); model outputs are floats turned into Decimal cents at
the edge. No figure is ever NaN: degenerate data raises `InvalidInput` with a reason.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans  # type: ignore[import-untyped,unused-ignore]
from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped,unused-ignore]
from sklearn.metrics import silhouette_score  # type: ignore[import-untyped,unused-ignore]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped,unused-ignore]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,unused-ignore]

from partnerflow.analytics import clv, rfm
from partnerflow.core.errors import InvalidInput, PartnerflowError

MIN_CUSTOMERS = 10
K_RANGE = range(2, 9)
RANDOM_STATE = 0
N_INIT = 10
SILHOUETTE_SAMPLE = 2_000
CLV_MONTHS = 12
CLV_MONTHLY_DISCOUNT = 0.01
HIGH_SCORE = 3.5  # mean quintile score at or above: "high" (upper two quintiles dominate)
LOW_SCORE = 2.5  # below: "low"
CENT = Decimal("0.01")

ClvMethod = Literal["predicted", "historical"]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_id: str
    at: datetime
    amount: Decimal


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    customer_id: str
    recency_days: int
    frequency: int
    monetary: Decimal
    rfm_cell: str
    rfm_segment: str
    segment: str
    clv: Decimal


@dataclass(frozen=True, slots=True)
class CustomerSegment:
    name: str
    description: str
    customers: int
    customer_share: Decimal
    revenue: Decimal
    revenue_share: Decimal
    mean_recency_score: Decimal
    mean_frequency_score: Decimal
    mean_monetary_score: Decimal
    median_recency_days: Decimal
    median_frequency: Decimal
    median_monetary: Decimal
    clv_mean: Decimal
    clv_total: Decimal
    rfm_segments: dict[str, int]
    """Members per named RFM segment (rfm.py rules), largest first."""


@dataclass(frozen=True, slots=True)
class CustomerSegmentation:
    as_of: date
    currency: str
    customers: int
    purchases: int
    k: int
    criterion: str
    silhouette_by_k: dict[int, Decimal]
    clv_method: ClvMethod
    clv_note: str
    segments: tuple[CustomerSegment, ...]
    members: tuple[CustomerProfile, ...]


# --------------------------------------------------------------------------- naming


def _level(score: float) -> str:
    if score >= HIGH_SCORE:
        return "high"
    if score < LOW_SCORE:
        return "low"
    return "mid"


def name_cluster(recency: float, frequency: float, monetary: float) -> str:
    """A segment name from the mean R, F and M quintile scores (1-5) of its members.

    The value part comes from F and M, the prefix from R (and, for old customers, from
    whether they were worth much): "High-value loyal", "At risk big spenders",
    "New low spenders", "Cooling mid-value customers", ...
    """
    r, f, m = _level(recency), _level(frequency), _level(monetary)
    if f == "high" and m == "high":
        value = "loyal big spenders"
    elif f == "high":
        value = "frequent buyers"
    elif m == "high":
        value = "big spenders"
    elif f == "low" and m == "low":
        value = "low spenders"
    else:
        value = "mid-value customers"
    valuable = "high" in (f, m)
    if r == "high":
        if value == "loyal big spenders":
            return "High-value loyal"
        prefix = "New" if f == "low" else "Active"
    elif r == "mid":
        prefix = "Cooling"
    else:
        prefix = "At risk" if valuable else "Lost"
    return f"{prefix} {value}"


# --------------------------------------------------------------------------- clustering


def log_rfm_features(
    recency: FloatArray, frequency: FloatArray, monetary: FloatArray
) -> FloatArray:
    """Standardised log1p(R, F, M), one row per customer."""
    raw = np.column_stack([np.log1p(recency), np.log1p(frequency), np.log1p(monetary)])
    scaled: FloatArray = StandardScaler().fit_transform(raw)
    return scaled


def _kmeans(features: FloatArray, k: int) -> NDArray[np.int64] | None:
    """Labels, or None when k-means could not find k distinct clusters."""
    # One thread: on a few thousand 3-d points thread start-up costs more than it saves, and
    # the machine's other cores are usually busy serving traffic.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            model = KMeans(n_clusters=k, n_init=N_INIT, random_state=RANDOM_STATE)
            labels: NDArray[np.int64] = model.fit_predict(features).astype(np.int64)
        except ConvergenceWarning:
            return None
    if np.unique(labels).size != k:
        return None
    return labels


def choose_k(features: FloatArray) -> tuple[int, NDArray[np.int64], dict[int, float]]:
    """k in K_RANGE with the highest silhouette; ties go to the smaller k."""
    n = features.shape[0]
    distinct = np.unique(features, axis=0).shape[0]
    k_max = min(max(K_RANGE), distinct, n - 1)
    if k_max < min(K_RANGE):
        raise InvalidInput(
            "customers are too alike to cluster: they share the same recency, frequency and revenue"
        )
    sample: dict[str, Any] = (
        {"sample_size": SILHOUETTE_SAMPLE, "random_state": RANDOM_STATE}
        if n > SILHOUETTE_SAMPLE
        else {}
    )
    scores: dict[int, float] = {}
    best: tuple[int, NDArray[np.int64]] | None = None
    for k in range(min(K_RANGE), k_max + 1):
        labels = _kmeans(features, k)
        if labels is None:
            continue
        score = float(silhouette_score(features, labels, **sample))
        if not math.isfinite(score):
            continue
        scores[k] = score
        if best is None or score > scores[best[0]]:
            best = (k, labels)
    if best is None:
        raise InvalidInput("k-means found no clustering with two or more distinct segments")
    return best[0], best[1], scores


# --------------------------------------------------------------------------- CLV


def _predicted_clv(
    ids: Sequence[str], days: Sequence[date], amounts: Sequence[Decimal], as_of: date
) -> dict[str, Decimal]:
    summary = clv.summarize_transactions(
        list(ids),
        list(days),
        [float(a) for a in amounts],
        calibration_end=as_of,
        time_unit="week",
    )
    purchases = clv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
    spend = clv.fit_gamma_gamma(summary.frequency, summary.monetary_value)
    values = clv.customer_lifetime_value(
        purchases,
        spend,
        summary,
        months=CLV_MONTHS,
        monthly_discount_rate=CLV_MONTHLY_DISCOUNT,
    )
    return {
        cid: _cents(float(v)) for cid, v in zip(summary.customer_ids, values.tolist(), strict=True)
    }


def _cents(value: float) -> Decimal:
    if not math.isfinite(value):
        raise InvalidInput("a CLV estimate is not finite")
    return Decimal(repr(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _share(part: Decimal, whole: Decimal) -> Decimal:
    if whole == 0:
        return Decimal(0)
    return (part / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _one_dp(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- entry point


def segment_customers(
    purchases: Iterable[Purchase],
    *,
    as_of: datetime,
    currency: str,
    timezone: str = "UTC",
    predict_clv: bool = True,
) -> CustomerSegmentation:
    """Segment the customers who bought up to `as_of` (aware datetime)."""
    if as_of.tzinfo is None:
        raise InvalidInput("as_of must be timezone-aware")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {timezone!r}", field="timezone") from None
    today = as_of.astimezone(zone).date()

    ids: list[str] = []
    days: list[date] = []
    amounts: list[Decimal] = []
    for p in purchases:
        if p.at.tzinfo is None:
            raise InvalidInput("purchase times must be timezone-aware")
        if not p.amount.is_finite() or p.amount < 0:
            raise InvalidInput(f"customer {p.customer_id}: amount must be >= 0", field="amount")
        if p.at > as_of:
            raise InvalidInput(
                f"customer {p.customer_id} has a purchase after the as-of time {as_of.isoformat()}",
                field="as_of",
            )
        ids.append(p.customer_id)
        days.append(p.at.astimezone(zone).date())
        amounts.append(p.amount)

    last: dict[str, date] = {}
    count: Counter[str] = Counter()
    spent: dict[str, Decimal] = {}
    for cid, day, amount in zip(ids, days, amounts, strict=True):
        last[cid] = max(last.get(cid, day), day)
        count[cid] += 1
        spent[cid] = spent.get(cid, Decimal(0)) + amount
    customers = sorted(last)
    n = len(customers)
    if n < MIN_CUSTOMERS:
        raise InvalidInput(
            f"segmentation needs at least {MIN_CUSTOMERS} customers with purchases; got {n}"
        )

    recency = np.array([(today - last[c]).days for c in customers], dtype=np.float64)
    frequency = np.array([count[c] for c in customers], dtype=np.float64)
    monetary_dec = [spent[c] for c in customers]
    monetary = np.array([float(m) for m in monetary_dec], dtype=np.float64)

    scores = rfm.rfm_scores(recency, frequency, monetary)
    rfm_names = rfm.segments(scores)
    k, labels, silhouettes = choose_k(log_rfm_features(recency, frequency, monetary))

    clv_method: ClvMethod = "historical"
    clv_note = "historical CLV: revenue to date (predictions were not requested)"
    clv_by_customer = dict(zip(customers, monetary_dec, strict=True))
    if predict_clv:
        try:
            clv_by_customer = _predicted_clv(ids, days, amounts, today)
            clv_method = "predicted"
            clv_note = (
                f"predicted CLV over {CLV_MONTHS} months, BG/NBD + Gamma-Gamma, "
                f"{CLV_MONTHLY_DISCOUNT:.0%} monthly discount"
            )
        except PartnerflowError as exc:
            clv_note = (
                f"historical CLV: revenue to date (the CLV models did not fit: {exc.message})"
            )

    total_revenue = sum(monetary_dec, Decimal(0))
    groups: list[list[int]] = [[] for _ in range(k)]
    for i, label in enumerate(labels.tolist()):
        groups[label].append(i)
    # Number segments by revenue (largest first) so the output order is meaningful and stable.
    groups.sort(key=lambda g: (-sum((monetary_dec[i] for i in g), Decimal(0)), g[0]))

    summaries: list[CustomerSegment] = []
    names: list[str] = []
    label_name: dict[int, str] = {}
    for members in groups:
        r_mean = float(np.mean(scores.recency[members]))
        f_mean = float(np.mean(scores.frequency[members]))
        m_mean = float(np.mean(scores.monetary[members]))
        name = name_cluster(r_mean, f_mean, m_mean)
        if name in names:
            name = f"{name} ({sum(1 for x in names if x.startswith(name)) + 1})"
        names.append(name)
        for i in members:
            label_name[i] = name
        revenue = sum((monetary_dec[i] for i in members), Decimal(0))
        clv_values = [clv_by_customer[customers[i]] for i in members]
        clv_total = sum(clv_values, Decimal(0))
        med_r = Decimal(str(median(recency[members].tolist())))
        med_f = Decimal(str(median(frequency[members].tolist())))
        med_m = median(monetary_dec[i] for i in members).quantize(CENT, rounding=ROUND_HALF_UP)
        rfm_counts = Counter(rfm_names[i] for i in members)
        summaries.append(
            CustomerSegment(
                name=name,
                description=(
                    f"{len(members)} customers; median last purchase {float(med_r):g} days "
                    f"ago, {float(med_f):g} purchases, {med_m} {currency} spent; mean RFM scores "
                    f"R {r_mean:.1f} F {f_mean:.1f} M {m_mean:.1f}"
                ),
                customers=len(members),
                customer_share=_share(Decimal(len(members)), Decimal(n)),
                revenue=revenue,
                revenue_share=_share(revenue, total_revenue),
                mean_recency_score=_one_dp(r_mean),
                mean_frequency_score=_one_dp(f_mean),
                mean_monetary_score=_one_dp(m_mean),
                median_recency_days=med_r,
                median_frequency=med_f,
                median_monetary=med_m,
                clv_mean=(clv_total / len(members)).quantize(CENT, rounding=ROUND_HALF_UP),
                clv_total=clv_total.quantize(CENT, rounding=ROUND_HALF_UP),
                rfm_segments=dict(sorted(rfm_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            )
        )

    members_out = tuple(
        CustomerProfile(
            customer_id=c,
            recency_days=int(recency[i]),
            frequency=int(frequency[i]),
            monetary=monetary_dec[i],
            rfm_cell=scores.cell(i),
            rfm_segment=rfm_names[i],
            segment=label_name[i],
            clv=clv_by_customer[c],
        )
        for i, c in enumerate(customers)
    )
    return CustomerSegmentation(
        as_of=today,
        currency=currency,
        customers=n,
        purchases=len(ids),
        k=k,
        criterion=f"highest mean silhouette over k = {min(K_RANGE)}..{max(K_RANGE)}",
        silhouette_by_k={
            key: Decimal(repr(v)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
            for key, v in silhouettes.items()
        },
        clv_method=clv_method,
        clv_note=clv_note,
        segments=tuple(summaries),
        members=members_out,
    )
