"""Jinja2 templates for the dashboard and portal, and the filters that format numbers.

Autoescape is on for every template, so names, notes and anything else typed by a user
are HTML-escaped. Money is shown from exact `Money` values (never floats).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from partnerflow.core.money import Money

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
DASH = "—"
T = TypeVar("T")


def money(value: Money | None) -> str:
    """'1,234.50 EUR': rounded to the minor unit, with thousands separators (wide
    numbers in narrow KPI cards and table cells stay readable)."""
    if value is None:
        return DASH
    r = value.rounded()
    return f"{r.amount:,.{value.minor_units}f} {value.currency}"


def money_html(value: Money | None) -> Markup:
    """`money` with the currency code set smaller (the figure is what a KPI card shows)."""
    text = money(value)
    figure, _, currency = text.partition(" ")
    if not currency:
        return Markup.escape(text)
    return Markup('{}<span class="unit"> {}</span>').format(figure, currency)


def pct(value: Decimal | None, places: int = 2) -> str:
    return DASH if value is None else f"{value:.{places}f}%"


def ratio_pct(value: Decimal | None, places: int = 2) -> str:
    """A ratio (0.0123) as a percentage ("1.23%"), the form `core.kpis` returns."""
    return DASH if value is None else f"{value * 100:.{places}f}%"


def amount(value: Decimal | None, currency: str, places: int = 2) -> str:
    """A plain Decimal amount with its currency, rounded half-up for display only."""
    if value is None:
        return DASH
    shown = value.quantize(Decimal(1).scaleb(-places), rounding="ROUND_HALF_UP")
    return f"{shown:,} {currency}"


def num(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def _amount(value: Money | Decimal | int | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Money):
        return value.amount
    return Decimal(value)


def trend(
    current: Money | Decimal | int | None, previous: Money | Decimal | int | None
) -> dict[str, str]:
    """Change against the previous period: direction and a signed percentage."""
    cur, prev = _amount(current), _amount(previous)
    if cur is None or prev is None:
        return {"dir": "flat", "text": "no data"}
    if prev == 0:
        return {"dir": "up" if cur > 0 else "flat", "text": "new" if cur > 0 else "±0%"}
    # Rounded before the direction is taken, so a tiny change reads "±0.0%", not "▼ -0.0%".
    change = ((cur - prev) * 100 / abs(prev)).quantize(Decimal("0.1"))
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    return {"dir": direction, "text": f"{change:+.1f}%" if change else "±0.0%"}


def local_time(value: datetime | None, tz: str = "UTC") -> str:
    if value is None:
        return DASH
    return value.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def query(request: Request, **changes: Any) -> str:
    """The current query string with some parameters replaced (pagination, filters)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=money,
        pct=pct,
        num=num,
        local_time=local_time,
        ratio_pct=ratio_pct,
        amount=amount,
        money_html=money_html,
    )
    env.globals.update(trend=trend, query=query)
    return Jinja2Templates(env=env)


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    ctx = {
        "user": getattr(request.state, "user", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "path": request.url.path,
        # After a successful POST the handler redirects with ?done=<what>; the layout
        # confirms it (the value is only ever shown as escaped text).
        "done": request.query_params.get("done", "")[:40],
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


async def load(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a read function on one connection (one snapshot) in a worker thread, so the
    blocking database driver never stalls the event loop."""
    services = request.app.state.services

    def run() -> T:
        with services.read() as conn:
            return fn(conn, *args)

    return await run_in_threadpool(run)
