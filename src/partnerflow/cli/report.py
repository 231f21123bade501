"""`partnerflow report`: clicks, conversions, revenue, commission, CR and EPC by partner,
offer or day (days in the program's timezone, --to inclusive)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

import typer

from partnerflow.analytics.reports import Report, ReportRow, build_report
from partnerflow.cli.runtime import (
    handles_errors,
    money_text,
    print_json,
    print_table,
    resolve_program,
    services,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.storage.reports import Dimension, ReportQuery, labels, report_sums

MAX_DAYS = 3660


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{option} must be a date YYYY-MM-DD, got {value[:32]!r}", field=option
        ) from None


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _row(r: ReportRow, currency: str) -> tuple[Any, ...]:
    return (
        r.label,
        r.clicks,
        r.unique_clicks,
        r.conversions,
        r.refunds,
        money_text(r.revenue, currency),
        money_text(r.commission, currency),
        _pct(r.conversion_rate),
        "n/a" if r.epc is None else f"{r.epc}",
    )


def report_json(report: Report) -> dict[str, Any]:
    cur = report.currency

    def row(r: ReportRow) -> dict[str, Any]:
        return {
            "key": r.key,
            "label": r.label,
            "clicks": r.clicks,
            "unique_clicks": r.unique_clicks,
            "conversions": r.conversions,
            "refunds": r.refunds,
            "revenue": money_text(r.revenue, cur),
            "commission": money_text(r.commission, cur),
            "conversion_rate": None if r.conversion_rate is None else str(r.conversion_rate),
            "epc": None if r.epc is None else str(r.epc),
        }

    return {
        "by": report.dimension,
        "from": report.first_day.isoformat(),
        "to": report.last_day.isoformat(),
        "currency": report.currency,
        "timezone": report.timezone,
        "rows": [row(r) for r in report.rows],
        "totals": row(report.totals),
    }


@handles_errors
def report(
    by: Annotated[str, typer.Option("--by", help="partner, offer or day.")],
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (program timezone).")],
    to: Annotated[str, typer.Option("--to", help="Last day, inclusive, YYYY-MM-DD.")],
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Performance report. CR = conversions / clicks; EPC = commission / clicks (partner
    earnings per click); bot clicks are left out; money in the program's currency."""
    try:
        dimension = Dimension(by.strip().lower())
    except ValueError:
        raise InvalidInput("--by must be partner, offer or day", field="by") from None
    first, last = parse_day(from_, "--from"), parse_day(to, "--to")
    if last < first:
        raise InvalidInput("--to is before --from", field="--to")
    if last - first > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"the period is longer than {MAX_DAYS} days", field="--to")
    found = resolve_program(program)
    query = ReportQuery(found.id, found.currency, found.timezone, dimension, first, last)
    with services().engine.connect() as conn:
        groups = report_sums(conn, query)
        names = labels(conn, dimension, [g.key for g in groups])
    result = build_report(
        dimension=dimension.value,
        currency=found.currency,
        timezone=found.timezone,
        first_day=first,
        last_day=last,
        groups=groups,
        names=names,
    )
    if as_json:
        print_json(report_json(result))
        return
    columns = (
        dimension.value,
        "clicks",
        "unique",
        "conv.",
        "refunds",
        f"revenue {found.currency}",
        f"commission {found.currency}",
        "CR",
        "EPC",
    )
    rows = [_row(r, found.currency) for r in (*result.rows, result.totals)]
    print_table(f"{found.name}: {first} to {last} ({found.timezone})", columns, rows)


def register(root: typer.Typer) -> None:
    root.command("report")(report)
