"""`partnerflow clv ...` and `partnerflow churn ...`.

* `clv fit`: fit BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma to a transaction CSV;
* `clv predict`: predictions per customer or per partner cohort from the program's stored sales;
* `churn rate`: churn per period (and per partner cohort) from the stored sales;
* `churn forecast`: shifted-beta-geometric retention forecast from survivor counts, typed or
  derived from the program's stored subscription payments.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from partnerflow.analytics import clv
from partnerflow.cli.runtime import (
    handles_errors,
    print_json,
    print_table,
    resolve_program,
    services,
)
from partnerflow.core.errors import InvalidInput, PartnerflowError

app = typer.Typer(help="Customer lifetime value models.", no_args_is_help=True)
churn_app = typer.Typer(help="Churn rate per period and retention forecasts.", no_args_is_help=True)

ProgramOption = Annotated[
    str | None, typer.Option("--program", "-p", help="Program id or slug.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

REQUIRED_COLUMNS = ("customer_id", "date", "amount")


class CsvError(PartnerflowError):
    code = "invalid_csv"


def read_transactions(path: Path) -> tuple[list[str], list[dt.date], list[float]]:
    """Parse `customer_id,date,amount`; errors name the physical line (header is line 1)."""
    ids: list[str] = []
    dates: list[dt.date] = []
    amounts: list[float] = []
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CsvError(
                f"{path}: header must contain {','.join(REQUIRED_COLUMNS)}; "
                f"missing {', '.join(missing)}"
            )
        for row in reader:
            line = reader.line_num
            customer = (row.get("customer_id") or "").strip()
            if not customer:
                raise CsvError(f"line {line}: empty customer_id")
            raw_date = (row.get("date") or "").strip()
            try:
                day = dt.date.fromisoformat(raw_date[:10])
            except ValueError:
                raise CsvError(f"line {line}: bad date {raw_date!r} (want YYYY-MM-DD)") from None
            raw_amount = (row.get("amount") or "").strip()
            try:
                amount = Decimal(raw_amount)
            except InvalidOperation:
                raise CsvError(f"line {line}: amount {raw_amount!r} is not a number") from None
            if not amount.is_finite():
                raise CsvError(f"line {line}: amount {raw_amount!r} is not a number")
            if amount < 0:
                raise CsvError(f"line {line}: negative amount {raw_amount}")
            ids.append(customer)
            dates.append(day)
            # Decimal validates exactly; the statistical models then work in float on purpose.
            amounts.append(float(amount))
    return ids, dates, amounts


def _rounded(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else value


def fit_all(summary: clv.RFMSummary) -> dict[str, Any]:
    """Fit every model; a model that cannot be fitted is null with the reason."""
    out: dict[str, Any] = {}
    x, t_x, T = summary.frequency, summary.recency, summary.T
    try:
        bg = clv.fit_bgnbd(x, t_x, T)
        out["bgnbd"] = {
            "r": bg.r,
            "alpha": bg.alpha,
            "a": bg.a,
            "b": bg.b,
            "log_likelihood": bg.log_likelihood,
        }
    except PartnerflowError as exc:
        out["bgnbd"] = None
        out["bgnbd_error"] = exc.message
    try:
        gg = clv.fit_gamma_gamma(x, summary.monetary_value)
        out["gamma_gamma"] = {
            "p": gg.p,
            "q": gg.q,
            "v": gg.v,
            "log_likelihood": gg.log_likelihood,
            "customers": gg.customers,
        }
    except PartnerflowError as exc:
        out["gamma_gamma"] = None
        out["gamma_gamma_error"] = exc.message
    try:
        mbg = clv.fit_mbgnbd(x, t_x, T)
        out["mbgnbd"] = {
            "r": mbg.r,
            "alpha": mbg.alpha,
            "a": mbg.a,
            "b": mbg.b,
            "log_likelihood": mbg.log_likelihood,
        }
    except PartnerflowError as exc:
        out["mbgnbd"] = None
        out["mbgnbd_error"] = exc.message
    try:
        pn = clv.fit_pareto_nbd(x, t_x, T)
        out["pareto_nbd"] = {
            "r": pn.r,
            "alpha": pn.alpha,
            "s": pn.s,
            "beta": pn.beta,
            "log_likelihood": pn.log_likelihood,
        }
    except PartnerflowError as exc:
        out["pareto_nbd"] = None
        out["pareto_nbd_error"] = exc.message
    out["summary"] = {
        "customers": summary.customers,
        "repeat_customers": summary.repeat_customers,
        "transactions": summary.transactions,
        "repeat_transactions": int(summary.frequency.sum()),
        "calibration_end": summary.calibration_end.isoformat(),
        "time_unit": summary.time_unit,
        "mean_T": float(summary.T.mean()),
    }
    return out


@app.command("fit")
def fit(
    transactions: Annotated[
        Path, typer.Option("--transactions", help="CSV with header customer_id,date,amount")
    ],
    calibration_end: Annotated[
        str, typer.Option("--calibration-end", help="Last day of the calibration period")
    ],
    time_unit: Annotated[str, typer.Option("--time-unit", help="day or week")] = "week",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Fit BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma by maximum likelihood; print them."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        try:
            end = dt.date.fromisoformat(calibration_end)
        except ValueError:
            raise CsvError(f"--calibration-end {calibration_end!r} is not YYYY-MM-DD") from None
        if time_unit not in ("day", "week"):
            raise CsvError(f"--time-unit must be day or week, got {time_unit!r}")
        ids, dates, amounts = read_transactions(transactions)
        summary = clv.summarize_transactions(
            ids,
            dates,
            amounts,
            calibration_end=end,
            time_unit="day" if time_unit == "day" else "week",
        )
        result = fit_all(summary)
    except PartnerflowError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    if all(result[k] is None for k in ("bgnbd", "mbgnbd", "pareto_nbd")):
        err.print(f"error: {result['bgnbd_error']}", markup=False, highlight=False)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        raise typer.Exit(code=1)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_table(result)


def _print_table(result: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="CLV model fit")
    table.add_column("model")
    table.add_column("parameters")
    table.add_column("log-likelihood", justify="right")
    for key, label in (
        ("bgnbd", "BG/NBD"),
        ("mbgnbd", "MBG/NBD"),
        ("pareto_nbd", "Pareto/NBD"),
        ("gamma_gamma", "Gamma-Gamma"),
    ):
        fitted = result[key]
        if fitted is None:
            table.add_row(label, f"not fitted: {result[key + '_error']}", "-")
            continue
        params = ", ".join(
            f"{k}={_rounded(v)}"
            for k, v in fitted.items()
            if k not in {"log_likelihood", "customers"}
        )
        table.add_row(label, params, f"{fitted['log_likelihood']:.2f}")
    console.print(table)
    s = result["summary"]
    console.print(
        f"{s['customers']} customers, {s['repeat_customers']} with repeat purchases, "
        f"{s['transactions']} transactions; calibration ends {s['calibration_end']} "
        f"(time unit: {s['time_unit']})",
        markup=False,
        highlight=False,
    )


# --------------------------------------------------------------------------- clv predict


def _date(raw: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"{option} {raw!r} is not YYYY-MM-DD", field=option) from None


def _shown(amount: Decimal, currency: str) -> str:
    """Rounded once, to the currency's minor units, for display only."""
    from partnerflow.core.money import Money

    return str(Money(amount, currency).rounded().amount)


