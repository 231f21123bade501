"""`partnerflow report`: every KPI by partner, offer, link, day/week/month, sub-ID,
country, device, channel, coupon or creative (days in the program's timezone, --to inclusive), with
filters, a comparison with the previous period and CSV export; plus `report leaderboard`,
`report partners` (active vs inactive), `report cohorts` and `report refresh` (rollups)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from partnerflow.analytics.reports import (
    LEADERBOARD_METRICS,
    Comparison,
    Report,
    ReportRow,
    cohort_retention,
    compare,
    leaderboard,
    partner_activity,
    previous_period,
    report_from_measures,
    row_values,
    to_csv,
)
from partnerflow.cli.runtime import (
    handles_errors,
    money_text,
    print_json,
    print_table,
    resolve_program,
    services,
)
from partnerflow.core.clock import check_day
from partnerflow.core.errors import InvalidInput
from partnerflow.programs.model import Program
from partnerflow.storage import tables as t
from partnerflow.storage.reports import (
    ad_spend_by,
    creative_labels,
    customer_purchases,
    last_activity,
    program_revenue_total,
)
from partnerflow.storage.rollup_grain import DIMENSION_FIELD, Filters, ProgramFacts
from partnerflow.storage.rollups import (
    ROLLUP_DIMENSIONS,
    fold_new_events,
    raw_measures,
    rebuild,
    rollup_measures,
)

MAX_DAYS = 3660
ENGINES = ("auto", "rollup", "raw", "duckdb")
DIMENSIONS = tuple(DIMENSION_FIELD)

app = typer.Typer(
    help="Performance reports (run with --by ..., or a subcommand).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def parse_day(value: str, option: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{option} must be a date YYYY-MM-DD, got {value[:32]!r}", field=option
        ) from None
    return check_day(day, option)


def _period(from_: str | None, to: str | None) -> tuple[date, date]:
    if from_ is None or to is None:
        raise InvalidInput("--from and --to are required", field="--from")
    first, last = parse_day(from_, "--from"), parse_day(to, "--to")
    if last < first:
        raise InvalidInput("--to is before --from", field="--to")
    if last - first > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"the period is longer than {MAX_DAYS} days", field="--to")
    return first, last


def _named_period(period: str, today: date) -> tuple[date, date]:
    """last-7-days, last-30-days, this-month, last-month or YYYY-MM."""
    p = period.strip().lower()
    if p.startswith("last-") and p.endswith("-days") and p[5:-5].isdigit():
        n = int(p[5:-5])
        if not 1 <= n <= MAX_DAYS:
            raise InvalidInput("--period last-N-days needs 1 <= N <= 3660", field="--period")
        return today - timedelta(days=n - 1), today
    if p == "this-month":
        return today.replace(day=1), today
    if p == "last-month":
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    try:
        first = date.fromisoformat(f"{p}-01")
    except ValueError:
        raise InvalidInput(
            "--period must be last-N-days, this-month, last-month or YYYY-MM", field="--period"
        ) from None
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _ints(values: list[str] | None, option: str) -> tuple[int, ...]:
    out: list[int] = []
    for v in values or []:
        for part in v.split(","):
            if not part.strip().isdigit():
                raise InvalidInput(f"{option} takes ids, got {part[:32]!r}", field=option)
            out.append(int(part))
    return tuple(out)


def _words(values: list[str] | None, upper: bool) -> tuple[str, ...]:
    out = [p.strip() for v in values or [] for p in v.split(",") if p.strip()]
    return tuple(p.upper() if upper else p.lower() for p in out)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _num(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _labels(dimension: str, keys: list[Any]) -> dict[Any, str]:
    ids = [k for k in keys if isinstance(k, int)]
    table = {"partner": t.partners, "offer": t.offers}.get(dimension)
    names: dict[Any, str] = {}
    with services().engine.connect() as conn:
        if dimension == "link" and ids:
            rows = conn.execute(
                t.tracking_links.select()
                .with_only_columns(t.tracking_links.c.id, t.tracking_links.c.code)
                .where(t.tracking_links.c.id.in_(ids))
            )
            names = {r[0]: str(r[1]) for r in rows}
            names[0] = "(no link: coupon or customer)"
        elif table is not None and ids:
            rows = conn.execute(
                table.select()
                .with_only_columns(table.c.id, table.c.name)
                .where(table.c.id.in_(ids))
            )
            names = {r[0]: str(r[1]) for r in rows}
        elif dimension == "creative":
            names = creative_labels(conn, ids)
    if dimension in ("country", "device", "channel") or dimension.startswith("sub"):
        names[""] = "(unknown)" if not dimension.startswith("sub") else "(none)"
    if dimension == "coupon":
        names[""] = "(no coupon)"
    return names


def _engine_for(engine: str, dimension: str) -> str:
    if engine == "auto":
        return "rollup" if dimension in ROLLUP_DIMENSIONS else "raw"
    if engine == "rollup" and dimension not in ROLLUP_DIMENSIONS:
        raise InvalidInput(
            f"--by {dimension} is not rolled up: use --engine raw or --engine duckdb",
            field="--engine",
        )
    return engine


def run_report(
    program: Program,
    dimension: str,
    first: date,
    last: date,
    filters: Filters,
    engine: str,
    refresh: bool = True,
) -> Report:
    facts = ProgramFacts(program.id, program.currency, program.timezone)
    chosen = _engine_for(engine, dimension)
    with services().engine.connect() as conn:
        if chosen == "rollup" and refresh:
            # Incremental and cheap when the rollup job has run; makes a report right even
            # on an installation where nobody scheduled the job.
            fold_new_events(conn, now=services().clock.now())
        if chosen == "rollup":
            measures = rollup_measures(conn, facts, dimension, first, last, filters)
        elif chosen == "raw":
            measures = raw_measures(conn, facts, dimension, first, last, filters)
        else:
            from partnerflow.storage.duckdb_events import DuckDBEvents
            from partnerflow.storage.rollups import builder

            grain = builder(conn, program.id)
            with DuckDBEvents.load(conn, program.id, first, last, program.timezone) as events:
                measures = events.measures(grain, dimension, filters, first, last)
        other = bool(filters.offer_ids or filters.countries or filters.devices)
        spend, total_spend = ad_spend_by(
            conn,
            program.id,
            program.currency,
            dimension,
            first,
            last,
            filters.partner_ids,
            other,
        )
    names = _labels(dimension, list(measures))
    return report_from_measures(
        dimension=dimension,
        currency=program.currency,
        timezone=program.timezone,
        first_day=first,
        last_day=last,
        measures=measures,
        names=names,
        spend=spend,
        total_spend=total_spend,
    )


def _money(currency: str) -> Any:
    return lambda amount: money_text(amount, currency)


def _change_json(comparison: Comparison, index: int | None) -> dict[str, Any]:
    row = comparison.totals if index is None else comparison.rows[index]
    return {
        "previous_key": row.previous_key,
        **{
            name: {
                "previous": None if ch.previous is None else str(ch.previous),
                "delta": None if ch.delta is None else str(ch.delta),
                "delta_pct": None if ch.delta_ratio is None else str(ch.delta_ratio),
            }
            for name, ch in row.changes.items()
        },
    }


def report_json(report: Report, comparison: Comparison | None = None) -> dict[str, Any]:
    money = _money(report.currency)
    rows = []
    for i, r in enumerate(report.rows):
        item = row_values(r, money)
        if comparison is not None:
            item["compared"] = _change_json(comparison, i)
        rows.append(item)
    totals = row_values(report.totals, money)
    if comparison is not None:
        totals["compared"] = _change_json(comparison, None)
    out: dict[str, Any] = {
        "by": report.dimension,
        "from": report.first_day.isoformat(),
        "to": report.last_day.isoformat(),
        "currency": report.currency,
        "timezone": report.timezone,
        "rows": rows,
        "totals": totals,
    }
    if comparison is not None:
        out["previous"] = {
            "from": comparison.previous_first_day.isoformat(),
            "to": comparison.previous_last_day.isoformat(),
        }
    return out


def _table_row(r: ReportRow, currency: str, delta: Any = None) -> tuple[Any, ...]:
    cells: tuple[Any, ...] = (
        r.label,
        r.clicks,
        r.unique_clicks,
        r.impressions,
        _pct(r.ctr),
        r.conversions,
        _pct(r.conversion_rate),
        money_text(r.revenue, currency),
        _num(r.aov),
        money_text(r.commission, currency),
        _num(r.epc),
        _num(r.cpa),
        _num(r.roas),
        money_text(r.profit, currency),
        _pct(r.refund_rate),
    )
    if delta is not None:
        ch = delta.changes
        cells += (_pct(ch["clicks"].delta_ratio), _pct(ch["revenue"].delta_ratio))
    return cells


@app.callback()
@handles_errors
def report(
    ctx: typer.Context,
    by: Annotated[
        str | None, typer.Option("--by", help=f"One of: {', '.join(DIMENSIONS)}.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (program timezone).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day, inclusive, YYYY-MM-DD.")] = None,
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    partner: Annotated[list[str] | None, typer.Option(help="Only these partner ids.")] = None,
    offer: Annotated[list[str] | None, typer.Option(help="Only these offer ids.")] = None,
    country: Annotated[list[str] | None, typer.Option(help="Only these countries (ISO).")] = None,
    device: Annotated[list[str] | None, typer.Option(help="Only these devices.")] = None,
    compare_previous: Annotated[
        bool, typer.Option("--compare", help="Compare with the previous period of equal length.")
    ] = False,
    engine: Annotated[str, typer.Option(help="auto, rollup, raw or duckdb.")] = "auto",
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write CSV to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Performance report. CR = conversions / clicks; EPC = commission / clicks (partner
    earnings per click); cost = commission + attributable ad spend; bot clicks are left
    out; money in the program's currency. See docs/kpis.md."""
    if ctx.invoked_subcommand is not None:
        return
    if by is None:
        raise InvalidInput(
            "--by is required (or a subcommand: leaderboard, partners, cohorts, refresh)",
            field="--by",
        )
    dimension = by.strip().lower()
    if dimension not in DIMENSION_FIELD:
        raise InvalidInput(f"--by must be one of {', '.join(DIMENSIONS)}", field="--by")
    if engine not in ENGINES:
        raise InvalidInput(f"--engine must be one of {', '.join(ENGINES)}", field="--engine")
    fmt = "json" if as_json else output_format.strip().lower()
    if fmt not in ("table", "json", "csv"):
        raise InvalidInput("--format must be table, json or csv", field="--format")
    first, last = _period(from_, to)
    found = resolve_program(program)
    filters = Filters(
        _ints(partner, "--partner"),
        _ints(offer, "--offer"),
        _words(country, True),
        _words(device, False),
    )
    result = run_report(found, dimension, first, last, filters, engine)
    comparison = None
    if compare_previous:
        p_first, p_last = previous_period(first, last)
        comparison = compare(result, run_report(found, dimension, p_first, p_last, filters, engine))
    if csv_file is not None:
        csv_file.write_text(to_csv(result, comparison, _money(found.currency)), encoding="utf-8")
    if fmt == "csv":
        typer.echo(to_csv(result, comparison, _money(found.currency)), nl=False)
        return
    if fmt == "json":
        print_json(report_json(result, comparison))
        return
    columns: tuple[str, ...] = (
        dimension,
        "clicks",
        "unique",
        "impr.",
        "CTR",
        "conv.",
        "CR",
        f"revenue {found.currency}",
        "AOV",
        f"commission {found.currency}",
        "EPC",
        "CPA",
        "ROAS",
        "profit",
        "refunds",
    )
    if comparison is not None:
        columns += ("Δ clicks", "Δ revenue")
    compared = [] if comparison is None else [*comparison.rows, comparison.totals]
    rows = [
        _table_row(r, found.currency, compared[i] if compared else None)
        for i, r in enumerate((*result.rows, result.totals))
    ]
    print_table(f"{found.name}: {first} to {last} ({found.timezone})", columns, rows)


