"""`partnerflow clv ...` and `partnerflow churn ...`.

* `clv fit`: fit BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma to a transaction CSV;
* `clv predict`: predictions per customer or per partner cohort from the program's stored sales;
* `churn rate`: churn per period (and per partner cohort) from the stored sales;
* `churn forecast`: shifted-beta-geometric retention forecast from survivor counts.
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


@churn_app.command("forecast")
@handles_errors
def churn_forecast(
    survivors: Annotated[
        str,
        typer.Option(
            "--survivors",
            help="Customers of one cohort still active at period 0, 1, 2, ... "
            "(e.g. 1000,631,468,382).",
        ),
    ],
    periods: Annotated[
        int | None,
        typer.Option(
            "--periods", help="Project up to this period (default: 12 or the data length)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the shifted-beta-geometric model (Fader & Hardie 2007) and project retention."""
    from partnerflow.analytics import churn

    counts = _survivors(survivors)
    observed = len(counts) - 1
    horizon = max(12, observed) if periods is None else periods
    if not 1 <= horizon <= 1000:
        raise InvalidInput("--periods must be between 1 and 1000", field="periods")
    fitted = churn.fit_sbg(counts)
    expected = fitted.expected_survivors(horizon)
    survival = fitted.survival(horizon)
    retention = fitted.retention(horizon)
    rows = [
        {
            "period": t,
            "actual": counts[t] if t <= observed else None,
            "expected_survivors": round(expected[t], 2),
            "survival": round(survival[t], 6),
            "retention_rate": None if t == 0 else round(retention[t - 1], 6),
        }
        for t in range(horizon + 1)
    ]
    out = {
        "model": "sBG",
        "alpha": fitted.alpha,
        "beta": fitted.beta,
        "log_likelihood": fitted.log_likelihood,
        "cohort_size": fitted.cohort_size,
        "observed_periods": observed,
        "periods": rows,
    }
    if as_json:
        print_json(out)
        return
    typer.echo(
        f"sBG: alpha={_rounded(fitted.alpha)}, beta={_rounded(fitted.beta)}, "
        f"log-likelihood {fitted.log_likelihood:.2f}; fitted on periods 0..{observed}"
    )
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
