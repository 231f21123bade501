"""What every command shares: settings and services built once per invocation, error
reporting (a clear message on stderr and a non-zero exit), JSON and table output."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar, cast
from urllib.parse import quote

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings, load_settings
from partnerflow.core.errors import PartnerflowError
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.programs.model import Program
from partnerflow.programs.ports import ProgramsUnitOfWork
from partnerflow.tracking.ports import TrackingUnitOfWork

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4

_services: Services | None = None


def settings() -> Settings:
    try:
        return load_settings()
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        return fail(f"configuration error: {exc}")


def services() -> Services:
    """Services for this process (built on first use, closed at exit by the OS)."""
    global _services
    if _services is None:
        _services = build(settings())
    return _services


def reset_services() -> None:
    """Forget the cached services (tests run many commands in one process)."""
    global _services
    if _services is not None:
        _services.close()
    _services = None


def fail(message: str, code: int = 1) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn our domain errors into a message and an exit code instead of a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from partnerflow.core.errors import Conflict, NotFound

        try:
            return func(*args, **kwargs)
        except NotFound as exc:
            return fail(exc.message, EXIT_NOT_FOUND)
        except Conflict as exc:
            return fail(exc.message, EXIT_CONFLICT)
        except PartnerflowError as exc:
            where = f" ({exc.field})" if exc.field else ""
            return fail(f"{exc.message}{where}", EXIT_INVALID)
        except csv.Error as exc:  # a CSV the module cannot read (a field over 128 KiB, a NUL)
            return fail(f"the CSV could not be read: {exc}", EXIT_INVALID)

    return wrapper


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(to_jsonable(v)) for v in row))
    Console().print(table)


def resolve_program(ref: str | None) -> Program:
    """A program by id or slug; with no ref, the only program (an error when there are
    none or several, so a report never silently mixes currencies or timezones)."""
    from partnerflow.core.errors import InvalidInput, NotFound
    from partnerflow.programs.services import get_program

    svc = services()
    if ref is not None:
        return get_program(programs_uow(), ref.strip())
    with svc.uow() as uow:
        programs = uow.programs.list()
    if not programs:
        raise NotFound("no program exists yet: create one with 'partnerflow programs create'")
    if len(programs) > 1:
        slugs = ", ".join(p.slug for p in programs[:20])
        raise InvalidInput(f"several programs exist: pass --program ({slugs})", field="program")
    return programs[0]


def postback_url_template(program: Program) -> str:
    """The server-to-server postback URL a shop calls; the macros stay literal for the shop
    (or its tag manager) to fill in."""
    base = services().settings.public_base_url
    token = quote(program.postback_token, safe="")
    return (
        f"{base}/postback?token={token}&click_id={{click_id}}&order_id={{order_id}}"
        "&amount={amount}&currency={currency}"
    )


def tracking_url(code: str) -> str:
    return f"{services().settings.public_base_url}/c/{quote(code, safe='')}"


def emit(as_json: bool, value: Any, title: str, columns: Sequence[str], rows: Any) -> None:
    """Print `value` as JSON, or `rows` as a table."""
    if as_json:
        print_json(value)
    else:
        print_table(title, columns, list(rows))


# The capability ports declare their repositories as plain (mutable) Protocol attributes,
# which mypy treats invariantly, so SqlUnitOfWork's concrete repositories don't match them
# structurally; these casts are the one place that says "the SQL unit of work is all of them".
def programs_uow() -> ProgramsUnitOfWork:
    return cast("ProgramsUnitOfWork", services().uow())


def partners_uow() -> PartnersUnitOfWork:
    return cast("PartnersUnitOfWork", services().uow())


def tracking_uow() -> TrackingUnitOfWork:
    return cast("TrackingUnitOfWork", services().uow())


def money_text(amount: Decimal, currency: str) -> str:
    """An exact decimal string with at least the currency's minor units ('12.50', not
    '12.5'); sub-cent amounts keep their digits rather than being rounded away."""
    from partnerflow.core.currencies import MINOR_UNITS

    quantum = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    shown = amount.quantize(quantum)
    if shown == amount:
        return str(shown)
    return str(amount.normalize())
