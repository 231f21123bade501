"""`partnerflow api-keys ...`: create (token shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from partnerflow.cli.runtime import emit, handles_errors, print_json, resolve_program, services
from partnerflow.storage.api_keys import create_key, list_keys, revoke

app = typer.Typer(
    help="REST API keys (stored hashed; the token is shown once).", no_args_is_help=True
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("create")
@handles_errors
def create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    scope: Annotated[
        list[str], typer.Option(help="admin:read, admin:write or partner (repeatable).")
    ],
    program: Annotated[str | None, typer.Option(help="Bind the key to one program.")] = None,
    partner: Annotated[int | None, typer.Option(help="Partner id, for a 'partner' key.")] = None,
) -> None:
    """Create a key and print its token (it can't be shown again)."""
    svc = services()
    program_id = resolve_program(program).id if program else None
    with svc.engine.begin() as conn:
        key, token = create_key(
            conn,
            name=name,
            scopes=scope,
            now=svc.clock.now(),
            program_id=program_id,
            partner_id=partner,
        )
    print_json({"id": key.id, "prefix": key.prefix, "scopes": list(key.scopes), "token": token})
    typer.echo("store the token now: only its SHA-256 digest is kept", err=True)


@app.command("list")
@handles_errors
def list_command(as_json: JsonFlag = False) -> None:
    """Every key (never the tokens)."""
    with services().engine.connect() as conn:
        keys = list_keys(conn)
    emit(
        as_json,
        keys,
        "API keys",
        ["id", "prefix", "name", "scopes", "program", "partner", "last used", "revoked"],
        (
            [
                k.id,
                k.prefix,
                k.name,
                ",".join(k.scopes),
                k.program_id,
                k.partner_id,
                k.last_used_at,
                k.revoked_at,
            ]
            for k in keys
        ),
    )


@app.command("revoke")
@handles_errors
def revoke_command(key: Annotated[str, typer.Argument(help="Key prefix (or id).")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    svc = services()
    with svc.engine.begin() as conn:
        revoked = revoke(conn, key, svc.clock.now())
    typer.echo(f"revoked {revoked.prefix} ({revoked.name}) at {revoked.revoked_at}")
