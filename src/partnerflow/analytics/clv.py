"""Customer lifetime value: RFM summaries, BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma.

Conventions follow the original papers so that published results can be reproduced:

* purchases on the same calendar day are merged into one transaction (amounts summed);
* ``frequency`` (x) is the number of *repeat* transactions (days with a purchase after the first);
* ``recency`` (t_x) is the time of the last purchase measured from the first purchase;
* ``T`` is the customer's age at the end of calibration, measured from the first purchase;
* ``monetary_value`` is the average spend of the repeat transactions only (0 when x = 0).

Time is measured in days or in weeks (days / 7, so fractional weeks as in Fader, Hardie & Lee 2005).

The models work in floating point on purpose: they produce statistical *estimates*, never amounts
that are booked; callers convert to `Money` when they display a value next to ledger figures.
Every likelihood is written in log space (gammaln / betaln / log-sum-exp) so no fit or prediction
returns NaN: degenerate data raises `InvalidInput`, failed optimisation raises `FitError`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from partnerflow.core.errors import InvalidInput, PartnerflowError

TimeUnit = Literal["day", "week"]
FloatArray = NDArray[np.float64]

DAYS_PER_UNIT: dict[str, float] = {"day": 1.0, "week": 7.0}
# lifetimes' DCF convention: one "month" of discounting is 30 days.
DAYS_PER_MONTH = 30.0
# Log-parameters are kept inside [-LOG_BOUND, LOG_BOUND]; a fit that ends on the bound means the
# data cannot identify that parameter (e.g. nobody ever drops out) and is reported as a failure.
LOG_BOUND = 18.0
# An optimiser that stops without converging while a parameter is beyond e^±7 is walking up a
# ridge towards a boundary (e.g. a, b -> infinity when nobody differs in drop-out): say so.
DRIFT_LOG = 7.0
SCALE_PARAMETERS = frozenset({"alpha", "beta", "v"})


class FitError(PartnerflowError):
    """The optimiser could not find a finite maximum of the likelihood."""

    code = "fit_failed"


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, eq=False)
class RFMSummary:
    """Per-customer (frequency, recency, T, monetary_value), arrays aligned with customer_ids."""

    customer_ids: tuple[str, ...]
    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    monetary_value: FloatArray
    calibration_end: dt.date
    time_unit: TimeUnit
    transactions: int
    """Raw input rows (before same-day merging)."""

    @property
    def customers(self) -> int:
        return len(self.customer_ids)

    @property
    def repeat_customers(self) -> int:
        return int(np.count_nonzero(self.frequency > 0))


def _unit_days(time_unit: str) -> float:
    try:
        return DAYS_PER_UNIT[time_unit]
    except KeyError:
        raise InvalidInput(
            f"time unit must be 'day' or 'week', got {time_unit!r}", field="time_unit"
        ) from None


def summarize_transactions(
    customer_ids: Sequence[str] | NDArray[np.str_] | NDArray[np.object_],
    dates: Sequence[dt.date] | NDArray[np.datetime64],
    amounts: ArrayLike,
    *,
    calibration_end: dt.date,
    time_unit: TimeUnit = "week",
) -> RFMSummary:
    """Build the RFM summary from a transaction log, vectorised with numpy.

    Transactions dated after `calibration_end` are refused rather than silently dropped: a
    model fitted on a window the caller did not intend is worse than an error.
    """
    _unit_days(time_unit)  # refuse a bad unit before any work
    ids = np.asarray(customer_ids)
    days = np.asarray(dates, dtype="datetime64[D]").astype(np.int64)
    spend = np.asarray(amounts, dtype=np.float64)
    n = ids.shape[0]
    if n == 0:
        raise InvalidInput("no transactions: a CLV model needs at least two customers")
    if days.shape[0] != n or spend.shape[0] != n:
        raise InvalidInput("customer_ids, dates and amounts must have the same length")
    if not np.all(np.isfinite(spend)) or np.any(spend < 0):
        raise InvalidInput("amounts must be finite and non-negative", field="amount")
    end = np.datetime64(calibration_end, "D").astype(np.int64)
    late = days > end
    if np.any(late):
        first_late = dt.date.fromordinal(int(days[late].min()) + dt.date(1970, 1, 1).toordinal())
        raise InvalidInput(
            f"{int(late.sum())} transaction(s) are after the calibration end "
            f"{calibration_end.isoformat()} (first: {first_late.isoformat()})",
            field="calibration_end",
        )

    uniq_ids, cust = np.unique(ids, return_inverse=True)
    return summarize_indexed(
        tuple(str(c) for c in uniq_ids.tolist()),
        cust.astype(np.int64),
        days,
        spend,
        calibration_end=calibration_end,
        time_unit=time_unit,
    )


def summarize_indexed(
    customer_ids: tuple[str, ...],
    customer: NDArray[np.int64],
    days: NDArray[np.int64],
    spend: FloatArray,
    *,
    calibration_end: dt.date,
    time_unit: TimeUnit = "week",
) -> RFMSummary:
    """The RFM summary of transactions already validated and coded: `customer[i]` indexes
    `customer_ids` (every customer has a transaction), `days[i]` counts days since
    1970-01-01, all on or before `calibration_end`, `spend[i]` finite and >= 0.

    `summarize_transactions` ends here after checking its input; callers that have coded the
    customers themselves (`analytics.cohorts`) skip sorting a million strings.
    """
    unit = _unit_days(time_unit)
    n = int(customer.shape[0])
    end = np.datetime64(calibration_end, "D").astype(np.int64)
    cust = customer.astype(np.int64, copy=False)
    # One key per (customer, day): sorting it both merges same-day purchases and orders each
    # customer's days chronologically, which the first/last lookups below rely on.
    day0 = int(days.min())
    span = int(end) - day0 + 1
    key = cust * span + (days - day0)
    ukey, inv = np.unique(key, return_inverse=True)
    day_spend = np.bincount(inv, weights=spend, minlength=ukey.shape[0])
    key_cust = ukey // span
    key_day = (ukey % span + day0).astype(np.float64)

    n_cust = len(customer_ids)
    n_days = np.bincount(key_cust, minlength=n_cust)
    starts = np.concatenate(([0], np.cumsum(n_days)[:-1]))
    ends = starts + n_days - 1
    first_day = key_day[starts]
    last_day = key_day[ends]
    total = np.bincount(key_cust, weights=day_spend, minlength=n_cust)
    frequency = (n_days - 1).astype(np.float64)
    repeat_spend = total - day_spend[starts]
    monetary = np.divide(
        repeat_spend, frequency, out=np.zeros(n_cust, dtype=np.float64), where=frequency > 0
    )
    return RFMSummary(
        customer_ids=customer_ids,
        frequency=frequency,
        recency=(last_day - first_day) / unit,
        T=(float(end) - first_day) / unit,
        monetary_value=monetary,
        calibration_end=calibration_end,
        time_unit=time_unit,
        transactions=n,
    )


# --------------------------------------------------------------------------- fitting machinery


def _as_rfm(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    age = np.asarray(T, dtype=np.float64)
    if not (x.shape == t_x.shape == age.shape):
        raise InvalidInput("frequency, recency and T must have the same shape")
    if x.size == 0:
        raise InvalidInput("no customers to fit")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(age))):
        raise InvalidInput("frequency, recency and T must be finite")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise InvalidInput("frequency must be a non-negative whole number", field="frequency")
    if np.any(t_x < 0) or np.any(t_x > age):
        raise InvalidInput("recency must lie between 0 and T", field="recency")
    if np.any((x > 0) & (t_x <= 0)):
        raise InvalidInput("a customer with repeat purchases needs recency > 0", field="recency")
    return x, t_x, age


def _compress(*columns: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Unique rows with counts: day-level data has many identical (x, t_x, T) triples."""
    stacked = np.column_stack(columns)
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return [rows[:, i].copy() for i in range(rows.shape[1])], counts.astype(np.float64)


