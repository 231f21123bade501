"""Admin forms that change how the program runs: caps, program goals and partner targets,
commission plan versions, and ad spend.

Each form calls the capability's own use case (`caps.services`, `commissions.services`),
which validates everything before writing anything and records the change in the audit
log. A refusal re-renders the same page with status 400, the reason next to the form that
caused it (the plan validator's field path included) and the values as typed, so nothing
is lost and nothing is written. CSRF is checked by `AuthMiddleware` before a handler runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from partnerflow.caps.goals import GoalMetric
from partnerflow.caps.periods import local_date
from partnerflow.caps.services import (
    SetCap,
    SpendImportError,
    cap_history,
    goal_progress,
    import_spend_csv,
    list_caps,
    record_spend,
    set_caps,
    set_goal,
    set_partner_target,
    spend_report,
    target_progress,
)
from partnerflow.commissions.services import set_plan
from partnerflow.core.errors import InvalidInput, NotFound, PartnerflowError
from partnerflow.core.ids import MAX_ID, ProgramId
from partnerflow.programs.model import Program
from partnerflow.storage import tables as t
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.catalog import SqlOffers
from partnerflow.storage.plans import SqlPlans
from partnerflow.web.auth.access import STAFF_ROLES, current_user, require
from partnerflow.web.dashboard.routes import _pick_program
from partnerflow.web.rendering import load, render

CAP_METRICS = ("clicks", "conversions", "budget")
CAP_PERIODS = ("day", "week", "month", "all_time")
TARGET_PERIODS = ("day", "week", "month")
MAX_PLAN_CHARS = 64_000
MAX_SPEND_CSV_BYTES = 1_000_000
SPEND_REPORT_DAYS = 30


@dataclass(frozen=True, slots=True)
class FormError:
    """A refused form: which form, the reason, the field it names, the values typed."""

    form: str
    message: str
    field: str | None
    values: Mapping[str, str]


def _actor(request: Request) -> str:
    user = current_user(request)
    assert user is not None
    return f"user:{user.email}"


def _values(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _optional_id(form: FormData, name: str) -> int | None:
    text = _text(form, name, 20)
    if not text:
        return None
    label = name.replace("_", " ")
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"{label} must be a number", field=name)
    number = int(text)
    if number > MAX_ID:
        raise NotFound(f"no such {label.removesuffix(' id')}", field=name)
    return number


async def _program(request: Request, form: FormData) -> Program:
    ref = _text(form, "program", 100) or request.query_params.get("program")

    def pick(conn: Connection) -> Program | None:
        return _pick_program(conn, ref)[0]

    program = await load(request, pick)
    if program is None:
        raise HTTPException(404, "No such program.")
    return program


def _base(conn: Connection, ref: str | None) -> dict[str, Any]:
    program, programs = _pick_program(conn, ref)
    offers = SqlOffers(conn).list(program.id) if program is not None else []
    partners: list[Any] = []
    if program is not None:
        p = t.partners.c
        partners = list(
            conn.execute(
                select(p.id, p.name).where(p.program_id == program.id).order_by(p.name)
            ).all()
        )
    return {"program": program, "programs": programs, "offers": offers, "partners": partners}


def _caps_uow(request: Request) -> SqlCapsUnitOfWork:
    services = request.app.state.services
    # A cap change reaches the affected partners' inboxes
    # and webhooks through the outbox, as from the API.
    return SqlCapsUnitOfWork(services.engine, services.clock)


async def _page(
    request: Request,
    template: str,
    extra: Callable[[Request, Program], Any],
    ref: str | None,
    error: FormError | None = None,
) -> Response:
    data = await load(request, _base, ref)
    program: Program | None = data["program"]
    if program is not None:
        data.update(await extra(request, program))
    data["error"] = error
    data["form"] = error.values if error is not None else {}
    return render(request, template, data, status_code=400 if error else 200)


async def _refused(
    request: Request,
    template: str,
    extra: Callable[[Request, Program], Any],
    program: Program,
    form_name: str,
    form: FormData,
    exc: PartnerflowError,
) -> Response:
    if exc.code == "not_found":
        raise HTTPException(404, exc.message)
    error = FormError(form_name, exc.message, exc.field, _values(form))
    return await _page(request, template, extra, program.slug, error)


def _done(path: str, program: Program, note: str) -> Response:
    from starlette.responses import RedirectResponse

    return RedirectResponse(f"{path}?program={program.slug}&done={note}", status_code=303)


# Caps ----------------------------------------------------------------------------------------


async def _caps_extra(request: Request, program: Program) -> dict[str, Any]:
    services = request.app.state.services
    rules = await run_in_threadpool(list_caps, _caps_uow(request), program.id)
    history = await run_in_threadpool(cap_history, _caps_uow(request), program.id)
    return {
        "caps": rules,
        "history": list(reversed(history))[:200],
        "metrics": CAP_METRICS,
        "periods": CAP_PERIODS,
        "currency": program.currency,
        "clock_now": services.clock.now(),
    }


@require(*STAFF_ROLES)
async def caps_page(request: Request) -> Response:
    return await _page(
        request, "dashboard/caps.html", _caps_extra, request.query_params.get("program")
    )


@require(*STAFF_ROLES)
async def cap_set(request: Request) -> Response:
    form = await request.form()
    program = await _program(request, form)
    services = request.app.state.services
    try:
        reason = _text(form, "reason", 500)
        if not reason:
            raise InvalidInput("say why the cap is set (partners see the reason)", field="reason")
        command = SetCap(
            program_id=ProgramId(program.id),
            metric=_text(form, "metric", 20),
            period=_text(form, "period", 20),
            limit=_text(form, "limit", 40),
            mode=_text(form, "mode", 10) or "hard",
            offer_id=_optional_id(form, "offer_id"),
            partner_id=_optional_id(form, "partner_id"),
            cap_id=_optional_id(form, "cap_id"),
            reason=reason,
        )
        await run_in_threadpool(
            set_caps,
            _caps_uow(request),
            services.cap_counter(),
            services.clock,
            [command],
            _actor(request),
        )
    except PartnerflowError as exc:
        return await _refused(
            request, "dashboard/caps.html", _caps_extra, program, "cap", form, exc
        )
    return _done("/admin/caps", program, "cap-saved")


# Goals and partner targets --------------------------------------------------------------------


async def _goals_extra(request: Request, program: Program) -> dict[str, Any]:
    services = request.app.state.services

    def names(conn: Connection) -> dict[int, str]:
        p = t.partners.c
        rows = conn.execute(select(p.id, p.name).where(p.program_id == program.id))
        return {int(r.id): str(r.name) for r in rows}

    return {
        "names": await load(request, names),
        "goals": await run_in_threadpool(
            goal_progress, _caps_uow(request), services.clock, program.id
        ),
        "targets": await run_in_threadpool(
            target_progress, _caps_uow(request), services.clock, program.id
        ),
        "goal_metrics": [m.value for m in GoalMetric],
        "periods": TARGET_PERIODS,
    }


@require(*STAFF_ROLES)
async def goals_page(request: Request) -> Response:
    return await _page(
        request, "dashboard/goals.html", _goals_extra, request.query_params.get("program")
    )


@require(*STAFF_ROLES)
async def goal_set(request: Request) -> Response:
    form = await request.form()
    program = await _program(request, form)
    services = request.app.state.services
    try:
        await run_in_threadpool(
            lambda: set_goal(
                _caps_uow(request),
                services.clock,
                ProgramId(program.id),
                metric=_text(form, "metric", 40),
                period=_text(form, "period", 20),
                target=_text(form, "target", 40),
                period_key=_text(form, "period_key", 20) or None,
                actor=_actor(request),
            )
        )
    except PartnerflowError as exc:
        return await _refused(
            request, "dashboard/goals.html", _goals_extra, program, "goal", form, exc
        )
    return _done("/admin/goals", program, "goal-saved")


@require(*STAFF_ROLES)
async def target_set(request: Request) -> Response:
    form = await request.form()
    program = await _program(request, form)
    services = request.app.state.services
    try:
        partner_id = _optional_id(form, "partner_id")
        if partner_id is None:
            raise InvalidInput("choose a partner", field="partner_id")
        kind = _text(form, "kind", 20)
        value = _text(form, "target", 40)
        if not value:
            raise InvalidInput("give the target", field="target")
        await run_in_threadpool(
            lambda: set_partner_target(
                _caps_uow(request),
                services.clock,
                ProgramId(program.id),
                partner_id=partner_id,
                metric=_text(form, "metric", 40),
                period=_text(form, "period", 20),
                target=value if kind != "growth" else None,
                growth_percent=value if kind == "growth" else None,
                period_key=_text(form, "period_key", 20) or None,
                actor=_actor(request),
            )
        )
    except PartnerflowError as exc:
        return await _refused(
            request, "dashboard/goals.html", _goals_extra, program, "target", form, exc
        )
    return _done("/admin/goals", program, "target-saved")


# Commission plans -----------------------------------------------------------------------------


async def _plans_extra(request: Request, program: Program) -> dict[str, Any]:
    def read(conn: Connection) -> dict[str, Any]:
        plans = SqlPlans(conn)
        offers = {f"offer:{o.id}": o.name for o in SqlOffers(conn).list(program.id)}
        scopes = [
            {
                "scope": scope,
                "label": offers.get(scope, "whole program" if scope == "program" else scope),
                "revisions": plans.revisions(program.id, scope),
            }
            for scope in plans.scopes(program.id)
        ]
        return {"scopes": scopes}

    return cast(dict[str, Any], await load(request, read))


@require(*STAFF_ROLES)
async def plans_page(request: Request) -> Response:
    return await _page(
        request, "dashboard/plans.html", _plans_extra, request.query_params.get("program")
    )


@require(*STAFF_ROLES)
async def plan_set(request: Request) -> Response:
    form = await request.form()
    program = await _program(request, form)
    services = request.app.state.services
    try:
        text = form.get("document", "")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("paste the plan document", field="document")
        if len(text) > MAX_PLAN_CHARS:
            raise InvalidInput(
                f"the plan is longer than {MAX_PLAN_CHARS:,} characters", field="document"
            )
        fmt = _text(form, "format", 10) or "toml"
        offer_id = _optional_id(form, "offer_id")
        await run_in_threadpool(
            lambda: set_plan(
                services.money_uow(),
                services.clock,
                program_id=program.id,
                text=text,
                fmt=fmt,
                offer_id=offer_id,
                author=_actor(request),
            )
        )
    except PartnerflowError as exc:
        return await _refused(
            request, "dashboard/plans.html", _plans_extra, program, "plan", form, exc
        )
    return _done("/admin/plans", program, "plan-saved")


# Ad spend ---------------------------------------------------------------------------------------


async def _spend_extra(request: Request, program: Program) -> dict[str, Any]:
    services = request.app.state.services
    today = local_date(services.clock.now(), program.timezone)
    start = today - timedelta(days=SPEND_REPORT_DAYS - 1)
    rows = {
        by: await run_in_threadpool(
            spend_report, _caps_uow(request), ProgramId(program.id), start, today, by
        )
        for by in ("channel", "partner")
    }
    return {
        "by_channel": rows["channel"],
        "by_partner": rows["partner"],
        "first": start,
        "last": today,
        "today": today,
    }


@require(*STAFF_ROLES)
async def spend_page(request: Request) -> Response:
    return await _page(
        request, "dashboard/spend.html", _spend_extra, request.query_params.get("program")
    )


@require(*STAFF_ROLES)
async def spend_add(request: Request) -> Response:
    form = await request.form()
    program = await _program(request, form)
    services = request.app.state.services
    row = {
        k: _text(form, k, 200) or None
        for k in ("day", "channel", "campaign", "partner", "amount", "currency")
    }
    try:
        await run_in_threadpool(
            record_spend,
            _caps_uow(request),
            services.clock,
            ProgramId(program.id),
            [row],
            _actor(request),
        )
    except PartnerflowError as exc:
        if isinstance(exc, SpendImportError):
            # One row: say what was wrong without the "row 1:" of a file report.
            exc = InvalidInput(
                "; ".join(e.removeprefix("row 1: ") for e in exc.errors), field="spend"
            )
        return await _refused(
            request, "dashboard/spend.html", _spend_extra, program, "spend", form, exc
        )
    return _done("/admin/spend", program, "spend-saved")


async def _csv_text(form: FormData) -> str:
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_SPEND_CSV_BYTES + 1)
        if len(data) > MAX_SPEND_CSV_BYTES:
            raise InvalidInput(
                f"the file is larger than {MAX_SPEND_CSV_BYTES // 1000} kB", field="file"
            )
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("the file is not UTF-8 text (a CSV)", field="file") from None
    text = form.get("csv", "")
    text = text if isinstance(text, str) else ""
    if len(text.encode()) > MAX_SPEND_CSV_BYTES:
        raise InvalidInput(f"the CSV is larger than {MAX_SPEND_CSV_BYTES // 1000} kB", field="csv")
    if not text.strip():
        raise InvalidInput("choose a CSV file or paste the rows", field="csv")
    return text


@require(*STAFF_ROLES)
async def spend_import(request: Request) -> Response:
    # `async with` closes the uploaded file's spooled temporary file whatever happens.
    async with request.form(max_part_size=MAX_SPEND_CSV_BYTES + 1024) as form:
        program = await _program(request, form)
        services = request.app.state.services
        try:
            text = await _csv_text(form)
            count = await run_in_threadpool(
                import_spend_csv,
                _caps_uow(request),
                services.clock,
                ProgramId(program.id),
                text,
                _actor(request),
            )
        except PartnerflowError as exc:
            return await _refused(
                request, "dashboard/spend.html", _spend_extra, program, "spend_csv", form, exc
            )
    return _done("/admin/spend", program, f"{count}-rows-imported")


def routes() -> list[Route]:
    get, post = ["GET"], ["POST"]
    return [
        Route("/admin/caps", caps_page, methods=get),
        Route("/admin/caps", cap_set, methods=post),
        Route("/admin/goals", goals_page, methods=get),
        Route("/admin/goals/goal", goal_set, methods=post),
        Route("/admin/goals/target", target_set, methods=post),
        Route("/admin/plans", plans_page, methods=get),
        Route("/admin/plans", plan_set, methods=post),
        Route("/admin/spend", spend_page, methods=get),
        Route("/admin/spend", spend_add, methods=post),
        Route("/admin/spend/import", spend_import, methods=post),
    ]
