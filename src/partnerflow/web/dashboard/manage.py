"""Dashboard pages that act on the program: applications, plans, caps, conversion
explanations, fraud reviews, payouts, reports, segments, goals, announcements, messages,
terms, creatives, resources and settings.

Handlers parse the form, call the capability's own use case (never a copy of its rules)
and redirect; a refused action answers 400/404/409 with the reason and changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from partnerflow.analytics.reports import (
    report_from_measures,
    spreadsheet_text,
)
from partnerflow.attribution.services import explain_conversion
from partnerflow.bootstrap import Services
from partnerflow.core.clock import check_day
from partnerflow.core.errors import InvalidInput, NotFound, PartnerflowError
from partnerflow.core.ids import PartnerId
from partnerflow.fraud.ports import ReviewFilter
from partnerflow.fraud.screening import ScreeningResult, screen_application
from partnerflow.fraud.services import decide_reviews, list_reviews, parse_status
from partnerflow.messaging.audiences import Segment, check_subject
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.services import change_status
from partnerflow.payouts.services import (
    batch_statements,
    export_batch,
    list_batches,
    mark_batch_paid,
)
from partnerflow.programs.model import AttributionModel, Program
from partnerflow.programs.services import UpdateProgram, update_program
from partnerflow.segments.rules import segment_partners
from partnerflow.storage import content
from partnerflow.storage import fraud_queries as fq
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage import web_queries as q
from partnerflow.storage.catalog import SqlPartners
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.storage.rollup_grain import ProgramFacts
from partnerflow.storage.rollups import rollup_measures
from partnerflow.web.auth.access import STAFF_ROLES, current_user, require
from partnerflow.web.content import (
    CREATIVE_KINDS,
    MAX_CREATIVE_BYTES,
    RESOURCE_KINDS,
    TERMS_KINDS,
    UnsupportedType,
    check_kind,
    check_text,
    check_title,
    render_text,
    sniff_image,
)
from partnerflow.web.dashboard.routes import _id, _pick_program
from partnerflow.web.rendering import load, render

T = TypeVar("T")
MAX_REPORT_DAYS = 400
# Screening runs per applicant (its identity checks read the program's other partners), so
# the queue shows the oldest applicants a page at a time.
APPLICATIONS_PAGE = 20


def _services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


def _actor(request: Request) -> str:
    user = current_user(request)
    assert user is not None
    return f"user:{user.email}"


def _status_of(exc: PartnerflowError) -> int:
    return {"not_found": 404, "conflict": 409, "invalid_transition": 409}.get(exc.code, 400)


async def _run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run a use case in a worker thread; a refusal becomes an HTTP error with its reason
    (the use case's transaction rolled back, so nothing changed)."""
    try:
        return await run_in_threadpool(fn, *args, **kw)
    except UnsupportedType as exc:
        raise HTTPException(415, exc.message) from None
    except PartnerflowError as exc:
        raise HTTPException(_status_of(exc), exc.message) from None


def _done(path: str, note: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}done={note}", status_code=303)


def _program_or_none(conn: Connection, params: dict[str, str]) -> tuple[Program | None, Any]:
    return _pick_program(conn, params.get("program"))


def _base(conn: Connection, params: dict[str, str]) -> dict[str, Any]:
    program, programs = _program_or_none(conn, params)
    return {"program": program, "programs": programs, "done": params.get("done", "")[:40]}


async def _page(request: Request, template: str, fn: Callable[..., dict[str, Any]]) -> Response:
    params = dict(request.query_params)

    def run(conn: Connection) -> dict[str, Any]:
        data = _base(conn, params)
        if data["program"] is not None:
            data.update(fn(conn, data["program"], params))
        return data

    return render(request, template, await load(request, run))


async def _program_from_form(request: Request) -> tuple[Program, Any]:
    form = await request.form()
    ref = str(form.get("program", "")) or None

    def pick(conn: Connection) -> Program | None:
        return _pick_program(conn, ref)[0]

    program = await load(request, pick)
    if program is None:
        raise HTTPException(404, "No such program.")
    return program, form


