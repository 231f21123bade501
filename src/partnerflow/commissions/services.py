"""Commission use cases: plans as stored data, pricing a conversion, the ledger's life cycle.

"Load, compute, save": each use case loads what it needs through the ports, calls the pure
engine (`plans`, `ledger`, `rates`) and appends what the engine returned, inside one unit
of work, so a refusal writes nothing.

Plans. `set_plan` appends a revision of a scope's plan ('program' or 'offer:<id>'). Versions
that have already begun are history: a new revision must carry them unchanged (it may only
close an open version at a time not in the past), and new versions cannot start in the past
— so the version a conversion was paid by never changes after the fact.

Pricing. `commission_for_conversion` converts the order value into the program currency with
the stored rate, picks the version in force at the conversion time (the offer's plan first,
then the program's, then the offer's simple plan through `from_simple_plan`), counts the
partner's conversions in the tier period and the customer's purchases, and computes.

Events. Every ledger change publishes its event (`commission.approved` with
`conversion.approved`, `conversion.reversed` with `commission.reversed`,
`commission.adjusted`) through the unit of work, in the same transaction as the entries.
"""

from __future__ import annotations

import json
import secrets
import tomllib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from partnerflow.commissions import ledger as pure_ledger
from partnerflow.commissions.ledger import Entry
from partnerflow.commissions.model import CommissionPlan, EntryKind, LedgerBucket
from partnerflow.commissions.plans import (
    CommissionResult,
    ConversionContext,
    Plan,
    PlanVersion,
    TierPeriod,
    compute,
    from_simple_plan,
    parse_plan,
    period_start,
    plan_version_at,
)
from partnerflow.commissions.ports import (
    CommissionsUnitOfWork,
    ConversionFacts,
    ConversionFactsRepository,
    PlanRepository,
    ProgramTerms,
    RateRepository,
    StoredPlan,
    StoredVersion,
)
from partnerflow.commissions.rates import Converted, RateTable, parse_rates_csv
from partnerflow.commissions.rules import commission_for, describe_plan
from partnerflow.commissions.rules import parse_plan as parse_simple_plan
from partnerflow.core.clock import Clock, ensure_utc
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.events import (
    COMMISSION_ADJUSTED,
    COMMISSION_APPROVED,
    COMMISSION_REVERSED,
    CONVERSION_APPROVED,
    CONVERSION_REVERSED,
    EventSink,
    money_fields,
)
from partnerflow.core.money import MAX_AMOUNT, Money, check_currency, check_minor_units
from partnerflow.core.text import display_text

PROGRAM_SCOPE = "program"

# Reasons people give for refunds and adjustments: shown on statements and exports.
MAX_REASON = 2000


def offer_scope(offer_id: int) -> str:
    return f"offer:{offer_id}"


# --------------------------------------------------------------------------- plan documents


