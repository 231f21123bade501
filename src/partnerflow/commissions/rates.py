"""Exchange-rate table: convert order amounts into the program currency, recording the rate.

Amounts keep their original currency in the conversion record; commissions are computed on
the converted amount. The rate used (and its date) travels with the result so a statement
can show "100.00 USD at 0.92 (2024-03-15) = 92.00 EUR". Rates are stored Decimals, never
floats, and the converted amount is left exact — rounding happens once, on the ledger entry.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from partnerflow.core.clock import FIRST_DAY, LAST_DAY, ensure_utc
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import Money, check_currency

MAX_RATE_DECIMALS = 10
# No real currency pair is anywhere near this; a larger rate is a typo (or "1e999999"), and
# stored it would make every later conversion in the pair overflow.
MAX_RATE = Decimal(1_000_000_000)


@dataclass(frozen=True, slots=True)
class Rate:
    """1 `source` = `rate` `target`, valid from `valid_from` until the next rate for the pair."""

    source: str
    target: str
    rate: Decimal
    valid_from: date


@dataclass(frozen=True, slots=True)
class Converted:
    original: Money
    converted: Money  # exact (not rounded)
    rate: Decimal
    rate_date: date | None  # None when no conversion was needed

    def explanation(self) -> str:
        if self.rate_date is None:
            return f"{self.original.format()} (no conversion)"
        return (
            f"{self.original.format()} at {self.rate} ({self.rate_date.isoformat()}) = "
            f"{self.converted.format()}"
        )


@dataclass(frozen=True, slots=True)
class RateTable:
    rates: tuple[Rate, ...] = ()
    _index: dict[tuple[str, str], tuple[list[date], list[Rate]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        grouped: dict[tuple[str, str], list[Rate]] = {}
        for r in self.rates:
            grouped.setdefault((r.source, r.target), []).append(r)
        for pair, items in grouped.items():
            items.sort(key=lambda r: r.valid_from)
            days = [r.valid_from for r in items]
            if len(set(days)) != len(days):
                raise InvalidInput(
                    f"two {pair[0]}->{pair[1]} rates for the same date", field="rates"
                )
            self._index[pair] = (days, items)

    def rate_at(self, source: str, target: str, on: date) -> Rate:
        """The latest rate for the pair valid on `on`; the inverse pair is used if needed."""
        for pair, invert in (((source, target), False), ((target, source), True)):
            found = self._index.get(pair)
            if not found:
                continue
            days, items = found
            i = bisect_right(days, on)
            if i:
                r = items[i - 1]
                return Rate(source, target, Decimal(1) / r.rate, r.valid_from) if invert else r
        raise NotFound(f"no {source}->{target} rate on or before {on.isoformat()}", field="rate")

    def convert(self, money: Money, target: str, at: datetime) -> Converted:
        """`money` in `target` currency with the rate valid on the (UTC) day of `at`."""
        target = check_currency(target)
        if money.currency == target:
            return Converted(money, money, Decimal(1), None)
        rate = self.rate_at(money.currency, target, ensure_utc(at).date())
        return Converted(money, Money(money.amount * rate.rate, target), rate.rate, rate.valid_from)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class RateImport:
    rates: tuple[Rate, ...]
    errors: tuple[RowError, ...]


RATE_COLUMNS = ("date", "from", "to", "rate")


def parse_rates_csv(lines: Iterable[str]) -> RateImport:
    """Parse `date,from,to,rate` rows (header required). Good rows are returned, bad rows are
    reported with their line number so an operator can fix the file; callers should refuse
    the import when `errors` is not empty (nothing half-imported)."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        return RateImport((), (RowError(1, str(exc)),))
    if header is None or tuple(h.strip().lower() for h in header) != RATE_COLUMNS:
        return RateImport((), (RowError(1, f"header must be {','.join(RATE_COLUMNS)}"),))
    rates: list[Rate] = []
    errors: list[RowError] = []
    seen: set[tuple[str, str, date]] = set()
    try:
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(RATE_COLUMNS):
                errors.append(RowError(line_no, f"expected 4 columns, got {len(row)}"))
                continue
            raw_day, raw_src, raw_dst, raw_rate = (c.strip() for c in row)
            try:
                day = date.fromisoformat(raw_day)
            except ValueError:
                errors.append(RowError(line_no, f"date {raw_day[:20]!r} is not YYYY-MM-DD"))
                continue
            if not FIRST_DAY <= day <= LAST_DAY:
                errors.append(RowError(line_no, "date must be in 2000-2200"))
                continue
            try:
                src, dst = check_currency(raw_src), check_currency(raw_dst)
            except InvalidInput as exc:
                errors.append(RowError(line_no, exc.message))
                continue
            if src == dst:
                errors.append(RowError(line_no, "from and to are the same currency"))
                continue
            try:
                # Decimal() also reads '1_000' and non-ASCII digits: not a rate.
                if not raw_rate.isascii() or "_" in raw_rate:
                    raise InvalidOperation
                rate = Decimal(raw_rate)
            except InvalidOperation:
                errors.append(RowError(line_no, f"rate {raw_rate[:20]!r} is not a number"))
                continue
            if not rate.is_finite() or rate <= 0:
                errors.append(RowError(line_no, "rate must be a positive number"))
                continue
            if rate > MAX_RATE:
                errors.append(RowError(line_no, f"rate must be at most {MAX_RATE}"))
                continue
            exponent = rate.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > MAX_RATE_DECIMALS:
                errors.append(RowError(line_no, f"rate has more than {MAX_RATE_DECIMALS} decimals"))
                continue
            if (src, dst, day) in seen:
                errors.append(
                    RowError(line_no, f"duplicate {src}->{dst} rate for {day.isoformat()}")
                )
                continue
            seen.add((src, dst, day))
            rates.append(Rate(src, dst, rate, day))
    except csv.Error as exc:
        errors.append(RowError(reader.line_num, str(exc)))
    return RateImport(tuple(rates), tuple(errors))