@dataclass(frozen=True, eq=False)
class _ByFrequency:
    """The distinct frequencies of the grouped rows and, per row, which one it has.

    The Γ and B terms of a likelihood that depend on x alone are the expensive part of an
    evaluation; computing them once per distinct x (a few hundred) and gathering them back
    gives bit for bit the values of computing them per row (tens of thousands), so the
    optimiser takes exactly the same path, only faster.
    """

    values: FloatArray
    index: NDArray[np.intp]

    @classmethod
    def of(cls, x: FloatArray) -> _ByFrequency:
        values, index = np.unique(x, return_inverse=True)
        return cls(values, index.reshape(-1))

    def rows(self, per_value: NDArray[np.floating[Any]]) -> FloatArray:
        return np.asarray(per_value[self.index], dtype=np.float64)


def _check_customers(n: int, what: str) -> None:
    if n < 2:
        raise InvalidInput(f"{what} needs at least two customers to estimate a population; got {n}")


def _stop_once_unbounded(intermediate_result: optimize.OptimizeResult) -> None:
    """Nelder-Mead callback: stop as soon as the best vertex's value is -inf.

    A -inf mean negative log-likelihood is a floating-point overflow (an "infinite likelihood",
    e.g. the Pareto/NBD drop-out integrand ((α+τ)/(β+τ))^(s+1) far out on a ridge), not an
    optimum, and such a run's result can never be used: once a -inf value is evaluated,
    Nelder-Mead keeps it as its best vertex for good (nothing is lower, and a shrink keeps the
    best vertex), so it never meets its convergence test (|f_best - f_i| is inf or NaN) and
    returns fun = -inf, which `_maximise` discards as non-finite. Without this stop such a run
    still went on for all 8000 iterations, mostly shrinks: ~48k Pareto/NBD evaluations on a
    30-customer example, only to end in the same FitError. Stopping ends only runs whose result
    was already thrown away, so no fit and no error message changes; a run that never meets
    -inf follows exactly the same path as before.
    """
    if intermediate_result.fun == -math.inf:
        raise StopIteration


