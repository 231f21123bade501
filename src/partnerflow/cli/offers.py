"""`partnerflow offers ...`: what partners promote, with the commission plan and the
postback URL the shop calls when a conversion happens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from partnerflow.cli.runtime import (
    emit,
    handles_errors,
    postback_url_template,
    print_json,
    programs_uow,
    resolve_program,
    services,
    to_jsonable,
)
from partnerflow.commissions.rules import describe_plan, parse_plan
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import OfferId, ProgramId
from partnerflow.programs.model import Offer, Program
from partnerflow.programs.services import CreateOffer, create_offer, get_offer

app = typer.Typer(help="Offers and their commission plans.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
COLUMNS = ("id", "program", "name", "plan", "status", "landing URL")


def offer_json(offer: Offer, program: Program) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(offer)
    data["program_slug"] = program.slug
    data["plan"] = describe_plan(parse_plan(offer.commission_plan, program.currency))
    data["postback_url"] = postback_url_template(program)
    return data


def _row(offer: Offer, program: Program) -> tuple[Any, ...]:
    plan = describe_plan(parse_plan(offer.commission_plan, program.currency))
    return (offer.id, program.slug, offer.name, plan, offer.status, offer.landing_url)


def plan_data(
    plan: str, percent: str | None, amount: str | None, currency: str | None
) -> dict[str, str]:
    """The commission plan's data form from the command-line options."""
    kind = plan.strip().lower()
    if kind == "cps":
        if percent is None or amount is not None:
            raise InvalidInput("a cps plan takes --percent (and no --amount)", field="percent")
        return {"type": "cps", "percent": percent}
    if kind in {"cpa", "cpl"}:
        if amount is None or percent is not None:
            raise InvalidInput(f"a {kind} plan takes --amount (and no --percent)", field="amount")
        data = {"type": kind, "amount": amount}
        if currency:
            data["currency"] = currency
        return data
    raise InvalidInput("--plan must be cps, cpa or cpl", field="plan")


@app.command("create")
@handles_errors
def create(
    program: Annotated[str, typer.Option(help="Program id or slug.")],
    name: Annotated[str, typer.Option(help="Offer name (unique in the program).")],
    landing_url: Annotated[str, typer.Option(help="Absolute http(s) landing page URL.")],
    plan: Annotated[str, typer.Option(help="Commission plan: cps, cpa or cpl.")],
    percent: Annotated[str | None, typer.Option(help="CPS: percent of the sale.")] = None,
    amount: Annotated[str | None, typer.Option(help="CPA/CPL: flat amount.")] = None,
    plan_currency: Annotated[
        str | None, typer.Option(help="CPA/CPL currency (default: the program's).")
    ] = None,
    allowed_domain: Annotated[
        list[str] | None, typer.Option(help="Deep-link domain (repeatable; '*.x.com' ok).")
    ] = None,
    fallback_url: Annotated[str | None, typer.Option(help="Where capped clicks go.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an offer in a program."""
    svc = services()
    found = resolve_program(program)
    offer = create_offer(
        programs_uow(),
        svc.clock,
        CreateOffer(
            program_id=found.id,
            name=name,
            landing_url=landing_url,
            commission_plan=plan_data(plan, percent, amount, plan_currency),
            allowed_domains=tuple(allowed_domain or ()),
            fallback_url=fallback_url,
        ),
        actor="cli",
    )
    if as_json:
        print_json(offer_json(offer, found))
    else:
        typer.echo(f"created offer {offer.id} ({offer.name}) in {found.slug}")
        typer.echo(f"postback URL: {postback_url_template(found)}")


@app.command("list")
@handles_errors
def list_offers(
    program: Annotated[str | None, typer.Option(help="Only this program (id or slug).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List offers with their commission plans and postback URL templates."""
    program_id: ProgramId | None = resolve_program(program).id if program else None
    with services().uow() as uow:
        offers = uow.offers.list(program_id)
        programs = {p.id: p for p in uow.programs.list()}
    pairs = [(o, programs[o.program_id]) for o in offers]
    emit(
        as_json,
        [offer_json(o, p) for o, p in pairs],
        "Offers",
        COLUMNS,
        (_row(o, p) for o, p in pairs),
    )


@app.command("show")
@handles_errors
def show(
    offer_id: Annotated[int, typer.Argument(help="Offer id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one offer."""
    offer = get_offer(programs_uow(), OfferId(offer_id))
    data = offer_json(offer, resolve_program(str(offer.program_id)))
    if as_json:
        print_json(data)
    else:
        emit(False, data, f"Offer {offer.id}", ("field", "value"), data.items())
