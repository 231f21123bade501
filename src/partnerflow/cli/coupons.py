"""`partnerflow coupons ...`: coupon codes that attribute orders to a partner without a
click (influencers, podcasts, TikTok)."""

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
)
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.tracking.model import Coupon
from partnerflow.tracking.services import CreateCoupon, create_coupon

app = typer.Typer(help="Coupon codes.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
COLUMNS = ("id", "code", "program", "partner", "offer")


def _row(c: Coupon) -> tuple[Any, ...]:
    return (c.id, c.code, c.program_id, c.partner_id, c.offer_id)


@app.command("create")
@handles_errors
def create(
    partner: Annotated[int, typer.Option(help="Partner id.")],
    offer: Annotated[int, typer.Option(help="Offer id.")],
    code: Annotated[str, typer.Option(help="Coupon code (case-insensitive).")],
    as_json: JsonFlag = False,
) -> None:
    """Create a coupon code for a partner and an offer."""
    svc = services()
    coupon = create_coupon(
        tracking_uow(),
        svc.clock,
        CreateCoupon(partner_id=PartnerId(partner), offer_id=OfferId(offer), code=code),
        actor="cli",
    )
    if as_json:
        print_json(coupon)
    else:
        typer.echo(f"created coupon {coupon.code} for partner {coupon.partner_id}")


@app.command("list")
@handles_errors
def list_coupons(
    program: Annotated[str | None, typer.Option(help="Only this program (id or slug).")] = None,
    partner: Annotated[int | None, typer.Option(help="Only this partner's coupons.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List coupon codes."""
    program_id: ProgramId | None = resolve_program(program).id if program else None
    with services().uow() as uow:
        coupons = uow.coupons.list(program_id, PartnerId(partner) if partner is not None else None)
    emit(as_json, to_jsonable(coupons), "Coupons", COLUMNS, map(_row, coupons))


@app.command("show")
@handles_errors
def show(
    code: Annotated[str, typer.Argument(help="Coupon code.")],
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one coupon code."""
    found = resolve_program(program)
    with services().uow() as uow:
        coupon = uow.coupons.by_code(found.id, code.strip().upper())
    if coupon is None:
        raise NotFound(f"coupon {code[:64]!r} not found in {found.slug}", field="code")
    data = to_jsonable(coupon)
    if as_json:
        print_json(data)
    else:
        emit(False, data, f"Coupon {coupon.code}", ("field", "value"), data.items())
