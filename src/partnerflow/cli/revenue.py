"""`partnerflow revenue import FILE.csv`: the program's total revenue per day (all orders,
with or without a partner), the denominator of "partners' share of revenue"
(`partnerflow report share`)."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import date
from decimal import InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from partnerflow.cli.runtime import handles_errors, resolve_program, services
from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import parse_amount
from partnerflow.core.text import display_text
from partnerflow.storage.reports import import_program_revenue

app = typer.Typer(help="Total program revenue (imported), for partners' share of revenue.")

MAX_ROWS = 100_000
COLUMNS = ("day", "revenue")
MAX_ORDERS = 2_147_483_647
ORDERS_RULE = f"orders must be a whole number from 0 to {MAX_ORDERS}"


def parse_revenue_csv(text: str, currency: str) -> list[tuple[date, str, int, int, str]]:
    """Rows `day,revenue[,orders][,source][,currency]`; every bad row is reported at once
    and nothing is imported."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel's BOM
    try:
        return _parse_revenue_rows(reader, currency)
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        raise InvalidInput(f"line {reader.reader.line_num}: {exc}", field="file") from None


def _parse_revenue_rows(
    reader: csv.DictReader[str], currency: str
) -> list[tuple[date, str, int, int, str]]:
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise InvalidInput(
            f"CSV needs the columns {', '.join(COLUMNS)} (missing: {', '.join(missing)})",
            field="file",
        )
    out: list[tuple[date, str, int, int, str]] = []
    errors: list[str] = []
    seen: set[tuple[date, str]] = set()
    for n, raw in enumerate(reader, start=2):
        row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        try:
            day = date.fromisoformat(row["day"])
            # Exact: non-negative, at most 6 decimals (stored as micro-units, so a longer
            # fraction would be cut off) and at most 1e9 (a 64-bit column).
            amount = parse_amount(row["revenue"], field="revenue")
            # ASCII digits that fit the INTEGER column: int() also reads "1_000" and "٣".
            orders_text = row.get("orders") or "0"
            if not (orders_text.isascii() and orders_text.isdigit()) or len(orders_text) > 10:
                raise ValueError(ORDERS_RULE)
            orders = int(orders_text)
            if orders > MAX_ORDERS:
                raise ValueError(ORDERS_RULE)
            source = display_text(row.get("source") or "import", field="source", max_length=64)
            row_currency = (row.get("currency") or currency).upper()
            if row_currency != currency:
                raise ValueError(f"currency {row_currency} is not the program's {currency}")
            if (day, source) in seen:
                raise ValueError(f"{day} / {source} appears twice")
            seen.add((day, source))
            out.append((day, source, int(amount * 1_000_000), orders, currency))
        except (ValueError, InvalidOperation, KeyError) as exc:
            errors.append(f"line {n}: {exc}")
        except InvalidInput as exc:
            errors.append(f"line {n}: {exc.message}")
        if len(out) > MAX_ROWS:
            raise InvalidInput(f"more than {MAX_ROWS} rows", field="file")
    if errors:
        raise InvalidInput("; ".join(errors[:20]), field="file")
    if not out:
        raise InvalidInput("the CSV has no rows", field="file")
    return out


@app.command("import")
@handles_errors
def import_command(
    csv_file: Annotated[Path, typer.Argument(help="CSV: day,revenue[,orders][,source][,currency]")],
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
) -> None:
    """Import total revenue per day; re-importing a day and source replaces it."""
    found = resolve_program(program)
    try:
        text = csv_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {csv_file}: {exc}", field="file") from None
    rows = parse_revenue_csv(text, found.currency)
    svc = services()
    with svc.engine.begin() as conn:
        count = import_program_revenue(conn, found.id, rows, secrets.token_hex(8), svc.clock.now())
    typer.echo(f"imported {count} revenue days into {found.slug}")
