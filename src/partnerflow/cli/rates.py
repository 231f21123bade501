"""`partnerflow rates ...`: the exchange-rate table orders are converted with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from partnerflow.cli.runtime import emit, handles_errors, print_json, services
from partnerflow.commissions.services import import_rates
from partnerflow.core.errors import InvalidInput

app = typer.Typer(help="Exchange rates (date,from,to,rate).", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("import")
@handles_errors
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV with the header date,from,to,rate.")],
    as_json: JsonFlag = False,
) -> None:
    """Import rates; any bad row is reported with its line and nothing is imported."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}", field="file") from None
    svc = services()
    done = import_rates(svc.money_uow(), svc.clock,
                        text.splitlines())  # fmt: skip
    if as_json:
        print_json(done)
    else:
        typer.echo(f"imported {done.added} rate(s), {done.unchanged} already stored")


@app.command("list")
@handles_errors
def list_rates(as_json: JsonFlag = False) -> None:
    """Every stored rate."""
    svc = services()
    with svc.money_uow() as uow:
        rates = uow.rates.all()
    emit(as_json, rates, "Exchange rates", ("from", "to", "valid from", "rate"),
         [(r.source, r.target, r.valid_from.isoformat(), r.rate) for r in rates])  # fmt: skip