def _maximise(
    neg_ll: Callable[[FloatArray], float],
    x0: FloatArray,
    names: Sequence[str],
    model: str,
) -> tuple[FloatArray, float]:
    """Minimise a mean negative log-likelihood over log-parameters; refuse degenerate optima."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(x0)
    best: optimize.OptimizeResult | None = None
    for method in ("L-BFGS-B", "Nelder-Mead"):
        start = x0 if best is None else np.asarray(best.x, dtype=np.float64)
        with np.errstate(all="ignore"):
            if method == "L-BFGS-B":
                res = optimize.minimize(
                    neg_ll,
                    start,
                    method=method,
                    bounds=bounds,
                    options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
                )
            else:  # derivative-free second opinion when L-BFGS-B stalls on a flat ridge
                res = optimize.minimize(
                    neg_ll,
                    start,
                    method=method,
                    bounds=bounds,
                    options={"maxiter": 8000, "xatol": 1e-9, "fatol": 1e-13},
                    callback=_stop_once_unbounded,
                )
        if (
            np.all(np.isfinite(res.x))
            and np.isfinite(res.fun)
            and (best is None or res.fun <= best.fun)
        ):
            best = res
        if best is not None and best.success:
            break
    if best is None or not np.isfinite(best.fun):
        raise FitError(f"{model}: the likelihood could not be evaluated at any trial point")
    if best.success:
        # A converged optimum with two *shape* parameters past e^7 together (Gamma-Gamma's
        # p and q, a Beta's a and b) is the same ridge, only flat enough for the optimiser
        # to stop on it — whether it reports success there depends on the floating-point
        # path, i.e. on the CPU's BLAS kernels: only their ratio is identified, nobody
        # differs from anybody. One large shape alone is a real population (b >> a: hardly
        # anyone drops out), and scale parameters (alpha, beta, v) are in the data's own
        # units (days, currency), so both may legitimately be large.
        drifting = [n for n, v in zip(names, best.x, strict=True)
                    if v >= DRIFT_LOG and n not in SCALE_PARAMETERS]  # fmt: skip
        if len(drifting) < 2:
            drifting = []
    else:
        drifting = [n for n, v in zip(names, best.x, strict=True) if abs(v) >= DRIFT_LOG]
    if drifting:
        raise FitError(
            f"{model}: parameter(s) {', '.join(drifting)} keep drifting to 0 or infinity "
            "without reaching a maximum of the likelihood; the data cannot identify them "
            "(too few customers, or customers who all behave alike)"
        )
    if not best.success:
        raise FitError(f"{model}: the optimiser did not converge ({best.message})")
    at_bound = [n for n, v in zip(names, best.x, strict=True) if abs(v) >= LOG_BOUND - 1e-3]
    if at_bound:
        raise FitError(
            f"{model}: parameter(s) {', '.join(at_bound)} ran off to 0 or infinity; the data "
            "cannot identify them (too few customers or no variation in behaviour)"
        )
    return np.exp(best.x), float(best.fun)


def _finite(values: FloatArray, what: str) -> FloatArray:
    if not np.all(np.isfinite(values)):
        raise FitError(f"{what} is not finite for these parameters and inputs")
    return values


def _log1mexp(d: FloatArray) -> FloatArray:
    """log(1 - exp(-d)) for d > 0, accurate for small and large d."""
    return np.where(d < math.log(2.0), np.log(-np.expm1(-d)), np.log1p(-np.exp(-d)))


# --------------------------------------------------------------------------- BG/NBD


def _bgnbd_loglik(
    params: Sequence[float] | FloatArray,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    by_x: _ByFrequency | None = None,
) -> FloatArray:
    """Per-customer log-likelihood, Fader, Hardie & Lee (2005) eq. 6, in log-sum-exp form.

    a/(b+x-1) * B(a, b+x) = B(a+1, b+x-1), so both terms share the B(a, b) denominator and
    neither needs a ratio that can overflow. `by_x`: `_ByFrequency.of(x)`, computed once per
    fit rather than per evaluation.
    """
    r, alpha, a, b = params
    by_x = _ByFrequency.of(x) if by_x is None else by_x
    ux = by_x.values
    head = by_x.rows(
        special.gammaln(r + ux) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
    )
    survived = by_x.rows(special.betaln(a, b + ux)) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    lost = np.zeros_like(ux)
    lost[ux > 0] = special.betaln(a + 1.0, b + ux[ux > 0] - 1.0)
    dropped = np.full_like(x, -np.inf)
    dropped[repeat] = by_x.rows(lost)[repeat] - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    return np.asarray(head + np.logaddexp(survived, dropped), dtype=np.float64)


@dataclass(frozen=True)
class BetaGeoModel:
    """Fitted BG/NBD: λ ~ Gamma(r, α) purchase rate, p ~ Beta(a, b) drop-out after purchase."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int

    def expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: purchases expected in the next `t` units (FHL 2005 eq. 10)."""
        x, t_x, age = _as_rfm(frequency, recency, T)
        if not (math.isfinite(t) and t >= 0):
            raise InvalidInput("prediction horizon must be finite and >= 0", field="t")
        if abs(self.a - 1.0) < 1e-9:
            raise FitError("BG/NBD: a = 1 makes the conditional expectation undefined")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + age + t)
        with np.errstate(all="ignore"):
            hyp = special.hyp2f1(r + x, b + x, a + b + x - 1.0, z)
            head = (a + b + x - 1.0) / (a - 1.0)
            bracket = 1.0 - np.exp((r + x) * np.log((alpha + age) / (alpha + age + t))) * hyp
            out = head * bracket * self.p_alive(x, t_x, age)
        return _finite(np.asarray(out, dtype=np.float64), "BG/NBD expected purchases")

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive | x, t_x, T) (FHL 2005 eq. 12); 1 for customers without repeat purchases."""
        x, t_x, age = _as_rfm(frequency, recency, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        log_odds = np.full_like(x, -np.inf)
        rep = x > 0
        log_odds[rep] = (
            math.log(a)
            - np.log(b + x[rep] - 1.0)
            + (r + x[rep]) * (np.log(alpha + age[rep]) - np.log(alpha + t_x[rep]))
        )
        return np.asarray(special.expit(-log_odds), dtype=np.float64)


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BetaGeoModel:
    """Maximum-likelihood BG/NBD fit (log-parameters, grouped identical customers)."""
    x, t_x, age = _as_rfm(frequency, recency, T)
    _check_customers(x.size, "BG/NBD")
    if not np.any(x > 0):
        raise InvalidInput(
            "no customer made a repeat purchase: BG/NBD cannot separate buying from dropping out",
            field="frequency",
        )
    (gx, gt, gT), w = _compress(x, t_x, age)
    total = float(w.sum())
    by_x = _ByFrequency.of(gx)

    def neg_ll(theta: FloatArray) -> float:
        return float(-np.dot(w, _bgnbd_loglik(np.exp(theta), gx, gt, gT, by_x)) / total)

    x0 = np.log(np.array([1.0, max(float(np.mean(age)), 1e-3) / 10.0, 1.0, 1.0]))
    params, fun = _maximise(neg_ll, x0, ("r", "alpha", "a", "b"), "BG/NBD")
    r, alpha, a, b = (float(v) for v in params)
    return BetaGeoModel(r, alpha, a, b, log_likelihood=-fun * total, customers=x.size)


# --------------------------------------------------------------------------- MBG/NBD


def _mbgnbd_loglik(
    params: Sequence[float] | FloatArray,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    by_x: _ByFrequency | None = None,
) -> FloatArray:
    """Per-customer log-likelihood of MBG/NBD (Batislam, Denizel & Filiztekin 2007, eq. 6).

    Unlike BG/NBD a customer may also drop out right after the *first* purchase, so the
    "dropped" term exists for x = 0 too:
    L = B(a, b+x+1)/B(a,b) · Γ(r+x)α^r/(Γ(r)(α+T)^(r+x))
        + B(a+1, b+x)/B(a,b) · Γ(r+x)α^r/(Γ(r)(α+t_x)^(r+x)).
    """
    r, alpha, a, b = params
    by_x = _ByFrequency.of(x) if by_x is None else by_x
    ux = by_x.values
    head = by_x.rows(
        special.gammaln(r + ux) - special.gammaln(r) + r * np.log(alpha) - special.betaln(a, b)
    )
    survived = by_x.rows(special.betaln(a, b + ux + 1.0)) - (r + x) * np.log(alpha + T)
    dropped = by_x.rows(special.betaln(a + 1.0, b + ux)) - (r + x) * np.log(alpha + t_x)
    return np.asarray(head + np.logaddexp(survived, dropped), dtype=np.float64)


@dataclass(frozen=True)
class ModifiedBetaGeoModel:
    """Fitted MBG/NBD (Batislam et al. 2007): BG/NBD whose customers may also drop out at
    time zero, so a one-time buyer is not assumed alive (P(alive | x = 0) < 1)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive | x, t_x, T) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x)), for every x."""
        x, t_x, age = _as_rfm(frequency, recency, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        log_odds = (
            math.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
        )
        return np.asarray(special.expit(-log_odds), dtype=np.float64)

    def expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T] = (a+b+x)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x)
        ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))] · P(alive) (Batislam et al. 2007, eq. 14)."""
        x, t_x, age = _as_rfm(frequency, recency, T)
        if not (math.isfinite(t) and t >= 0):
            raise InvalidInput("prediction horizon must be finite and >= 0", field="t")
        if abs(self.a - 1.0) < 1e-9:
            raise FitError("MBG/NBD: a = 1 makes the conditional expectation undefined")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + age + t)
        with np.errstate(all="ignore"):
            hyp = special.hyp2f1(r + x, b + x + 1.0, a + b + x, z)
            head = (a + b + x) / (a - 1.0)
            bracket = 1.0 - np.exp((r + x) * np.log((alpha + age) / (alpha + age + t))) * hyp
            out = head * bracket * self.p_alive(x, t_x, age)
        return _finite(np.asarray(out, dtype=np.float64), "MBG/NBD expected purchases")

    def expected_purchases_new_customer(self, t: float) -> float:
        """E[X(t)] for a customer just acquired: b/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b+1; a+b;
        t/(α+t))] (Batislam et al. 2007, eq. 9); used to check the conditional form at T = 0."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = float(special.hyp2f1(r, b + 1.0, a + b, t / (alpha + t)))
        value = float(b / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp))
        if not math.isfinite(value):
            raise FitError("MBG/NBD expected purchases is not finite")
        return value


