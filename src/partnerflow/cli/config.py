"""`partnerflow config ...`."""

from __future__ import annotations

import typer

from partnerflow.cli.runtime import print_json, settings

app = typer.Typer(help="Configuration.", no_args_is_help=True)


@app.command("show")
def show() -> None:
    """Print the effective settings (secrets redacted) as JSON."""
    print_json(settings().redacted())
