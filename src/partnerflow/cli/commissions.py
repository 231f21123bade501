"""`partnerflow commissions ...`: plans as versioned data, the ledger (approvals, refunds,
adjustments, balances) and backtesting a proposed plan against past conversions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from partnerflow.cli.runtime import emit, handles_errors, print_json, resolve_program, services
from partnerflow.commissions.plans import Plan, parse_plan
from partnerflow.commissions.services import (
    PROGRAM_SCOPE,
    adjust_balance,
    approve_commissions,
    balances,
    decode_plan_text,
    offer_scope,
    parse_money,
    parse_period_day,
    reverse_conversion,
    set_plan,
    simulate,
)
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import parse_amount
from partnerflow.storage.payouts import SqlMoneyUnitOfWork

app = typer.Typer(help="Commission plans, the commission ledger and plan backtests.",
                  no_args_is_help=True)  # fmt: skip
plan_app = typer.Typer(help="Versioned, effective-dated commission plans.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ProgramOpt = Annotated[str | None, typer.Option(help="Program id or slug.")]


def _uow() -> SqlMoneyUnitOfWork:
    svc = services()
    return svc.money_uow()


def _read(path: Path) -> tuple[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", field="file") from None
    return text, "json" if path.suffix.lower() == ".json" else "toml"


def _plan_json(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "version": v.version,
            "effective_from": v.effective_from.isoformat(),
            "effective_to": v.effective_to.isoformat() if v.effective_to else None,
            "rules": [f"{r.id} ({r.type.value})" for r in v.rules],
            "overrides": {str(k): [r.id for r in rs] for k, rs in v.overrides.items()},
            "bonuses": [b.id for b in v.bonuses],
        }
        for v in plan.versions
    ]


def _scope(offer: int | None) -> str:
    return PROGRAM_SCOPE if offer is None else offer_scope(offer)


@plan_app.command("set")
@handles_errors
def plan_set(
    file: Annotated[Path, typer.Option("--file", help="Plan document (.toml or .json).")],
    program: ProgramOpt = None,
    offer: Annotated[int | None, typer.Option(help="Plan for this offer only.")] = None,
    author: Annotated[str, typer.Option(help="Who changes the plan (audited).")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Validate a plan file and store it as the next revision (nothing written on error)."""
    text, fmt = _read(file)
    found = resolve_program(program)
    result = set_plan(_uow(), services().clock, program_id=found.id, text=text, fmt=fmt,
                      offer_id=offer, author=author)  # fmt: skip
    data = {
        "program": found.slug,
        "scope": result.stored.scope,
        "revision": result.stored.revision,
        "plan_id": result.plan.id,
        "currency": result.plan.currency,
        "versions": _plan_json(result.plan),
    }
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"stored plan {result.plan.id} for {found.slug} ({result.stored.scope}) as revision "
            f"{result.stored.revision} with {len(result.plan.versions)} version(s)"
        )