def fit_mbgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> ModifiedBetaGeoModel:
    """Maximum-likelihood MBG/NBD fit (log-parameters, grouped identical customers).

    Started from the BG/NBD-like point and, as a second start, from a = b = 2: the MBG/NBD
    likelihood surface has a long ridge in (a, b) on data with many one-time buyers.
    """
    x, t_x, age = _as_rfm(frequency, recency, T)
    _check_customers(x.size, "MBG/NBD")
    if not np.any(x > 0):
        raise InvalidInput(
            "no customer made a repeat purchase: MBG/NBD cannot separate buying from dropping out",
            field="frequency",
        )
    (gx, gt, gT), w = _compress(x, t_x, age)
    total = float(w.sum())
    by_x = _ByFrequency.of(gx)

    def neg_ll(theta: FloatArray) -> float:
        return float(-np.dot(w, _mbgnbd_loglik(np.exp(theta), gx, gt, gT, by_x)) / total)

    scale = max(float(np.mean(age)), 1e-3) / 10.0
    best: tuple[FloatArray, float] | None = None
    failure: FitError | None = None
    for start in ((1.0, scale, 1.0, 1.0), (1.0, scale, 2.0, 2.0)):
        try:
            found = _maximise(neg_ll, np.log(np.array(start)), ("r", "alpha", "a", "b"), "MBG/NBD")
        except FitError as exc:
            failure = exc
            continue
        if best is None or found[1] < best[1]:
            best = found
    if best is None:
        raise failure if failure is not None else FitError("MBG/NBD: no start converged")
    params, fun = best
    r, alpha, a, b = (float(v) for v in params)
    return ModifiedBetaGeoModel(r, alpha, a, b, log_likelihood=-fun * total, customers=x.size)


