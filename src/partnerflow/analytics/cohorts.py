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
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

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
    cohort_of = acquiring_partners(sales)
    notes: list[str] = []

    # One Decimal total per (customer, local day): the transaction of the papers.
    day_totals: dict[tuple[str, dt.date], Decimal] = {}
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
        day_totals[key] = day_totals.get(key, Decimal(0)) + sale.amount
    if later:
        notes.append(
            f"{later} purchase(s) after the calibration end {calibration_end.isoformat()} "
            "were not used for the fit"
        )
    if unpriced:
        notes.append(f"{unpriced} purchase(s) without an exchange rate were left out")
    if not day_totals:
        raise InvalidInput(
            f"no purchases with a customer id up to {calibration_end.isoformat()}: "
            "nothing to predict",
            field="calibration_end",
        )
    customers = len({c for c, _ in day_totals})
    if customers < min_customers:
        raise InvalidInput(
            f"a CLV model needs at least {min_customers} customers with purchases up to "
            f"{calibration_end.isoformat()}; got {customers}",
            field="calibration_end",
        )
    keys = list(day_totals)
    summary = clv.summarize_transactions(
        [c for c, _ in keys],
        [d for _, d in keys],
        [float(day_totals[k]) for k in keys],
        calibration_end=calibration_end,
        time_unit=time_unit,
    )
    fitted = _fit(model, summary)
    historical = sum(day_totals.values(), Decimal(0)) / len(day_totals)

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
            f"the historical mean of {len(day_totals)} transactions"
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

    rows = tuple(
        CustomerClv(
            customer_id=cid,
            partner_id=cohort_of.get(cid),
            purchases=int(x[i]) + 1,
            frequency=int(x[i]),
            recency=float(t_x[i]),
            T=float(T[i]),
            expected_purchases=float(expected[i]),
            p_alive=float(alive[i]),
            expected_spend=_micro(float(spend[i])),
            clv=_micro(float(value[i])),
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
        transactions=len(day_totals),
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
