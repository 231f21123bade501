"""`partnerflow payouts ...`: payout batches, statements, payment files, marking paid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from partnerflow.cli.runtime import emit, handles_errors, print_json, resolve_program, services
from partnerflow.commissions.services import parse_period_day
from partnerflow.core.errors import InvalidInput
from partnerflow.payouts.ports import StoredBatch
from partnerflow.payouts.services import (
    batch_statements,
    build_payout,
    export_batch,
    get_batch,
    list_batches,
    mark_batch_paid,
    parse_minimums,
)
from partnerflow.storage.payouts import SqlMoneyUnitOfWork

app = typer.Typer(help="Payout batches: build, show, export, mark paid.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _uow() -> SqlMoneyUnitOfWork:
    svc = services()
    return svc.money_uow()


def batch_json(stored: StoredBatch) -> dict[str, Any]:
    b = stored.batch
    return {
        "id": b.id,
        "program_id": b.program_id,
        "period_start": b.period.start.isoformat(),
        "period_end": b.period.end.isoformat(),
        "status": stored.status,
        "created_by": stored.created_by,
        "created_at": stored.created_at.isoformat(),
        "paid_by": stored.paid_by,
        "paid_at": stored.paid_at.isoformat() if stored.paid_at else None,
        "totals": {c: str(m.amount) for c, m in b.totals().items()},
        "lines": [{"partner_id": x.partner_id, "amount": str(x.amount.amount),
                   "currency": x.amount.currency, "payment_key": x.key} for x in b.lines],
        "held": [{"partner_id": h.partner_id, "amount": str(h.amount.amount),
                  "currency": h.amount.currency, "reason": h.reason} for h in b.held],
    }  # fmt: skip


def _summary(stored: StoredBatch) -> str:
    totals = ", ".join(m.format() for m in stored.batch.totals().values()) or "nothing"
    return (
        f"batch {stored.batch.id} ({stored.status}) for {stored.batch.period.label()}: "
        f"{len(stored.batch.lines)} payment(s), {totals}; {len(stored.batch.held)} held"
    )


@app.command("build")
@handles_errors
def build(
    period_end: Annotated[str, typer.Option(help="Last day of the period, YYYY-MM-DD.")],
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    minimum: Annotated[
        list[str] | None,
        typer.Option(help="Minimum payout per currency, CUR=AMOUNT (repeatable; default 50)."),
    ] = None,
    author: Annotated[str, typer.Option(help="Who builds it (audited).")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Build the batch paying approved balances up to --period-end (same content, same id)."""
    end = parse_period_day(period_end, "period-end")
    minimums = parse_minimums(minimum or [])
    found = resolve_program(program)
    stored = build_payout(_uow(), services().clock, program_id=found.id, period_end=end,
                          minimums=minimums, author=author)  # fmt: skip
    if as_json:
        print_json(batch_json(stored))
    else:
        typer.echo(_summary(stored))
        for h in stored.batch.held:
            typer.echo(f"  held partner {h.partner_id}: {h.amount.format()} — {h.reason}")


@app.command("list")
@handles_errors
def list_all(
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every batch with its status and totals."""
    program_id = resolve_program(program).id if program else None
    found = list_batches(_uow(), program_id)
    rows = [(s.batch.id, s.batch.program_id, s.batch.period.label(), s.status,
             len(s.batch.lines), ", ".join(m.format() for m in s.batch.totals().values()))
            for s in found]  # fmt: skip
    emit(as_json, [batch_json(s) for s in found], "Payout batches",
         ("batch", "program", "period", "status", "payments", "total"), rows)  # fmt: skip


@app.command("show")
@handles_errors
def show(
    batch: Annotated[str, typer.Argument(help="Batch id.")],
    as_json: JsonFlag = False,
) -> None:
    """The batch and a statement per partner (opening, movements with reasons, closing)."""
    stored = get_batch(_uow(), batch)
    statements = batch_statements(_uow(), batch)
    if as_json:
        data = batch_json(stored)
        data["statements"] = [
            {
                "partner_id": s.partner_id,
                "currency": s.currency,
                "opening": str(s.opening.amount),
                "closing": str(s.closing.amount),
                "pending": str(s.pending.amount),
                "lines": [{"at": x.at.isoformat(), "kind": x.kind,
                           "conversion_id": x.conversion_id, "description": x.description,
                           "amount": str(x.amount.amount), "balance": str(x.balance.amount)}
                          for x in s.lines],
            }
            for s in statements
        ]  # fmt: skip
        print_json(data)
        return
    typer.echo(_summary(stored))
    for s in statements:
        typer.echo(
            f"\npartner {s.partner_id} ({s.currency}): opening {s.opening.format()}, closing "
            f"{s.closing.format()}, still pending {s.pending.format()}"
        )
        for x in s.lines:
            ref = f" conversion {x.conversion_id}" if x.conversion_id else ""
            typer.echo(f"  {x.at.date()} {x.kind}{ref}: {x.amount.format()} -> "
                       f"{x.balance.format()} ({x.description})")  # fmt: skip


@app.command("export")
@handles_errors
def export(
    batch: Annotated[str, typer.Argument(help="Batch id.")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="generic or paypal.")] = "generic",
    currency: Annotated[str | None, typer.Option(help="PayPal: the file's currency.")] = None,
) -> None:
    """Write the batch's payment file (re-exporting gives the same file, paid or not)."""
    if fmt not in ("generic", "paypal"):
        raise InvalidInput("--format must be generic or paypal", field="format")
    text = export_batch(_uow(), batch, fmt, currency)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {out}: {exc}", field="out") from None
    typer.echo(f"wrote {out} ({fmt}, {max(text.count(chr(10)) - (fmt == 'generic'), 0)} line(s))")


@app.command("mark-paid")
@handles_errors
def mark_paid_cmd(
    batch: Annotated[str, typer.Argument(help="Batch id.")],
    author: Annotated[str, typer.Option(help="Who confirms the payment (audited).")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Record the batch's payments in the ledger, once (a second attempt is refused)."""
    paid = mark_batch_paid(_uow(), services().clock, batch, author=author)
    if as_json:
        print_json(batch_json(paid.batch))
    else:
        total = ", ".join(m.format() for m in paid.total().values())
        typer.echo(f"batch {batch} marked paid: {len(paid.batch.batch.lines)} payment(s), {total}")