def _json_safe(value: Any) -> Any:
    """The decoded TOML/JSON document as JSON-storable data (dates as ISO text, decimals as
    strings), which `parse_plan` reads back to the very same plan."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def decode_plan_text(text: str, fmt: str) -> dict[str, Any]:
    """Decode a plan file; `fmt` is 'toml' or 'json'. Floats are kept as Decimals so the
    validator can refuse them by name instead of silently rounding."""
    if fmt == "toml":
        try:
            data: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"plan is not valid TOML: {exc}", field="plan") from None
    elif fmt == "json":
        try:
            data = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"plan is not valid JSON: {exc}", field="plan") from None
        except (RecursionError, ArithmeticError):  # nesting too deep; a number Decimal can't hold
            raise InvalidInput("plan is not valid JSON", field="plan") from None
    else:
        raise InvalidInput("plan format must be toml or json", field="format")
    if not isinstance(data, dict):
        raise InvalidInput("plan must be a table/object", field="plan")
    return data


def _raw_versions(document: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    out: dict[int, Mapping[str, Any]] = {}
    for raw in document.get("versions", []):
        if isinstance(raw, Mapping) and isinstance(raw.get("version"), int):
            out[raw["version"]] = raw
    return out


def _check_history(old: Plan, new: Plan, now: datetime) -> None:
    """Refuse a revision that would rewrite what already happened."""
    new_by_number = {v.version: v for v in new.versions}
    started = [v for v in old.versions if v.effective_from <= now]
    for v in started:
        repl = new_by_number.get(v.version)
        if repl is None:
            raise InvalidInput(
                f"versions: version {v.version} has been in force since "
                f"{v.effective_from.isoformat()} and must stay in the plan",
                field="versions",
            )
        same_rules = replace(repl, effective_to=None) == replace(v, effective_to=None)
        if repl.effective_from != v.effective_from or not same_rules:
            raise InvalidInput(
                f"versions: version {v.version} has been in force since "
                f"{v.effective_from.isoformat()}: it cannot be changed — add a new version "
                f"starting now or later instead",
                field="versions",
            )
        if repl.effective_to != v.effective_to:
            closed_in_past = repl.effective_to is not None and repl.effective_to < now
            already_over = v.effective_to is not None and v.effective_to <= now
            if closed_in_past or already_over:
                raise InvalidInput(
                    f"versions: version {v.version} cannot be ended in the past "
                    f"(conversions until now were paid by it)",
                    field="versions",
                )
    started_numbers = {v.version for v in started}
    for v in new.versions:
        if v.version not in started_numbers and v.effective_from < now:
            raise InvalidInput(
                f"versions: new version {v.version} would start in the past "
                f"({v.effective_from.isoformat()}); conversions until now were paid by the "
                f"stored versions — start it at {now.isoformat()} or later",
                field="versions",
            )


@dataclass(frozen=True, slots=True)
class PlanSet:
    stored: StoredPlan
    plan: Plan


def set_plan(
    uow: CommissionsUnitOfWork,
    clock: Clock,
    *,
    program_id: int,
    text: str,
    fmt: str = "toml",
    offer_id: int | None = None,
    author: str,
) -> PlanSet:
    """Validate a plan document and store it as the scope's next revision."""
    if not author.strip():
        raise InvalidInput("a plan change needs an author", field="author")
    author = display_text(author, field="author")  # shown in the plan's history
    raw = decode_plan_text(text, fmt)
    document: dict[str, Any] = _json_safe(raw)
    now = clock.now()
    with uow:
        program = uow.facts.program(program_id)
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program")
        offers = uow.facts.offer_ids(program_id)
        if offer_id is not None and offer_id not in offers:
            raise NotFound(f"offer {offer_id} is not an offer of program {program.slug}")
        plan = parse_plan(document, known_offers=offers)
        if plan.currency != program.currency:
            raise InvalidInput(
                f"currency: the plan pays in {plan.currency} but program {program.slug} is in "
                f"{program.currency}; orders in other currencies are converted with the rate "
                f"table",
                field="currency",
            )
        scope = PROGRAM_SCOPE if offer_id is None else offer_scope(offer_id)
        current = uow.plans.current(program_id, scope)
        if current is not None:
            _check_history(parse_plan(current.document), plan, now)
        stored = StoredPlan(
            program_id=program_id,
            scope=scope,
            offer_id=offer_id,
            revision=(current.revision + 1) if current else 1,
            plan_id=plan.id,
            currency=plan.currency,
            document=document,
            author=author.strip(),
            created_at=now,
        )
        raw_versions = _raw_versions(document)
        uow.plans.add(
            stored,
            [
                StoredVersion(v.version, v.effective_from, v.effective_to, raw_versions[v.version])
                for v in plan.versions
            ],
        )
        uow.audit.record(
            actor=stored.author,
            action="commission_plan.set",
            entity_type="program",
            entity_id=str(program_id),
            detail={
                "scope": scope,
                "revision": stored.revision,
                "plan_id": plan.id,
                "versions": [v.version for v in plan.versions],
            },
        )
    return PlanSet(stored, plan)


# --------------------------------------------------------------------------- pricing


@dataclass(frozen=True, slots=True)
class ConversionInput:
    """A conversion to price (before or after it is stored)."""

    partner_id: int
    offer_id: int | None
    event_type: str
    amount: Money  # order value in its original currency
    at: datetime
    customer_id: str | None = None
    country: str | None = None
    category: str | None = None

    @classmethod
    def of(cls, facts: ConversionFacts) -> ConversionInput:
        if facts.partner_id is None:
            raise InvalidInput(f"conversion {facts.id} is not attributed to a partner")
        return cls(
            partner_id=facts.partner_id,
            offer_id=facts.offer_id,
            event_type=facts.event_type,
            amount=facts.amount,
            at=facts.created_at,
            customer_id=facts.customer_id,
            country=facts.click_country,
        )


@dataclass(frozen=True, slots=True)
class Priced:
    """What a conversion earns. `amount` None means no ledger entry (nothing pays it)."""

    amount: Money | None
    explanation: str
    source: str  # "offer plan", "program plan", "offer simple plan" or "none"
    plan_id: str | None = None
    plan_version: int | None = None
    rule_id: str | None = None
    fx: Converted | None = None

    @property
    def fx_rate(self) -> Decimal | None:
        return self.fx.rate if self.fx is not None and self.fx.rate_date else None

    @property
    def fx_rate_date(self) -> date | None:
        return self.fx.rate_date if self.fx is not None else None


