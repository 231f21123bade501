"""Ad spend: CSV parsing with a row-by-row error report, cost KPIs and budget suggestions.

Formulas (per channel, campaign or partner, over a date range):
  CPC = spend / clicks      CPL = spend / leads      CPA = spend / sales
  ROAS = revenue / spend    profit = revenue - spend - partner commissions
Outcomes (clicks, leads, sales, revenue, commissions) come from the partner a spend row
names, on that row's day; when several rows fund the same partner on the same day, each gets
a share of that day's outcomes proportional to its spend. Rows without a partner carry cost
but no attributed outcomes.
"""

from __future__ import annotations

import csv
import enum
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from partnerflow.core.clock import FIRST_DAY
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import PartnerId
from partnerflow.core.kpis import (
    cost_per_acquisition,
    cost_per_click,
    cost_per_lead,
    return_on_ad_spend,
)
from partnerflow.core.money import MAX_AMOUNT, Money, check_currency
from partnerflow.core.text import describe_character, unsafe_display_character

REQUIRED = ("day", "channel", "campaign", "amount")
OPTIONAL = ("partner", "currency")
MAX_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class SpendRow:
    day: date
    channel: str
    campaign: str
    partner_id: PartnerId | None
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class SpendParse:
    rows: tuple[SpendRow, ...]
    errors: tuple[str, ...]  # 'line 3: unknown partner 'bob@x'' ... (header is line 1)


