"""Predicted CLV per customer and per partner cohort, from a program's stored purchases.

A customer's *cohort* is the partner that acquired them: the partner of their first purchase
(earliest time, ties broken by the order the caller gives, i.e. conversion id). A customer
whose first purchase was not attributed to any partner is in the unattributed cohort
(`partner_id = None`) even if a partner was credited later — crediting a partner with a
customer the program already had is exactly the inflation a cohort report should expose.

Invariants: purchases are merged per calendar day *in the program's timezone*; only purchases
up to the calibration end (inclusive, local date) are used; money stays Decimal in and out
(the models work in float, values come back as Decimal with micro-unit precision and are
rounded to the currency's minor units only for display); no value is NaN — a fit that cannot
be made raises `InvalidInput` or `FitError` with the reason.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, Inexact, localcontext
from operator import attrgetter
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

from partnerflow.analytics import clv
from partnerflow.core.errors import InvalidInput

ModelName = Literal["bgnbd", "mbgnbd", "pareto"]
SpendMethod = Literal["gamma_gamma", "historical_mean"]
MODELS: tuple[ModelName, ...] = ("bgnbd", "mbgnbd", "pareto")
MODEL_LABELS: dict[str, str] = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto": "Pareto/NBD"}

# Below this many customers the population parameters are noise; refuse rather than print
# confident-looking numbers (the models themselves only need two).
MIN_CUSTOMERS = 10
MAX_HORIZON_MONTHS = 120
MICRO = Decimal("0.000001")


class SaleLike(Protocol):
    """A purchase: net amount in the program currency, None when it could not be converted."""

    @property
    def customer_id(self) -> str: ...
    @property
    def partner_id(self) -> int | None: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def amount(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class CustomerClv:
    customer_id: str
    partner_id: int | None
    """The acquiring partner (cohort); None when the first purchase was unattributed."""
    purchases: int
    """Transactions (purchase days) in the calibration period, the first one included."""
    frequency: int
    recency: float
    T: float
    expected_purchases: float
    """Purchases expected over the horizon."""
    p_alive: float
    expected_spend: Decimal
    """Expected value of one future purchase."""
    clv: Decimal
    """Discounted value of the purchases expected over the horizon."""


@dataclass(frozen=True, slots=True)
class CohortClv:
    partner_id: int | None
    customers: int
    repeat_customers: int
    expected_purchases: float
    mean_p_alive: float
    clv_total: Decimal
    """Exact sum of the customers' CLV (micro-unit precision)."""
    clv_mean: Decimal


@dataclass(frozen=True, slots=True)
class ClvForecast:
    model: ModelName
    parameters: dict[str, float]
    log_likelihood: float
    spend_method: SpendMethod
    spend_parameters: dict[str, float] | None
    historical_mean_spend: Decimal
    """Mean value of all calibration transactions (the fallback spend)."""
    calibration_end: dt.date
    horizon_months: int
    monthly_discount_rate: float
    time_unit: clv.TimeUnit
    transactions: int
    customers: tuple[CustomerClv, ...]
    notes: tuple[str, ...]


def acquiring_partners(sales: Iterable[SaleLike]) -> dict[str, int | None]:
    """The partner of each customer's first purchase (None: unattributed)."""
    first: dict[str, tuple[dt.datetime, int | None]] = {}
    for sale in sales:
        seen = first.get(sale.customer_id)
        if seen is None or sale.at < seen[0]:
            first[sale.customer_id] = (sale.at, sale.partner_id)
    return {customer: partner for customer, (_, partner) in first.items()}


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown timezone {timezone!r}", field="timezone") from None