@dataclass
class PlanBook:
    """The parsed plans of one program (cached: a replay parses each plan once)."""

    plans: PlanRepository | None
    program_id: int
    override: Plan | None = None  # a proposed plan replacing every stored one (simulate)
    _cache: dict[str, Plan | None] = field(default_factory=dict)

    def _plan(self, scope: str) -> Plan | None:
        if scope not in self._cache:
            stored = self.plans.current(self.program_id, scope) if self.plans else None
            self._cache[scope] = parse_plan(stored.document) if stored else None
        return self._cache[scope]

    def version_at(self, offer_id: int | None, at: datetime) -> tuple[str, PlanVersion] | None:
        if self.override is not None:
            scopes = [("proposed plan", self.override)]
        else:
            scopes = []
            if offer_id is not None:
                offer_plan = self._plan(offer_scope(offer_id))
                if offer_plan is not None:
                    scopes.append(("offer plan", offer_plan))
            program_plan = self._plan(PROGRAM_SCOPE)
            if program_plan is not None:
                scopes.append(("program plan", program_plan))
        for label, plan in scopes:
            try:
                return label, plan_version_at(plan.versions, at)
            except NotFound:
                continue
        return None


def _tier_period(version: PlanVersion, partner_id: int) -> TierPeriod:
    for rule in (*version.overrides.get(partner_id, ()), *version.rules):
        if rule.tiers:
            return rule.tier_period
    return TierPeriod.MONTH


# An offer's simple plan, its description and its one-rule version (None: not expressible).
_SimpleTerms = tuple[CommissionPlan, str, PlanVersion | None]


def _parse_simple(data: dict[str, Any], currency: str) -> _SimpleTerms:
    simple = parse_simple_plan(data, currency)
    described = describe_plan(simple)
    try:
        version: PlanVersion | None = from_simple_plan(simple, currency)
    except InvalidInput:
        version = None  # a flat amount in another currency than the program's
    return simple, described, version


@lru_cache(maxsize=1024)
def _parsed_simple(currency: str, fields: tuple[tuple[str, type, Any], ...]) -> _SimpleTerms:
    return _parse_simple({name: value for name, _, value in fields}, currency)


def _simple_terms(plan_data: Mapping[str, Any], currency: str) -> _SimpleTerms:
    """An offer's simple plan parsed, described and turned into a version: the same for the
    same data (the parsed objects are frozen), so parsed once per plan and currency rather
    than for every conversion (~10 µs). Keyed by each value's type too, since 10, 10.0 and
    True == 1 hash alike but do not parse alike; an unhashable value (which no valid plan
    has) is parsed every time, so it is refused exactly as before."""
    fields = tuple((name, type(value), value) for name, value in plan_data.items())
    try:
        hash(fields)
    except TypeError:
        return _parse_simple(dict(plan_data), currency)
    return _parsed_simple(currency, fields)


def _simple_price(
    plan_data: Mapping[str, Any],
    program: ProgramTerms,
    conv: ConversionInput,
    value: Money,
    notes: list[str],
    fx: Converted | None,
) -> Priced:
    simple, described, version = _simple_terms(plan_data, program.currency)
    label = f"offer {conv.offer_id}'s simple plan ({described})"
    if version is None:
        # A flat amount in another currency than the program's: keep the old behaviour.
        old = commission_for(simple, conv.event_type, value)
        if old is None:
            text = f"{label} does not pay for {conv.event_type}"
            return Priced(None, "; ".join([*notes, text]), "none", fx=fx)
        text = f"{label}: {old.explanation}"
        return Priced(old.amount, "; ".join([*notes, text]), "offer simple plan", fx=fx)
    ctx = ConversionContext(event=conv.event_type, at=conv.at, partner_id=conv.partner_id,
                            order_value=value, offer_id=conv.offer_id)  # fmt: skip
    result = compute(version, ctx)
    text = "; ".join([*notes, result.explanation.replace(f"plan {version.label()}", label, 1)])
    if result.rule_id is None:
        return Priced(None, text, "none", fx=fx)
    return Priced(result.amount, text, "offer simple plan", None, None, result.rule_id, fx)