# Applications with screening -------------------------------------------------------------


def screen(conn: Connection, partner: Partner) -> ScreeningResult:
    from partnerflow.storage.fraud_reviews import SqlFraudPolicies

    policy = SqlFraudPolicies(conn).get(partner.program_id)
    return screen_application(
        fq.screening_application(partner, fq.screening_data(conn, partner.id)),
        target_countries=policy.target_countries,
        existing_partners=fq.other_partner_identities(conn, partner.program_id, partner.id),
        policy=policy.screening,
    )


def applications_data(conn: Connection, program: Program, _p: dict[str, str]) -> dict[str, Any]:
    p = t.partners
    ids = conn.execute(
        select(p.c.id)
        .where(p.c.program_id == program.id, p.c.status == PartnerStatus.APPLIED.value)
        .order_by(p.c.created_at)
        .limit(APPLICATIONS_PAGE)
    ).scalars()
    repo = SqlPartners(conn, None)
    rows = []
    for pid in ids:
        partner = repo.get(PartnerId(pid))
        if partner is not None:
            rows.append({"partner": partner, "screening": screen(conn, partner)})
    return {"rows": rows}


@require(*STAFF_ROLES)
async def applications(request: Request) -> Response:
    return await _page(request, "dashboard/applications.html", applications_data)


@require(*STAFF_ROLES)
async def application_decide(request: Request) -> Response:
    partner_id = _id(request.path_params["partner_id"])
    form = await request.form()
    decision = str(form.get("decision", ""))
    target = {"approve": "approved", "reject": "rejected"}.get(decision)
    if target is None:
        raise HTTPException(400, "decision must be approve or reject")
    note = str(form.get("note", "")).strip()[:500]
    services = _services(request)

    def decide() -> None:
        with services.read() as conn:
            partner = SqlPartners(conn, None).get(PartnerId(partner_id))
            if partner is None:
                raise NotFound("no such partner", field="partner")
            if partner.status is not PartnerStatus.APPLIED:
                raise InvalidInput("this application was already decided", field="status")
            result = screen(conn, partner)
        reason = f"application {decision}d (screening score {result.score})"
        if note:
            reason += f": {note}"
        change_status(
            cast(PartnersUnitOfWork, services.uow()),
            PartnerId(partner_id),
            target,
            _actor(request),
            reason,
        )

    await _run(decide)
    return _done("/admin/applications", decision + "d")


# Conversion explanation --------------------------------------------------------------------


@require(*STAFF_ROLES)
async def conversion_detail(request: Request) -> Response:
    services = _services(request)
    conversion_id = _id(request.path_params["conversion_id"])
    found = await _run(explain_conversion, services.money_uow(), conversion_id)
    return render(
        request,
        "dashboard/conversion.html",
        {"x": found, "lines": found.lines(), "program": None, "programs": []},
    )


# Fraud review queue ------------------------------------------------------------------------


@require(*STAFF_ROLES)
async def fraud(request: Request) -> Response:
    services = _services(request)
    params = dict(request.query_params)
    data = await load(request, lambda conn: _base(conn, params))
    program: Program | None = data["program"]
    status_text = params.get("status", "open") or None
    try:
        status = parse_status(status_text)
    except PartnerflowError:
        status = parse_status("open")
    if program is not None:
        data["reviews"] = await _run(
            list_reviews,
            services.fraud_uow(),
            ReviewFilter(program_id=program.id, status=status, limit=200),
        )
        data["status"] = str(status) if status else ""
    return render(request, "dashboard/fraud.html", data)


@require(*STAFF_ROLES)
async def fraud_decide(request: Request) -> Response:
    form = await request.form()
    services = _services(request)
    ids = [_id(v) for v in form.getlist("review")]
    if not ids:
        raise HTTPException(400, "Tick at least one review.")
    decision = str(form.get("decision", ""))
    note = str(form.get("note", "")).strip() or None
    decided = await _run(
        decide_reviews,
        services.fraud_uow(),
        services.clock,
        ids,
        decision,
        _actor(request),
        note,
    )
    return _done("/admin/fraud", f"{len(decided)}-{decision}d")


