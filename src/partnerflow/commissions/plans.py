"""Commission plans as data: versioned, effective-dated rule sets and the engine applying them.

A plan is a TOML/JSON document (see docs/attribution-and-commissions.md). Each version is in
force over a half-open interval [effective_from, effective_to); a conversion is paid by the
version in force when it happened, so editing a plan never rewrites past commissions.
Inside a version the per-partner override rules are tried first, then the general rules, in
the order written; the first rule whose event types and conditions match pays. Bonuses are
added on top of a paying rule. Amounts stay exact until the total, which is rounded half-up
to the currency's minor unit exactly once.

Validation errors name the offending field by path (`versions[1].rules[0].tiers[2].from`) so
a program manager can fix the file without reading code.
"""

from __future__ import annotations

import enum
import json
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from partnerflow.commissions.model import Commission, CommissionPlan, PercentPlan
from partnerflow.core.clock import ensure_utc
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import Money, check_currency, parse_amount
from partnerflow.core.text import describe_character, unsafe_character

HUNDRED = Decimal(100)


class RuleType(enum.StrEnum):
    CPA = "cpa"  # flat per acquisition/sale
    CPS = "cps"  # percent of the order value
    CPL = "cpl"  # flat per lead
    CPC = "cpc"  # flat per (valid) click
    RECURRING = "recurring"  # subscription renewals for N months or for life


class BonusType(enum.StrEnum):
    TARGET = "target"  # the conversion that reaches the period target
    REPEAT_CUSTOMER = "repeat_customer"  # referred customer's Nth purchase or later
    NEW_CUSTOMER = "new_customer"
    RETURNING_CUSTOMER = "returning_customer"


class TierPeriod(enum.StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


# Which conversion events each rule type pays for unless the rule lists `events` itself.
DEFAULT_EVENTS: dict[RuleType, frozenset[str]] = {
    RuleType.CPA: frozenset({"sale", "signup", "custom"}),
    RuleType.CPS: frozenset({"sale"}),
    RuleType.CPL: frozenset({"lead", "signup"}),
    RuleType.CPC: frozenset({"click"}),
    RuleType.RECURRING: frozenset({"renewal"}),
}
KNOWN_EVENTS = frozenset({"sale", "lead", "signup", "custom", "click", "renewal"})
# A subscription's payments: the first is its sale, the later ones renewals.
SUBSCRIPTION_EVENTS = frozenset({"sale", "renewal"})
_PERCENT_TYPES = frozenset({RuleType.CPS})
_FLAT_TYPES = frozenset({RuleType.CPA, RuleType.CPL, RuleType.CPC})


@dataclass(frozen=True, slots=True)
class Rate:
    """Either a percent of the order value or a flat amount in the plan currency."""

    percent: Decimal | None = None
    amount: Decimal | None = None

    def apply(self, order_value: Decimal | None, currency: str) -> tuple[Decimal, str]:
        """The exact amount and the arithmetic, e.g. '200.00 EUR x 10% = 20.0000'."""
        if self.percent is not None:
            if order_value is None:
                raise InvalidInput("a percent commission needs the order value", field="amount")
            exact = order_value * self.percent / HUNDRED
            return exact, f"{order_value} {currency} x {self.percent}% = {exact}"
        assert self.amount is not None
        return self.amount, f"flat {self.amount} {currency}"

    def describe(self) -> str:
        return f"{self.percent}%" if self.percent is not None else f"flat {self.amount}"


@dataclass(frozen=True, slots=True)
class Tier:
    """Conversions number `start`..`end` (inclusive; `end` None = and beyond) of a period."""

    start: int
    end: int | None
    rate: Rate

    def contains(self, n: int) -> bool:
        return self.start <= n and (self.end is None or n <= self.end)

    def describe(self) -> str:
        upper = f"-{self.end}" if self.end is not None else "+"
        return f"conversions {self.start}{upper}"


@dataclass(frozen=True, slots=True)
class Conditions:
    countries: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    offers: frozenset[int] | None = None
    min_order: Decimal | None = None  # inclusive
    max_order: Decimal | None = None  # exclusive, so ranges can be written back to back
    customer: str | None = None  # "new" | "returning"

    def mismatch(self, ctx: ConversionContext) -> str | None:
        """Why the conversion does not meet the conditions, or None when it does."""
        if self.countries is not None and (ctx.country or "").upper() not in self.countries:
            return f"country {ctx.country or 'unknown'} not in {sorted(self.countries)}"
        if self.categories is not None and (ctx.category or "") not in self.categories:
            return f"category {ctx.category or 'unknown'} not in {sorted(self.categories)}"
        if self.offers is not None and ctx.offer_id not in self.offers:
            return f"offer {ctx.offer_id} not in {sorted(self.offers)}"
        value = ctx.order_value.amount if ctx.order_value is not None else None
        if self.min_order is not None and (value is None or value < self.min_order):
            return f"order value {value} below minimum {self.min_order}"
        if self.max_order is not None and (value is None or value >= self.max_order):
            return f"order value {value} not below maximum {self.max_order}"
        if self.customer == "new" and ctx.new_customer is not True:
            return "customer is not new"
        if self.customer == "returning" and ctx.new_customer is not False:
            return "customer is not returning"
        return None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    type: RuleType
    events: frozenset[str]
    rate: Rate | None
    tiers: tuple[Tier, ...] = ()
    tier_period: TierPeriod = TierPeriod.MONTH
    when: Conditions = field(default_factory=Conditions)
    months: int | None = None  # recurring only; None = lifetime

    def rate_for(self, period_count: int) -> tuple[Rate, str]:
        if not self.tiers:
            assert self.rate is not None
            return self.rate, ""
        for tier in self.tiers:
            if tier.contains(period_count):
                return tier.rate, (
                    f"tier {tier.describe()} this {self.tier_period.value} "
                    f"(this is conversion {period_count})"
                )
        raise InvalidInput(f"period count {period_count} matches no tier", field="period_count")


@dataclass(frozen=True, slots=True)
class Bonus:
    id: str
    type: BonusType
    rate: Rate
    threshold: int | None = None
    when: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True, slots=True)