def commission_for_conversion(
    plans: PlanRepository | PlanBook,
    facts: ConversionFactsRepository,
    rates: RateRepository | RateTable,
    program: ProgramTerms,
    conv: ConversionInput,
    *,
    simple_plan: Mapping[str, Any] | None = None,
    conversion_id: int | None = None,
) -> Priced:
    """The commission `conv` earns, with the plan version and rule used and the arithmetic.

    `simple_plan` is the offer's plan data (`offers.commission_plan`), used when no stored
    plan has a version in force at the conversion time. `conversion_id` is set when the
    conversion is already stored, so counting "earlier conversions" excludes it.
    """
    at = ensure_utc(conv.at)
    book = plans if isinstance(plans, PlanBook) else PlanBook(plans, program.id)
    value = conv.amount
    fx: Converted | None = None
    notes: list[str] = []
    if value.currency != program.currency:
        table = rates if isinstance(rates, RateTable) else rates.table()
        try:
            fx = table.convert(value, program.currency, at)
        except NotFound as exc:
            return Priced(
                None,
                f"order value {value.format()}: {exc.message} — import rates with "
                f"'partnerflow rates import'; no commission computed",
                "none",
            )
        if fx.converted.amount > MAX_AMOUNT:
            # Ledger amounts are stored as 64-bit micro-units: an order value beyond the bound
            # any amount in the program currency has could not be booked.
            return Priced(
                None,
                f"order value {fx.explanation()}: out of range (max {MAX_AMOUNT} "
                f"{program.currency}); no commission computed",
                "none",
            )
        value = fx.converted
        notes.append(f"order value {fx.explanation()}")
    found = book.version_at(conv.offer_id, at)
    if found is None:
        if simple_plan is None:
            return Priced(None, "; ".join([*notes, "no commission plan in force"]), "none")
        return _simple_price(simple_plan, program, conv, value, notes, fx)
    source, version = found
    start = period_start(at, _tier_period(version, conv.partner_id))
    period_count = 1 + facts.period_count(
        program.id, conv.partner_id, conv.event_type, start, at, conversion_id
    )
    purchases = 1
    subscription_month = None
    if conv.customer_id:
        purchases += facts.customer_purchases(program.id, conv.customer_id, at, conversion_id)
        if conv.event_type == "renewal":
            subscription_month = 1 + facts.subscription_payments(
                program.id, conv.customer_id, at, conversion_id
            )
    ctx = ConversionContext(
        event=conv.event_type,
        at=at,
        partner_id=conv.partner_id,
        order_value=value,
        country=conv.country,
        category=conv.category,
        offer_id=conv.offer_id,
        new_customer=(purchases == 1) if conv.customer_id else None,
        period_count=period_count,
        customer_purchases=purchases,
        subscription_month=subscription_month,
    )
    result: CommissionResult = compute(version, ctx)
    text = "; ".join([*notes, f"{source}: {result.explanation}"])
    amount = result.amount if result.rule_id is not None else None
    return Priced(amount, text, source, result.plan_id, result.plan_version, result.rule_id, fx)


# --------------------------------------------------------------------------- events


def conversion_payload(conv: ConversionFacts, status: str | None = None) -> dict[str, Any]:
    """The `conversion` object of conversion events (the same keys as conversion.created,
    so a partner postback's macros expand alike; see docs/webhooks.md)."""
    return {
        "id": conv.id,
        "program_id": conv.program_id,
        "offer_id": conv.offer_id,
        "partner_id": conv.partner_id,
        "order_id": conv.order_id,
        "event_type": conv.event_type,
        **money_fields(conv.amount),
        "status": status or conv.status,
        "attributed_by": conv.attributed_by,
        "click_id": conv.click_id,
        "coupon_code": conv.coupon_code,
        "customer_id": conv.customer_id,
        "created_at": conv.created_at.isoformat(),
    }


def commission_payload(entry: Entry, amount: Money, **extra: Any) -> dict[str, Any]:
    """The `commission` object of commission events: `amount` is the money concerned (for a
    reversal the amount taken back, for an adjustment the signed correction)."""
    return {
        "txn_id": entry.txn_id,
        "kind": entry.kind.value,
        "program_id": entry.program_id,
        "partner_id": entry.partner_id,
        "conversion_id": entry.conversion_id,
        **money_fields(amount),
        "reason": entry.reason,
        "author": entry.author,
        "created_at": entry.created_at.isoformat(),
        **extra,
    }


def publish_commission(
    events: EventSink, event_type: str, entry: Entry, amount: Money, **extra: Any
) -> None:
    events.publish(
        event_type,
        {"commission": commission_payload(entry, amount, **extra)},
        program_id=entry.program_id,
        partner_id=entry.partner_id,
    )


def net_amount(entries: Iterable[Entry]) -> Money:
    """The signed sum of a transaction's entries (one currency)."""
    items = list(entries)
    total = Money.zero(items[0].amount.currency)
    for e in items:
        total = total + e.amount
    return total


