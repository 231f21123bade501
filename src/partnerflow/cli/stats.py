"""`partnerflow stats`: totals of everything stored (bots and flagged events included)."""

from __future__ import annotations

from typing import Annotated

import typer

from partnerflow.cli.runtime import emit, handles_errors, resolve_program, services
from partnerflow.storage.reports import event_totals


@handles_errors
def stats(
    program: Annotated[str | None, typer.Option(help="Only this program (id or slug).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Totals of stored events: clicks, impressions, conversions, ledger entries, ..."""
    program_id = resolve_program(program).id if program else None
    with services().engine.connect() as conn:
        totals = event_totals(conn, program_id)
    emit(as_json, totals, "Stored events", ("what", "count"), totals.items())


def register(root: typer.Typer) -> None:
    root.command("stats")(stats)