def _today(timezone: str) -> dt.date:
    from zoneinfo import ZoneInfo

    return services().clock.now().astimezone(ZoneInfo(timezone)).date()


def _partner_label(partner_id: int | None, names: dict[int, str]) -> str:
    if partner_id is None:
        return "(unattributed)"
    return names.get(partner_id, f"partner {partner_id}")


@app.command("predict")
@handles_errors
def predict(
    program: ProgramOption = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(
            "--calibration-end",
            help="Last day (program timezone) of the data used for the fit; default today.",
            show_default=False,
        ),
    ] = None,
    horizon_months: Annotated[
        int, typer.Option("--horizon-months", help="Prediction horizon in 30-day months.")
    ] = 12,
    discount_rate: Annotated[
        float, typer.Option("--discount-rate", help="Discount rate per month (0.01 = 1%).")
    ] = 0.01,
    by: Annotated[str, typer.Option("--by", help="partner (acquisition cohort) or customer")] = (
        "partner"
    ),
    model: Annotated[str, typer.Option("--model", help="bgnbd, mbgnbd or pareto")] = "bgnbd",
    time_unit: Annotated[str, typer.Option("--time-unit", help="day or week")] = "week",
    limit: Annotated[
        int | None, typer.Option("--limit", help="Show the N rows with the highest CLV.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Expected purchases, P(alive) and discounted CLV per partner cohort or per customer."""
    from partnerflow.analytics import cohorts
    from partnerflow.storage.clv_queries import partner_names, program_sales

    if by not in ("partner", "customer"):
        raise InvalidInput(f"--by must be partner or customer, got {by!r}", field="by")
    if model not in cohorts.MODELS:
        raise InvalidInput(
            f"--model must be one of {', '.join(cohorts.MODELS)}, got {model!r}", field="model"
        )
    if time_unit not in ("day", "week"):
        raise InvalidInput(f"--time-unit must be day or week, got {time_unit!r}", field="time_unit")
    if limit is not None and limit < 1:
        raise InvalidInput("--limit must be at least 1", field="limit")
    prog = resolve_program(program)
    today = _today(prog.timezone)
    end = today if calibration_end is None else _date(calibration_end, "--calibration-end")
    if end > today:
        raise InvalidInput(
            f"--calibration-end {end.isoformat()} is in the future (today is {today.isoformat()} "
            f"in {prog.timezone})",
            field="calibration_end",
        )
    svc = services()
    with svc.engine.connect() as conn:
        stored = program_sales(conn, prog.id, prog.currency)
        forecast = cohorts.predict_clv(
            stored.sales,
            calibration_end=end,
            timezone=prog.timezone,
            horizon_months=horizon_months,
            monthly_discount_rate=discount_rate,
            model=model,
            time_unit="day" if time_unit == "day" else "week",
        )
        ids = [c.partner_id for c in forecast.customers if c.partner_id is not None]
        names = partner_names(conn, prog.id, ids)
    notes = list(forecast.notes)
    if stored.converted:
        notes.append(
            f"{stored.converted} sale(s) converted into {prog.currency} with the stored "
            "exchange rates"
        )
    if stored.without_rate:
        notes.append(
            f"{stored.without_rate} sale(s) in {', '.join(stored.missing_rates)} skipped: no "
            f"exchange rate into {prog.currency} (import one with 'partnerflow rates import')"
        )
    cur = prog.currency
    # The whole program as one cohort: the same exact sums, whatever --limit shows.
    everyone = cohorts.by_cohort(replace(c, partner_id=None) for c in forecast.customers)[0]
    if by == "partner":
        rows: list[dict[str, Any]] = [
            {
                "partner_id": c.partner_id,
                "partner": _partner_label(c.partner_id, names),
                "customers": c.customers,
                "repeat_customers": c.repeat_customers,
                "expected_purchases": round(c.expected_purchases, 4),
                "mean_p_alive": round(c.mean_p_alive, 4),
                "clv_total": _shown(c.clv_total, cur),
                "clv_mean": _shown(c.clv_mean, cur),
            }
            for c in cohorts.by_cohort(forecast.customers)
        ]
    else:
        ranked = sorted(forecast.customers, key=lambda c: (-c.clv, c.customer_id))
        rows = [
            {
                "customer_id": c.customer_id,
                "partner_id": c.partner_id,
                "partner": _partner_label(c.partner_id, names),
                "purchases": c.purchases,
                "expected_purchases": round(c.expected_purchases, 4),
                "p_alive": round(c.p_alive, 4),
                "expected_spend": _shown(c.expected_spend, cur),
                "clv": _shown(c.clv, cur),
            }
            for c in ranked
        ]
    shown_rows = rows if limit is None else rows[:limit]
    out: dict[str, Any] = {
        "program": prog.slug,
        "currency": cur,
        "by": by,
        "model": forecast.model,
        "parameters": forecast.parameters,
        "log_likelihood": forecast.log_likelihood,
        "spend_model": forecast.spend_method,
        "gamma_gamma": forecast.spend_parameters,
        "historical_mean_spend": _shown(forecast.historical_mean_spend, cur),
        "calibration_end": end.isoformat(),
        "horizon_months": horizon_months,
        "monthly_discount_rate": discount_rate,
        "time_unit": forecast.time_unit,
        "transactions": forecast.transactions,
        "total": {
            "customers": everyone.customers,
            "repeat_customers": everyone.repeat_customers,
            "expected_purchases": round(everyone.expected_purchases, 4),
            "mean_p_alive": round(everyone.mean_p_alive, 4),
            "clv_total": _shown(everyone.clv_total, cur),
            "clv_mean": _shown(everyone.clv_mean, cur),
        },
        "notes": notes,
        "rows": shown_rows,
    }
    if as_json:
        print_json(out)
        return
    label = cohorts.MODEL_LABELS[forecast.model]
    params = ", ".join(f"{k}={_rounded(v)}" for k, v in forecast.parameters.items())
    typer.echo(
        f"{label} ({params}) + "
        f"{'Gamma-Gamma' if forecast.spend_method == 'gamma_gamma' else 'historical mean spend'}"
        f" on {everyone.customers} customers up to {end.isoformat()}; horizon "
        f"{horizon_months} months, discount {discount_rate:g}/month; total CLV "
        f"{out['total']['clv_total']} {cur}"
    )
    for note in notes:
        typer.echo(f"note: {note}")
    if by == "partner":
        columns: tuple[str, ...] = (
            "partner",
            "customers",
            "expected purchases",
            "mean P(alive)",
            f"CLV total ({cur})",
            f"CLV mean ({cur})",
        )
        keys = ("partner", "customers", "expected_purchases", "mean_p_alive", "clv_total")
        table = [(*(r[k] for k in keys), r["clv_mean"]) for r in shown_rows]
    else:
        columns = ("customer", "partner", "purchases", "expected purchases", "P(alive)", "CLV")
        fields = ("customer_id", "partner", "purchases", "expected_purchases", "p_alive", "clv")
        table = [tuple(r[k] for k in fields) for r in shown_rows]
    print_table(f"Predicted CLV of {prog.slug} by {by}", columns, table)


# --------------------------------------------------------------------------- churn


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@churn_app.command("rate")
@handles_errors
def churn_rate_command(
    program: ProgramOption = None,
    period: Annotated[str, typer.Option("--period", help="week, month or quarter")] = "month",
    date_from: Annotated[
        str | None,
        typer.Option("--from", help="First day (default: 12 periods back).", show_default=False),
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last day (default: today).", show_default=False)
    ] = None,
    lookback_days: Annotated[
        int | None,
        typer.Option(
            "--lookback-days",
            help="Window before a period in which a customer must have bought to count as a "
            "customer at its start (default: the previous period).",
            show_default=False,
        ),
    ] = None,
    by_partner: Annotated[
        bool, typer.Option("--by-partner", help="Also per acquiring-partner cohort.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Customers lost in each period ÷ customers at its start, from the stored sales."""
    from zoneinfo import ZoneInfo

    from partnerflow.analytics import churn, cohorts
    from partnerflow.commissions.rates import RateTable
    from partnerflow.storage.clv_queries import partner_names, program_sales

    if period not in churn.PERIODS:
        raise InvalidInput(
            f"--period must be one of {', '.join(churn.PERIODS)}, got {period!r}", field="period"
        )
    grain = period
    if lookback_days is not None and lookback_days < 1:
        raise InvalidInput("--lookback-days must be at least 1", field="lookback_days")
    prog = resolve_program(program)
    today = _today(prog.timezone)
    last = today if date_to is None else _date(date_to, "--to")
    if date_from is None:
        first = churn.period_start(last, grain)
        for _ in range(11):
            first = churn.previous_period_start(first, grain)
    else:
        first = _date(date_from, "--from")
    periods = churn.periods_between(first, last, grain)
    svc = services()
    zone = ZoneInfo(prog.timezone)
    with svc.engine.connect() as conn:
        # Activity needs no amounts: an empty rate table skips loading the stored rates.
        stored = program_sales(conn, prog.id, prog.currency, rates=RateTable())
        cohort_of = cohorts.acquiring_partners(stored.sales)
        names = partner_names(conn, prog.id, [p for p in cohort_of.values() if p is not None])
    activity = [(s.customer_id, s.at.astimezone(zone).date()) for s in stored.sales]
    first, last = periods[0][0], periods[-1][1] - dt.timedelta(days=1)

    def rows_of(series: list[churn.ChurnRate]) -> list[dict[str, Any]]:
        return [
            {
                "period_start": r.period_start.isoformat(),
                "period_end": (r.period_end - dt.timedelta(days=1)).isoformat(),
                "complete": r.period_end <= today,
                "customers_at_start": r.customers_at_start,
                "customers_lost": r.customers_lost,
                "churn_rate": _rate(r.rate),
            }
            for r in series
        ]

    total = rows_of(
        churn.churn_series(
            activity, period=grain, first=first, last=last, lookback_days=lookback_days
        )
    )
    out: dict[str, Any] = {
        "program": prog.slug,
        "period": period,
        "timezone": prog.timezone,
        "lookback_days": lookback_days,
        "customers": len(cohort_of),
        "periods": total,
    }
    if by_partner:
        keys = {c: "-" if p is None else str(p) for c, p in cohort_of.items()}
        per = churn.churn_series_by_cohort(
            activity, keys, period=grain, first=first, last=last, lookback_days=lookback_days
        )
        ordered = sorted(per, key=lambda k: (k == "-", int(k) if k != "-" else 0))
        out["partners"] = [
            {
                "partner_id": None if key == "-" else int(key),
                "partner": _partner_label(None if key == "-" else int(key), names),
                "periods": rows_of(per[key]),
            }
            for key in ordered
        ]
    if as_json:
        print_json(out)
        return
    window = "the previous period" if lookback_days is None else f"{lookback_days} days"
    typer.echo(
        f"churn = customers lost in the period / customers at its start (bought in {window} "
        f"before it); {prog.timezone} calendar; * = period not over yet"
    )
    columns = ("period", "at start", "lost", "churn rate")

    def table_rows(series: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (
                f"{r['period_start']} .. {r['period_end']}{'' if r['complete'] else ' *'}",
                r["customers_at_start"],
                r["customers_lost"],
                "n/a" if r["churn_rate"] is None else f"{100 * r['churn_rate']:.1f}%",
            )
            for r in series
        ]

    print_table(f"Churn of {prog.slug} by {period}", columns, table_rows(total))
    for item in out.get("partners", []):
        print_table(f"Churn of {item['partner']}'s customers", columns, table_rows(item["periods"]))


def _survivors(raw: str) -> list[int]:
    values: list[int] = []
    for i, part in enumerate(raw.split(","), start=1):
        text = part.strip()
        try:
            number = int(text)
        except ValueError:
            raise InvalidInput(
                f"--survivors item {i} ({text!r}) is not a whole number", field="survivors"
            ) from None
        values.append(number)
    return values


def _offer_ids(raw: list[str], offers: dict[int, str]) -> list[int]:
    """--offer values (ids or exact names, any case) as offer ids of the program."""
    from partnerflow.core.errors import NotFound

    chosen: set[int] = set()
    for item in raw:
        text = item.strip()
        if text.isdigit() and int(text) in offers:
            chosen.add(int(text))
            continue
        named = [i for i, name in offers.items() if name.casefold() == text.casefold()]
        if not named:
            listing = "; ".join(f"{i} {name}" for i, name in offers.items()) or "none"
            raise NotFound(
                f"--offer {text!r} is not an offer of the program (offers: {listing})",
                field="offer",
            )
        chosen.update(named)
    return sorted(chosen)


def _period_label(start: dt.date, period: str) -> str:
    if period == "month":
        return start.strftime("%Y-%m")
    if period == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def _cohort_start(raw: str, period: Any) -> dt.date:
    from partnerflow.analytics import churn

    text = raw.strip()
    try:
        day = dt.date.fromisoformat(f"{text}-01" if len(text) == 7 else text)
    except ValueError:
        raise InvalidInput(
            f"--cohort-start {raw!r} is not YYYY-MM or YYYY-MM-DD", field="cohort_start"
        ) from None
    return churn.period_start(day, period)


def _lifetimes(fitted: Any, horizon: int) -> dict[str, Any]:
    return {
        "expected_lifetime": fitted.expected_lifetime,
        "median_lifetime": fitted.median_lifetime(),
        "expected_periods_within_horizon": fitted.expected_periods_within(horizon),
    }


def _lifetime_line(out: dict[str, Any], unit: str) -> str:
    mean = out["expected_lifetime"]
    median = out["median_lifetime"]
    mean_text = (
        f"{mean:.2f} {unit}s"
        if mean is not None
        else "unbounded (alpha <= 1: a few very loyal customers make the mean infinite)"
    )
    median_text = f"{median} {unit}s" if median is not None else "beyond 100,000 periods"
    return (
        f"expected lifetime {mean_text}; median {median_text}; a new customer pays for "
        f"{out['expected_periods_within_horizon']:.2f} of the first {out['horizon']} {unit}s"
    )


@churn_app.command("forecast")
@handles_errors
def churn_forecast(
    survivors: Annotated[
        str | None,
        typer.Option(
            "--survivors",
            help="Customers of one cohort still active at period 0, 1, 2, ... "
            "(e.g. 1000,631,468,382); without it the cohorts come from the program's stored "
            "subscription payments.",
            show_default=False,
        ),
    ] = None,
    program: ProgramOption = None,
    offer: Annotated[
        list[str] | None,
        typer.Option(
            "--offer",
            help="Subscription offer (id or name; repeatable). Default: every offer.",
            show_default=False,
        ),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            help="Billing period: month (default), week or quarter.",
            show_default=False,
        ),
    ] = None,
    cohort_start: Annotated[
        str | None,
        typer.Option(
            "--cohort-start",
            help="Fit one cohort: the period holding this date (YYYY-MM or YYYY-MM-DD). "
            "Default: every cohort, pooled.",
            show_default=False,
        ),
    ] = None,
    partner: Annotated[
        int | None,
        typer.Option(
            "--partner",
            help="Only subscribers acquired by this partner (of their first payment).",
            show_default=False,
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Last day (program timezone) of the observation; default yesterday.",
            show_default=False,
        ),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon",
            "--periods",
            help="Project up to this period (default: 12 or the data length).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the sBG retention model (Fader & Hardie 2007) to survivor counts or to a program's
    subscription cohorts; project retention and lifetime."""
    if horizon is not None and not 1 <= horizon <= 1000:
        raise InvalidInput("--horizon must be between 1 and 1000", field="horizon")
    if survivors is not None:
        stored_only = [
            name
            for name, value in (
                ("--program", program),
                ("--offer", offer),
                ("--period", period),
                ("--cohort-start", cohort_start),
                ("--partner", partner),
                ("--as-of", as_of),
            )
            if value is not None
        ]
        if stored_only:
            raise InvalidInput(
                f"--survivors fits the counts given, {', '.join(stored_only)} read(s) the stored "
                "payments: use one or the other",
                field="survivors",
            )
        _typed_forecast(_survivors(survivors), horizon, as_json)
        return
    _stored_forecast(
        program=program,
        offers=offer or [],
        period=period or "month",
        cohort_start=cohort_start,
        partner=partner,
        as_of=as_of,
        horizon=horizon,
        as_json=as_json,
    )


def _typed_forecast(counts: list[int], periods: int | None, as_json: bool) -> None:
    from partnerflow.analytics import churn

    observed = len(counts) - 1
    horizon = max(12, observed) if periods is None else periods
    fitted = churn.fit_sbg(counts)
    expected = fitted.expected_survivors(horizon)
    survival = fitted.survival(horizon)
    retention = fitted.retention(horizon)
    rows = [
        {
            "period": t,
            "actual": counts[t] if t <= observed else None,
            "observed_survival": round(counts[t] / counts[0], 6) if t <= observed else None,
            "expected_survivors": round(expected[t], 2),
            "survival": round(survival[t], 6),
            "retention_rate": None if t == 0 else round(retention[t - 1], 6),
        }
        for t in range(horizon + 1)
    ]
    out = {
        "model": "sBG",
        "source": "survivors",
        "alpha": fitted.alpha,
        "beta": fitted.beta,
        "log_likelihood": fitted.log_likelihood,
        "cohort_size": fitted.cohort_size,
        "observed_periods": observed,
        "horizon": horizon,
        **_lifetimes(fitted, horizon),
        "periods": rows,
    }
    if as_json:
        print_json(out)
        return
    typer.echo(
        f"sBG: alpha={_rounded(fitted.alpha)}, beta={_rounded(fitted.beta)}, "
        f"log-likelihood {fitted.log_likelihood:.2f}; fitted on periods 0..{observed}"
    )
    typer.echo(_lifetime_line(out, "period"))
    print_table(
        "Retention forecast",
        ("period", "actual", "expected survivors", "survival", "retention rate"),
        [
            (
                r["period"],
                "" if r["actual"] is None else r["actual"],
                f"{r['expected_survivors']:.1f}",
                f"{r['survival']:.4f}",
                "" if r["retention_rate"] is None else f"{r['retention_rate']:.4f}",
            )
            for r in rows
        ],
    )


def _stored_forecast(
    *,
    program: str | None,
    offers: list[str],
    period: str,
    cohort_start: str | None,
    partner: int | None,
    as_of: str | None,
    horizon: int | None,
    as_json: bool,
) -> None:
    """sBG from the program's subscription payments (rules: storage.clv_queries and
    analytics.churn.subscription_cohorts; docs/clv-and-churn.md)."""
    from zoneinfo import ZoneInfo

    from partnerflow.analytics import churn
    from partnerflow.core.errors import NotFound
    from partnerflow.storage.clv_queries import (
        partner_names,
        program_offers,
        subscription_payments,
    )

    if period not in churn.PERIODS:
        raise InvalidInput(
            f"--period must be one of {', '.join(churn.PERIODS)}, got {period!r}", field="period"
        )
    grain: churn.Period = (
        "week" if period == "week" else "quarter" if period == "quarter" else "month"
    )
    prog = resolve_program(program)
    today = _today(prog.timezone)
    if as_of is None:
        last_day = today - dt.timedelta(days=1)
    else:
        last_day = _date(as_of, "--as-of")
        if last_day > today:
            raise InvalidInput(
                f"--as-of {last_day.isoformat()} is in the future (today is {today.isoformat()} "
                f"in {prog.timezone})",
                field="as_of",
            )
    start = None if cohort_start is None else _cohort_start(cohort_start, grain)
    svc = services()
    with svc.engine.connect() as conn:
        catalogue = program_offers(conn, prog.id)
        chosen = _offer_ids(offers, catalogue) if offers else None
        payments = subscription_payments(conn, prog.id, offer_ids=chosen)
        names = partner_names(conn, prog.id, [] if partner is None else [partner])
    if partner is not None and partner not in names:
        raise NotFound(f"partner {partner} is not in program {prog.slug}", field="partner")
    scope = prog.slug + (
        "" if chosen is None else " (offer " + ", ".join(f"{catalogue[i]}" for i in chosen) + ")"
    )
    if not payments:
        raise InvalidInput(
            f"no subscription data: {scope} has no paid sale or renewal with a customer id "
            "(rejected, reversed and fully refunded ones do not count)",
            field="program",
        )
    acquired: dict[str, int | None] = {}
    for p in payments:  # ordered by customer, time, id: the first one acquires
        acquired.setdefault(p.customer_id, p.partner_id)
    if partner is not None:
        payments = tuple(p for p in payments if acquired[p.customer_id] == partner)
        if not payments:
            raise InvalidInput(
                f"no subscription data: partner {partner} ({names[partner]}) acquired none of "
                f"the subscribers of {scope}",
                field="partner",
            )
    zone = ZoneInfo(prog.timezone)
    until = last_day + dt.timedelta(days=1)
    cohorts = churn.subscription_cohorts(
        ((p.customer_id, p.at.astimezone(zone).date()) for p in payments),
        period=grain,
        until=until,
    )
    unit = grain
    current = churn.period_start(until, grain)
    notes: list[str] = []
    if chosen is None and len(catalogue) > 1:
        notes.append(
            f"every offer's sales count as subscription payments ({len(catalogue)} offers): "
            "name the subscription offer with --offer in a program that also sells one-off "
            "products"
        )
    if not cohorts:
        raise InvalidInput(
            f"no complete cohort yet: every subscriber of {scope} paid first in the {unit} "
            f"starting {current.isoformat()} or later, which is not over on "
            f"{last_day.isoformat()}",
            field="as_of",
        )
    if start is not None:
        used = [c for c in cohorts if c.start == start]
        label = _period_label(start, grain)
        if not used:
            if start >= current:
                raise InvalidInput(
                    f"the {unit} {label} is not over on {last_day.isoformat()}: its cohort is "
                    "not complete",
                    field="cohort_start",
                )
            have = ", ".join(_period_label(c.start, grain) for c in cohorts[-12:])
            raise InvalidInput(
                f"no subscriber of {scope} paid first in {label} (cohorts: {have})",
                field="cohort_start",
            )
        cohort = used[0]
        if cohort.size < churn.MIN_COHORT_CUSTOMERS:
            raise InvalidInput(
                f"cohort {label} has {cohort.size} subscriber(s); the sBG needs at least "
                f"{churn.MIN_COHORT_CUSTOMERS}",
                field="cohort_start",
            )
        if cohort.observed_periods < 2:
            raise InvalidInput(
                f"cohort {label} has been observed for {cohort.observed_periods} complete "
                f"{unit}(s) after its first; the sBG needs at least 2 (choose an older cohort)",
                field="cohort_start",
            )
    else:
        used = [c for c in cohorts if c.observed_periods >= 1]
        waiting = [c for c in cohorts if c.observed_periods == 0]
        oldest = cohorts[0]
        if oldest.observed_periods < 2:
            raise InvalidInput(
                f"the oldest cohort ({_period_label(oldest.start, grain)}) has been observed for "
                f"{oldest.observed_periods} complete {unit}(s) after its first; the sBG needs "
                f"at least 2 (use a shorter --period, or wait)",
                field="as_of",
            )
        size = sum(c.size for c in used)
        if size < churn.MIN_COHORT_CUSTOMERS:
            raise InvalidInput(
                f"{size} subscriber(s) in cohorts with a complete later {unit}; the sBG needs "
                f"at least {churn.MIN_COHORT_CUSTOMERS}",
                field="program",
            )
        for c in waiting:
            notes.append(
                f"cohort {_period_label(c.start, grain)} ({c.size} subscriber(s)) has no "
                f"complete {unit} after its first yet: not used"
            )
    if all(c.survivors[1] == 0 for c in used):
        raise InvalidInput(
            f"nobody paid again in the {unit} after their first payment: the retention cannot "
            f"be estimated. Is --period {unit} the billing period of {scope}? (a monthly "
            "subscription needs --period month)",
            field="period",
        )
    try:
        if start is not None:
            fitted = churn.fit_sbg(used[0].survivors)
        else:
            fitted = churn.fit_sbg_cohorts([c.survivors for c in used])
    except clv.FitError as exc:
        raise clv.FitError(
            f"{exc.message}; check that --period {unit} is the billing period of {scope}"
        ) from None
    returned = sum(c.returned for c in used)
    if returned:
        notes.append(
            f"{returned} subscriber(s) paid again after missing a {unit}: the sBG has no "
            "return, so they count as churned at the first gap"
        )
    observed = max(c.observed_periods for c in used)
    span = max(12, observed) if horizon is None else horizon
    single = len(used) == 1 and start is not None
    survival = fitted.survival(span)
    retention = fitted.retention(span)
    expected = fitted.expected_survivors(span)
    rows: list[dict[str, Any]] = []
    for t in range(span + 1):
        seen = [c for c in used if c.observed_periods >= t]
        at_risk = sum(c.size for c in seen)
        rows.append(
            {
                "period": t,
                "actual": used[0].survivors[t] if single and t <= observed else None,
                "observed_survival": (
                    round(sum(c.survivors[t] for c in seen) / at_risk, 6) if at_risk else None
                ),
                "expected_survivors": round(expected[t], 2) if single else None,
                "survival": round(survival[t], 6),
                "retention_rate": None if t == 0 else round(retention[t - 1], 6),
            }
        )
    out: dict[str, Any] = {
        "model": "sBG",
        "source": "stored",
        "program": prog.slug,
        "offers": None if chosen is None else [{"id": i, "name": catalogue[i]} for i in chosen],
        "partner_id": partner,
        "period": unit,
        "timezone": prog.timezone,
        "as_of": last_day.isoformat(),
        "pooled": not single,
        "alpha": fitted.alpha,
        "beta": fitted.beta,
        "log_likelihood": fitted.log_likelihood,
        "cohort_size": fitted.cohort_size,
        "observed_periods": observed,
        "horizon": span,
        **_lifetimes(fitted, span),
        "returned_after_gap": returned,
        "cohorts": [
            {
                "start": c.start.isoformat(),
                "label": _period_label(c.start, grain),
                "subscribers": c.size,
                "observed_periods": c.observed_periods,
                "survivors": list(c.survivors),
                "returned_after_gap": c.returned,
            }
            for c in used
        ],
        "notes": notes,
        "periods": rows,
    }
    if as_json:
        print_json(out)
        return
    who = "" if partner is None else f", acquired by {names[partner]}"
    typer.echo(
        f"sBG: alpha={_rounded(fitted.alpha)}, beta={_rounded(fitted.beta)}, log-likelihood "
        f"{fitted.log_likelihood:.2f}; {fitted.cohort_size} subscribers of {scope}{who} in "
        f"{len(used)} {unit} cohort(s), {'one cohort' if single else 'pooled'}, "
        f"complete {unit}s up to {last_day.isoformat()} ({prog.timezone})"
    )
    typer.echo(_lifetime_line(out, unit))
    for note in notes:
        typer.echo(f"note: {note}")
    print_table(
        f"Subscription cohorts of {prog.slug} by {unit}",
        ("cohort", "subscribers", f"complete {unit}s after", "survivors", "returned"),
        [
            (
                c["label"],
                c["subscribers"],
                c["observed_periods"],
                ", ".join(str(n) for n in c["survivors"]),
                c["returned_after_gap"],
            )
            for c in out["cohorts"]
        ],
    )
    columns: tuple[str, ...] = (unit, "observed survival", "expected survival", "retention rate")
    if single:
        columns = (*columns, "actual survivors", "expected survivors")
    table: list[tuple[Any, ...]] = []
    for r in rows:
        line: tuple[Any, ...] = (
            r["period"],
            "" if r["observed_survival"] is None else f"{r['observed_survival']:.4f}",
            f"{r['survival']:.4f}",
            "" if r["retention_rate"] is None else f"{r['retention_rate']:.4f}",
        )
        if single:
            actual = "" if r["actual"] is None else r["actual"]
            line = (*line, actual, f"{r['expected_survivors']:.1f}")
        table.append(line)
    print_table("Retention forecast", columns, table)
