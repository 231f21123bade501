"""Report rows, totals, comparisons and CSV from per-group sums (pure: the SQL lives in
`storage.reports` / `storage.rollups`, the DuckDB queries in `analytics.duckdb_engine`).

A row's KPIs are computed from its own sums, and the totals row from the summed sums —
never by averaging the rows' ratios, which would weight a 1-click partner like a star.
Every KPI comes from `core.kpis`; a ratio with a zero denominator is None, which
tables print as "n/a", JSON as null and CSV as an empty cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol

from partnerflow.core import kpis

MICROS = Decimal(1_000_000)
TIME_DIMENSIONS = frozenset({"day", "week", "month"})


def period_key(day: date, dimension: str) -> date:
    """The bucket a local day falls in: itself, its ISO week's Monday, or its month's 1st
    (the same rule as `storage.rollup_grain.period_key`, which storage cannot import)."""
    if dimension == "week":
        return day - timedelta(days=day.weekday())
    if dimension == "month":
        return day.replace(day=1)
    return day


class Sums(Protocol):
    """What a report row is built from (storage.reports.GroupSums satisfies it); the
    measures beyond these are read with a default of zero."""

    @property
    def key(self) -> int | date: ...
    @property
    def clicks(self) -> int: ...
    @property
    def unique_clicks(self) -> int: ...
    @property
    def conversions(self) -> int: ...
    @property
    def refunds(self) -> int: ...
    @property
    def revenue(self) -> Decimal: ...
    @property
    def commission(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class ReportRow:
    key: str
    label: str
    clicks: int
    unique_clicks: int
    conversions: int
    refunds: int
    revenue: Decimal
    commission: Decimal
    conversion_rate: Decimal | None
    epc: Decimal | None
    impressions: int = 0
    sales: int = 0
    leads: int = 0
    orders: int = 0
    ad_spend: Decimal | None = None
    cost: Decimal = Decimal(0)
    ctr: Decimal | None = None
    unique_conversion_rate: Decimal | None = None
    revenue_per_click: Decimal | None = None
    aov: Decimal | None = None
    refund_rate: Decimal | None = None
    cpc: Decimal | None = None
    cpl: Decimal | None = None
    cpa: Decimal | None = None
    roas: Decimal | None = None
    profit: Decimal = Decimal(0)


# The row fields in output order (JSON, CSV), and which of them are compared.
ROW_FIELDS = tuple(f.name for f in fields(ReportRow))
COUNT_FIELDS = (
    "clicks",
    "unique_clicks",
    "impressions",
    "conversions",
    "refunds",
    "sales",
    "leads",
    "orders",
)
MONEY_FIELDS = ("revenue", "commission", "ad_spend", "cost", "profit")
KPI_FIELDS = (
    "conversion_rate",
    "epc",
    "ctr",
    "unique_conversion_rate",
    "revenue_per_click",
    "aov",
    "refund_rate",
    "cpc",
    "cpl",
    "cpa",
    "roas",
)
COMPARED_FIELDS = COUNT_FIELDS + MONEY_FIELDS + KPI_FIELDS


@dataclass(frozen=True, slots=True)
class Report:
    dimension: str
    currency: str
    timezone: str
    first_day: date
    last_day: date
    rows: tuple[ReportRow, ...]
    totals: ReportRow


@dataclass(frozen=True, slots=True)
class Change:
    """One field's change against the previous period."""

    previous: Decimal | int | None
    delta: Decimal | None
    delta_ratio: Decimal | None


@dataclass(frozen=True, slots=True)
class RowComparison:
    key: str
    label: str
    previous_key: str | None
    changes: Mapping[str, Change]


@dataclass(frozen=True, slots=True)
class Comparison:
    previous_first_day: date
    previous_last_day: date
    rows: tuple[RowComparison, ...]
    totals: RowComparison


