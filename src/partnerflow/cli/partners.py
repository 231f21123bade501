"""`partnerflow partners ...`: affiliates, influencers and creators, and their lifecycle."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from partnerflow.cli.runtime import (
    emit,
    handles_errors,
    partners_uow,
    print_json,
    resolve_program,
    services,
    to_jsonable,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.partners.services import CreatePartner, change_status, create_partner, get_partner

app = typer.Typer(help="Partners and their status.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
COLUMNS = ("id", "program", "name", "email", "status", "country", "website")


def _row(p: Partner) -> tuple[Any, ...]:
    return (p.id, p.program_id, p.name, p.email, p.status, p.country, p.website)


def parse_social(values: list[str]) -> dict[str, str]:
    """'network=handle' pairs, e.g. tiktok=@anna."""
    social: dict[str, str] = {}
    for value in values:
        network, sep, handle = value.partition("=")
        if not sep:
            raise InvalidInput(f"--social takes network=handle, got {value[:40]!r}", field="social")
        social[network.strip().lower()] = handle
    return social


@app.command("create")
@handles_errors
def create(
    program: Annotated[str, typer.Option(help="Program id or slug.")],
    name: Annotated[str, typer.Option(help="Partner name.")],
    email: Annotated[str, typer.Option(help="Contact e-mail (unique in the program).")],
    status: Annotated[str, typer.Option(help="Initial status.")] = PartnerStatus.APPLIED.value,
    website: Annotated[str | None, typer.Option(help="Website URL.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 country.")] = None,
    social: Annotated[
        list[str] | None, typer.Option(help="network=handle (repeatable), e.g. tiktok=@anna.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create (or register the application of) a partner."""
    svc = services()
    found = resolve_program(program)
    partner = create_partner(
        partners_uow(),
        svc.clock,
        CreatePartner(
            program_id=found.id,
            name=name,
            email=email,
            status=status,
            website=website,
            country=country,
            social=parse_social(social or []),
        ),
        actor="cli",
    )
    if as_json:
        print_json(partner)
    else:
        typer.echo(f"created partner {partner.id} ({partner.email}, {partner.status})")


@app.command("list")
@handles_errors
def list_partners(
    program: Annotated[str | None, typer.Option(help="Only this program (id or slug).")] = None,
    status: Annotated[str | None, typer.Option(help="Only partners in this status.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List partners."""
    program_id: ProgramId | None = resolve_program(program).id if program else None
    wanted: PartnerStatus | None = None
    if status is not None:
        try:
            wanted = PartnerStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in PartnerStatus)
            raise InvalidInput(f"status must be one of {allowed}", field="status") from None
    with services().uow() as uow:
        partners = uow.partners.list(program_id, wanted)
    emit(as_json, to_jsonable(partners), "Partners", COLUMNS, map(_row, partners))


@app.command("show")
@handles_errors
def show(
    partner_id: Annotated[int, typer.Argument(help="Partner id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one partner."""
    partner = get_partner(partners_uow(), PartnerId(partner_id))
    data = to_jsonable(partner)
    if as_json:
        print_json(data)
    else:
        emit(False, data, f"Partner {partner.id}", ("field", "value"), data.items())


@app.command("set-status")
@handles_errors
def set_status(
    partner_id: Annotated[int, typer.Argument(help="Partner id.")],
    status: Annotated[str, typer.Argument(help="approved, rejected, active, suspended, banned.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Move a partner along its lifecycle (applied -> approved -> active -> ...)."""
    partner = change_status(
        partners_uow(), PartnerId(partner_id), status, actor="cli", reason=reason
    )
    if as_json:
        print_json(partner)
    else:
        typer.echo(f"partner {partner.id} is now {partner.status}")