def _text(value: str | None, name: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise ValueError(f"empty {name}")
    if len(text) > limit:
        raise ValueError(f"{name} longer than {limit} characters")
    # Channels and campaigns are what the spend reports show: display text (as the API's).
    unsafe = unsafe_display_character(text)
    if unsafe is not None:
        raise ValueError(f"{name} must not contain {describe_character(unsafe)}")
    return text


def parse_spend_row(
    raw: Mapping[str, str | None],
    *,
    currency: str,
    today: date,
    partners: Mapping[str, PartnerId],
) -> SpendRow:
    """One row from a CSV or an API call; raises ValueError with the reason."""
    day_text = (raw.get("day") or raw.get("date") or "").strip()
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ValueError(f"bad day {day_text[:32]!r} (want YYYY-MM-DD)") from None
    if day > today:
        raise ValueError(f"day {day} is in the future (today is {today})")
    if day < FIRST_DAY:  # the future is refused above
        raise ValueError(f"day {day} is before {FIRST_DAY.year} (days are in 2000-2200)")
    channel = _text(raw.get("channel"), "channel", 64).lower()
    campaign = _text(raw.get("campaign"), "campaign", 128)
    partner_ref = (raw.get("partner") or "").strip()
    partner_id: PartnerId | None = None
    if partner_ref:
        found = partners.get(partner_ref.lower())
        if found is None:
            raise ValueError(f"unknown partner {partner_ref[:64]!r}")
        partner_id = found
    amount_text = (raw.get("amount") or "").strip()
    try:
        # Decimal() also reads '1_000' and non-ASCII digits: not an amount (as parse_amount).
        if not amount_text.isascii() or "_" in amount_text:
            raise InvalidOperation
        amount = Decimal(amount_text)
    except InvalidOperation:
        raise ValueError(f"amount {amount_text[:32]!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"amount {amount_text[:32]!r} must be a non-negative number")
    if amount > MAX_AMOUNT or amount != amount.quantize(Decimal("0.000001")):
        raise ValueError(f"amount {amount_text[:32]!r} is out of range or too precise")
    row_currency = (raw.get("currency") or "").strip().upper() or currency
    if row_currency != currency:
        raise ValueError(f"currency {row_currency[:8]!r} differs from the program's {currency}")
    return SpendRow(day, channel, campaign, partner_id, amount, currency)


def parse_spend_csv(
    text: str, *, currency: str, today: date, partners: Mapping[str, PartnerId]
) -> SpendParse:
    """Parse every row and collect every error (the caller imports nothing if any)."""
    check_currency(currency)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        return SpendParse((), (f"line 1: {exc}",))
    missing = [c for c in REQUIRED if c not in header and not (c == "day" and "date" in header)]
    if missing:
        return SpendParse((), (f"line 1: header lacks {', '.join(missing)}",))
    unknown = [h for h in header if h not in (*REQUIRED, *OPTIONAL, "date")]
    if unknown:
        return SpendParse((), (f"line 1: unknown column(s) {', '.join(unknown)}",))
    reader.fieldnames = header
    rows: list[SpendRow] = []
    errors: list[str] = []
    seen: dict[tuple[object, ...], int] = {}
    try:
        for raw in reader:
            line = reader.line_num
            if len(rows) + len(errors) >= MAX_ROWS:
                errors.append(f"line {line}: more than {MAX_ROWS} rows; split the file")
                break
            if None in raw:
                errors.append(f"line {line}: more fields than the header")
                continue
            try:
                row = parse_spend_row(raw, currency=currency, today=today, partners=partners)
            except (ValueError, InvalidInput) as exc:
                errors.append(f"line {line}: {exc}")
                continue
            identity = (row.day, row.channel, row.campaign, row.partner_id)
            if identity in seen:
                errors.append(
                    f"line {line}: duplicates line {seen[identity]} (same day, channel, "
                    "campaign and partner)"
                )
                continue
            seen[identity] = line
            rows.append(row)
    except csv.Error as exc:  # a field over the limit: the underlying reader has its line
        errors.append(f"line {reader.reader.line_num}: {exc}")
    if not rows and not errors:
        errors.append("the file has no data rows")
    return SpendParse(tuple(rows), tuple(errors))


@dataclass(frozen=True, slots=True)
class Outcome:
    clicks: Decimal = Decimal(0)
    leads: Decimal = Decimal(0)
    sales: Decimal = Decimal(0)
    revenue: Decimal = Decimal(0)
    payout: Decimal = Decimal(0)

    def scaled(self, share: Decimal) -> Outcome:
        return Outcome(*(getattr(self, f) * share for f in _FIELDS))

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(*(getattr(self, f) + getattr(other, f) for f in _FIELDS))


_FIELDS = ("clicks", "leads", "sales", "revenue", "payout")


class Dimension(enum.StrEnum):
    CHANNEL = "channel"
    CAMPAIGN = "campaign"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class SpendKpis:
    key: str
    spend: Decimal
    outcome: Outcome
    cpc: Decimal | None
    cpl: Decimal | None
    cpa: Decimal | None
    roas: Decimal | None
    profit: Decimal


def kpis(key: str, spend: Decimal, outcome: Outcome) -> SpendKpis:
    """The catalogue's formulas and rounding (`core.kpis`, docs/kpis.md): the same CPC or
    ROAS as a report row shows. Profit is a sum of exact amounts, not rounded."""
    return SpendKpis(
        key=key,
        spend=spend,
        outcome=outcome,
        cpc=cost_per_click(spend, outcome.clicks),
        cpl=cost_per_lead(spend, outcome.leads),
        cpa=cost_per_acquisition(spend, outcome.sales),
        roas=return_on_ad_spend(outcome.revenue, spend),
        profit=outcome.revenue - spend - outcome.payout,
    )


_MICRO = Decimal("0.000001")


def number_text(value: Decimal | None) -> str | None:
    """A figure as text: at most 6 decimals (half-up), no trailing zeros. KPIs keep their
    catalogue rounding; shared-out counts and amounts (a share of a day's outcomes) stop at
    micro-units."""
    if value is None:
        return None
    return f"{value.quantize(_MICRO, rounding=ROUND_HALF_UP).normalize():f}"


def kpi_fields(k: SpendKpis) -> dict[str, str | None]:
    """One line of a spend report as the CLI's JSON and the REST API give it."""
    o = k.outcome
    return {
        "key": k.key,
        **{
            name: number_text(value)
            for name, value in (
                ("spend", k.spend), ("clicks", o.clicks), ("leads", o.leads),
                ("sales", o.sales), ("revenue", o.revenue), ("commissions", o.payout),
                ("cpc", k.cpc), ("cpl", k.cpl), ("cpa", k.cpa), ("roas", k.roas),
                ("profit", k.profit),
            )
        },
    }  # fmt: skip


def _key(row: SpendRow, dimension: Dimension) -> str:
    if dimension is Dimension.CHANNEL:
        return row.channel
    if dimension is Dimension.CAMPAIGN:
        return f"{row.channel}/{row.campaign}"
    return "(no partner)" if row.partner_id is None else str(row.partner_id)


def report(
    rows: Iterable[SpendRow],
    outcomes: Mapping[tuple[PartnerId, date], Outcome],
    dimension: Dimension,
) -> list[SpendKpis]:
    """KPIs per channel, campaign or partner; outcomes of a (partner, day) are split among
    the rows funding that partner that day in proportion to their spend."""
    rows = list(rows)
    funded: dict[tuple[PartnerId, date], Decimal] = {}
    for row in rows:
        if row.partner_id is not None:
            k = (row.partner_id, row.day)
            funded[k] = funded.get(k, Decimal(0)) + row.amount
    spend: dict[str, Decimal] = {}
    got: dict[str, Outcome] = {}
    for row in rows:
        key = _key(row, dimension)
        spend[key] = spend.get(key, Decimal(0)) + row.amount
        got.setdefault(key, Outcome())
        if row.partner_id is None:
            continue
        k = (row.partner_id, row.day)
        outcome = outcomes.get(k)
        if outcome is None:
            continue
        total = funded[k]
        share = (
            Decimal(1) / sum(1 for r in rows if (r.partner_id, r.day) == k)
            if total == 0
            else (row.amount / total)
        )
        got[key] = got[key] + outcome.scaled(share)
    return [kpis(key, spend[key], got[key]) for key in sorted(spend)]


class Verdict(enum.StrEnum):
    SCALE = "scale"
    HOLD = "hold"
    CUT = "cut"


# The target ROAS a budget suggestion aims for, as the CLI (`spend suggest --target-roas`)
# and the API (`?target_roas=`) take it: a plain decimal of at most 16 characters (no
# exponent, sign or non-ASCII digits), above 0 and at most 1000 revenue per unit of spend.
# Unbounded, `1e999999999` overflowed Decimal's context in `suggest` on any line with
# enough data (a traceback) and `1e-999999999` made its reason a billion zeros long.
MAX_TARGET_ROAS = Decimal(1000)
_TARGET_ROAS_RE = re.compile(r"\A[0-9.]{1,16}\Z")


def parse_target_roas(text: str, name: str = "target_roas") -> Decimal:
    """The target ROAS `text` says, or InvalidInput naming `name` (the option or parameter
    the user typed) and the bounds."""
    reason = (
        f"{name} must be a decimal number above 0 and at most {MAX_TARGET_ROAS} (e.g. 2 or 1.5)"
    )
    if not _TARGET_ROAS_RE.match(text):
        raise InvalidInput(reason, field="target_roas")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(reason, field="target_roas") from None
    if not 0 < value <= MAX_TARGET_ROAS:
        raise InvalidInput(reason, field="target_roas")
    return value


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    target_roas: Decimal = Decimal(2)
    scale_margin: Decimal = Decimal("1.25")  # scale when ROAS >= target x margin
    min_clicks: int = 100  # below this and min_sales, the data says nothing yet
    min_sales: int = 5
    scale_step_percent: Decimal = Decimal(20)
    cut_step_percent: Decimal = Decimal(50)


@dataclass(frozen=True, slots=True)
class Suggestion:
    key: str
    verdict: Verdict
    budget_change_percent: Decimal
    reason: str
    kpis: SpendKpis = field(repr=False)


def suggest(
    rows: Iterable[SpendKpis], currency: str, policy: BudgetPolicy | None = None
) -> list[Suggestion]:
    """Scale, hold or cut each line, with the reason in one sentence."""
    p = policy or BudgetPolicy()
    out = []
    for k in rows:
        # For reading: ROAS to two decimals, profit in the currency's minor units.
        roas = "n/a" if k.roas is None else f"{k.roas.quantize(Decimal('0.01'), ROUND_HALF_UP)}"
        profit = f"{Money(k.profit, currency).rounded().amount} {currency}"
        if k.spend == 0:
            verdict, change, why = Verdict.HOLD, Decimal(0), "no spend in the range"
        elif k.outcome.clicks < p.min_clicks and k.outcome.sales < p.min_sales:
            verdict, change = Verdict.HOLD, Decimal(0)
            why = (
                f"not enough data yet ({k.outcome.clicks.normalize():f} clicks < {p.min_clicks}"
                f", {k.outcome.sales.normalize():f} sales < {p.min_sales})"
            )
        elif k.profit < 0:
            verdict, change = Verdict.CUT, -p.cut_step_percent
            why = f"ROAS {roas} and profit {profit}: revenue does not cover spend and commissions"
        elif k.roas is not None and k.roas >= p.target_roas * p.scale_margin:
            verdict, change = Verdict.SCALE, p.scale_step_percent
            why = (
                f"ROAS {roas} >= {(p.target_roas * p.scale_margin).normalize():f} "
                f"({p.scale_margin.normalize():f} x target {p.target_roas.normalize():f}) "
                f"and profit {profit}"
            )
        elif k.roas is not None and k.roas < p.target_roas:
            verdict, change = Verdict.HOLD, Decimal(0)
            why = f"profitable ({profit}) but ROAS {roas} is below the target {p.target_roas}"
        else:
            verdict, change = Verdict.HOLD, Decimal(0)
            why = f"ROAS {roas} on target, profit {profit}"
        out.append(Suggestion(k.key, verdict, change, why, k))
    return out
