"""Dashboard pages for program staff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from partnerflow.bootstrap import Services
from partnerflow.commissions.rules import describe_plan, parse_plan
from partnerflow.core.errors import PartnerflowError
from partnerflow.core.ids import MAX_ID, PartnerId
from partnerflow.partners.model import PartnerStatus
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.rules import TRANSITIONS
from partnerflow.partners.services import change_status
from partnerflow.programs.model import Program
from partnerflow.storage import web_queries as q
from partnerflow.storage.catalog import SqlOffers, SqlPrograms
from partnerflow.tracking.model import ConversionStatus
from partnerflow.web.auth.access import STAFF_ROLES, current_user, require
from partnerflow.web.rendering import load, render

PERIOD_DAYS = 30


def _int(value: str | None, default: int = 1) -> int:
    try:
        return max(1, min(int(value or default), 1_000_000))
    except ValueError:
        return default


def _id(value: object) -> int:
    """An id from a path or a form: ASCII digits up to `MAX_ID`, else 0, which names nothing.
    Never clamped like a page number: that named another object (`/admin/partners/0` was
    partner 1)."""
    text = str(value)
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return 0
    number = int(text)
    return number if number <= MAX_ID else 0


def _pick_program(conn: Connection, ref: str | None) -> tuple[Program | None, list[Program]]:
    programs = SqlPrograms(conn).list()
    chosen = next((p for p in programs if p.slug == ref), None) if ref else None
    return chosen or (programs[0] if programs else None), programs


def _scope(program: Program) -> q.Scope:
    return q.Scope(program.id, program.currency, program.timezone)


def postback_template(base_url: str, program: Program) -> str:
    return (
        f"{base_url}/postback?token={program.postback_token}&click_id={{click_id}}"
        "&order_id={order_id}&amount={amount}&currency={currency}"
    )


def _now(request: Request) -> datetime:
    services: Services = request.app.state.services
    return services.clock.now()


# Overview --------------------------------------------------------------------------------


def overview_data(conn: Connection, ref: str | None, now: datetime) -> dict[str, Any]:
    program, programs = _pick_program(conn, ref)
    if program is None:
        return {"program": None, "programs": programs}
    scope = _scope(program)
    current = q.Period.last_days(now, PERIOD_DAYS)
    previous = current.previous()
    marks = q.read_marks(conn)
    totals, points = q.summary(conn, scope, current, impressions=True, marks=marks)
    return {
        "program": program,
        "programs": programs,
        "current": totals,
        "previous": q.totals(conn, scope, previous, marks=marks),
        "series": q.series_for_chart(points),
        "top": q.top_partners(conn, scope, current, limit=10, marks=marks),
        "status_counts": q.status_counts(conn, program.id),
        "flagged": q.flagged_conversions(conn, scope, current),
        "period_days": PERIOD_DAYS,
    }


@require(*STAFF_ROLES)
async def overview(request: Request) -> Response:
    data = await load(request, overview_data, request.query_params.get("program"), _now(request))
    return render(request, "dashboard/overview.html", data)


# Partners --------------------------------------------------------------------------------


def partners_data(conn: Connection, params: dict[str, str], now: datetime) -> dict[str, Any]:
    program, programs = _pick_program(conn, params.get("program"))
    if program is None:
        return {"program": None, "programs": programs}
    status = params.get("status") or None
    if status not in {s.value for s in PartnerStatus}:
        status = None
    search = (params.get("q") or "").strip()[:100] or None
    rows, page = q.partners_page(
        conn,
        _scope(program),
        q.Period.last_days(now, PERIOD_DAYS),
        status=status,
        search=search,
        page=_int(params.get("page")),
    )
    return {
        "program": program,
        "programs": programs,
        "rows": rows,
        "page": page,
        "status": status or "",
        "search": search or "",
        "statuses": [s.value for s in PartnerStatus],
        "status_counts": q.status_counts(conn, program.id),
        "period_days": PERIOD_DAYS,
    }


@require(*STAFF_ROLES)
async def partners(request: Request) -> Response:
    data = await load(request, partners_data, dict(request.query_params), _now(request))
    return render(request, "dashboard/partners.html", data)


@dataclass(frozen=True)
class PartnerDetail:
    program: Program
    partner: Any
    current: q.Totals
    previous: q.Totals
    all_time: q.Totals
    balances: dict[str, Any]
    links: list[q.LinkStats]
    coupons: list[q.CouponStats]
    conversions: list[q.ConversionRow]
    audit: list[Any]
    users: list[Any]
    series: dict[str, list[Any]]


def partner_detail_data(conn: Connection, partner_id: int, now: datetime) -> PartnerDetail | None:
    row = q.partner_row(conn, partner_id)
    if row is None:
        return None
    program = SqlPrograms(conn).get(row.program_id)
    assert program is not None
    scope = q.Scope(program.id, program.currency, program.timezone, partner_id=row.id)
    current = q.Period.last_days(now, PERIOD_DAYS)
    conversions, _ = q.conversions_page(conn, scope, size=20)
    audit, _ = q.audit_page(conn, entity_type="partner", entity_id=str(row.id), size=20)
    marks = q.read_marks(conn)
    totals, points = q.summary(conn, scope, current, marks=marks)
    return PartnerDetail(
        program=program,
        partner=row,
        current=totals,
        previous=q.totals(conn, scope, current.previous(), marks=marks),
        all_time=q.totals(conn, scope, q.Period.until(now), marks=marks),
        balances=q.balances(conn, scope, row.id),
        links=q.link_stats(conn, scope, current, marks=marks),
        coupons=q.coupon_stats(conn, scope, current),
        conversions=conversions,
        audit=audit,
        users=q.partner_users(conn, row.id),
        series=q.series_for_chart(points),
    )


@require(*STAFF_ROLES)
async def partner_detail(request: Request) -> Response:
    detail = await load(
        request, partner_detail_data, _id(request.path_params["partner_id"]), _now(request)
    )
    if detail is None:
        raise HTTPException(404, "No such partner.")
    targets = sorted(TRANSITIONS[q_status(detail.partner.status)])
    return render(
        request,
        "dashboard/partner.html",
        {"d": detail, "period_days": PERIOD_DAYS, "targets": targets, "error": None},
    )


def q_status(value: str) -> PartnerStatus:
    return PartnerStatus(value)


@require(*STAFF_ROLES)
async def partner_status(request: Request) -> Response:
    partner_id = _id(request.path_params["partner_id"])
    form = await request.form()
    target = str(form.get("status", ""))[:32]
    reason = str(form.get("reason", "")).strip()[:500]
    services: Services = request.app.state.services
    user = current_user(request)
    assert user is not None
    try:
        await run_in_threadpool(
            change_status,
            cast("PartnersUnitOfWork", services.uow()),
            PartnerId(partner_id),
            target,
            f"user:{user.email}",
            reason,
        )
    except PartnerflowError as exc:
        status = 404 if exc.code == "not_found" else 400
        raise HTTPException(status, exc.message) from None
    return RedirectResponse(f"/admin/partners/{partner_id}", status_code=303)


# Offers, conversions, audit ----------------------------------------------------------------


def offers_data(conn: Connection, ref: str | None, base_url: str) -> dict[str, Any]:
    program, programs = _pick_program(conn, ref)
    if program is None:
        return {"program": None, "programs": programs}
    offers = []
    for offer in SqlOffers(conn).list(program.id):
        try:
            plan = describe_plan(parse_plan(offer.commission_plan, program.currency))
        except PartnerflowError:
            plan = "unreadable plan"
        offers.append({"offer": offer, "plan": plan})
    return {
        "program": program,
        "programs": programs,
        "offers": offers,
        "postback": postback_template(base_url, program),
    }


@require(*STAFF_ROLES)
async def offers(request: Request) -> Response:
    services: Services = request.app.state.services
    data = await load(
        request,
        offers_data,
        request.query_params.get("program"),
        services.settings.public_base_url,
    )
    return render(request, "dashboard/offers.html", data)


def conversions_data(conn: Connection, params: dict[str, str]) -> dict[str, Any]:
    program, programs = _pick_program(conn, params.get("program"))
    if program is None:
        return {"program": None, "programs": programs}
    status = params.get("status") or None
    if status not in {s.value for s in ConversionStatus}:
        status = None
    partner_id = _id(params.get("partner")) or None
    rows, page = q.conversions_page(
        conn, _scope(program), status=status, partner_id=partner_id, page=_int(params.get("page"))
    )
    return {
        "program": program,
        "programs": programs,
        "rows": rows,
        "page": page,
        "status": status or "",
        "partner": partner_id or "",
        "statuses": [s.value for s in ConversionStatus],
    }


@require(*STAFF_ROLES)
async def conversions(request: Request) -> Response:
    data = await load(request, conversions_data, dict(request.query_params))
    return render(request, "dashboard/conversions.html", data)


def audit_data(conn: Connection, params: dict[str, str]) -> dict[str, Any]:
    entity_type = (params.get("entity_type") or "")[:32] or None
    entity_id = (params.get("entity_id") or "")[:64] or None
    rows, page = q.audit_page(
        conn, entity_type=entity_type, entity_id=entity_id, page=_int(params.get("page"))
    )
    return {
        "rows": rows,
        "page": page,
        "entity_type": entity_type or "",
        "entity_id": entity_id or "",
        "program": None,
        "programs": [],
    }


@require(*STAFF_ROLES)
async def audit(request: Request) -> Response:
    data = await load(request, audit_data, dict(request.query_params))
    return render(request, "dashboard/audit.html", data)


def routes() -> list[Route]:
    return [
        Route("/admin", overview, methods=["GET"]),
        Route("/admin/partners", partners, methods=["GET"]),
        Route("/admin/partners/{partner_id:int}", partner_detail, methods=["GET"]),
        Route("/admin/partners/{partner_id:int}/status", partner_status, methods=["POST"]),
        Route("/admin/offers", offers, methods=["GET"]),
        Route("/admin/conversions", conversions, methods=["GET"]),
        Route("/admin/audit", audit, methods=["GET"]),
    ]