class PlanVersion:
    plan_id: str
    version: int
    effective_from: datetime
    effective_to: datetime | None  # exclusive; None = open-ended
    currency: str
    rules: tuple[Rule, ...]
    overrides: Mapping[int, tuple[Rule, ...]] = field(default_factory=dict)
    bonuses: tuple[Bonus, ...] = ()

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)

    def label(self) -> str:
        until = self.effective_to.isoformat() if self.effective_to else "open-ended"
        return f"{self.plan_id} v{self.version} ({self.effective_from.isoformat()} to {until})"


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    currency: str
    versions: tuple[PlanVersion, ...]


@dataclass(frozen=True, slots=True)
class ConversionContext:
    """What the engine needs to know about one conversion (already in the plan currency).

    `period_count` is this conversion's ordinal among the partner's paying conversions in
    the rule's tier period (1 = first of the month); `customer_purchases` counts the
    referred customer's purchases including this one; `subscription_month` is the number
    of the subscription payment (first payment = 1) for renewals.
    """

    event: str
    at: datetime
    partner_id: int
    order_value: Money | None = None
    country: str | None = None
    category: str | None = None
    offer_id: int | None = None
    new_customer: bool | None = None
    period_count: int = 1
    customer_purchases: int = 1
    subscription_month: int | None = None


@dataclass(frozen=True, slots=True)
class CommissionResult:
    amount: Money
    rule_id: str | None
    plan_id: str
    plan_version: int
    bonuses: tuple[str, ...]
    explanation: str

    def to_commission(self) -> Commission:
        return Commission(self.amount, self.explanation)


# --------------------------------------------------------------------------- parsing


