"""Explaining a conversion end to end: the answer to "why was I (not) paid?".

`explain_conversion` gathers, for one stored conversion: which click or coupon credited it,
under which attribution model and window (re-run through `attribution.models` so the words
are the engine's own), which plan version and rule price it (re-run through the commission
engine, next to what was booked at the time), the holds in force (fraud flag, lock period,
partner status), the exchange rate used and every ledger entry with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from partnerflow.attribution.models import Touch, TouchKind, attribute, parse_model
from partnerflow.commissions.model import EntryKind, LedgerBucket, LedgerEntry
from partnerflow.commissions.ports import CommissionsUnitOfWork, ConversionFacts, ProgramTerms
from partnerflow.commissions.services import ConversionInput, Priced, commission_for_conversion
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import ConversionId
from partnerflow.core.money import Money

EARNING_STATUSES = frozenset({"approved", "active"})


@dataclass(frozen=True, slots=True)
class Explanation:
    conversion: ConversionFacts
    program: ProgramTerms
    attribution: tuple[str, ...]
    booked: str | None  # the commission entry's reason, as written when it was booked
    recomputed: Priced | None  # the same conversion priced again from the stored plans
    holds: tuple[str, ...]
    ledger: tuple[LedgerEntry, ...]
    pending: Money
    approved: Money  # net: approvals, reversals after approval (paid money shows as paid)
    net: Money

    def lines(self) -> list[str]:
        """The explanation as readable text, one fact per line."""
        c, p = self.conversion, self.program
        out = [
            f"conversion {c.id}: order {c.order_id} ({c.event_type}) of {c.amount.format()} "
            f"at {c.created_at.isoformat()} in program {p.slug}, status {c.status}",
        ]
        if c.refunded.amount:
            out.append(f"refunded so far: {c.refunded.format()}")
        out.append("attribution:")
        out += [f"  {x}" for x in self.attribution]
        out.append("commission:")
        if self.booked is not None:
            out.append(f"  booked: {self.booked}")
        if self.recomputed is not None:
            again = self.recomputed
            amount = again.amount.format() if again.amount is not None else "nothing"
            out.append(f"  priced again from the stored plans: {amount} — {again.explanation}")
        if self.booked is None and self.recomputed is None:
            out.append("  none: the conversion is not attributed to a partner")
        out.append("holds:")
        out += [f"  {h}" for h in self.holds] or ["  none"]
        out.append("ledger:")
        for e in self.ledger:
            fx = f" [rate {e.fx_rate} of {e.fx_rate_date}]" if e.fx_rate is not None else ""
            out.append(
                f"  {e.created_at.isoformat()} {e.kind.value} {e.bucket.value} "
                f"{e.amount.format()} by {e.author}: {e.reason}{fx}"
            )
        if not self.ledger:
            out.append("  no entries")
        out.append(
            f"balance of this conversion: pending {self.pending.format()}, approved "
            f"{self.approved.format()}, net {self.net.format()}"
        )
        return out


def _attribution(c: ConversionFacts, program: ProgramTerms) -> list[str]:
    window = timedelta(days=program.cookie_window_days)
    model = parse_model(program.attribution_model)
    head = (
        f"model {model.value} (program setting), {program.cookie_window_days}-day lookback "
        f"window; credited via {c.attributed_by}"
    )
    lines = [head]
    touch: Touch | None = None
    if c.partner_id is None:
        lines.append("no click, coupon or customer match credited a partner (organic)")
        return lines
    if c.attributed_by in ("click_id", "cookie") and c.click_id and c.click_at is not None:
        touch = Touch(c.partner_id, c.click_at, TouchKind.CLICK, click_id=c.click_id)
        age = c.created_at - c.click_at
        lines.append(
            f"click {c.click_id} of partner {c.partner_id} at {c.click_at.isoformat()} "
            f"({age} before the conversion{', from ' + c.click_country if c.click_country else ''})"
        )
    elif c.attributed_by == "coupon" and c.coupon_code:
        touch = Touch(c.partner_id, c.created_at, TouchKind.COUPON, coupon=c.coupon_code)
        lines.append(f"coupon {c.coupon_code} belongs to partner {c.partner_id}")
    elif c.attributed_by == "customer":
        lines.append(
            f"customer {c.customer_id} was brought by partner {c.partner_id} earlier "
            f"(customer-id match across devices)"
        )
    else:
        lines.append(f"credited to partner {c.partner_id}")
    if touch is not None:
        credits = attribute([touch], c.created_at, model, window)
        lines += [credit.explanation for credit in credits] or [
            "the touch is outside the window today"
        ]
    return lines


def explain_conversion(uow: CommissionsUnitOfWork, conversion_id: int) -> Explanation:
    with uow:
        c = uow.facts.get(conversion_id)
        if c is None:
            raise NotFound(f"conversion {conversion_id} not found", field="conversion")
        program = uow.facts.program(c.program_id)
        assert program is not None
        entries = tuple(uow.ledger.for_conversion(ConversionId(conversion_id)))
        # A `cap:<id>` flag: a hard cap refused the conversion (tracking.conversions.CAP_FLAG).
        caps = [
            (int(cap_id), uow.facts.cap_description(int(cap_id)))
            for name, _, cap_id in (f.partition(":") for f in (c.flags or "").split(";"))
            if name == "cap" and cap_id.isdigit()
        ]
        recomputed: Priced | None = None
        if c.partner_id is not None:
            simple = uow.facts.offer_plan(c.offer_id) if c.offer_id is not None else None
            recomputed = commission_for_conversion(
                uow.plans,
                uow.facts,
                uow.rates,
                program,
                ConversionInput.of(c),
                simple_plan=simple[1] if simple else None,
                conversion_id=c.id,
            )
    commission = next((e for e in entries if e.kind is EntryKind.COMMISSION), None)
    currency = commission.amount.currency if commission else program.currency
    sums = {b: Decimal(0) for b in LedgerBucket}
    for e in entries:
        sums[e.bucket] += e.amount.amount
    holds: list[str] = []
    if c.is_flagged:
        holds.append(
            f"fraud flag ({c.flags or 'no detail'}): the commission stays pending until reviewed"
        )
    if c.partner_status is not None and c.partner_status not in EARNING_STATUSES:
        holds.append(f"partner is {c.partner_status}: not paid while in this status")
    if sums[LedgerBucket.PENDING] > 0 and commission is not None:
        until = commission.created_at + timedelta(days=program.lock_period_days)
        holds.append(
            f"lock period of {program.lock_period_days} day(s): pending until "
            f"{until.isoformat()} (refunds until then reverse it before approval)"
        )
    for cap_id, described in caps:
        holds.append(
            f"cap hold: {described or f'cap #{cap_id} (no longer stored)'}: over it, not payable"
        )
    if c.status == "rejected":
        holds.append("conversion rejected: no commission")
    return Explanation(
        conversion=c,
        program=program,
        attribution=tuple(_attribution(c, program)),
        booked=commission.reason if commission else None,
        recomputed=recomputed,
        holds=tuple(holds),
        ledger=entries,
        pending=Money(sums[LedgerBucket.PENDING], currency),
        approved=Money(sums[LedgerBucket.APPROVED], currency),
        net=Money(sum(sums.values(), Decimal(0)), currency),
    )
