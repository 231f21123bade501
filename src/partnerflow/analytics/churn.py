"""Churn: the period churn rate and the shifted-beta-geometric retention model.

Churn rate (seed 004): customers lost in the period ÷ customers at its start. A customer is "at
the start" when they were active (any purchase/event) in the `lookback_days` before the period
starts, and "lost" when such a customer has no activity inside the period. A period with no
customers at its start has no churn rate: the rate is None, never NaN or a misleading 0.

sBG (Fader & Hardie 2007, "How to project customer retention"): each customer churns at the end
of a period with a constant probability θ, θ ~ Beta(α, β) across customers. Survivor counts of
subscription cohorts come from `subscription_cohorts`: a subscriber's cohort is the calendar
period of their first payment, and they survive period k while they paid in each of periods
1..k; the first period without a payment is their churn (the sBG has no return, so a later
payment does not revive them: it is counted in `returned`). Only complete periods are used.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

from partnerflow.analytics.clv import FitError
from partnerflow.core.errors import InvalidInput


@dataclass(frozen=True)
class ChurnRate:
    period_start: dt.date
    period_end: dt.date
    """Exclusive end of the period."""
    customers_at_start: int
    customers_lost: int

    @property
    def rate(self) -> float | None:
        if self.customers_at_start == 0:
            return None
        return self.customers_lost / self.customers_at_start


def churn_rate(
    activity: Iterable[tuple[str, dt.date]],
    *,
    period_start: dt.date,
    period_end: dt.date,
    lookback_days: int,
) -> ChurnRate:
    """Churn over [period_start, period_end) from (customer_id, activity date) pairs."""
    if period_end <= period_start:
        raise InvalidInput("period_end must be after period_start", field="period_end")
    if lookback_days < 1:
        raise InvalidInput("lookback_days must be at least 1", field="lookback_days")
    window_start = period_start - dt.timedelta(days=lookback_days)
    at_start: set[str] = set()
    active_in_period: set[str] = set()
    for customer, day in activity:
        if window_start <= day < period_start:
            at_start.add(customer)
        elif period_start <= day < period_end:
            active_in_period.add(customer)
    return ChurnRate(
        period_start=period_start,
        period_end=period_end,
        customers_at_start=len(at_start),
        customers_lost=len(at_start - active_in_period),
    )


def churn_by_cohort(
    activity: Iterable[tuple[str, dt.date]],
    cohort_of: Mapping[str, str],
    *,
    period_start: dt.date,
    period_end: dt.date,
    lookback_days: int,
) -> dict[str, ChurnRate]:
    """Churn per cohort (e.g. the partner that acquired each customer), keys sorted.

    Customers missing from `cohort_of` are ignored: they belong to no partner cohort.
    """
    grouped: dict[str, list[tuple[str, dt.date]]] = {}
    for customer, day in activity:
        cohort = cohort_of.get(customer)
        if cohort is not None:
            grouped.setdefault(cohort, []).append((customer, day))
    return {
        cohort: churn_rate(
            grouped[cohort],
            period_start=period_start,
            period_end=period_end,
            lookback_days=lookback_days,
        )
        for cohort in sorted(grouped)
    }


# --------------------------------------------------------------------------- periods

Period = Literal["week", "month", "quarter"]
PERIODS: tuple[Period, ...] = ("week", "month", "quarter")
MAX_PERIODS = 520


def period_start(day: dt.date, period: Period) -> dt.date:
    """The first day of the calendar period holding `day` (weeks start on Monday, ISO 8601)."""
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    raise InvalidInput(
        f"period must be one of {', '.join(PERIODS)}, got {period!r}", field="period"
    )


def next_period_start(start: dt.date, period: Period) -> dt.date:
    if period == "week":
        return start + dt.timedelta(days=7)
    months = 1 if period == "month" else 3
    year, month = divmod(start.month - 1 + months, 12)
    return dt.date(start.year + year, month + 1, 1)


def previous_period_start(start: dt.date, period: Period) -> dt.date:
    return period_start(start - dt.timedelta(days=1), period)


def periods_between(first: dt.date, last: dt.date, period: Period) -> list[tuple[dt.date, dt.date]]:
    """The calendar periods [start, end) that overlap [first, last] (both inclusive)."""
    if last < first:
        raise InvalidInput("the range ends before it starts (--to before --from)", field="to")
    start = period_start(first, period)
    out: list[tuple[dt.date, dt.date]] = []
    while start <= last:
        end = next_period_start(start, period)
        out.append((start, end))
        if len(out) > MAX_PERIODS:
            raise InvalidInput(
                f"more than {MAX_PERIODS} periods: choose a shorter range", field="from"
            )
        start = end
    return out


def churn_series(
    activity: Iterable[tuple[str, dt.date]],
    *,
    period: Period,
    first: dt.date,
    last: dt.date,
    lookback_days: int | None = None,
) -> list[ChurnRate]:
    """Churn rate of every calendar period overlapping [first, last].

    With `lookback_days` None the window before each period is the *previous period* (its
    length in days: 28-31 for months), so "customers at the start of March" are those who
    bought in February and "lost" are those of them with no purchase in March.
    """
    rows = list(activity)
    out = []
    for start, end in periods_between(first, last, period):
        window = lookback_days
        if window is None:
            window = (start - previous_period_start(start, period)).days
        out.append(churn_rate(rows, period_start=start, period_end=end, lookback_days=window))
    return out


def churn_series_by_cohort(
    activity: Iterable[tuple[str, dt.date]],
    cohort_of: Mapping[str, str],
    *,
    period: Period,
    first: dt.date,
    last: dt.date,
    lookback_days: int | None = None,
) -> dict[str, list[ChurnRate]]:
    """`churn_series` per cohort (keys sorted); customers without a cohort are ignored."""
    grouped: dict[str, list[tuple[str, dt.date]]] = {}
    for customer, day in activity:
        cohort = cohort_of.get(customer)
        if cohort is not None:
            grouped.setdefault(cohort, []).append((customer, day))
    return {
        cohort: churn_series(
            grouped[cohort], period=period, first=first, last=last, lookback_days=lookback_days
        )
        for cohort in sorted(grouped)
    }


# --------------------------------------------------------------------------- sBG

MAX_LIFETIME_PERIODS = 100_000
# Below this many customers α and β are noise; refuse rather than print a confident forecast.
MIN_COHORT_CUSTOMERS = 10


@dataclass(frozen=True)
class ShiftedBetaGeometric:
    """Fitted sBG retention model for one cohort."""

    alpha: float
    beta: float
    log_likelihood: float
    cohort_size: int

    def survival(self, periods: int) -> tuple[float, ...]:
        """S(t) for t = 0..periods: S(t) = B(α, β+t) / B(α, β)."""
        t = np.arange(periods + 1, dtype=np.float64)
        s = np.exp(
            special.betaln(self.alpha, self.beta + t) - special.betaln(self.alpha, self.beta)
        )
        return tuple(float(v) for v in s)

    def retention(self, periods: int) -> tuple[float, ...]:
        """r(t) = (β + t − 1) / (α + β + t − 1) for t = 1..periods (rises with t: sorting)."""
        return tuple(
            (self.beta + t - 1.0) / (self.alpha + self.beta + t - 1.0)
            for t in range(1, periods + 1)
        )

    def expected_survivors(self, periods: int) -> tuple[float, ...]:
        return tuple(self.cohort_size * s for s in self.survival(periods))

    @property
    def expected_lifetime(self) -> float | None:
        """E[T] = Σ S(t) = (α+β−1)/(α−1) periods paid by a new customer (the first included);
        None when α <= 1: the few very loyal customers make the mean infinite."""
        if self.alpha <= 1.0:
            return None
        return (self.alpha + self.beta - 1.0) / (self.alpha - 1.0)

    def median_lifetime(self, limit: int = MAX_LIFETIME_PERIODS) -> int | None:
        """The first t with S(t) <= 1/2 (half the cohort gone after t periods); None beyond
        `limit` periods."""
        log_half = math.log(0.5)
        base = special.betaln(self.alpha, self.beta)
        lo, hi = 0, limit
        if special.betaln(self.alpha, self.beta + hi) - base > log_half:
            return None
        while hi - lo > 1:  # S(t) decreases in t: bisect on log S(t) = ln B(α, β+t) − ln B(α, β)
            mid = (lo + hi) // 2
            if special.betaln(self.alpha, self.beta + mid) - base <= log_half:
                hi = mid
            else:
                lo = mid
        return hi

    def expected_periods_within(self, periods: int) -> float:
        """Σ_{t<periods} S(t): periods a new customer is expected to pay for among the first
        `periods` (finite whatever α)."""
        return math.fsum(self.survival(periods - 1)) if periods > 0 else 0.0


def _sbg_loglik(alpha: float, beta: float, survivors: Sequence[int]) -> float:
    n = np.asarray(survivors, dtype=np.float64)
    t = np.arange(1, n.size, dtype=np.float64)
    lost = n[:-1] - n[1:]
    base = special.betaln(alpha, beta)
    log_p = special.betaln(alpha + 1.0, beta + t - 1.0) - base  # P(T = t)
    log_s = special.betaln(alpha, beta + t[-1]) - base  # S(last t): still alive, censored
    return float(np.dot(lost, log_p) + n[-1] * log_s)


def _geometric_loglik(cohorts: Sequence[Sequence[int]]) -> float:
    """The log-likelihood of the best geometric model (one churn probability θ for everyone:
    the sBG's limit as α, β -> ∞ with α/(α+β) = θ), in closed form: θ = D / (D + E)."""
    churned = stayed = 0.0  # D: churn events; E: periods survived before churning or the end
    for series in cohorts:
        n = np.asarray(series, dtype=np.float64)
        lost = n[:-1] - n[1:]
        churned += float(lost.sum())
        stayed += float(np.dot(lost, np.arange(lost.size))) + float(n[-1]) * lost.size
    if churned == 0:
        return 0.0
    theta = churned / (churned + stayed)
    return churned * math.log(theta) + (stayed * math.log1p(-theta) if stayed else 0.0)


def _check_series(survivors: Sequence[int], field: str = "survivors") -> None:
    if any(int(v) != v or v < 0 for v in survivors):
        raise InvalidInput("survivor counts must be non-negative integers", field=field)
    if any(b > a for a, b in itertools.pairwise(survivors)):
        raise InvalidInput("survivor counts cannot increase over time", field=field)


def fit_sbg(survivors: Sequence[int]) -> ShiftedBetaGeometric:
    """Fit α, β by maximum likelihood to survivors n_0, n_1, ..., n_k of one cohort."""
    if len(survivors) < 3:
        raise InvalidInput(
            "sBG needs the cohort size and at least two later periods", field="survivors"
        )
    _check_series(survivors)
    if survivors[0] == 0:
        raise InvalidInput("the cohort is empty", field="survivors")
    if survivors[-1] == survivors[0]:
        raise InvalidInput("nobody churned: the churn distribution cannot be estimated")
    return _fit([survivors])


def fit_sbg_cohorts(cohorts: Sequence[Sequence[int]]) -> ShiftedBetaGeometric:
    """One α, β for several cohorts observed for different lengths (each n_0..n_k of its own):
    the log-likelihood is the sum of the cohorts' (Fader & Hardie 2007, the multi-cohort
    case of their note on fitting the sBG). A cohort with no later period carries no
    information and is ignored; `cohort_size` is the customers of the cohorts used."""
    if not cohorts:
        raise InvalidInput("no cohort to fit", field="survivors")
    for series in cohorts:
        _check_series(series)
    used = [list(s) for s in cohorts if len(s) >= 2 and s[0] > 0]
    if not used:
        raise InvalidInput("no cohort has a customer and a later period", field="survivors")
    if max(len(s) for s in used) < 3:
        raise InvalidInput(
            "sBG needs a cohort observed for at least two periods after its first",
            field="survivors",
        )
    if all(s[-1] == s[0] for s in used):
        raise InvalidInput("nobody churned: the churn distribution cannot be estimated")
    return _fit(used)


def _fit(cohorts: Sequence[Sequence[int]]) -> ShiftedBetaGeometric:
    size = sum(int(s[0]) for s in cohorts)

    def neg(theta: NDArray[np.float64]) -> float:
        alpha, beta = math.exp(theta[0]), math.exp(theta[1])
        return -math.fsum(_sbg_loglik(alpha, beta, s) for s in cohorts) / size

    with np.errstate(all="ignore"):
        res = optimize.minimize(
            neg,
            np.zeros(2),
            method="L-BFGS-B",
            bounds=[(-18.0, 18.0)] * 2,
            options={"ftol": 1e-14, "gtol": 1e-10},
        )
        rescued = not res.success
        if rescued:
            # L-BFGS-B's line search gives up ("ABNORMAL") on flat ridges of the likelihood;
            # a derivative-free search from where it stopped settles it or shows the drift.
            start = res.x if np.all(np.isfinite(res.x)) else np.zeros(2)
            res = optimize.minimize(
                neg,
                start,
                method="Nelder-Mead",
                bounds=[(-18.0, 18.0)] * 2,
                options={"maxiter": 4000, "xatol": 1e-10, "fatol": 1e-14},
            )
    # On the bound, or (after a rescue) past e^±7: walking up a ridge towards α, β -> ∞,
    # which is what survivor counts without heterogeneity (geometric decay) look like. Or
    # stopped anywhere on that ridge (where depends on the platform's floating point): no
    # measurably better than the geometric model, the ridge's limit (1e-6 of log-likelihood
    # per customer); or, not converged, no significantly better (likelihood ratio under
    # 2.71: the 5% level for a parameter on its boundary).
    limit = 7.0 if rescued else 18.0 - 1e-3
    finite = bool(np.all(np.isfinite(res.x))) and bool(np.isfinite(res.fun))
    gain = -float(res.fun) * size - _geometric_loglik(cohorts) if finite else 0.0
    if finite and (
        bool(np.any(np.abs(res.x) >= limit))
        or gain <= 1e-6 * size
        or (not res.success and 2.0 * gain < 2.71)
    ):
        raise FitError(
            "sBG: a parameter ran off to 0 or infinity; the data cannot identify it (every "
            "customer churns at about the same rate: no heterogeneity to estimate)"
        )
    if not (res.success and np.all(np.isfinite(res.x)) and np.isfinite(res.fun)):
        raise FitError(f"sBG: the optimiser did not converge ({res.message})")
    alpha, beta = math.exp(float(res.x[0])), math.exp(float(res.x[1]))
    return ShiftedBetaGeometric(
        alpha=alpha,
        beta=beta,
        log_likelihood=-float(res.fun) * size,
        cohort_size=size,
    )


# --------------------------------------------------------------------------- subscription cohorts


@dataclass(frozen=True)
class CohortSurvival:
    """One subscription cohort: customers whose first payment fell in the period starting
    `start`, and how many of them were still paying after each later complete period."""

    start: dt.date
    survivors: tuple[int, ...]
    """n_0 (the cohort size), n_1, ..., n_k; k = complete periods after the cohort's own."""
    returned: int
    """Customers who missed a period (churned for the sBG) and paid again in a later
    complete period."""

    @property
    def size(self) -> int:
        return self.survivors[0]

    @property
    def observed_periods(self) -> int:
        return len(self.survivors) - 1


def period_number(day: dt.date, period: Period) -> int:
    """A running number of the calendar period holding `day` (consecutive periods differ by
    one): months and quarters since year 0, ISO weeks since 0001-01-01 (a Monday)."""
    if period == "week":
        return (day.toordinal() - 1) // 7
    if period == "month":
        return day.year * 12 + day.month - 1
    if period == "quarter":
        return day.year * 4 + (day.month - 1) // 3
    raise InvalidInput(
        f"period must be one of {', '.join(PERIODS)}, got {period!r}", field="period"
    )


def subscription_cohorts(
    payments: Iterable[tuple[str, dt.date]], *, period: Period, until: dt.date
) -> list[CohortSurvival]:
    """Survivor counts per cohort from (customer id, local date of a paid payment) pairs.

    A customer's cohort is the period of their first payment; they are active in period k
    (k = 1, 2, ... after the cohort's) when they paid in it, and survive k when active in
    every period 1..k. Periods end before `until` to count (the period holding `until` is
    not over); cohorts whose own period is not over are left out. Sorted by start.
    """
    paid: dict[str, set[int]] = {}
    for customer, day in payments:
        paid.setdefault(customer, set()).add(period_number(day, period))
    last = period_number(until, period) - 1  # the last complete period
    by_cohort: dict[int, list[set[int]]] = {}
    for numbers in paid.values():
        first = min(numbers)
        if first <= last:
            by_cohort.setdefault(first, []).append(numbers)
    out = []
    for first in sorted(by_cohort):
        observed = last - first
        counts = [0] * (observed + 1)
        returned = 0
        for numbers in by_cohort[first]:
            streak = 0
            while streak < observed and first + streak + 1 in numbers:
                streak += 1
            for k in range(streak + 1):
                counts[k] += 1
            if any(first + streak + 1 < n <= last for n in numbers):
                returned += 1
        out.append(
            CohortSurvival(
                start=_period_start_of(first, period),
                survivors=tuple(counts),
                returned=returned,
            )
        )
    return out


def _period_start_of(number: int, period: Period) -> dt.date:
    if period == "week":
        return dt.date.fromordinal(number * 7 + 1)
    if period == "month":
        return dt.date(number // 12, number % 12 + 1, 1)
    return dt.date(number // 4, 3 * (number % 4) + 1, 1)