def _fail(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", field=path)


def _obj(raw: object, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(path, "must be a table/object")
    return raw


def _list(raw: object, path: str) -> list[Any]:
    if not isinstance(raw, list):
        raise _fail(path, "must be a list")
    return raw


def _no_unknown(data: Mapping[str, Any], allowed: Collection[str], path: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _fail(
            path, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _decimal(raw: object, path: str) -> Decimal:
    try:
        return parse_amount(raw, field=path)
    except InvalidInput as exc:
        raise _fail(path, exc.message.removeprefix(f"{path} ")) from None


def _percent(raw: object, path: str) -> Decimal:
    value = _decimal(raw, path)
    if value > HUNDRED:
        raise _fail(path, "must be between 0 and 100")
    return value


# Version numbers, partner and offer ids and counts are stored in 32-bit integer columns.
MAX_INT = 2_147_483_647
MAX_TEXT = 200
MAX_PLAN_ID = 64  # commission_plans.plan_id


def _int(raw: object, path: str, minimum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _fail(path, "must be an integer")
    if raw < minimum:
        raise _fail(path, f"must be at least {minimum}")
    if raw > MAX_INT:
        raise _fail(path, f"must be at most {MAX_INT}")
    return raw


def _text(raw: object, path: str, max_length: int = MAX_TEXT) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(path, "must be a non-empty string")
    text = raw.strip()
    if len(text) > max_length:
        raise _fail(path, f"must be at most {max_length} characters")
    # A JSON "\ud800" escape decodes to a lone surrogate, which no database can store as
    # text and no response can encode; control and bidirectional or invisible formatting
    # characters have no place in an id either (`core.text`).
    unsafe = unsafe_character(text)
    if unsafe is not None:
        raise _fail(path, f"must not contain {describe_character(unsafe)}")
    return text


def _moment(raw: object, path: str) -> datetime:
    """A timezone-aware instant; a bare date means midnight UTC."""
    value: object = raw
    if isinstance(raw, str):
        try:
            value = (
                date.fromisoformat(raw) if len(raw.strip()) == 10 else datetime.fromisoformat(raw)
            )
        except ValueError:
            raise _fail(path, f"not an ISO date/time: {raw[:40]!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _fail(path, "date-time needs a UTC offset (e.g. 2024-01-01T00:00:00Z)")
        return ensure_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise _fail(path, "must be a date or date-time")


def _rate(data: Mapping[str, Any], path: str, percent_ok: bool, flat_ok: bool) -> Rate:
    has_p, has_a = "percent" in data, "amount" in data
    if has_p and has_a:
        raise _fail(path, "give either percent or amount, not both")
    if has_p:
        if not percent_ok:
            raise _fail(f"{path}.percent", "this rule type pays a flat amount, use amount")
        return Rate(percent=_percent(data["percent"], f"{path}.percent"))
    if has_a:
        if not flat_ok:
            raise _fail(f"{path}.amount", "this rule type pays a percent, use percent")
        return Rate(amount=_decimal(data["amount"], f"{path}.amount"))
    raise _fail(path, "needs percent or amount")


def _str_set(raw: object, path: str, upper: bool = False) -> frozenset[str]:
    items = _list(raw, path)
    if not items:
        raise _fail(path, "must not be empty (omit it to allow everything)")
    return frozenset(
        (_text(v, f"{path}[{i}]").upper() if upper else _text(v, f"{path}[{i}]"))
        for i, v in enumerate(items)
    )


def _conditions(raw: object, path: str, known_offers: Collection[int] | None) -> Conditions:
    data = _obj(raw, path)
    _no_unknown(
        data, {"countries", "categories", "offers", "min_order", "max_order", "customer"}, path
    )
    offers = None
    if "offers" in data:
        items = _list(data["offers"], f"{path}.offers")
        offers = frozenset(_int(v, f"{path}.offers[{i}]", 1) for i, v in enumerate(items))
        if known_offers is not None:
            for i, offer in enumerate(items):
                if offer not in known_offers:
                    raise _fail(f"{path}.offers[{i}]", f"unknown offer {offer}")
    lo = _decimal(data["min_order"], f"{path}.min_order") if "min_order" in data else None
    hi = _decimal(data["max_order"], f"{path}.max_order") if "max_order" in data else None
    if lo is not None and hi is not None and hi <= lo:
        raise _fail(f"{path}.max_order", "must be greater than min_order")
    customer = data.get("customer")
    if customer is not None and customer not in ("new", "returning"):
        raise _fail(f"{path}.customer", "must be 'new' or 'returning'")
    return Conditions(
        countries=_str_set(data["countries"], f"{path}.countries", upper=True)
        if "countries" in data
        else None,
        categories=_str_set(data["categories"], f"{path}.categories")
        if "categories" in data
        else None,
        offers=offers,
        min_order=lo,
        max_order=hi,
        customer=customer,
    )


def _tiers(raw: object, path: str, percent_ok: bool, flat_ok: bool) -> tuple[Tier, ...]:
    items = _list(raw, path)
    if not items:
        raise _fail(path, "must list at least one tier")
    tiers: list[Tier] = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        data = _obj(item, p)
        _no_unknown(data, {"from", "to", "percent", "amount"}, p)
        start = _int(data.get("from"), f"{p}.from", 1)
        end = _int(data["to"], f"{p}.to", start) if "to" in data else None
        expected = 1 if not tiers else (tiers[-1].end or 0) + 1
        if start != expected:
            problem = "overlaps the previous tier" if start < expected else "leaves a gap"
            raise _fail(f"{p}.from", f"{problem}: expected from = {expected}, got {start}")
        if tiers and tiers[-1].end is None:
            raise _fail(p, "follows an open-ended tier")
        tiers.append(Tier(start, end, _rate(data, p, percent_ok, flat_ok)))
    if tiers[-1].end is not None:
        raise _fail(
            f"{path}[{len(tiers) - 1}].to",
            f"the last tier must be open-ended (omit to), else conversions above "
            f"{tiers[-1].end} would match no tier",
        )
    return tuple(tiers)


_RULE_FIELDS = {"id", "type", "events", "percent", "amount", "tiers", "period", "when", "months"}


def _rule(raw: object, path: str, known_offers: Collection[int] | None) -> Rule:
    data = _obj(raw, path)
    _no_unknown(data, _RULE_FIELDS, path)
    try:
        kind = RuleType(str(data.get("type")))
    except ValueError:
        names = ", ".join(t.value for t in RuleType)
        raise _fail(f"{path}.type", f"must be one of {names}") from None
    percent_ok = kind in _PERCENT_TYPES or kind is RuleType.RECURRING
    flat_ok = kind in _FLAT_TYPES or kind is RuleType.RECURRING
    events = DEFAULT_EVENTS[kind]
    if "events" in data:
        events = _str_set(data["events"], f"{path}.events")
        bad = sorted(events - KNOWN_EVENTS)
        if bad:
            raise _fail(f"{path}.events", f"unknown event(s) {', '.join(bad)}")
    rate: Rate | None = None
    tiers: tuple[Tier, ...] = ()
    if "tiers" in data:
        if "percent" in data or "amount" in data:
            raise _fail(path, "give either tiers or a single percent/amount, not both")
        tiers = _tiers(data["tiers"], f"{path}.tiers", percent_ok, flat_ok)
    else:
        rate = _rate(data, path, percent_ok, flat_ok)
    try:
        period = TierPeriod(data.get("period", "month"))
    except ValueError:
        raise _fail(f"{path}.period", "must be week, month, quarter or year") from None
    months: int | None = None
    if kind is RuleType.RECURRING:
        raw_months = data.get("months")
        if raw_months != "lifetime":
            if raw_months is None:
                raise _fail(f"{path}.months", "recurring rules need months = N or 'lifetime'")
            months = _int(raw_months, f"{path}.months", 1)
    elif "months" in data:
        raise _fail(f"{path}.months", "only recurring rules have months")
    return Rule(
        id=_text(data["id"], f"{path}.id") if "id" in data else path,
        type=kind,
        events=events,
        rate=rate,
        tiers=tiers,
        tier_period=period,
        when=_conditions(data.get("when", {}), f"{path}.when", known_offers),
        months=months,
    )


def _rules(raw: object, path: str, known_offers: Collection[int] | None) -> tuple[Rule, ...]:
    items = _list(raw, path)
    return tuple(_rule(item, f"{path}[{i}]", known_offers) for i, item in enumerate(items))


def _bonus(raw: object, path: str, known_offers: Collection[int] | None) -> Bonus:
    data = _obj(raw, path)
    _no_unknown(data, {"id", "type", "percent", "amount", "threshold", "when"}, path)
    try:
        kind = BonusType(str(data.get("type")))
    except ValueError:
        names = ", ".join(t.value for t in BonusType)
        raise _fail(f"{path}.type", f"must be one of {names}") from None
    threshold = None
    if kind in (BonusType.TARGET, BonusType.REPEAT_CUSTOMER):
        threshold = _int(data.get("threshold"), f"{path}.threshold", 1)
    elif "threshold" in data:
        raise _fail(f"{path}.threshold", f"{kind.value} bonuses take no threshold")
    return Bonus(
        id=_text(data["id"], f"{path}.id") if "id" in data else path,
        type=kind,
        rate=_rate(data, path, True, True),
        threshold=threshold,
        when=_conditions(data.get("when", {}), f"{path}.when", known_offers),
    )


def _version(
    raw: object, path: str, plan_id: str, currency: str, known_offers: Collection[int] | None
) -> PlanVersion:
    data = _obj(raw, path)
    _no_unknown(
        data, {"version", "effective_from", "effective_to", "rules", "overrides", "bonuses"}, path
    )
    start = _moment(data.get("effective_from"), f"{path}.effective_from")
    end = _moment(data["effective_to"], f"{path}.effective_to") if "effective_to" in data else None
    if end is not None and end <= start:
        raise _fail(f"{path}.effective_to", "must be after effective_from")
    rules = _rules(data.get("rules"), f"{path}.rules", known_offers)
    if not rules:
        raise _fail(f"{path}.rules", "must list at least one rule")
    overrides: dict[int, tuple[Rule, ...]] = {}
    for i, item in enumerate(_list(data.get("overrides", []), f"{path}.overrides")):
        p = f"{path}.overrides[{i}]"
        odata = _obj(item, p)
        _no_unknown(odata, {"partner", "rules"}, p)
        partner = _int(odata.get("partner"), f"{p}.partner", 1)
        if partner in overrides:
            raise _fail(f"{p}.partner", f"partner {partner} already has an override")
        overrides[partner] = _rules(odata.get("rules"), f"{p}.rules", known_offers)
        if not overrides[partner]:
            raise _fail(f"{p}.rules", "must list at least one rule")
    bonuses = tuple(
        _bonus(item, f"{path}.bonuses[{i}]", known_offers)
        for i, item in enumerate(_list(data.get("bonuses", []), f"{path}.bonuses"))
    )
    ids = [r.id for r in rules] + [r.id for rs in overrides.values() for r in rs]
    ids += [b.id for b in bonuses]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise _fail(path, f"duplicate rule/bonus id(s) {', '.join(dupes)}")
    return PlanVersion(
        plan_id=plan_id,
        version=_int(data.get("version"), f"{path}.version", 1),
        effective_from=start,
        effective_to=end,
        currency=currency,
        rules=rules,
        overrides=overrides,
        bonuses=bonuses,
    )


def check_versions(versions: Sequence[PlanVersion]) -> tuple[PlanVersion, ...]:
    """Versions sorted by start; refuses duplicate numbers and overlapping intervals."""
    numbers = [v.version for v in versions]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    if dupes:
        raise InvalidInput(f"versions: duplicate version number(s) {dupes}", field="versions")
    ordered = sorted(versions, key=lambda v: v.effective_from)
    for prev, nxt in pairwise(ordered):
        if prev.effective_to is None or prev.effective_to > nxt.effective_from:
            raise InvalidInput(
                f"versions: {prev.label()} overlaps {nxt.label()} — a conversion must match "
                f"exactly one version",
                field="versions",
            )
    return tuple(ordered)


def parse_plan(data: object, known_offers: Collection[int] | None = None) -> Plan:
    """Validate a plan document (already decoded from TOML/JSON) into a `Plan`.

    `known_offers`, when given, makes any `offers` condition naming another offer an error.
    """
    doc = _obj(data, "plan")
    _no_unknown(doc, {"id", "currency", "versions"}, "plan")
    plan_id = _text(doc.get("id"), "id", MAX_PLAN_ID)
    try:
        currency = check_currency(str(doc.get("currency", "")))
    except InvalidInput:
        raise _fail("currency", "must be a 3-letter ISO 4217 code") from None
    items = _list(doc.get("versions"), "versions")
    if not items:
        raise _fail("versions", "must list at least one version")
    versions = [
        _version(item, f"versions[{i}]", plan_id, currency, known_offers)
        for i, item in enumerate(items)
    ]
    return Plan(plan_id, currency, check_versions(versions))


def parse_plan_toml(text: str, known_offers: Collection[int] | None = None) -> Plan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"plan is not valid TOML: {exc}", field="plan") from None
    return parse_plan(data, known_offers)


def parse_plan_json(text: str, known_offers: Collection[int] | None = None) -> Plan:
    try:
        # Decimals, not floats: a percent like 12.1 must stay exactly 12.1.
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"plan is not valid JSON: {exc}", field="plan") from None
    except (RecursionError, ArithmeticError):  # nesting too deep; a number Decimal can't hold
        raise InvalidInput("plan is not valid JSON", field="plan") from None
    return parse_plan(data, known_offers)


def plan_version_at(versions: Iterable[PlanVersion], at: datetime) -> PlanVersion:
    """The version in force at `at` (the conversion time)."""
    moment = ensure_utc(at)
    for v in versions:
        if v.in_force(moment):
            return v
    raise NotFound(f"no plan version in force at {moment.isoformat()}", field="at")


def period_start(at: datetime, period: TierPeriod) -> datetime:
    """Start (UTC) of the tier period containing `at`, for counting `period_count`."""
    day = ensure_utc(at).date()
    if period is TierPeriod.WEEK:
        day -= timedelta(days=day.weekday())
    elif period is TierPeriod.MONTH:
        day = day.replace(day=1)
    elif period is TierPeriod.QUARTER:
        day = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    else:
        day = day.replace(month=1, day=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


# --------------------------------------------------------------------------- engine


def _rule_mismatch(rule: Rule, ctx: ConversionContext) -> str | None:
    if ctx.event not in rule.events:
        return f"pays {'/'.join(sorted(rule.events))}, not {ctx.event}"
    if rule.type is RuleType.RECURRING:
        month = ctx.subscription_month
        if month is None:
            return "no subscription payment number given"
        if rule.months is not None and month > rule.months:
            return f"recurring for {rule.months} payment(s), this is payment {month}"
    return rule.when.mismatch(ctx)


def _bonus_applies(bonus: Bonus, ctx: ConversionContext) -> str | None:
    """Why the bonus applies (None when it does not)."""
    if bonus.when.mismatch(ctx) is not None:
        return None
    if bonus.type is BonusType.TARGET and ctx.period_count == bonus.threshold:
        return f"target of {bonus.threshold} conversions reached"
    if bonus.type is BonusType.REPEAT_CUSTOMER and ctx.customer_purchases >= (bonus.threshold or 0):
        return f"referred customer's purchase {ctx.customer_purchases} (>= {bonus.threshold})"
    if bonus.type is BonusType.NEW_CUSTOMER and ctx.new_customer is True:
        return "new customer"
    if bonus.type is BonusType.RETURNING_CUSTOMER and ctx.new_customer is False:
        return "returning customer"
    return None


def compute(version: PlanVersion, ctx: ConversionContext) -> CommissionResult:
    """The commission `ctx` earns under `version`, with the rule applied and the arithmetic.

    A conversion no rule pays yields a zero amount whose explanation lists why each rule
    declined — that text is the answer to "why wasn't I paid".
    """
    currency = version.currency
    if ctx.order_value is not None and ctx.order_value.currency != currency:
        raise InvalidInput(
            f"order value is in {ctx.order_value.currency}, plan pays in {currency}: convert "
            f"with the rate table first",
            field="order_value",
        )
    if ctx.period_count < 1 or ctx.customer_purchases < 1:
        raise InvalidInput("period_count and customer_purchases start at 1", field="ctx")
    value = ctx.order_value.amount if ctx.order_value is not None else None
    head = f"plan {version.label()}"
    candidates = [*version.overrides.get(ctx.partner_id, ()), *version.rules]
    override_ids = {r.id for r in version.overrides.get(ctx.partner_id, ())}
    declined: list[str] = []
    for rule in candidates:
        why_not = _rule_mismatch(rule, ctx)
        if why_not is not None:
            declined.append(f"rule {rule.id}: {why_not}")
            continue
        rate, tier_note = rule.rate_for(ctx.period_count)
        base, arithmetic = rate.apply(value, currency)
        scope = f"override for partner {ctx.partner_id}, " if rule.id in override_ids else ""
        parts = [
            f"{head}: rule {rule.id} ({scope}{rule.type.value}"
            f"{', ' + tier_note if tier_note else ''}): {arithmetic}"
        ]
        total = base
        applied: list[str] = []
        for bonus in version.bonuses:
            reason = _bonus_applies(bonus, ctx)
            if reason is None:
                continue
            extra, bonus_math = bonus.rate.apply(value, currency)
            total += extra
            applied.append(bonus.id)
            parts.append(f"bonus {bonus.id} ({reason}): +{bonus_math}")
        paid = Money(total, currency).rounded()
        parts.append(f"total {total} -> {paid.format()} (rounded half-up once)")
        return CommissionResult(
            paid, rule.id, version.plan_id, version.version, tuple(applied), "; ".join(parts)
        )
    reasons = "; ".join(declined) if declined else "no rules"
    return CommissionResult(
        Money.zero(currency),
        None,
        version.plan_id,
        version.version,
        (),
        f"{head}: no rule pays this {ctx.event} — {reasons}",
    )


def compute_at(versions: Iterable[PlanVersion], ctx: ConversionContext) -> CommissionResult:
    """Compute with the version that was in force when the conversion happened."""
    return compute(plan_version_at(versions, ctx.at), ctx)


def from_simple_plan(
    plan: CommissionPlan, currency: str, effective_from: datetime | None = None
) -> PlanVersion:
    """A one-rule, open-ended version equivalent to a `commissions.rules` flat/percent plan,
    so the simple offer plans can run through this engine (same events, same rounding)."""
    start = effective_from or datetime(1970, 1, 1, tzinfo=UTC)
    if isinstance(plan, PercentPlan):
        rule = Rule("cps", RuleType.CPS, DEFAULT_EVENTS[RuleType.CPS], Rate(percent=plan.percent))
    else:
        kind = RuleType(plan.type.value)
        if plan.amount.currency != currency:
            raise InvalidInput("flat plan amount must be in the plan currency", field="currency")
        rule = Rule(kind.value, kind, DEFAULT_EVENTS[kind], Rate(amount=plan.amount.amount))
    return PlanVersion("offer", 1, ensure_utc(start), None, currency, (rule,))