def make_row(
    key: str,
    label: str,
    *,
    clicks: int,
    unique_clicks: int,
    conversions: int,
    refunds: int,
    revenue: Decimal,
    commission: Decimal,
    impressions: int = 0,
    sales: int = 0,
    leads: int = 0,
    orders: int = 0,
    ad_spend: Decimal | None = None,
) -> ReportRow:
    """A row with every KPI of the catalogue. Cost = commission + the ad spend attributable
    to the row (None when spend cannot be attributed to this dimension: then cost is the
    commission alone)."""
    cost = commission + (ad_spend or Decimal(0))
    return ReportRow(
        key=key,
        label=label,
        clicks=clicks,
        unique_clicks=unique_clicks,
        conversions=conversions,
        refunds=refunds,
        revenue=revenue,
        commission=commission,
        conversion_rate=kpis.conversion_rate(conversions, clicks),
        epc=kpis.earnings_per_click(commission, clicks),
        impressions=impressions,
        sales=sales,
        leads=leads,
        orders=orders,
        ad_spend=ad_spend,
        cost=cost,
        ctr=kpis.click_through_rate(clicks, impressions) if impressions else None,
        unique_conversion_rate=kpis.unique_conversion_rate(conversions, unique_clicks),
        revenue_per_click=kpis.revenue_per_click(revenue, clicks),
        aov=kpis.average_order_value(revenue, orders),
        refund_rate=kpis.refund_rate(refunds, conversions),
        cpc=kpis.cost_per_click(cost, clicks),
        cpl=kpis.cost_per_lead(cost, leads),
        cpa=kpis.cost_per_acquisition(cost, sales),
        roas=kpis.return_on_ad_spend(revenue, cost),
        profit=kpis.profit(revenue, cost),
    )


def _row_from_measures(
    key: str, label: str, m: Mapping[str, int], ad_spend: Decimal | None
) -> ReportRow:
    return make_row(
        key,
        label,
        clicks=m.get("clicks", 0),
        unique_clicks=m.get("unique_clicks", 0),
        conversions=m.get("conversions", 0),
        refunds=m.get("refunds", 0),
        revenue=Decimal(m.get("revenue_micros", 0)) / MICROS,
        commission=Decimal(m.get("commission_micros", 0)) / MICROS,
        impressions=m.get("impressions", 0),
        sales=m.get("sales", 0),
        leads=m.get("leads", 0),
        orders=m.get("orders", 0),
        ad_spend=ad_spend,
    )


def _key_text(key: Any) -> str:
    return key.isoformat() if isinstance(key, date) else str(key)


def build_report(
    *,
    dimension: str,
    currency: str,
    timezone: str,
    first_day: date,
    last_day: date,
    groups: Iterable[Sums],
    names: Mapping[Any, str],
) -> Report:
    """A report from `storage.reports.report_sums` groups (partner, offer, creative or day)."""
    measures: dict[Any, dict[str, int]] = {}
    for g in groups:
        measures[g.key] = {
            "clicks": g.clicks,
            "unique_clicks": g.unique_clicks,
            "conversions": g.conversions,
            "refunds": g.refunds,
            "revenue_micros": int(g.revenue * MICROS),
            "commission_micros": int(g.commission * MICROS),
            **{n: int(getattr(g, n, 0)) for n in ("impressions", "sales", "leads", "orders")},
        }
    return report_from_measures(
        dimension=dimension,
        currency=currency,
        timezone=timezone,
        first_day=first_day,
        last_day=last_day,
        measures=measures,
        names=names,
        fill_periods=False,
    )


def periods(first_day: date, last_day: date, dimension: str) -> list[date]:
    """Every day / week (Monday) / month (1st) bucket touching [first_day, last_day]."""
    out: list[date] = []
    day = first_day
    while day <= last_day:
        key = period_key(day, dimension)
        if not out or out[-1] != key:
            out.append(key)
        day += timedelta(days=1)
    return out


def report_from_measures(
    *,
    dimension: str,
    currency: str,
    timezone: str,
    first_day: date,
    last_day: date,
    measures: Mapping[Any, Mapping[str, int]],
    names: Mapping[Any, str],
    spend: Mapping[Any, Decimal] | None = None,
    total_spend: Decimal | None = None,
    fill_periods: bool = True,
) -> Report:
    """Rows (sorted by key; time buckets all listed, empty ones with zeros) and totals.
    `spend` maps a group key to its ad spend when spend is attributable to the dimension;
    `total_spend` is the spend of the whole filtered period (None: no spend data)."""
    keys: list[Any] = list(measures)
    if dimension in TIME_DIMENSIONS and fill_periods:
        keys = sorted(set(keys) | set(periods(first_day, last_day, dimension)))
    else:
        keys = sorted(keys, key=lambda k: (str(type(k)), k))
    rows: list[ReportRow] = []
    for k in keys:
        row_spend = None if spend is None else spend.get(k, Decimal(0))
        text = _key_text(k)
        rows.append(_row_from_measures(text, names.get(k, text), measures.get(k, {}), row_spend))
    summed: dict[str, int] = {}
    for m in measures.values():
        for n, value in m.items():
            summed[n] = summed.get(n, 0) + value
    totals = _row_from_measures("total", "Total", summed, total_spend)
    return Report(dimension, currency, timezone, first_day, last_day, tuple(rows), totals)


