"""`partnerflow import ...`: CSV imports, all rows or none, errors by row and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from partnerflow.cli.runtime import (
    fail,
    handles_errors,
    print_json,
    resolve_program,
    services,
    tracking_uow,
)
from partnerflow.messaging.imports import ImportRejected, import_conversions, import_partners
from partnerflow.storage.outbox import record_conversion_published

app = typer.Typer(
    help="CSV imports (UTF-8; nothing is imported unless every row is valid).", no_args_is_help=True
)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"can't read {path}: {exc}")


def _rejected(exc: ImportRejected) -> None:
    err = Console(stderr=True)
    for e in exc.report.errors[:200]:
        err.print(
            f"row {e.row}{' ' + e.field if e.field else ''}: {e.reason}",
            highlight=False,
            markup=False,
        )
    fail(f"{len(exc.report.errors)} row(s) rejected; nothing was imported", 2)


@app.command("partners")
@handles_errors
def partners(
    path: Annotated[Path, typer.Argument(help="CSV with name,email[,status,website,country]")],
    program: Annotated[str | None, typer.Option()] = None,
) -> None:
    svc = services()
    found = resolve_program(program)
    try:
        report = import_partners(
            tracking_uow(), svc.clock, found.id, _read(path), actor="cli:import"
        )
    except ImportRejected as exc:
        _rejected(exc)
    print_json({"kind": report.kind, "rows": report.rows, "imported": report.imported})


@app.command("conversions")
@handles_errors
def conversions(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV with order_id[,amount,currency,click_id,coupon,customer_id,event_type]"
        ),
    ],
    program: Annotated[str | None, typer.Option()] = None,
) -> None:
    svc = services()
    found = resolve_program(program)
    uow = tracking_uow()
    try:
        report = import_conversions(
            uow,
            svc.clock,
            found.postback_token,
            _read(path),
            record=lambda cmd: record_conversion_published(uow, svc.clock, cmd),
        )
    except ImportRejected as exc:
        _rejected(exc)
    print_json(
        {
            "kind": report.kind,
            "rows": report.rows,
            "imported": report.imported,
            "duplicates": report.duplicates,
        }
    )