# Payouts -----------------------------------------------------------------------------------


def _money_uow(services: Services) -> SqlMoneyUnitOfWork:
    return services.money_uow()


@require(*STAFF_ROLES)
async def payouts(request: Request) -> Response:
    services = _services(request)
    params = dict(request.query_params)
    data = await load(request, lambda conn: _base(conn, params))
    program: Program | None = data["program"]
    if program is not None:
        data["batches"] = await _run(list_batches, _money_uow(services), program.id)
    return render(request, "dashboard/payouts.html", data)


def _names(conn: Connection, ids: list[int]) -> dict[int, str]:
    p = t.partners
    return dict(conn.execute(select(p.c.id, p.c.name).where(p.c.id.in_(ids))).all())


@require(*STAFF_ROLES)
async def payout_detail(request: Request) -> Response:
    services = _services(request)
    batch_id = str(request.path_params["batch_id"])[:64]
    batches = await _run(list_batches, _money_uow(services))
    stored = next((b for b in batches if b.batch.id == batch_id), None)
    if stored is None:
        raise HTTPException(404, "No such payout batch.")
    statements = await _run(batch_statements, _money_uow(services), batch_id)
    ids = sorted({s.partner_id for s in statements})
    names = await load(request, _names, ids)
    return render(
        request,
        "dashboard/payout.html",
        {
            "stored": stored,
            "statements": statements,
            "names": names,
            "program": None,
            "programs": [],
            "done": request.query_params.get("done", "")[:40],
        },
    )


@require(*STAFF_ROLES)
async def payout_export(request: Request) -> Response:
    services = _services(request)
    batch_id = str(request.path_params["batch_id"])[:64]
    fmt = request.query_params.get("format", "generic")
    currency = request.query_params.get("currency") or None
    text = await _run(export_batch, _money_uow(services), batch_id, fmt, currency)
    safe = "".join(ch for ch in batch_id if ch.isalnum() or ch in "-_")
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="payout-{safe}-{fmt}.csv"'},
    )


@require(*STAFF_ROLES)
async def payout_paid(request: Request) -> Response:
    services = _services(request)
    batch_id = str(request.path_params["batch_id"])[:64]
    form = await request.form()
    if str(form.get("confirm", "")) != batch_id:
        raise HTTPException(400, "Type the batch id to confirm the payment; nothing was changed.")
    await _run(
        mark_batch_paid, _money_uow(services), services.clock, batch_id, author=_actor(request)
    )
    return _done(f"/admin/payouts/{batch_id}", "paid")


# Report builder ----------------------------------------------------------------------------


def _day(value: str | None, default: date) -> date:
    try:
        day = date.fromisoformat((value or "").strip()) if value else default
    except ValueError:
        raise InvalidInput("dates are YYYY-MM-DD", field="from") from None
    return check_day(day, "from")


REPORT_DIMENSIONS = (
    "partner",
    "offer",
    "link",
    "day",
    "week",
    "month",
    "country",
    "device",
    "channel",
    "coupon",
    "creative",
)


REPORT_SORTS = ("key", "revenue", "clicks", "conversions", "commission", "epc")
# Rows on the page (all of them with ?all=1, and always all in the CSV).
REPORT_ROWS_SHOWN = 50


