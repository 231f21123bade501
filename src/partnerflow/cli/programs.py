"""`partnerflow programs ...`: create, list and show affiliate programs."""

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
from partnerflow.programs.model import Program
from partnerflow.programs.services import CreateProgram, create_program

app = typer.Typer(
    help="Affiliate programs (one brand, currency and timezone each).", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
COLUMNS = ("id", "slug", "name", "brand", "currency", "timezone", "cookie days", "attribution")


def program_json(program: Program) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(program)
    data["postback_url"] = postback_url_template(program)
    return data


def _row(p: Program) -> tuple[Any, ...]:
    return (
        p.id,
        p.slug,
        p.name,
        p.brand,
        p.currency,
        p.timezone,
        p.cookie_window_days,
        p.attribution_model,
    )


@app.command("create")
@handles_errors
def create(
    slug: Annotated[str, typer.Option(help="Short unique name used in URLs and --program.")],
    name: Annotated[str, typer.Option(help="Program name.")],
    brand: Annotated[str, typer.Option(help="Brand the program sells.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 currency of the program.")] = "USD",
    timezone: Annotated[str, typer.Option(help="IANA timezone; reports bucket days in it.")] = (
        "UTC"
    ),
    cookie_window_days: Annotated[int, typer.Option(help="Attribution window in days.")] = 30,
    attribution_model: Annotated[str, typer.Option(help="last_click, first_click, ...")] = (
        "last_click"
    ),
    lock_period_days: Annotated[
        int, typer.Option(help="Days before a commission is approved.")
    ] = 30,
    fallback_url: Annotated[str | None, typer.Option(help="Where capped clicks go.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a program."""
    svc = services()
    program = create_program(
        programs_uow(),
        svc.clock,
        CreateProgram(
            slug=slug,
            name=name,
            brand=brand,
            currency=currency,
            timezone=timezone,
            cookie_window_days=cookie_window_days,
            attribution_model=attribution_model,
            lock_period_days=lock_period_days,
            fallback_url=fallback_url,
        ),
        actor="cli",
    )
    if as_json:
        print_json(program_json(program))
    else:
        typer.echo(f"created program {program.id} ({program.slug})")
        typer.echo(f"postback URL: {postback_url_template(program)}")


@app.command("list")
@handles_errors
def list_programs(as_json: JsonFlag = False) -> None:
    """List programs."""
    with services().uow() as uow:
        programs = uow.programs.list()
    emit(as_json, [program_json(p) for p in programs], "Programs", COLUMNS, map(_row, programs))


@app.command("show")
@handles_errors
def show(
    program: Annotated[str, typer.Argument(help="Program id or slug.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one program, with its postback URL."""
    found = resolve_program(program)
    data = program_json(found)
    if as_json:
        print_json(data)
    else:
        emit(False, data, f"Program {found.slug}", ("field", "value"), data.items())