def previous_period(first_day: date, last_day: date) -> tuple[date, date]:
    """The period of equal length that ends the day before `first_day`."""
    length = (last_day - first_day).days + 1
    return first_day - timedelta(days=length), first_day - timedelta(days=1)


def _changes(current: ReportRow, previous: ReportRow | None) -> dict[str, Change]:
    out: dict[str, Change] = {}
    for name in COMPARED_FIELDS:
        now = getattr(current, name)
        before = None if previous is None else getattr(previous, name)
        if previous is None and name in COUNT_FIELDS + MONEY_FIELDS and name != "ad_spend":
            before = 0
        out[name] = Change(before, kpis.delta(now, before), kpis.delta_ratio(now, before))
    return out


def compare(current: Report, previous: Report) -> Comparison:
    """Each row against the previous period: categorical rows by key (a key absent before
    counts as zeros), time buckets by position (the 3rd day with the 3rd day before)."""
    rows: list[RowComparison] = []
    by_key = {r.key: r for r in previous.rows}
    for index, row in enumerate(current.rows):
        if current.dimension in TIME_DIMENSIONS:
            before = previous.rows[index] if index < len(previous.rows) else None
        else:
            before = by_key.get(row.key)
        rows.append(
            RowComparison(
                row.key, row.label, None if before is None else before.key, _changes(row, before)
            )
        )
    totals = RowComparison("total", "Total", "total", _changes(current.totals, previous.totals))
    return Comparison(previous.first_day, previous.last_day, tuple(rows), totals)


# --- output -----------------------------------------------------------------------------