@app.command("leaderboard")
@handles_errors
def leaderboard_command(
    metric: Annotated[str, typer.Option(help=", ".join(LEADERBOARD_METRICS))] = "revenue",
    period: Annotated[
        str, typer.Option(help="last-N-days, this-month, last-month or YYYY-MM.")
    ] = "last-30-days",
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    min_clicks: Annotated[
        int, typer.Option(help="Clicks needed to rank by EPC or CR.", min=0)
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Partners ranked by a metric, with their rank in the previous period."""
    if metric not in LEADERBOARD_METRICS:
        raise InvalidInput(
            f"--metric must be one of {', '.join(LEADERBOARD_METRICS)}", field="--metric"
        )
    found = resolve_program(program)
    from zoneinfo import ZoneInfo

    today = services().clock.now().astimezone(ZoneInfo(found.timezone)).date()
    first, last = _named_period(period, today)
    ratio = metric in ("epc", "conversion_rate")
    current = run_report(found, "partner", first, last, Filters(), "auto")
    p_first, p_last = previous_period(first, last)
    before = run_report(found, "partner", p_first, p_last, Filters(), "auto")
    board = leaderboard(
        current, metric, limit=limit, min_clicks=min_clicks if ratio else 0, previous=before
    )
    money = metric in ("revenue", "commission")

    def shown(value: Any) -> Any:
        return money_text(value, found.currency) if money else value

    if as_json:
        standings = [
            {
                "rank": s.rank,
                "key": s.key,
                "label": s.label,
                "value": shown(s.value),
                "clicks": s.clicks,
                "conversions": s.conversions,
                "previous_rank": s.previous_rank,
            }
            for s in board
        ]
        print_json(
            {
                "metric": metric,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "standings": standings,
            }
        )
        return
    print_table(
        f"{found.name}: top partners by {metric}, {first} to {last}",
        ("#", "partner", metric, "clicks", "conv.", "previous #"),
        [
            (s.rank, s.label, shown(s.value), s.clicks, s.conversions, s.previous_rank or "new")
            for s in board
        ],
    )


@app.command("partners")
@handles_errors
def partners_command(
    inactive_days: Annotated[int, typer.Option(min=1, max=3660)] = 30,
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Active vs inactive partners (no click or conversion in the last N days)."""
    from zoneinfo import ZoneInfo

    found = resolve_program(program)
    today = services().clock.now().astimezone(ZoneInfo(found.timezone)).date()
    with services().engine.connect() as conn:
        seen = last_activity(conn, found.id)
    activity = partner_activity(seen, today, inactive_days)
    share = activity.inactive_share
    if as_json:
        print_json(
            {
                "active": len(activity.active),
                "inactive": len(activity.inactive),
                "inactive_share": None if share is None else str(share),
                "inactive_partners": [
                    {"partner_id": p, "last_activity": None if seen[p] is None else str(seen[p])}
                    for p in activity.inactive
                ],
            }
        )
        return
    print_table(
        f"{found.name}: partners active in the last {inactive_days} days",
        ("active", "inactive", "inactive share"),
        [(len(activity.active), len(activity.inactive), _pct(share))],
    )


@app.command("cohorts")
@handles_errors
def cohorts_command(
    months: Annotated[int, typer.Option(min=0, max=36)] = 6,
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cohort retention by partner: customers a partner acquired in month M still
    purchasing in M+k."""
    from zoneinfo import ZoneInfo

    found = resolve_program(program)
    today = services().clock.now().astimezone(ZoneInfo(found.timezone)).date()
    with services().engine.connect() as conn:
        purchases = customer_purchases(conn, found.id, found.timezone)
    cohorts = [
        c for c in cohort_retention(purchases, months=months, last_month=today) if c.partner_id != 0
    ]
    if as_json:
        print_json(
            [
                {
                    "partner_id": c.partner_id,
                    "month": c.month.isoformat()[:7],
                    "size": c.size,
                    "retained": list(c.retained),
                    "rates": [None if r is None else str(r) for r in c.rates],
                }
                for c in cohorts
            ]
        )
        return
    print_table(
        f"{found.name}: cohort retention by partner",
        ("partner", "month", "customers", *(f"M+{k}" for k in range(months + 1))),
        [(c.partner_id, c.month.isoformat()[:7], c.size, *map(_pct, c.rates)) for c in cohorts],
    )


@app.command("share")
@handles_errors
def share_command(
    from_: Annotated[str, typer.Option("--from")],
    to: Annotated[str, typer.Option("--to")],
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Partners' share of the program's total revenue (imported with `revenue import`)."""
    from partnerflow.core import kpis

    first, last = _period(from_, to)
    found = resolve_program(program)
    result = run_report(found, "partner", first, last, Filters(), "auto")
    with services().engine.connect() as conn:
        total = program_revenue_total(conn, found.id, found.currency, first, last)
    if total is None:
        raise InvalidInput(
            "no program revenue imported for this period: "
            "use 'partnerflow revenue import FILE.csv'",
            field="--from",
        )
    share = kpis.share(result.totals.revenue, total[0])
    value = {
        "partner_revenue": money_text(result.totals.revenue, found.currency),
        "total_revenue": money_text(total[0], found.currency),
        "share": None if share is None else str(share),
    }
    if as_json:
        print_json(value)
        return
    print_table(
        f"{found.name}: {first} to {last}",
        tuple(value),
        [tuple("n/a" if v is None else v for v in value.values())],
    )


@app.command("refresh")
@handles_errors
def refresh_command(
    rebuild_days: Annotated[
        bool, typer.Option("--rebuild", help="Recompute --from..--to from raw events.")
    ] = False,
    from_: Annotated[str | None, typer.Option("--from")] = None,
    to: Annotated[str | None, typer.Option("--to")] = None,
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
) -> None:
    """Fold new events into the report rollups (idempotent; run it from cron or a timer)."""
    with services().engine.connect() as conn:
        folded = fold_new_events(conn, now=services().clock.now())
        if rebuild_days:
            first, last = _period(from_, to)
            found = resolve_program(program)
            with conn.begin():
                rebuild(conn, found.id, first, last)
    typer.echo(
        f"folded {folded.clicks} clicks, {folded.impressions} impressions, "
        f"{folded.conversion_days} conversion days"
        + (" and rebuilt the period" if rebuild_days else "")
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="report")
