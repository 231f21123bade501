"""Report rows and totals from raw per-group sums (pure: the SQL lives in storage.reports).

A row's KPIs are computed from its own sums, and the totals row from the summed sums —
never by averaging the rows' ratios, which would weight a 1-click partner like a star.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from partnerflow.analytics import kpis


class Sums(Protocol):
    """What a report row is built from (storage.reports.GroupSums satisfies it)."""

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


@dataclass(frozen=True, slots=True)
class Report:
    dimension: str
    currency: str
    timezone: str
    first_day: date
    last_day: date
    rows: tuple[ReportRow, ...]
    totals: ReportRow


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
) -> ReportRow:
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
    )


def build_report(
    *,
    dimension: str,
    currency: str,
    timezone: str,
    first_day: date,
    last_day: date,
    groups: Iterable[Sums],
    names: Mapping[int | date, str],
) -> Report:
    rows: list[ReportRow] = []
    for g in groups:
        key = g.key.isoformat() if isinstance(g.key, date) else str(g.key)
        rows.append(
            make_row(
                key,
                names.get(g.key, key),
                clicks=g.clicks,
                unique_clicks=g.unique_clicks,
                conversions=g.conversions,
                refunds=g.refunds,
                revenue=g.revenue,
                commission=g.commission,
            )
        )
    totals = make_row(
        "total",
        "Total",
        clicks=sum(r.clicks for r in rows),
        unique_clicks=sum(r.unique_clicks for r in rows),
        conversions=sum(r.conversions for r in rows),
        refunds=sum(r.refunds for r in rows),
        revenue=sum((r.revenue for r in rows), Decimal(0)),
        commission=sum((r.commission for r in rows), Decimal(0)),
    )
    return Report(dimension, currency, timezone, first_day, last_day, tuple(rows), totals)
