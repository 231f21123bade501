"""`partnerflow db ...`: schema management."""

from __future__ import annotations

import typer

from partnerflow.cli.runtime import handles_errors, services

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@handles_errors
def upgrade_command() -> None:
    """Apply all migrations (safe to re-run)."""
    svc = services()
    svc.migrate()
    url = svc.engine.url.render_as_string(hide_password=True)
    typer.echo(f"database at {url} is up to date")
