"""`partnerflow links ...`: tracking links (a partner x an offer, with default sub-IDs)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from partnerflow.cli.runtime import (
    emit,
    handles_errors,
    print_json,
    resolve_program,
    services,
    to_jsonable,
    tracking_uow,
    tracking_url,
)
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.tracking.model import TrackingLink
from partnerflow.tracking.services import CreateLink, create_link

app = typer.Typer(help="Tracking links.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
COLUMNS = ("id", "code", "partner", "offer", "sub-ids", "tracking URL")


def link_json(link: TrackingLink) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(link)
    data["tracking_url"] = tracking_url(link.code)
    return data


def _row(link: TrackingLink) -> tuple[Any, ...]:
    subs = " ".join(f"{k}={v}" for k, v in sorted(link.sub_ids.items()))
    return (link.id, link.code, link.partner_id, link.offer_id, subs, tracking_url(link.code))


def parse_sub_ids(values: list[str]) -> dict[str, str]:
    subs: dict[str, str] = {}
    for value in values:
        key, sep, sub = value.partition("=")
        if not sep:
            raise InvalidInput(f"--sub takes subN=value, got {value[:40]!r}", field="sub_ids")
        subs[key.strip()] = sub
    return subs


@app.command("create")
@handles_errors
def create(
    partner: Annotated[int, typer.Option(help="Partner id.")],
    offer: Annotated[int, typer.Option(help="Offer id.")],
    code: Annotated[str | None, typer.Option(help="Link code (default: random).")] = None,
    sub: Annotated[
        list[str] | None, typer.Option(help="Default sub-ID, subN=value (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a tracking link for a partner and an offer."""
    svc = services()
    link = create_link(
        tracking_uow(),
        svc.clock,
        CreateLink(
            partner_id=PartnerId(partner),
            offer_id=OfferId(offer),
            code=code,
            sub_ids=parse_sub_ids(sub or []),
        ),
        actor="cli",
    )
    if as_json:
        print_json(link_json(link))
    else:
        typer.echo(f"created link {link.code}: {tracking_url(link.code)}")


@app.command("list")
@handles_errors
def list_links(
    program: Annotated[str | None, typer.Option(help="Only this program (id or slug).")] = None,
    partner: Annotated[int | None, typer.Option(help="Only this partner's links.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tracking links with their tracking URLs."""
    program_id: ProgramId | None = resolve_program(program).id if program else None
    with services().uow() as uow:
        links = uow.links.list(program_id, PartnerId(partner) if partner is not None else None)
    emit(as_json, [link_json(x) for x in links], "Links", COLUMNS, map(_row, links))


@app.command("show")
@handles_errors
def show(
    code: Annotated[str, typer.Argument(help="Link code.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one link by its code."""
    with services().uow() as uow:
        link = uow.links.by_code(code)
    if link is None:
        raise NotFound(f"link {code[:64]!r} not found", field="code")
    data = link_json(link)
    if as_json:
        print_json(data)
    else:
        emit(False, data, f"Link {link.code}", ("field", "value"), data.items())
