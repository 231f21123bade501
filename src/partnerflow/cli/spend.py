"""`partnerflow spend ...`: import ad spend, report CPC/CPL/CPA/ROAS/profit, suggest budgets."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from partnerflow.caps.periods import local_date
from partnerflow.caps.services import import_spend_csv, spend_report
from partnerflow.caps.spend import BudgetPolicy, kpi_fields, parse_target_roas, suggest
from partnerflow.cli.caps import ACTOR, JsonFlag, ProgramOpt, caps_uow, program_of
from partnerflow.cli.runtime import emit, handles_errors, services
from partnerflow.core.errors import InvalidInput
from partnerflow.programs.model import Program

app = typer.Typer(help="Ad spend, ROAS and budget suggestions.", no_args_is_help=True)

By = Annotated[str, typer.Option("--by", help="channel, campaign or partner.")]
From = Annotated[str | None, typer.Option("--from", help="First day (default: 30 days ago).")]
To = Annotated[str | None, typer.Option("--to", help="Last day (default: today).")]


def _range(prog: Program, start: str | None, end: str | None) -> tuple[date, date]:
    today = local_date(services().clock.now(), prog.timezone)
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=29)
    except ValueError:
        raise InvalidInput("dates must be YYYY-MM-DD", field="from") from None
    return first, last


@app.command("import")
@handles_errors
def import_command(
    csv_file: Annotated[Path, typer.Argument(help="CSV: day,channel,campaign,partner,amount")],
    program: ProgramOpt = None,
) -> None:
    """Import costs per day, channel, campaign and partner (id or e-mail). Any bad row:
    nothing is imported and every bad row is listed."""
    prog = program_of(program)
    try:
        text = csv_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {csv_file}: {exc}") from None
    count = import_spend_csv(caps_uow(), services().clock, prog.id, text, ACTOR)
    typer.echo(f"imported {count} spend rows into {prog.slug}")


@app.command("report")
@handles_errors
def report_command(
    by: By = "channel",
    start: From = None,
    end: To = None,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Spend, CPC, CPL, CPA, ROAS and profit per channel, campaign or partner."""
    prog = program_of(program)
    first, last = _range(prog, start, end)
    lines = spend_report(caps_uow(), prog.id, first, last, by)
    data = [kpi_fields(k) for k in lines]
    rows = [
        (
            d["key"],
            d["spend"],
            d["clicks"],
            d["sales"],
            d["revenue"],
            d["cpc"] or "-",
            d["cpl"] or "-",
            d["cpa"] or "-",
            d["roas"] or "-",
            d["profit"],
        )
        for d in data
    ]
    columns = ("key", "spend", "clicks", "sales", "revenue", "CPC", "CPL", "CPA", "ROAS", "profit")
    emit(as_json, data, f"Spend by {by}, {first}..{last} ({prog.currency})", columns, rows)


@app.command("suggest")
@handles_errors
def suggest_command(
    by: By = "channel",
    start: From = None,
    end: To = None,
    target_roas: Annotated[
        str,
        typer.Option(help="The ROAS you aim for: above 0, at most 1000 (e.g. 2 or 1.5)."),
    ] = "2",
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Scale, hold or cut each channel, campaign or partner, with the reason."""
    prog = program_of(program)
    first, last = _range(prog, start, end)
    goal = parse_target_roas(target_roas, "--target-roas")
    lines = suggest(
        spend_report(caps_uow(), prog.id, first, last, by),
        prog.currency,
        BudgetPolicy(target_roas=goal),
    )
    data = [
        {
            "key": s.key,
            "verdict": s.verdict.value,
            "budget_change_percent": str(s.budget_change_percent),
            "reason": s.reason,
            "kpis": kpi_fields(s.kpis),
        }
        for s in lines
    ]
    rows = [(d["key"], d["verdict"], f"{d['budget_change_percent']}%", d["reason"]) for d in data]
    emit(as_json, data, f"Budget suggestions by {by}", ("key", "verdict", "budget", "why"), rows)