# --------------------------------------------------------------------------- ledger


@dataclass(frozen=True, slots=True)
class ApprovalRun:
    program_id: int
    approved: int  # conversions moved to approved
    amount: dict[str, Money]
    held: int  # conversions past their lock period kept pending by a hold


def approve_commissions(
    uow: CommissionsUnitOfWork, clock: Clock, program_id: int, held: Collection[int] = ()
) -> ApprovalRun:
    """Approve the program's pending commissions whose lock period is over.

    Held conversions (the `held` list, e.g. from fraud review, and every flagged conversion)
    stay pending. Safe to re-run: an approved conversion has nothing pending left, and the
    database refuses a second `approval:<id>` transaction if two runs race.
    """
    now = clock.now()
    with uow:
        program = uow.facts.program(program_id)
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program")
        uow.ledger.lock_program(program_id)
        on_hold = set(held) | uow.facts.flagged(program_id)
        entries = uow.ledger.entries(program_id=program_id)
        new = pure_ledger.approve_due(entries, now, program.lock_period_days, held=on_hold)
        without_hold = pure_ledger.approve_due(entries, now, program.lock_period_days)
        uow.ledger.append_entries(new)
        for e in new:
            if e.bucket is LedgerBucket.APPROVED and e.conversion_id is not None:
                conv = uow.facts.get(e.conversion_id)
                publish_commission(uow.events, COMMISSION_APPROVED, e, e.amount, bucket="approved")
                if conv is not None:
                    uow.events.publish(
                        CONVERSION_APPROVED,
                        {
                            "conversion": conversion_payload(conv),
                            "commission": {**money_fields(e.amount), "bucket": "approved"},
                        },
                        program_id=conv.program_id,
                        partner_id=conv.partner_id,
                    )
    totals: dict[str, Money] = {}
    for e in new:
        if e.bucket is LedgerBucket.APPROVED:
            cur = e.amount.currency
            totals[cur] = totals.get(cur, Money.zero(cur)) + e.amount
    held_count = (len(without_hold) - len(new)) // 2
    return ApprovalRun(program_id, len(new) // 2, totals, held_count)


@dataclass(frozen=True, slots=True)
class ReversalResult:
    conversion_id: int
    order_id: str
    refund: Money  # order amount refunded by this call
    refunded_total: Money
    fully_refunded: bool
    reversed: Money | None  # commission taken back (None: the conversion had none)
    entries: tuple[Entry, ...]


def reverse_conversion(
    uow: CommissionsUnitOfWork,
    clock: Clock,
    *,
    program_id: int,
    order_id: str,
    amount: Decimal | None,
    reason: str,
    author: str,
    kind: str = "refund",
    key: str | None = None,
) -> ReversalResult:
    """Record a refund or chargeback of `amount` (None: the rest of the order) and reverse
    the matching share of the commission. A refund larger than what is left of the order
    is refused; the refund that completes the order takes back exactly what is left."""
    if kind not in ("refund", "chargeback"):
        raise InvalidInput("kind must be refund or chargeback", field="kind")
    order_id = order_id.strip()  # as every path stores it (`tracking.rules.check_order_id`)
    if not reason.strip():
        raise InvalidInput("a reversal needs a reason", field="reason")
    if not author.strip():
        raise InvalidInput("a reversal needs an author", field="author")
    reason = display_text(reason, field="reason", max_length=MAX_REASON, multiline=True)
    author = display_text(author, field="author")
    now = clock.now()
    with uow:
        uow.ledger.lock_program(program_id)
        conv = uow.facts.by_order(program_id, order_id)
        if conv is None:
            raise NotFound(f"order {order_id!r} was never recorded in this program")
        currency = conv.amount.currency
        left = conv.amount.amount - conv.refunded.amount
        refund = Money(left if amount is None else amount, currency)
        zero_order = conv.amount.amount == 0
        if amount is not None and amount <= 0:
            raise InvalidInput("refund amount must be positive", field="amount")
        if amount is not None:
            check_minor_units(amount, currency)
        # Fully refunded: all of its amount, or — an order of amount zero (a lead, a signup
        # paid a fixed commission), whose reversal moves no amount — its status. Without
        # the status check a zero order's "refund" was recorded (and published) again and
        # again.
        if (left <= 0 and not zero_order) or (zero_order and conv.status == "reversed"):
            raise Conflict(f"order {order_id} is already fully refunded")
        if zero_order and amount is not None:
            # As the tracker answers (`tracking.postbacks.reversal_for`).
            raise InvalidInput(
                f"order {order_id}'s amount is zero (a lead or signup): there is nothing to "
                "refund; reverse it without an amount to take its commission back",
                field="amount",
            )
        if refund.amount > left:
            raise InvalidInput(
                f"refund of {refund.format()} is larger than what is left of order {order_id} "
                f"({Money(left, currency).format()} of {conv.amount.format()})",
                field="amount",
            )
        fully = conv.amount.amount == 0 or refund.amount == left
        entries = uow.ledger.entries(conversion_ids=[conv.id])
        has_commission = any(e.kind is EntryKind.COMMISSION for e in entries)
        standing = pure_ledger.conversion_total(entries, conv.id)
        what = (
            f"{kind} of {refund.format()} on order {order_id} "
            f"({'full' if fully else 'partial, pro rata'})"
            if not zero_order
            else f"{kind} of order {order_id} (amount zero: its whole commission)"
        )
        text = f"{what}: {reason.strip()}"
        new: list[Entry] = []
        if has_commission and standing > 0:
            commission = next(e for e in entries if e.kind is EntryKind.COMMISSION)
            # The order's earlier refunds (also those the tracker recorded) as one
            # zero-amount entry, so the pure ledger's "refunded so far" is the stored truth.
            prior = replace(
                commission,
                txn_id="prior-refunds",
                kind=EntryKind.REVERSAL,
                amount=Money.zero(commission.amount.currency),
                refund=conv.refunded,
            )
            new = pure_ledger.reverse(
                [*entries, prior],
                conv.id,
                now,
                text,
                author.strip(),
                refund=refund if conv.amount.amount > 0 else None,
                order_total=conv.amount if conv.amount.amount > 0 else None,
            )
            if key is not None:
                txn = f"reversal:{conv.id}:{key}"
                if any(e.txn_id == txn for e in entries):
                    raise Conflict(f"reversal {key!r} of order {order_id} was already recorded")
                new = [replace(e, txn_id=txn) for e in new]
            uow.ledger.append_entries(new)
        uow.facts.record_refund(conv.id, conv.refunded + refund, fully)
        if fully:
            # A fully refunded conversion no longer counts against its caps (as on the
            # tracker's refund path).
            uow.conversion_caps.release_conversion(conv.id)
        uow.audit.record(
            actor=author.strip(),
            action=f"conversion.{kind}",
            entity_type="conversion",
            entity_id=str(conv.id),
            detail={"order_id": order_id, "refund": str(refund.amount), "reason": reason},
        )
        taken_back = -net_amount(new) if new else None
        if new:
            publish_commission(uow.events, COMMISSION_REVERSED, new[0], taken_back or refund)
        uow.events.publish(
            CONVERSION_REVERSED,
            {
                "conversion": conversion_payload(conv, "reversed" if fully else None),
                "reversal": {
                    "kind": kind,
                    "refund": money_fields(refund),
                    "refunded_total": money_fields(conv.refunded + refund),
                    "fully_refunded": fully,
                    "commission_reversed": money_fields(taken_back) if taken_back else None,
                    "reason": reason.strip(),
                },
            },
            program_id=conv.program_id,
            partner_id=conv.partner_id,
        )
    reversed_amount = (
        Money(-sum((e.amount.amount for e in new), Decimal(0)), new[0].amount.currency)
        if new
        else None
    )
    return ReversalResult(
        conv.id, order_id, refund, conv.refunded + refund, fully, reversed_amount, tuple(new)
    )


def adjust_balance(
    uow: CommissionsUnitOfWork,
    clock: Clock,
    *,
    partner_id: int,
    amount: Money,
    reason: str,
    author: str,
    key: str | None = None,
) -> Entry:
    """A manual correction of a partner's payable balance; reason and author required."""
    if reason.strip():  # empty: refused by the ledger's rule, with its own message
        reason = display_text(reason, field="reason", max_length=MAX_REASON, multiline=True)
    if author.strip():
        author = display_text(author, field="author")
    now = clock.now()
    with uow:
        program_id = uow.facts.partner_program(partner_id)
        if program_id is None:
            raise NotFound(f"partner {partner_id} not found", field="partner")
        program = uow.facts.program(program_id)
        assert program is not None
        uow.ledger.lock_program(program_id)
        if amount.currency != program.currency:
            raise InvalidInput(
                f"program {program.slug} pays in {program.currency}, not {amount.currency}",
                field="currency",
            )
        entries = uow.ledger.entries(partner_id=partner_id)
        new = pure_ledger.adjust(
            entries,
            program_id=program_id,
            partner_id=partner_id,
            amount=amount,
            reason=reason,
            author=author,
            at=now,
            key=key or secrets.token_hex(8),
        )
        uow.ledger.append_entries(new)
        uow.audit.record(
            actor=author.strip(),
            action="commission.adjusted",
            entity_type="partner",
            entity_id=str(partner_id),
            detail={"amount": str(amount.amount), "currency": amount.currency, "reason": reason},
        )
        publish_commission(uow.events, COMMISSION_ADJUSTED, new[0], net_amount(new))
    return new[0]


@dataclass(frozen=True, slots=True)
class PartnerBalance:
    program_id: int
    partner_id: int
    currency: str
    pending: Money
    approved: Money
    paid: Money


def balances(
    uow: CommissionsUnitOfWork, *, program_id: int | None = None, partner_id: int | None = None
) -> list[PartnerBalance]:
    """Balances derived from the entries (never stored), per partner and currency."""
    with uow:
        entries = uow.ledger.entries(program_id=program_id, partner_id=partner_id)
    program_of = {e.partner_id: e.program_id for e in entries}
    out = [
        PartnerBalance(
            program_of[pid], pid, cur, b.pending.rounded(), b.approved.rounded(), b.paid.rounded()
        )
        for (pid, cur), b in pure_ledger.balances(entries).items()
    ]
    return sorted(out, key=lambda b: (b.program_id, b.partner_id, b.currency))


# --------------------------------------------------------------------------- rates


@dataclass(frozen=True, slots=True)
class RatesImported:
    import_id: str
    added: int
    unchanged: int


def import_rates(uow: CommissionsUnitOfWork, clock: Clock, lines: Iterable[str]) -> RatesImported:
    """Import a `date,from,to,rate` CSV: every bad row is reported (line number and reason)
    and nothing is imported unless every row is good. A stored rate for the same pair and
    day is never overwritten: the same value is skipped, another value is an error."""
    parsed = parse_rates_csv(lines)
    errors = [f"line {e.line}: {e.message}" for e in parsed.errors]
    now = clock.now()
    with uow:
        existing = uow.rates.existing()
        fresh = []
        unchanged = 0
        for r in parsed.rates:
            old = existing.get((r.source, r.target, r.valid_from))
            if old is None:
                fresh.append(r)
            elif old == r.rate:
                unchanged += 1
            else:
                errors.append(
                    f"{r.source}->{r.target} {r.valid_from.isoformat()}: a rate of {old} is "
                    f"already stored (rates are never overwritten: commissions used it)"
                )
        if errors:
            raise InvalidInput(
                "rates not imported (nothing written):\n" + "\n".join(errors[:200]),
                field="file",
            )
        import_id = secrets.token_hex(8)
        uow.rates.add(fresh, import_id, now)
    return RatesImported(import_id, len(fresh), unchanged)


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class PartnerDelta:
    partner_id: int
    conversions: int
    current: Money
    proposed: Money

    @property
    def delta(self) -> Money:
        return self.proposed - self.current


@dataclass(frozen=True, slots=True)
class Simulation:
    program_id: int
    start: date
    end: date
    currency: str
    conversions: int
    revenue: Money
    current_cost: Money
    proposed_cost: Money
    partners: tuple[PartnerDelta, ...]
    notes: tuple[str, ...]

    @property
    def current_margin(self) -> Money:
        return self.revenue - self.current_cost

    @property
    def proposed_margin(self) -> Money:
        return self.revenue - self.proposed_cost


class _ReplayHistory:
    """In-memory counts for a replay, matching `ConversionFactsRepository`'s definitions."""

    def __init__(self, conversions: Sequence[ConversionFacts]) -> None:
        self.by_partner: dict[tuple[int, str], list[tuple[datetime, int]]] = defaultdict(list)
        self.by_customer: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        for c in conversions:
            if c.partner_id is not None:
                self.by_partner[(c.partner_id, c.event_type)].append((c.created_at, c.id))
            if c.customer_id:
                self.by_customer[c.customer_id].append((c.created_at, c.id))

    @staticmethod
    def _before(items: list[tuple[datetime, int]], at: datetime, cid: int | None) -> list[Any]:
        return [x for x in items if x[0] < at or (x[0] == at and cid is not None and x[1] < cid)]

    def period_count(self, partner_id: int, event: str, start: datetime, at: datetime,
                     cid: int | None) -> int:  # fmt: skip
        items = self.by_partner.get((partner_id, event), [])
        return sum(1 for x in self._before(items, at, cid) if x[0] >= start)

    def customer_purchases(self, customer_id: str, at: datetime, cid: int | None) -> int:
        return len(self._before(self.by_customer.get(customer_id, []), at, cid))


class _ReplayFacts:
    """Adapter giving the pricing function the replay's counts instead of the database's.
    (A renewal's payment number comes from the database: it does not depend on the plan,
    and the subscription may have started before the replayed history.)"""

    def __init__(self, inner: ConversionFactsRepository, history: _ReplayHistory) -> None:
        self.inner = inner
        self.history = history

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def period_count(self, program_id: int, partner_id: int, event_type: str, start: datetime,
                     at: datetime, before_id: int | None) -> int:  # fmt: skip
        return self.history.period_count(partner_id, event_type, start, at, before_id)

    def customer_purchases(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int:
        return self.history.customer_purchases(customer_id, at, before_id)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _net_fraction(conv: ConversionFacts) -> Decimal:
    if conv.amount.amount <= 0:
        return Decimal(0) if conv.status == "reversed" else Decimal(1)
    return (conv.amount.amount - conv.refunded.amount) / conv.amount.amount


def simulate(
    uow: CommissionsUnitOfWork,
    *,
    program_id: int,
    proposed: Plan,
    start: date,
    end: date,
) -> Simulation:
    """Replay the program's attributed conversions of [start, end] under `proposed`.

    Current cost is what the ledger holds for them now (commissions net of reversals);
    proposed cost is the proposed plan's commission scaled by the part of the order not
    refunded (what the ledger would hold after the same refunds). Revenue is the order
    value net of refunds, in the program currency. Tier counts start at the beginning of
    the tier period, so conversions just before `start` still count towards a tier.
    """
    if end < start:
        raise InvalidInput("--to is before --from", field="to")
    with uow:
        program = uow.facts.program(program_id)
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program")
        if proposed.currency != program.currency:
            raise InvalidInput(
                f"the proposed plan pays in {proposed.currency}, the program in {program.currency}",
                field="currency",
            )
        history_from = period_start(_day_start(start), TierPeriod.YEAR)
        window_start, window_end = _day_start(start), _day_start(end + timedelta(days=1))
        loaded = uow.facts.in_range(program_id, history_from, window_end)
        replay = [c for c in loaded if c.created_at >= window_start]
        entries = uow.ledger.entries(conversion_ids=[c.id for c in replay])
        table = uow.rates.table()
        facts = _ReplayFacts(uow.facts, _ReplayHistory(loaded))
        book = PlanBook(None, program_id, override=proposed)
        cur = program.currency
        net_booked: dict[int, Decimal] = defaultdict(Decimal)
        for e in entries:
            if e.conversion_id is not None:
                net_booked[e.conversion_id] += e.amount.amount
        revenue = Decimal(0)
        per: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
        notes: list[str] = []
        for conv in replay:
            assert conv.partner_id is not None
            frac = _net_fraction(conv)
            value = conv.amount
            if value.currency != cur:
                try:
                    value = table.convert(value, cur, conv.created_at).converted
                except NotFound as exc:
                    notes.append(f"conversion {conv.id}: {exc.message}; left out of revenue")
                    value = Money.zero(cur)
            revenue += value.amount * frac
            priced = commission_for_conversion(
                book, facts, table, program, ConversionInput.of(conv), conversion_id=conv.id
            )
            proposed_amount = Decimal(0)
            if priced.amount is not None:
                proposed_amount = Money(priced.amount.amount * frac, cur).rounded().amount
            elif "no commission plan in force" in priced.explanation:
                notes.append(f"conversion {conv.id}: no proposed version in force")
            row = per[conv.partner_id]
            row[0] += 1
            row[1] += net_booked.get(conv.id, Decimal(0))
            row[2] += proposed_amount
    partners = tuple(
        PartnerDelta(pid, int(r[0]), Money(r[1], cur), Money(r[2], cur))
        for pid, r in sorted(per.items())
    )
    current = sum((p.current.amount for p in partners), Decimal(0))
    new = sum((p.proposed.amount for p in partners), Decimal(0))
    return Simulation(
        program_id=program_id,
        start=start,
        end=end,
        currency=cur,
        conversions=len(replay),
        revenue=Money(revenue, cur).rounded(),
        current_cost=Money(current, cur),
        proposed_cost=Money(new, cur),
        partners=partners,
        notes=tuple(notes[:50]),
    )


def parse_period_day(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"--{name} must be YYYY-MM-DD, got {raw[:20]!r}", field=name) from None


def parse_money(amount: str, currency: str, *, allow_negative: bool = False) -> Money:
    from partnerflow.core.money import parse_amount

    value = parse_amount(amount, allow_negative=allow_negative)
    return Money(value, check_currency(currency))