@plan_app.command("show")
@handles_errors
def plan_show(
    program: ProgramOpt = None,
    offer: Annotated[int | None, typer.Option(help="The offer's own plan.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the current plan document of a program (or offer)."""
    found = resolve_program(program)
    with _uow() as uow:
        stored = uow.plans.current(found.id, _scope(offer))
    if stored is None:
        raise NotFound(f"no plan stored for {found.slug} ({_scope(offer)})")
    if as_json:
        print_json({"revision": stored.revision, "author": stored.author,
                    "created_at": stored.created_at, "document": stored.document})  # fmt: skip
        return
    plan = parse_plan(stored.document)
    typer.echo(
        f"plan {plan.id} ({plan.currency}) for {found.slug} ({stored.scope}), revision "
        f"{stored.revision} by {stored.author} at {stored.created_at.isoformat()}"
    )
    for v in plan.versions:
        typer.echo(f"- version {v.label()}")
        for rule in v.overrides.items():
            typer.echo(f"    override partner {rule[0]}: {', '.join(r.id for r in rule[1])}")
        for r in v.rules:
            rate = r.rate.describe() if r.rate else f"{len(r.tiers)} tiers per {r.tier_period}"
            typer.echo(f"    rule {r.id}: {r.type.value} {rate}")
        for b in v.bonuses:
            typer.echo(f"    bonus {b.id}: {b.type.value} {b.rate.describe()}")


@plan_app.command("versions")
@handles_errors
def plan_versions(
    program: ProgramOpt = None,
    offer: Annotated[int | None, typer.Option(help="The offer's own plan.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every revision stored for the scope and the versions each one holds."""
    found = resolve_program(program)
    with _uow() as uow:
        revisions = uow.plans.revisions(found.id, _scope(offer))
    if not revisions:
        raise NotFound(f"no plan stored for {found.slug} ({_scope(offer)})")
    rows = []
    data = []
    for rev in revisions:
        plan = parse_plan(rev.document)
        versions = _plan_json(plan)
        data.append({"revision": rev.revision, "author": rev.author,
                     "created_at": rev.created_at, "versions": versions})  # fmt: skip
        for v in versions:
            rows.append((rev.revision, rev.author, v["version"], v["effective_from"],
                         v["effective_to"] or "open-ended", ", ".join(v["rules"])))  # fmt: skip
    emit(as_json, data, f"Plan revisions of {found.slug}",
         ("revision", "author", "version", "from", "to", "rules"), rows)  # fmt: skip


@app.command("adjust")
@handles_errors
def adjust(
    partner: Annotated[int, typer.Option(help="Partner id.")],
    amount: Annotated[str, typer.Option(help="Signed amount, e.g. 25.00 or -10.")],
    currency: Annotated[str, typer.Option(help="ISO currency (the program's).")],
    reason: Annotated[str, typer.Option(help="Why (shown on the partner's statement).")],
    author: Annotated[str, typer.Option(help="Who decided it.")],
    key: Annotated[str | None, typer.Option(help="Idempotency key (refuses a repeat).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Book a manual adjustment into the partner's approved balance."""
    money = parse_money(amount, currency, allow_negative=True)
    entry = adjust_balance(_uow(), services().clock, partner_id=partner, amount=money,
                           reason=reason, author=author, key=key)  # fmt: skip
    if as_json:
        print_json(entry)
    else:
        typer.echo(f"adjusted partner {partner} by {entry.amount.format()} ({entry.txn_id})")


@app.command("reverse")
@handles_errors
def reverse(
    order: Annotated[str, typer.Option(help="Order id of the conversion.")],
    reason: Annotated[str, typer.Option(help="Why (refund, chargeback, fraud...).")],
    program: ProgramOpt = None,
    amount: Annotated[str | None, typer.Option(help="Refunded order amount.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Refund the rest of the order.")] = False,
    kind: Annotated[str, typer.Option(help="refund or chargeback.")] = "refund",
    author: Annotated[str, typer.Option(help="Who records it.")] = "cli",
    key: Annotated[str | None, typer.Option(help="Refund id (refuses a repeat).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a refund or chargeback and reverse the matching share of the commission."""
    if full == (amount is not None):
        raise InvalidInput("give either --amount or --full", field="amount")
    found = resolve_program(program)
    value = parse_amount(amount) if amount is not None else None
    result = reverse_conversion(_uow(), services().clock, program_id=found.id, order_id=order,
                                amount=value, reason=reason, author=author, kind=kind,
                                key=key)  # fmt: skip
    if as_json:
        print_json(result)
        return
    took = result.reversed.format() if result.reversed is not None else "no commission"
    typer.echo(
        f"{kind} of {result.refund.format()} on order {order}: reversed {took}"
        f"{' (order fully refunded)' if result.fully_refunded else ''}"
    )


@app.command("approve")
@handles_errors
def approve(
    program: ProgramOpt = None,
    hold: Annotated[
        list[int] | None, typer.Option(help="Conversion id to keep pending (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve pending commissions past the program's lock period (safe to re-run)."""
    # The same loop as jobs.approvals.run_approvals (entry points do not import each other).
    ids: list[int]
    if program:
        ids = [resolve_program(program).id]
    else:
        with _uow() as uow:
            ids = [p.id for p in uow.facts.programs()]
    runs = [approve_commissions(_uow(), services().clock, pid, set(hold or ())) for pid in ids]
    rows = [(r.program_id, r.approved, ", ".join(m.format() for m in r.amount.values()) or "-",
             r.held) for r in runs]  # fmt: skip
    emit(as_json, runs, "Approvals", ("program", "approved", "amount", "held"), rows)


@app.command("balances")
@handles_errors
def show_balances(
    partner: Annotated[int | None, typer.Option(help="Only this partner.")] = None,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Pending / approved (payable) / paid per partner, derived from the ledger entries."""
    program_id = resolve_program(program).id if program else None
    found = balances(_uow(), program_id=program_id, partner_id=partner)
    rows = [(b.program_id, b.partner_id, b.currency, b.pending.amount, b.approved.amount,
             b.paid.amount) for b in found]  # fmt: skip
    emit(as_json, found, "Balances",
         ("program", "partner", "currency", "pending", "approved", "paid"), rows)  # fmt: skip


@app.command("simulate")
@handles_errors
def simulate_plan(
    plan: Annotated[Path, typer.Option("--plan", help="Proposed plan (.toml or .json).")],
    date_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD.")],
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay past conversions under a proposed plan: cost, margin and per-partner deltas."""
    text, fmt = _read(plan)
    start, end = parse_period_day(date_from, "from"), parse_period_day(date_to, "to")
    found = resolve_program(program)
    with _uow() as uow:
        offers = uow.facts.offer_ids(found.id)
    proposed = parse_plan(decode_plan_text(text, fmt), known_offers=offers)
    sim = simulate(_uow(), program_id=found.id, proposed=proposed, start=start, end=end)
    if as_json:
        data = to_dict(sim)
        print_json(data)
        return
    typer.echo(
        f"{sim.conversions} conversion(s) of {found.slug} from {start} to {end}; revenue "
        f"{sim.revenue.format()}"
    )
    typer.echo(f"commission now:      {sim.current_cost.format()}  margin "
               f"{sim.current_margin.format()}")  # fmt: skip
    typer.echo(f"commission proposed: {sim.proposed_cost.format()}  margin "
               f"{sim.proposed_margin.format()}")  # fmt: skip
    emit(False, None, "Per partner", ("partner", "conversions", "now", "proposed", "delta"),
         [(p.partner_id, p.conversions, p.current.amount, p.proposed.amount, p.delta.amount)
          for p in sim.partners])  # fmt: skip
    for note in sim.notes:
        typer.echo(f"note: {note}")


def to_dict(sim: Any) -> dict[str, Any]:
    return {
        "program_id": sim.program_id,
        "from": sim.start.isoformat(),
        "to": sim.end.isoformat(),
        "currency": sim.currency,
        "conversions": sim.conversions,
        "revenue": str(sim.revenue.amount),
        "current_cost": str(sim.current_cost.amount),
        "proposed_cost": str(sim.proposed_cost.amount),
        "current_margin": str(sim.current_margin.amount),
        "proposed_margin": str(sim.proposed_margin.amount),
        "partners": [
            {
                "partner_id": p.partner_id,
                "conversions": p.conversions,
                "current": str(p.current.amount),
                "proposed": str(p.proposed.amount),
                "delta": str(p.delta.amount),
            }
            for p in sim.partners
        ],
        "notes": list(sim.notes),
    }