# --------------------------------------------------------------------------- Pareto/NBD

# Gauss-Legendre nodes on [0, 1] for the drop-out integral (see _pareto_terms).
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(32)
_GL_NODES = (_GL_NODES + 1.0) / 2.0
_GL_WEIGHTS = _GL_WEIGHTS / 2.0
_MAX_PANELS = 64


def _pareto_died(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """log( s ∫_{t_x}^{T} (α+τ)^-(r+x) (β+τ)^-(s+1) dτ ), -inf where t_x = T.

    With y = (α+τ)^-m, m = r+x+s, the integral is (1/m) ∫ h dy with h = ((α+τ)/(β+τ))^(s+1):
    the steep power-law decay is absorbed by the substitution and h is bounded and monotone.
    When α and β differ a lot h still varies over orders of magnitude, so [t_x, T] is cut into
    panels geometric in (min(α, β) + τ), as many as needed for log h to change by at most one
    per panel, and each panel gets a 32-point Gauss-Legendre rule; panels are added in log space.
    """
    m = r + x + s
    died = np.full_like(x, -np.inf)
    rows = t_x < T
    if not np.any(rows):
        return died
    m, t_lo, t_hi = m[rows], t_x[rows], T[rows]
    kappa = min(alpha, beta)
    h_span = (s + 1.0) * np.abs(
        np.log((alpha + t_lo) / (beta + t_lo)) - np.log((alpha + t_hi) / (beta + t_hi))
    )
    panels = int(min(_MAX_PANELS, max(1.0, math.ceil(float(h_span.max())))))
    k = np.arange(panels + 1, dtype=np.float64) / panels
    log_k0, log_k1 = np.log(kappa + t_lo), np.log(kappa + t_hi)
    edges = np.exp(log_k0[:, None] + np.outer(log_k1 - log_k0, k)) - kappa  # τ at panel edges
    edges[:, 0], edges[:, -1] = t_lo, t_hi
    lo = np.log(alpha + edges[:, :-1])  # (rows, panels)
    gap = m[:, None] * (np.log(alpha + edges[:, 1:]) - lo)
    gap = np.maximum(gap, 1e-300)
    frac = -np.expm1(-gap)
    # y runs over [(α+τ_hi)^-m, (α+τ_lo)^-m]; y / (α+τ_lo)^-m = 1 - u (1 - e^-gap), u in [0, 1].
    y_rel = 1.0 - frac[:, :, None] * _GL_NODES
    tau_plus_alpha = np.exp(lo[:, :, None] - np.log(y_rel) / m[:, None, None])
    ratio = tau_plus_alpha / (tau_plus_alpha + (beta - alpha))
    log_mean_h = np.log((ratio ** (s + 1.0)) @ _GL_WEIGHTS)
    log_panel = -m[:, None] * lo + _log1mexp(gap) + log_mean_h
    died[rows] = math.log(s) - np.log(m) + special.logsumexp(log_panel, axis=1)
    return died


def _pareto_terms(
    params: Sequence[float] | FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Log of the head and of the two likelihood terms of Pareto/NBD (alive at T, died before).

    L = Γ(r+x)/Γ(r) α^r β^s [ (α+T)^-(r+x) (β+T)^-s + s ∫_{t_x}^{T} (α+τ)^-(r+x) (β+τ)^-(s+1) dτ ]
    (Fader & Hardie 2005, "A note on deriving the Pareto/NBD model", eq. 16 before integrating).
    The integral replaces the usual difference of two Gauss hypergeometric functions, whose
    cancellation is what makes lifetimes return NaN; all terms are positive and kept in logs.
    """
    r, alpha, s, beta = params
    head = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    died = _pareto_died(r, alpha, s, beta, x, t_x, T)
    return np.asarray(head, dtype=np.float64), alive, died


def _pareto_loglik(
    params: Sequence[float] | FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    head, alive, died = _pareto_terms(params, x, t_x, T)
    return np.asarray(head + np.logaddexp(alive, died), dtype=np.float64)


@dataclass(frozen=True)
class ParetoNBDModel:
    """Fitted Pareto/NBD (Schmittlein, Morrison & Colombo 1987).

    Purchase rate λ ~ Gamma(r, α), drop-out rate μ ~ Gamma(s, β).
    """

    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float
    customers: int

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(alive | x, t_x, T) = (alive term) / (whole likelihood)."""
        x, t_x, age = _as_rfm(frequency, recency, T)
        _, alive, died = _pareto_terms((self.r, self.alpha, self.s, self.beta), x, t_x, age)
        return np.asarray(np.exp(alive - np.logaddexp(alive, died)), dtype=np.float64)

    def expected_purchases(
        self, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T] (Schmittlein et al. 1987; Fader & Hardie 2005 note, eq. 22)."""
        x, t_x, age = _as_rfm(frequency, recency, T)
        if not (math.isfinite(t) and t >= 0):
            raise InvalidInput("prediction horizon must be finite and >= 0", field="t")
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        growth = np.log1p(t / (beta + age))
        # [1 - ((β+T)/(β+T+t))^(s-1)] / (s-1), continuous through s = 1 where it is log(...).
        near_one = abs(s - 1.0) < 1e-9
        horizon = growth if near_one else -np.expm1(-(s - 1.0) * growth) / (s - 1.0)
        out = (r + x) * (beta + age) / (alpha + age) * horizon * self.p_alive(x, t_x, age)
        return _finite(np.asarray(out, dtype=np.float64), "Pareto/NBD expected purchases")


def fit_pareto_nbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> ParetoNBDModel:
    """Maximum-likelihood Pareto/NBD fit with the quadrature likelihood above."""
    x, t_x, age = _as_rfm(frequency, recency, T)
    _check_customers(x.size, "Pareto/NBD")
    if not np.any(x > 0):
        raise InvalidInput(
            "no customer made a repeat purchase: Pareto/NBD cannot be fitted", field="frequency"
        )
    (gx, gt, gT), w = _compress(x, t_x, age)
    total = float(w.sum())

    def neg_ll(theta: FloatArray) -> float:
        return float(-np.dot(w, _pareto_loglik(np.exp(theta), gx, gt, gT)) / total)

    scale = max(float(np.mean(age)), 1e-3) / 4.0
    x0 = np.log(np.array([1.0, scale, 1.0, scale]))
    params, fun = _maximise(neg_ll, x0, ("r", "alpha", "s", "beta"), "Pareto/NBD")
    r, alpha, s, beta = (float(v) for v in params)
    return ParetoNBDModel(r, alpha, s, beta, log_likelihood=-fun * total, customers=x.size)


# --------------------------------------------------------------------------- Gamma-Gamma


@dataclass(frozen=True, eq=False)
class _SpendRows:
    """Gamma-Gamma rows with what does not change between evaluations computed once."""

    x: FloatArray
    m: FloatArray
    by_x: _ByFrequency
    log_m: FloatArray
    log_x: FloatArray

    @classmethod
    def of(cls, x: FloatArray, m: FloatArray) -> _SpendRows:
        return cls(x, m, _ByFrequency.of(x), np.log(m), np.log(x))


def _gamma_gamma_loglik(
    params: Sequence[float] | FloatArray,
    x: FloatArray,
    m: FloatArray,
    rows: _SpendRows | None = None,
) -> FloatArray:
    """log f(z̄ | x) from Fader, Hardie & Lee (2005, JMR) / Hardie note 025, eq. 5.

    Summed in the order of the formula; the terms in x alone come from `rows.by_x`.
    """
    p, q, v = params
    rows = _SpendRows.of(x, m) if rows is None else rows
    ux = rows.by_x.values
    pux = p * ux
    per_x = rows.by_x.rows(
        special.gammaln(pux + q) - special.gammaln(pux) - special.gammaln(q) + q * math.log(v)
    )
    px = p * x
    return np.asarray(
        per_x + (px - 1.0) * rows.log_m + px * rows.log_x - (px + q) * np.log(v + x * m),
        dtype=np.float64,
    )


@dataclass(frozen=True)
class GammaGammaModel:
    """Fitted Gamma-Gamma spend model: z ~ Gamma(p, ν), ν ~ Gamma(q, γ) (γ is called v here)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int

    @property
    def population_mean_spend(self) -> float:
        if self.q <= 1.0:
            raise FitError("Gamma-Gamma: q <= 1, the population mean spend is infinite")
        return self.p * self.v / (self.q - 1.0)

    def conditional_expected_spend(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """E[M | x, z̄] = p(v + x z̄) / (p x + q - 1): a weighted mean of population and own spend."""
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        if x.shape != m.shape:
            raise InvalidInput("frequency and monetary_value must have the same shape")
        if np.any(x < 0) or np.any(m < 0):
            raise InvalidInput("frequency and monetary_value must be non-negative")
        denom = self.p * x + self.q - 1.0
        if np.any(denom <= 0):
            raise FitError("Gamma-Gamma: q <= 1, expected spend is infinite for new customers")
        m_used = np.where(x > 0, m, 0.0)
        return _finite(
            np.asarray(self.p * (self.v + x * m_used) / denom, dtype=np.float64),
            "Gamma-Gamma expected spend",
        )


def fit_gamma_gamma(frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGammaModel:
    """Fit on repeat customers with positive average spend (the paper's 946 of 2,357 on CDNOW)."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    if x.shape != m.shape:
        raise InvalidInput("frequency and monetary_value must have the same shape")
    use = (x > 0) & (m > 0)
    if not np.any(x > 0):
        raise InvalidInput(
            "no customer made a repeat purchase: Gamma-Gamma models the spend of repeat "
            "transactions, so there is nothing to fit",
            field="frequency",
        )
    _check_customers(int(use.sum()), "Gamma-Gamma (repeat customers with spend > 0)")
    (gx, gm), w = _compress(x[use], m[use])
    total = float(w.sum())
    rows = _SpendRows.of(gx, gm)

    def neg_ll(theta: FloatArray) -> float:
        return float(-np.dot(w, _gamma_gamma_loglik(np.exp(theta), gx, gm, rows)) / total)

    x0 = np.log(np.array([1.0, 1.0, max(float(np.mean(gm)), 1e-3)]))
    params, fun = _maximise(neg_ll, x0, ("p", "q", "v"), "Gamma-Gamma")
    p, q, v = (float(val) for val in params)
    return GammaGammaModel(p, q, v, log_likelihood=-fun * total, customers=int(use.sum()))


# --------------------------------------------------------------------------- CLV

PurchaseModel = BetaGeoModel | ModifiedBetaGeoModel | ParetoNBDModel


def discounted_expected_purchases(
    purchases: PurchaseModel,
    summary: RFMSummary,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> FloatArray:
    """Σ_{i=1..months} (E[Y(i·30d)] − E[Y((i−1)·30d)]) / (1 + d)^i, one value per customer.

    Multiplied by an expected spend per purchase this is the discounted CLV; kept separate so
    a caller can supply the spend itself (e.g. a historical mean when Gamma-Gamma cannot be
    fitted).
    """
    if months < 1:
        raise InvalidInput("CLV horizon must be at least one month", field="months")
    if not (math.isfinite(monthly_discount_rate) and monthly_discount_rate > -1.0):
        raise InvalidInput("discount rate must be > -1", field="monthly_discount_rate")
    month = DAYS_PER_MONTH / DAYS_PER_UNIT[summary.time_unit]
    x, t_x, age = summary.frequency, summary.recency, summary.T
    value = np.zeros_like(x)
    previous = np.zeros_like(x)
    for i in range(1, months + 1):
        current = purchases.expected_purchases(i * month, x, t_x, age)
        value += (current - previous) / (1.0 + monthly_discount_rate) ** i
        previous = current
    return _finite(value, "discounted expected purchases")


def customer_lifetime_value(
    purchases: PurchaseModel,
    spend: GammaGammaModel,
    summary: RFMSummary,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> FloatArray:
    """Discounted CLV over `months`, one value per customer of `summary`.

    Discounted-cash-flow convention of lifetimes (30-day months, discount at each month end):
    CLV = Σ_{i=1..months} E[M] · (E[Y(i·30d)] − E[Y((i−1)·30d)]) / (1 + d)^i.
    """
    flows = discounted_expected_purchases(
        purchases, summary, months=months, monthly_discount_rate=monthly_discount_rate
    )
    spend_each = spend.conditional_expected_spend(summary.frequency, summary.monetary_value)
    return _finite(spend_each * flows, "CLV")