def _micro(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(MICRO, rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- transactions


@dataclass(frozen=True, eq=False)
class DayTotals:
    """The transactions of the papers: one row per (customer, local day) up to the
    calibration end, with the exact Decimal total of that day's priced purchases.

    Rows are sorted by customer, then day; `customer[i]` indexes `customer_ids` (sorted);
    `day[i]` counts days since 1970-01-01 in the program's timezone; `amount[i]` is the
    float of the exact day total (what the models see).
    """

    customer_ids: tuple[str, ...]
    acquired_by: tuple[int | None, ...]
    """The acquiring partner of each customer, aligned with `customer_ids`."""
    customer: NDArray[np.int64]
    day: NDArray[np.int64]
    amount: NDArray[np.float64]
    total: Decimal
    """Exact sum of every day total (all priced calibration purchases)."""
    later: int
    """Purchases after the calibration end (local date)."""
    unpriced: int
    """Purchases up to the calibration end without an amount (no exchange rate)."""

    @property
    def transactions(self) -> int:
        return int(self.day.shape[0])


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_SECONDS = 86_400
# Timestamps (seconds since 1970, as floats) below this are exact to the microsecond, so
# their order and the day they fall on are those of the datetimes (until the year 2096).
_EXACT_SECONDS = 4e9
_SCALE_DIGITS = 6  # micro-units: what storage returns; longer fractions are tried next


def day_totals_reference(
    sales: Sequence[SaleLike], zone: ZoneInfo, calibration_end: dt.date
) -> DayTotals:
    """`DayTotals` the plain way, one sale at a time with Decimal sums: the definition the
    vectorised `day_totals` is tested against, and its fallback for unusual input."""
    cohort_of = acquiring_partners(sales)
    totals: dict[tuple[str, dt.date], Decimal] = {}
    later = unpriced = 0
    for sale in sales:
        day = sale.at.astimezone(zone).date()
        if day > calibration_end:
            later += 1
            continue
        if sale.amount is None:
            unpriced += 1
            continue
        key = (sale.customer_id, day)
        totals[key] = totals.get(key, Decimal(0)) + sale.amount
    keys = sorted(totals)
    ids = tuple(sorted({c for c, _ in keys}))
    code = {c: i for i, c in enumerate(ids)}
    return DayTotals(
        customer_ids=ids,
        acquired_by=tuple(cohort_of[c] for c in ids),
        customer=np.array([code[c] for c, _ in keys], dtype=np.int64),
        day=np.array([d.toordinal() - _EPOCH_ORDINAL for _, d in keys], dtype=np.int64),
        amount=np.array([float(totals[k]) for k in keys], dtype=np.float64),
        total=sum(totals.values(), Decimal(0)),
        later=later,
        unpriced=unpriced,
    )


class _Unusual(Exception):
    """Input the vectorised path does not handle exactly: use the reference path."""


def day_totals(sales: Sequence[SaleLike], zone: ZoneInfo, calibration_end: dt.date) -> DayTotals:
    """`DayTotals` of `sales`, identical to `day_totals_reference` but vectorised: one pass
    over the sales reads their fields, the rest is numpy on integer micro-units (exact).
    Input it cannot handle exactly (amounts with more than 18 decimals, negative or not
    finite, dates past 2096) goes through the reference path instead."""
    try:
        return _day_totals_fast(sales, zone, calibration_end)
    except (_Unusual, ArithmeticError, AttributeError, TypeError, ValueError, OverflowError):
        return day_totals_reference(sales, zone, calibration_end)


def _local_days(
    sales: Sequence[SaleLike], stamps: NDArray[np.float64], zone: ZoneInfo
) -> NDArray[np.int64]:
    """Local calendar day of each sale (days since 1970-01-01), as `at.astimezone(zone)`.

    The zone's UTC offset is looked up once per UTC day (hourly samples: a day whose offset
    does not change is shifted as a whole); sales on a day with a transition are converted
    one by one.
    """
    utc_day = np.floor_divide(stamps, _DAY_SECONDS).astype(np.int64)
    days, where = np.unique(utc_day, return_inverse=True)
    offset = np.zeros(days.shape[0], dtype=np.int64)
    steady = np.ones(days.shape[0], dtype=bool)
    for i, day in enumerate(days.tolist()):
        start = day * _DAY_SECONDS
        seen = {dt.datetime.fromtimestamp(start + 3600 * h, zone).utcoffset() for h in range(25)}
        if len(seen) == 1:
            (only,) = seen
            offset[i] = 0 if only is None else int(only.total_seconds())
        else:
            steady[i] = False
    local = np.floor_divide(stamps + offset[where], _DAY_SECONDS).astype(np.int64)
    for i in np.flatnonzero(~steady[where]).tolist():
        local[i] = sales[i].at.astimezone(zone).date().toordinal() - _EPOCH_ORDINAL
    return local


def _scaled(amounts: list[Decimal]) -> tuple[list[int], int]:
    """Every amount as an integer number of 10^-k units, exactly, with the smallest k in
    (6, 18) that works; `_Unusual` when none does or an amount is negative or not finite."""
    if not amounts:
        return [], _SCALE_DIGITS
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.traps[Inexact] = True
        exact = sum(amounts, Decimal(0))
        if not exact.is_finite() or min(amounts) < 0:
            raise _Unusual("negative or not finite")
        for digits in (_SCALE_DIGITS, 18):
            # Truncation never rounds up, so the sums agree only if no amount was truncated.
            scale = Decimal(10**digits)
            units = list(map(int, map(scale.__mul__, amounts)))
            if sum(units) == exact.scaleb(digits):
                return units, digits
    raise _Unusual("amounts with more than 18 decimals")


def _is_not_none(value: object) -> bool:
    return value is not None


def _day_totals_fast(
    sales: Sequence[SaleLike], zone: ZoneInfo, calibration_end: dt.date
) -> DayTotals:
    n = len(sales)
    names = list(map(attrgetter("customer_id"), sales))
    # Loops over the sales stay in C (map over bound methods): they are most of the time.
    stamps = np.fromiter(
        map(dt.datetime.timestamp, map(attrgetter("at"), sales)), dtype=np.float64, count=n
    )
    if n and float(np.max(np.abs(stamps))) >= _EXACT_SECONDS:
        raise _Unusual("dates too far from 1970 for exact float seconds")
    names_all = list(dict.fromkeys(names))  # first-appearance order
    index = {name: i for i, name in enumerate(names_all)}
    code_all = np.fromiter(map(index.__getitem__, names), dtype=np.int64, count=n)

    # Acquiring partner: the earliest sale of each customer, ties in the order given.
    order = np.lexsort((np.arange(n), stamps, code_all))
    firsts = order[np.flatnonzero(np.diff(code_all[order], prepend=-1))]
    partners = list(map(attrgetter("partner_id"), sales))
    acquired = [partners[i] for i in firsts.tolist()]  # aligned with names_all (codes 0..)

    local = _local_days(sales, stamps, zone)
    end = calibration_end.toordinal() - _EPOCH_ORDINAL
    in_window = local <= end
    raw_amounts = list(map(attrgetter("amount"), sales))
    has_amount = np.fromiter(map(_is_not_none, raw_amounts), dtype=bool, count=n)
    kept = np.flatnonzero(in_window & has_amount)
    units, digits = _scaled([raw_amounts[i] for i in kept.tolist()])

    # Customers with a priced calibration purchase, coded in sorted order (as np.unique).
    present = np.unique(code_all[kept])
    ranked = sorted(present.tolist(), key=names_all.__getitem__)
    recode = np.full(len(names_all), -1, dtype=np.int64)
    recode[np.array(ranked, dtype=np.int64)] = np.arange(len(ranked), dtype=np.int64)
    customer = recode[code_all[kept]]
    day = local[kept]

    key_order = np.lexsort((day, customer))
    customer, day = customer[key_order], day[key_order]
    boundary = np.flatnonzero(np.diff(customer) | np.diff(day)) + 1
    starts = np.concatenate(([0], boundary)) if kept.size else boundary
    scale = 10**digits
    if not units or max(units) * len(units) < 2**53:
        # Every sum fits int64 and float64 exactly, so the IEEE quotient is the correctly
        # rounded value of sum / 10^k: the float() of the exact Decimal total.
        sums = np.add.reduceat(np.array(units, dtype=np.int64)[key_order], starts)
        amount = sums.astype(np.float64) / float(scale)
        exact_total = int(sums.sum())
    else:  # Python ints never overflow, and int / int is correctly rounded
        ordered = [units[i] for i in key_order.tolist()]
        bounds = [*starts.tolist(), len(ordered)]
        big = [sum(ordered[a:b]) for a, b in itertools.pairwise(bounds)]
        amount = np.array([v / scale for v in big], dtype=np.float64)
        exact_total = sum(big)
    if exact_total >= 10**28:
        # The reference sums in the default 28-digit context: beyond it, it rounds.
        raise _Unusual("totals beyond 28 significant digits")
    total = Decimal(f"{exact_total}E-{digits}")
    return DayTotals(
        customer_ids=tuple(names_all[i] for i in ranked),
        acquired_by=tuple(acquired[i] for i in ranked),
        customer=customer[starts],
        day=day[starts],
        amount=amount,
        total=total,
        later=int(np.count_nonzero(~in_window)),
        unpriced=int(np.count_nonzero(in_window & ~has_amount)),
    )


def _fit(model: ModelName, summary: clv.RFMSummary) -> clv.PurchaseModel:
    x, t_x, T = summary.frequency, summary.recency, summary.T
    if model == "bgnbd":
        return clv.fit_bgnbd(x, t_x, T)
    if model == "mbgnbd":
        return clv.fit_mbgnbd(x, t_x, T)
    return clv.fit_pareto_nbd(x, t_x, T)


def _parameters(fitted: clv.PurchaseModel) -> dict[str, float]:
    if isinstance(fitted, clv.ParetoNBDModel):
        return {"r": fitted.r, "alpha": fitted.alpha, "s": fitted.s, "beta": fitted.beta}
    return {"r": fitted.r, "alpha": fitted.alpha, "a": fitted.a, "b": fitted.b}


def predict_clv(
    sales: Sequence[SaleLike],
    *,
    calibration_end: dt.date,
    timezone: str,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
    model: ModelName = "bgnbd",
    time_unit: clv.TimeUnit = "week",
    min_customers: int = MIN_CUSTOMERS,
) -> ClvForecast:
    """Fit a purchase model and Gamma-Gamma on the purchases up to `calibration_end`, then
    predict each customer's purchases, P(alive) and discounted CLV over `horizon_months`
    (30-day months, `monthly_discount_rate` per month).

    When Gamma-Gamma cannot be fitted (fewer than two repeat buyers, no spread in spend, or
    q <= 1) every customer's expected spend per purchase is the historical mean value of a
    transaction: the limit of Gamma-Gamma when customers do not differ; a note says so.
    """
    if model not in MODELS:
        raise InvalidInput(
            f"model must be one of {', '.join(MODELS)}, got {model!r}", field="model"
        )
    if not 1 <= horizon_months <= MAX_HORIZON_MONTHS:
        raise InvalidInput(
            f"the horizon must be 1 to {MAX_HORIZON_MONTHS} months, got {horizon_months}",
            field="horizon_months",
        )
    if not (math.isfinite(monthly_discount_rate) and 0.0 <= monthly_discount_rate < 1.0):
        raise InvalidInput(
            f"the monthly discount rate must be in [0, 1), got {monthly_discount_rate}",
            field="discount_rate",
        )
    zone = _zone(timezone)
    notes: list[str] = []

    # One Decimal total per (customer, local day): the transaction of the papers.
    days = day_totals(sales, zone, calibration_end)
    if days.later:
        notes.append(
            f"{days.later} purchase(s) after the calibration end {calibration_end.isoformat()} "
            "were not used for the fit"
        )
    if days.unpriced:
        notes.append(f"{days.unpriced} purchase(s) without an exchange rate were left out")
    if not days.transactions:
        raise InvalidInput(
            f"no purchases with a customer id up to {calibration_end.isoformat()}: "
            "nothing to predict",
            field="calibration_end",
        )
    customers = len(days.customer_ids)
    if customers < min_customers:
        raise InvalidInput(
            f"a CLV model needs at least {min_customers} customers with purchases up to "
            f"{calibration_end.isoformat()}; got {customers}",
            field="calibration_end",
        )
    if not np.all(np.isfinite(days.amount)) or np.any(days.amount < 0):
        raise InvalidInput("amounts must be finite and non-negative", field="amount")
    summary = clv.summarize_indexed(
        days.customer_ids,
        days.customer,
        days.day,
        days.amount,
        calibration_end=calibration_end,
        time_unit=time_unit,
    )
    fitted = _fit(model, summary)
    historical = days.total / days.transactions

    x, t_x, T = summary.frequency, summary.recency, summary.T
    spend_method: SpendMethod = "gamma_gamma"
    spend_parameters: dict[str, float] | None = None
    try:
        gg = clv.fit_gamma_gamma(x, summary.monetary_value)
        spend = gg.conditional_expected_spend(x, summary.monetary_value)
        spend_parameters = {"p": gg.p, "q": gg.q, "v": gg.v, "log_likelihood": gg.log_likelihood}
    except (InvalidInput, clv.FitError) as exc:
        spend_method = "historical_mean"
        spend = np.full_like(x, float(historical))
        notes.append(
            f"Gamma-Gamma could not be fitted ({exc.message}); expected spend per purchase is "
            f"the historical mean of {days.transactions} transactions"
        )

    month = clv.DAYS_PER_MONTH / clv.DAYS_PER_UNIT[time_unit]
    expected = fitted.expected_purchases(horizon_months * month, x, t_x, T)
    alive = fitted.p_alive(x, t_x, T)
    flows = clv.discounted_expected_purchases(
        fitted, summary, months=horizon_months, monthly_discount_rate=monthly_discount_rate
    )
    value = spend * flows
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(alive))):
        raise clv.FitError("the predictions are not finite for these parameters and data")

    # Python floats once (tolist) rather than a numpy scalar per field and customer.
    freq, rec, age = x.tolist(), t_x.tolist(), T.tolist()
    exp_l, alive_l, spend_l, value_l = (
        expected.tolist(),
        alive.tolist(),
        np.asarray(spend, dtype=np.float64).tolist(),
        value.tolist(),
    )
    rows = tuple(
        CustomerClv(
            customer_id=cid,
            partner_id=days.acquired_by[i],
            purchases=int(freq[i]) + 1,
            frequency=int(freq[i]),
            recency=rec[i],
            T=age[i],
            expected_purchases=exp_l[i],
            p_alive=alive_l[i],
            expected_spend=_micro(spend_l[i]),
            clv=_micro(value_l[i]),
        )
        for i, cid in enumerate(summary.customer_ids)
    )
    return ClvForecast(
        model=model,
        parameters=_parameters(fitted),
        log_likelihood=fitted.log_likelihood,
        spend_method=spend_method,
        spend_parameters=spend_parameters,
        historical_mean_spend=historical.quantize(MICRO, rounding=ROUND_HALF_UP),
        calibration_end=calibration_end,
        horizon_months=horizon_months,
        monthly_discount_rate=monthly_discount_rate,
        time_unit=time_unit,
        transactions=days.transactions,
        customers=rows,
        notes=tuple(notes),
    )


def by_cohort(customers: Iterable[CustomerClv]) -> list[CohortClv]:
    """Aggregate per acquiring partner, largest total CLV first (then partner id,
    unattributed last). Totals are exact sums of the customers' values."""
    groups: dict[int | None, list[CustomerClv]] = {}
    for row in customers:
        groups.setdefault(row.partner_id, []).append(row)
    out = []
    for partner, rows in groups.items():
        total = sum((r.clv for r in rows), Decimal(0))
        out.append(
            CohortClv(
                partner_id=partner,
                customers=len(rows),
                repeat_customers=sum(1 for r in rows if r.frequency > 0),
                expected_purchases=math.fsum(r.expected_purchases for r in rows),
                mean_p_alive=math.fsum(r.p_alive for r in rows) / len(rows),
                clv_total=total,
                clv_mean=(total / len(rows)).quantize(MICRO, rounding=ROUND_HALF_UP),
            )
        )
    out.sort(
        key=lambda c: (-c.clv_total, c.partner_id is None, c.partner_id or 0),
    )
    return out