def report_data(
    conn: Connection, program: Program, params: dict[str, str], today: date
) -> dict[str, Any]:
    """A report from the daily rollups (plus the traffic not folded yet), the same
    numbers as `partnerflow report`: bot clicks left out, conversions as of the last
    fold (the background fold runs every ~30 s)."""
    dimension = params.get("dimension", "partner")
    if dimension not in REPORT_DIMENSIONS:
        dimension = "partner"
    last = _day(params.get("to"), today)
    first = _day(params.get("from"), last - timedelta(days=29))
    if first > last or (last - first).days > MAX_REPORT_DAYS:
        raise InvalidInput(f"the period must be 1-{MAX_REPORT_DAYS} days", field="from")
    facts = ProgramFacts(program.id, program.currency, program.timezone)
    measures = rollup_measures(conn, facts, dimension, first, last)
    report = report_from_measures(
        dimension=dimension,
        currency=program.currency,
        timezone=program.timezone,
        first_day=first,
        last_day=last,
        measures=measures,
        names=q.report_labels(conn, dimension, list(measures)),
    )
    needle = (params.get("q") or "").strip().lower()[:100]
    try:
        min_clicks = max(0, int(params.get("min_clicks") or 0))
    except ValueError:
        min_clicks = 0
    rows = [
        r
        for r in report.rows
        if (not needle or needle in r.label.lower()) and r.clicks >= min_clicks
    ]
    sort = params.get("sort", "")
    if sort not in REPORT_SORTS:
        sort = "key" if dimension in ("day", "week", "month") else "revenue"
    if sort != "key":
        # Best first; ties by label so the order is stable.
        rows.sort(key=lambda r: (-(getattr(r, sort) or 0), r.label))
    shown = len(rows) if params.get("all") else REPORT_ROWS_SHOWN
    return {
        "report": report,
        "rows": rows[:shown],
        "all_rows": rows,
        "hidden": max(0, len(rows) - shown),
        "sort": sort,
        "sorts": REPORT_SORTS,
        "dimension": dimension,
        "dimensions": REPORT_DIMENSIONS,
        "first": first.isoformat(),
        "last": last.isoformat(),
        "q": needle,
        "min_clicks": min_clicks,
        "folded_at": q.conversions_folded_at(conn),
    }


def report_csv(rows: list[Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "key",
            "label",
            "clicks",
            "unique_clicks",
            "impressions",
            "conversions",
            "refunds",
            "revenue",
            "commission",
            "conversion_rate",
            "epc",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                spreadsheet_text(r.key),
                spreadsheet_text(r.label),
                r.clicks,
                r.unique_clicks,
                r.impressions,
                r.conversions,
                r.refunds,
                r.revenue,
                r.commission,
                "" if r.conversion_rate is None else r.conversion_rate,
                "" if r.epc is None else r.epc,
            ]
        )
    return out.getvalue()


