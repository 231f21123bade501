"""What every command shares: settings and services built once per invocation, error
reporting (a clear message on stderr and a non-zero exit), JSON and table output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings, load_settings
from partnerflow.core.errors import PartnerflowError

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