def _cell(value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value  # type: ignore[no-any-return]


# A spreadsheet runs a cell starting with = + - @ (or a tab or CR) as a formula (CSV
# injection), and keys and labels come from outside: partner names, clicks' sub-ID values.
# Such a key or label is written after an apostrophe, which spreadsheets do not show — and
# so is one starting with an apostrophe, so `from_csv` takes exactly one off again.
_QUOTED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
TEXT_FIELDS = ("key", "label")


def spreadsheet_text(value: object) -> str:
    """A CSV cell of text from outside, safe to open in a spreadsheet."""
    text = str(value)
    return "'" + text if text.startswith(_QUOTED_STARTS) else text


def row_values(row: ReportRow, money: Any = None) -> dict[str, Any]:
    """A row as JSON-ready values: counts as ints, money and KPIs as exact decimal strings
    (money through `money(amount)` when given), undefined KPIs as None."""
    out: dict[str, Any] = {}
    for name in ROW_FIELDS:
        value = getattr(row, name)
        if name in MONEY_FIELDS and value is not None and money is not None:
            out[name] = money(value)
        else:
            out[name] = _cell(value)
    return out


def to_csv(report: Report, comparison: Comparison | None = None, money: Any = None) -> str:
    """The report as CSV (header + rows + totals): one column per ROW_FIELDS entry, then,
    with a comparison, `<field>_previous`, `<field>_delta`, `<field>_delta_pct` for the
    compared fields. Undefined values are empty cells."""
    header = list(ROW_FIELDS)
    if comparison is not None:
        for name in COMPARED_FIELDS:
            header += [f"{name}_previous", f"{name}_delta", f"{name}_delta_pct"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    compared = [] if comparison is None else [*comparison.rows, comparison.totals]
    for index, row in enumerate((*report.rows, report.totals)):
        values = row_values(row, money)
        line = ["" if values[n] is None else values[n] for n in ROW_FIELDS]
        line[:2] = [spreadsheet_text(values[n]) for n in TEXT_FIELDS]
        if comparison is not None:
            for name in COMPARED_FIELDS:
                ch = compared[index].changes[name]
                line += [
                    "" if x is None else str(x) for x in (ch.previous, ch.delta, ch.delta_ratio)
                ]
        writer.writerow(line)
    return buffer.getvalue()


def from_csv(text: str) -> list[dict[str, str | None]]:
    """Read back a report CSV: empty cells become None, keys and labels lose the apostrophe
    `to_csv` put in front of them (the inverse of `to_csv`)."""
    return [
        {
            k: (v[1:] if k in TEXT_FIELDS and v.startswith("'") else v) if v != "" else None
            for k, v in row.items()
        }
        for row in csv.DictReader(io.StringIO(text))
    ]


# --- leaderboards -----------------------------------------------------------------------

LEADERBOARD_METRICS = ("revenue", "conversions", "epc", "clicks", "commission", "conversion_rate")


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int
    key: str
    label: str
    value: Decimal | int
    clicks: int
    conversions: int
    previous_rank: int | None


def leaderboard(
    report: Report,
    metric: str,
    *,
    limit: int = 10,
    min_clicks: int = 0,
    previous: Report | None = None,
) -> list[Standing]:
    """Rows ranked by a metric, best first; ties by key. Ratio metrics (EPC, CR) need
    `min_clicks` clicks so a partner with one lucky click does not top the board."""

    def ranked(rep: Report) -> list[ReportRow]:
        eligible = [
            r
            for r in rep.rows
            if getattr(r, metric) is not None
            and r.clicks >= min_clicks
            and (getattr(r, metric) != 0 or metric in ("epc", "conversion_rate"))
        ]
        return sorted(eligible, key=lambda r: (-Decimal(getattr(r, metric)), r.key))

    before = {} if previous is None else {r.key: i + 1 for i, r in enumerate(ranked(previous))}
    return [
        Standing(
            i + 1, r.key, r.label, getattr(r, metric), r.clicks, r.conversions, before.get(r.key)
        )
        for i, r in enumerate(ranked(report)[:limit])
    ]


# --- partner activity and cohorts ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartnerActivity:
    active: tuple[int, ...]
    inactive: tuple[int, ...]

    @property
    def inactive_share(self) -> Decimal | None:
        return kpis.share(len(self.inactive), len(self.active) + len(self.inactive))


def partner_activity(
    last_activity: Mapping[int, date | None], today: date, inactive_after_days: int
) -> PartnerActivity:
    """Active = a click or conversion within the last N days (today included); inactive
    otherwise, including partners who never had one."""
    since = today - timedelta(days=inactive_after_days - 1)
    active = sorted(p for p, d in last_activity.items() if d is not None and d >= since)
    inactive = sorted(p for p, d in last_activity.items() if d is None or d < since)
    return PartnerActivity(tuple(active), tuple(inactive))


@dataclass(frozen=True, slots=True)
class Cohort:
    partner_id: int
    month: date
    size: int
    retained: tuple[int, ...]
    rates: tuple[Decimal | None, ...]


def _month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def cohort_retention(
    purchases: Iterable[tuple[str, int, date]], *, months: int, last_month: date | None = None
) -> list[Cohort]:
    """Customers acquired by a partner in month M (their first purchase in the program was
    in M and attributed to that partner) still purchasing in M+k, k = 0..months (any
    later purchase counts, whoever brought it). `purchases`: (customer, partner, local day).
    Months after `last_month` are not observed yet and are left out of `retained`."""
    first: dict[str, tuple[date, int]] = {}
    active: dict[str, set[int]] = {}
    for customer, partner, day in purchases:
        m = _month_index(day)
        active.setdefault(customer, set()).add(m)
        seen = first.get(customer)
        if seen is None or day < seen[0]:
            first[customer] = (day, partner)
    groups: dict[tuple[int, int], list[str]] = {}
    for customer, (day, partner) in first.items():
        groups.setdefault((partner, _month_index(day)), []).append(customer)
    horizon = None if last_month is None else _month_index(last_month)
    out: list[Cohort] = []
    for (partner, m), customers in sorted(groups.items()):
        retained: list[int] = []
        for k in range(months + 1):
            if horizon is not None and m + k > horizon:
                break
            retained.append(sum(1 for c in customers if m + k in active[c]))
        size = len(customers)
        out.append(
            Cohort(
                partner,
                date(m // 12, m % 12 + 1, 1),
                size,
                tuple(retained),
                tuple(kpis.retention_rate(n, size) for n in retained),
            )
        )
    return out
