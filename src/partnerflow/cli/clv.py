"""`partnerflow clv fit`: fit BG/NBD, Pareto/NBD and Gamma-Gamma to a transaction CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from partnerflow.analytics import clv
from partnerflow.core.errors import PartnerflowError

app = typer.Typer(help="Customer lifetime value models.", no_args_is_help=True)

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
    """Fit BG/NBD, Pareto/NBD and Gamma-Gamma by maximum likelihood and print the parameters."""
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
    if result["bgnbd"] is None and result["pareto_nbd"] is None:
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