@require(*STAFF_ROLES)
async def reports(request: Request) -> Response:
    services = _services(request)
    params = dict(request.query_params)
    today = services.clock.now().date()

    def run(conn: Connection) -> dict[str, Any]:
        data = _base(conn, params)
        if data["program"] is not None:
            data.update(report_data(conn, data["program"], params, today))
        return data

    try:
        data = await load(request, run)
    except PartnerflowError as exc:
        raise HTTPException(400, exc.message) from None
    if params.get("format") == "csv" and data["program"] is not None:
        name = f"report-{data['dimension']}-{data['first']}-{data['last']}.csv"
        return Response(
            report_csv(data["all_rows"]),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    return render(request, "dashboard/reports.html", data)


# Segments ----------------------------------------------------------------------------------


@require(*STAFF_ROLES)
async def segments(request: Request) -> Response:
    services = _services(request)
    params = dict(request.query_params)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        data = _base(conn, params)
        program = data["program"]
        if program is None:
            return data
        scope = q.Scope(program.id, program.currency, program.timezone)
        features = q.segment_features(conn, scope, now, 30)
        data["assignments"] = segment_partners(features, currency=program.currency)
        data["names"] = dict(
            conn.execute(
                select(t.partners.c.id, t.partners.c.name).where(
                    t.partners.c.program_id == program.id
                )
            ).all()
        )
        if params.get("customers"):
            from partnerflow.analytics.segmentation import Purchase, segment_customers
            from partnerflow.storage.segment_queries import customer_purchases

            purchases = customer_purchases(conn, program.id, program.currency, now)
            data["customers"] = segment_customers(
                (Purchase(r.customer_id, r.at, r.amount) for r in purchases.rows),
                as_of=now,
                currency=program.currency,
                timezone=program.timezone,
                predict_clv=False,
            )
        return data

    data = await load(request, run)
    counts: dict[str, int] = {}
    for a in data.get("assignments", []):
        counts[a.segment.value] = counts.get(a.segment.value, 0) + 1
    data["counts"] = counts
    data.setdefault("customers", None)
    return render(request, "dashboard/segments.html", data)


# Announcements and messages ------------------------------------------------------------------


def announcements_data(conn: Connection, program: Program, _p: dict[str, str]) -> dict[str, Any]:
    return {
        "announcements": msg.list_announcements(conn, program.id),
        "statuses": [s.value for s in PartnerStatus],
        "unread": msg.unread_for_managers(conn, program.id),
    }


@require(*STAFF_ROLES)
async def announcements(request: Request) -> Response:
    return await _page(request, "dashboard/announcements.html", announcements_data)


@require(*STAFF_ROLES)
async def announcement_send(request: Request) -> Response:
    services = _services(request)
    program, form = await _program_from_form(request)
    statuses = tuple(str(s) for s in form.getlist("statuses")) or ("approved", "active")
    bad = [s for s in statuses if s not in {x.value for x in PartnerStatus}]
    if bad:
        raise HTTPException(400, "Unknown partner status in the audience.")
    subject = str(form.get("subject", ""))
    body = str(form.get("body", ""))
    secret = services.settings.secret_key.get_secret_value()

    def send() -> Any:
        check_subject(subject)
        with services.engine.begin() as conn:
            return msg.queue_announcement(
                conn,
                program_id=program.id,
                kind="announcement",
                subject=subject,
                body=body,
                segment=Segment(statuses=statuses),
                author=_actor(request),
                now=services.clock.now(),
                secret=secret,
                base_url=services.settings.public_base_url,
            )

    await _run(send)
    return _done("/admin/announcements", "sent")


def messages_data(conn: Connection, program: Program, params: dict[str, str]) -> dict[str, Any]:
    unread = msg.unread_for_managers(conn, program.id)
    m = t.partner_messages
    partner_ids = list(
        conn.execute(
            select(m.c.partner_id).where(m.c.program_id == program.id).distinct()
        ).scalars()
    )
    return {"unread": unread, "names": _names(conn, partner_ids), "threads": partner_ids}


@require(*STAFF_ROLES)
async def messages(request: Request) -> Response:
    return await _page(request, "dashboard/messages.html", messages_data)


@require(*STAFF_ROLES)
async def message_thread(request: Request) -> Response:
    services = _services(request)
    partner_id = _id(request.path_params["partner_id"])
    user = current_user(request)
    assert user is not None

    def run() -> dict[str, Any]:
        with services.engine.begin() as conn:
            partner = SqlPartners(conn, None).get(PartnerId(partner_id))
            if partner is None:
                raise NotFound("no such partner", field="partner")
            msg.mark_thread_read(conn, partner_id, "manager", services.clock.now())
            return {"partner": partner, "thread": msg.thread(conn, partner_id)}

    data = await _run(run)
    return render(request, "dashboard/thread.html", {**data, "program": None, "programs": []})


@require(*STAFF_ROLES)
async def message_reply(request: Request) -> Response:
    services = _services(request)
    partner_id = _id(request.path_params["partner_id"])
    form = await request.form()
    body = str(form.get("body", ""))

    def post() -> None:
        with services.engine.begin() as conn:
            msg.post_message(
                conn,
                partner_id=partner_id,
                sender="manager",
                author=_actor(request),
                body=body,
                now=services.clock.now(),
            )

    await _run(post)
    return _done(f"/admin/messages/{partner_id}", "sent")


# Terms, creatives, resources ------------------------------------------------------------------


def terms_data(conn: Connection, program: Program, _p: dict[str, str]) -> dict[str, Any]:
    return {
        "documents": content.terms_documents(conn, program.id),
        "acceptances": content.acceptances(conn, program.id),
        "kinds": TERMS_KINDS,
    }


@require(*STAFF_ROLES)
async def terms(request: Request) -> Response:
    return await _page(request, "dashboard/terms.html", terms_data)


@require(*STAFF_ROLES)
async def terms_publish(request: Request) -> Response:
    services = _services(request)
    program, form = await _program_from_form(request)

    def publish() -> None:
        kind = check_kind(str(form.get("kind", "")), TERMS_KINDS)
        title = check_title(str(form.get("title", "")))
        body = check_text(str(form.get("body", "")))
        with services.engine.begin() as conn:
            content.publish_terms(
                conn, program.id, kind, title, body, _actor(request), services.clock.now()
            )

    await _run(publish)
    return _done("/admin/terms", "published")


def creatives_data(conn: Connection, program: Program, _p: dict[str, str]) -> dict[str, Any]:
    return {
        "creatives": content.creatives(conn, program.id, active_only=False),
        "kinds": CREATIVE_KINDS,
        "max_mb": MAX_CREATIVE_BYTES // (1024 * 1024),
    }


@require(*STAFF_ROLES)
async def creatives(request: Request) -> Response:
    return await _page(request, "dashboard/creatives.html", creatives_data)


@require(*STAFF_ROLES)
async def creative_add(request: Request) -> Response:
    services = _services(request)
    program, form = await _program_from_form(request)
    data: bytes | None = None
    try:
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(MAX_CREATIVE_BYTES + 1)
    finally:
        await form.close()  # the spooled upload file is removed at once
    if data is not None and len(data) > MAX_CREATIVE_BYTES:
        raise HTTPException(413, "The file is larger than 2 MB; nothing was saved.")

    def add() -> None:
        kind = check_kind(str(form.get("kind", "")), CREATIVE_KINDS)
        title = check_title(str(form.get("title", "")))
        text = str(form.get("text", "")).strip() or None
        content_type = None
        if kind == "social_post":
            if text is None:
                raise InvalidInput("a social post needs its text", field="text")
            check_text(text, "text")
        else:
            if not data:
                raise InvalidInput("choose an image file", field="file")
            content_type = sniff_image(data)
        with services.engine.begin() as conn:
            content.add_creative(
                conn,
                program.id,
                kind=kind,
                title=title,
                text=text,
                content_type=content_type,
                data=data if content_type else None,
                actor=_actor(request),
                now=services.clock.now(),
            )

    await _run(add)
    return _done("/admin/creatives", "added")


@require(*STAFF_ROLES)
async def creative_toggle(request: Request) -> Response:
    services = _services(request)
    program, form = await _program_from_form(request)
    creative_id = _id(request.path_params["creative_id"])
    active = str(form.get("active", "")) == "1"

    def toggle() -> None:
        with services.engine.begin() as conn:
            content.set_creative_active(
                conn, program.id, creative_id, active, _actor(request), services.clock.now()
            )

    await _run(toggle)
    return _done("/admin/creatives", "saved")


@require(*STAFF_ROLES)
async def creative_file(request: Request) -> Response:
    creative_id = _id(request.path_params["creative_id"])

    def run(conn: Connection) -> Any:
        program = _pick_program(conn, request.query_params.get("program"))[0]
        if program is None:
            return None
        return content.creative_file(conn, program.id, creative_id, active_only=False)

    found = await load(request, run)
    if found is None:
        raise HTTPException(404, "No such creative.")
    return image_response(*found)


def image_response(creative: content.Creative, data: bytes) -> Response:
    return Response(
        data,
        media_type=creative.content_type or "application/octet-stream",
        headers={
            "content-disposition": f'inline; filename="creative-{creative.id}"',
            "cache-control": "private, max-age=3600",
        },
    )


def resources_data(conn: Connection, program: Program, _p: dict[str, str]) -> dict[str, Any]:
    return {
        "resources": content.resources(conn, program.id),
        "kinds": RESOURCE_KINDS,
        "render_text": render_text,
    }


@require(*STAFF_ROLES)
async def resources(request: Request) -> Response:
    return await _page(request, "dashboard/resources.html", resources_data)


@require(*STAFF_ROLES)
async def resource_add(request: Request) -> Response:
    services = _services(request)
    program, form = await _program_from_form(request)

    def add() -> None:
        kind = check_kind(str(form.get("kind", "")), RESOURCE_KINDS)
        title = check_title(str(form.get("title", "")))
        body = check_text(str(form.get("body", "")))
        with services.engine.begin() as conn:
            content.add_resource(
                conn,
                program.id,
                kind=kind,
                title=title,
                body=body,
                actor=_actor(request),
                now=services.clock.now(),
            )

    await _run(add)
    return _done("/admin/resources", "published")


# Settings ------------------------------------------------------------------------------------


def settings_data(conn: Connection, program: Program, _p: dict[str, str]) -> dict[str, Any]:
    return {"models": [m.value for m in AttributionModel]}


@require(*STAFF_ROLES)
async def settings(request: Request) -> Response:
    return await _page(request, "dashboard/settings.html", settings_data)


@require(*STAFF_ROLES)
async def settings_save(request: Request) -> Response:
    services = _services(request)
    program, form = await _program_from_form(request)

    def number(name: str) -> int:
        text = str(form.get(name, "")).strip()
        digits = text.removeprefix("-")
        # int() also reads "1_0" and non-ASCII digits: not a number as typed in the form.
        if not (digits.isascii() and digits.isdigit()):
            raise InvalidInput(f"{name} must be a whole number", field=name)
        if len(digits) > 9:
            raise InvalidInput(f"{name} is out of range", field=name)
        return int(text)

    def save() -> None:
        from partnerflow.storage.content import SettingsUnitOfWork

        update_program(
            SettingsUnitOfWork(services.engine, services.clock),
            UpdateProgram(
                program_id=program.id,
                cookie_window_days=number("cookie_window_days"),
                lock_period_days=number("lock_period_days"),
                attribution_model=str(form.get("attribution_model", "")),
                fallback_url=str(form.get("fallback_url", "")).strip() or None,
            ),
            _actor(request),
        )

    await _run(save)
    return _done(f"/admin/settings?program={program.slug}", "saved")


def routes() -> list[Route]:
    get, post = ["GET"], ["POST"]
    return [
        Route("/admin/applications", applications, methods=get),
        Route("/admin/applications/{partner_id:int}", application_decide, methods=post),
        Route("/admin/conversions/{conversion_id:int}", conversion_detail, methods=get),
        Route("/admin/fraud", fraud, methods=get),
        Route("/admin/fraud/decide", fraud_decide, methods=post),
        Route("/admin/payouts", payouts, methods=get),
        Route("/admin/payouts/{batch_id}", payout_detail, methods=get),
        Route("/admin/payouts/{batch_id}/export.csv", payout_export, methods=get),
        Route("/admin/payouts/{batch_id}/paid", payout_paid, methods=post),
        Route("/admin/reports", reports, methods=get),
        Route("/admin/segments", segments, methods=get),
        Route("/admin/announcements", announcements, methods=get),
        Route("/admin/announcements", announcement_send, methods=post),
        Route("/admin/messages", messages, methods=get),
        Route("/admin/messages/{partner_id:int}", message_thread, methods=get),
        Route("/admin/messages/{partner_id:int}", message_reply, methods=post),
        Route("/admin/terms", terms, methods=get),
        Route("/admin/terms", terms_publish, methods=post),
        Route("/admin/creatives", creatives, methods=get),
        Route("/admin/creatives", creative_add, methods=post),
        Route("/admin/creatives/{creative_id:int}/file", creative_file, methods=get),
        Route("/admin/creatives/{creative_id:int}/active", creative_toggle, methods=post),
        Route("/admin/resources", resources, methods=get),
        Route("/admin/resources", resource_add, methods=post),
        Route("/admin/settings", settings, methods=get),
        Route("/admin/settings", settings_save, methods=post),
    ]
