"""Rollup grain: raw event aggregates turned into daily rows, and rows into report groups.

Pure (no SQL; it sits in `storage` because both the SQL and the DuckDB adapters use it,
and import-linter keeps `storage` and `analytics` independent): both run the same
GROUP BY over raw events, in 15-minute UTC buckets, and hand the rows here in the fixed
shapes documented below. This module maps each bucket to the program's local day, derives
the channel, and sums measures per grain key. Because every measure is a plain sum, a
grain built from any split of the events into batches, in any order, equals the grain of
all events at once — the property the rollup job relies on and the tests check.

Counting conventions (the same as `storage.reports.report_sums`): bot clicks are counted
apart (`bot_clicks`) and never in `clicks`; conversions count when attributed to a partner
and not rejected; refunds are conversions in status `reversed`; revenue is the amount of
counted, non-refunded conversions in the program's currency, net of partial refunds
(`amount_micros - refunded_micros`); commission is the net of the
ledger's commission, reversal and adjustment entries in the program's currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from partnerflow.storage.channels import click_channel, conversion_channel

BUCKET_SECONDS = 900
TRAFFIC_MEASURES = ("clicks", "unique_clicks", "bot_clicks", "impressions")
CONVERSION_MEASURES = (
    "conversions",
    "refunds",
    "sales",
    "leads",
    "orders",
    "revenue_micros",
    "sale_revenue_micros",
    "commission_micros",
)
LEAD_TYPES = frozenset({"lead", "signup"})

# (program_id, day, partner_id, offer_id, link_id, country, device, channel, coupon_code,
#  extra, creative_id) — `extra` is '' in rollups and a sub-ID value in ad-hoc sub-ID
# reports; `creative_id` is 0 for events without a creative.
GrainKey = tuple[int, date, int, int, int, str, str, str, str, str, int]
P, DAY, PARTNER, OFFER, LINK, COUNTRY, DEVICE, CHANNEL, COUPON, EXTRA, CREATIVE = range(11)

# Dimensions a report can be grouped by, and the grain field each reads.
DIMENSION_FIELD: Mapping[str, int] = {
    "partner": PARTNER,
    "offer": OFFER,
    "link": LINK,
    "day": DAY,
    "week": DAY,
    "month": DAY,
    "country": COUNTRY,
    "device": DEVICE,
    "channel": CHANNEL,
    "coupon": COUPON,
    "creative": CREATIVE,
    **{f"sub{i}": EXTRA for i in range(1, 6)},
}
TIME_DIMENSIONS = frozenset({"day", "week", "month"})
# Impressions carry no geo, device, referrer, coupon or sub-ID: by those dimensions they are
# left out (CTR n/a) rather than shown as an "unknown" row. They do carry their creative.
NO_IMPRESSIONS = frozenset(
    {"country", "device", "channel", "coupon"} | {f"sub{i}" for i in range(1, 6)}
)


@dataclass(frozen=True, slots=True)
class ProgramFacts:
    """What grain building needs to know about a program."""

    id: int
    currency: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Filters:
    """Report filters; empty means "all". Countries upper case, devices lower case."""

    partner_ids: tuple[int, ...] = ()
    offer_ids: tuple[int, ...] = ()
    countries: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    def accepts(self, key: GrainKey) -> bool:
        return (
            (not self.partner_ids or key[PARTNER] in self.partner_ids)
            and (not self.offer_ids or key[OFFER] in self.offer_ids)
            and (not self.countries or key[COUNTRY] in self.countries)
            and (not self.devices or key[DEVICE] in self.devices)
        )


NO_FILTERS = Filters()


def period_key(day: date, dimension: str) -> date:
    """The bucket a local day falls in: itself, its ISO week's Monday, or its month's 1st."""
    if dimension == "week":
        return day - timedelta(days=day.weekday())
    if dimension == "month":
        return day.replace(day=1)
    return day


@dataclass
class GrainBuilder:
    """Accumulates raw aggregate rows into traffic and conversion grain rows."""

    programs: Mapping[int, ProgramFacts]
    networks: Mapping[int, str | None] = field(default_factory=dict)
    traffic: dict[GrainKey, list[int]] = field(default_factory=dict)
    conversions: dict[GrainKey, list[int]] = field(default_factory=dict)
    _days: dict[tuple[str, int], date] = field(default_factory=dict)
    _zones: dict[str, ZoneInfo] = field(default_factory=dict)

    def day(self, program_id: int, bucket: Any) -> date:
        tz = self.programs[program_id].timezone
        b = int(bucket)
        found = self._days.get((tz, b))
        if found is None:
            zone = self._zones.get(tz) or self._zones.setdefault(tz, ZoneInfo(tz))
            found = datetime.fromtimestamp(b * BUCKET_SECONDS, tz=UTC).astimezone(zone).date()
            self._days[(tz, b)] = found
        return found

    def _slot(self, table: dict[GrainKey, list[int]], key: GrainKey, width: int) -> list[int]:
        slot = table.get(key)
        if slot is None:
            slot = table[key] = [0] * width
        return slot

    def add_clicks(self, rows: Iterable[Sequence[Any]]) -> None:
        """rows: (program_id, bucket, partner_id, offer_id, link_id, country, device,
        referrer, extra, creative_id, non-bot clicks, non-bot unique clicks, bot clicks)."""
        for row in rows:
            pid, bucket, partner, offer, link, country, device, ref, extra, cr = row[:10]
            n, uniq, bots = row[10:]
            key: GrainKey = (
                int(pid),
                self.day(pid, bucket),
                int(partner),
                int(offer),
                int(link),
                country or "",
                device or "",
                click_channel(ref, self.networks.get(int(partner))),
                "",
                extra or "",
                int(cr or 0),
            )
            slot = self._slot(self.traffic, key, 4)
            slot[0] += int(n)
            slot[1] += int(uniq)
            slot[2] += int(bots)

    def add_impressions(self, rows: Iterable[Sequence[Any]]) -> None:
        """rows: (program_id, bucket, partner_id, offer_id, link_id, creative_id, non-bot
        impressions)."""
        for pid, bucket, partner, offer, link, cr, n in rows:
            key: GrainKey = (
                int(pid),
                self.day(pid, bucket),
                int(partner),
                int(offer),
                int(link),
                "",
                "",
                "",
                "",
                "",
                int(cr or 0),
            )
            self._slot(self.traffic, key, 4)[3] += int(n)

    def _conversion_key(self, row: Sequence[Any]) -> GrainKey:
        pid, bucket, partner, offer, link, country, device, ref, coupon, by, extra, cr = row[:12]
        return (
            int(pid),
            self.day(pid, bucket),
            int(partner),
            int(offer or 0),
            int(link or 0),
            country or "",
            device or "",
            conversion_channel(by, ref, self.networks.get(int(partner))),
            coupon or "",
            extra or "",
            int(cr or 0),
        )

    def add_conversions(self, rows: Iterable[Sequence[Any]]) -> None:
        """rows: (program_id, bucket, partner_id, offer_id, link_id, country, device,
        referrer, coupon_code, attributed_by, extra, creative_id (the click's), event_type,
        status, currency, count, sum of amount_micros - refunded_micros) — counted
        (attributed, not rejected) conversions only."""
        for row in rows:
            key = self._conversion_key(row)
            event_type, status, currency, n, amount = row[12:17]
            n, amount = int(n), int(amount or 0)
            slot = self._slot(self.conversions, key, 8)
            slot[0] += n
            refunded = status == "reversed"
            if refunded:
                slot[1] += n
            if event_type == "sale":
                slot[2] += n
            elif event_type in LEAD_TYPES:
                slot[3] += n
            if not refunded and currency == self.programs[int(row[0])].currency:
                slot[5] += amount
                if event_type == "sale":
                    slot[4] += n
                    slot[6] += amount

    def add_ledger(self, rows: Iterable[Sequence[Any]]) -> None:
        """rows: the first 12 fields of a conversion row, then (currency, sum of the
        commission, reversal and adjustment entries in micro-units)."""
        for row in rows:
            currency, amount = row[12], int(row[13] or 0)
            if currency != self.programs[int(row[0])].currency:
                continue
            self._slot(self.conversions, self._conversion_key(row), 8)[7] += amount


def group_measures(
    grain: Mapping[GrainKey, Sequence[int]],
    names: Sequence[str],
    dimension: str,
    filters: Filters = NO_FILTERS,
    first_day: date | None = None,
    last_day: date | None = None,
) -> dict[Any, dict[str, int]]:
    """Sum grain rows into report groups keyed by the dimension's value."""
    if dimension == "coupon" and "clicks" in names:
        return {}  # coupon orders have no clicks: the coupon report is conversions only
    index = DIMENSION_FIELD[dimension]
    skip_impressions = dimension in NO_IMPRESSIONS
    out: dict[Any, dict[str, int]] = {}
    for key, values in grain.items():
        if not filters.accepts(key):
            continue
        day = cast(date, key[DAY])
        if first_day is not None and day < first_day:
            continue
        if last_day is not None and day > last_day:
            continue
        group: Any = period_key(day, dimension) if index == DAY else key[index]
        slot = out.setdefault(group, {})
        for name, value in zip(names, values, strict=True):
            if skip_impressions and name == "impressions":
                continue
            slot[name] = slot.get(name, 0) + int(value)
    return out


def merge_measures(*parts: Mapping[Any, Mapping[str, int]]) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for part in parts:
        for key, sums in part.items():
            slot = out.setdefault(key, {})
            for name, value in sums.items():
                slot[name] = slot.get(name, 0) + value
    return {k: v for k, v in out.items() if any(v.values())}
