"""Portal pages about the partner's place in the program: targets, caps and why they
changed, payouts and statements, announcements and messages, terms, creatives, resources.

Every read is keyed on the signed-in partner (and its program) in the query or the use
case call; an id that belongs to someone else answers the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from partnerflow.bootstrap import Services
from partnerflow.caps.services import cap_history, list_caps, target_progress
from partnerflow.core.errors import PartnerflowError
from partnerflow.core.ids import PartnerId
from partnerflow.payouts.services import batch_statements, list_batches
from partnerflow.storage import content
from partnerflow.storage import messages as msg
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.catalog import SqlLinks
from partnerflow.web.auth.access import current_user, require
from partnerflow.web.content import render_text
from partnerflow.web.dashboard.manage import image_response
from partnerflow.web.portal.routes import Me, _me, _partner_id, _path_id, tracking_url
from partnerflow.web.rendering import load, render

NOT_FOUND = "Not found."


def _services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


def _status_of(exc: PartnerflowError) -> int:
    return {"not_found": 404, "conflict": 409}.get(exc.code, 400)


async def _me_of(request: Request) -> Me:
    return await load(request, _me, _partner_id(request))


async def _call(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kw)
    except PartnerflowError as exc:
        raise HTTPException(_status_of(exc), exc.message) from None


# Targets and caps ------------------------------------------------------------------------------


@require("partner")
async def targets(request: Request) -> Response:
    services = _services(request)
    me = await _me_of(request)
    rows = await _call(
        target_progress,
        SqlCapsUnitOfWork(services.engine, services.clock),
        services.clock,
        me.program.id,
        partner_id=me.partner.id,
    )
    return render(request, "portal/targets.html", {"me": me, "rows": rows})


@require("partner")
async def caps(request: Request) -> Response:
    services = _services(request)
    me = await _me_of(request)
    rules = await _call(
        list_caps,
        SqlCapsUnitOfWork(services.engine, services.clock),
        me.program.id,
        partner_id=PartnerId(me.partner.id),
    )
    history = await _call(
        cap_history,
        SqlCapsUnitOfWork(services.engine, services.clock),
        me.program.id,
        partner_id=PartnerId(me.partner.id),
    )
    # Only rules that name this partner: program-wide caps are the manager's business,
    # and another partner's rule never reaches this page.
    mine = [c for c in rules if c.scope.partner_id == me.partner.id]
    mine_ids = {c.id for c in mine} | {
        rule.id for _change, rule in history if rule.scope.partner_id == me.partner.id
    }
    changes = [(ch, rule) for ch, rule in history if rule.id in mine_ids]
    return render(
        request,
        "portal/caps.html",
        {"me": me, "caps": mine, "changes": list(reversed(changes))},
    )


# Payouts ---------------------------------------------------------------------------------------


def _mine(batch: Any, partner_id: int) -> dict[str, Any] | None:
    line = next((x for x in batch.batch.lines if x.partner_id == partner_id), None)
    held = next((x for x in batch.batch.held if x.partner_id == partner_id), None)
    if line is None and held is None:
        return None
    return {"stored": batch, "line": line, "held": held}


@require("partner")
async def payouts(request: Request) -> Response:
    services = _services(request)
    me = await _me_of(request)
    batches = await _call(list_batches, services.money_uow(), me.program.id)
    rows = [r for r in (_mine(b, me.partner.id) for b in batches) if r is not None]
    balances = await load(request, _balances, me)
    return render(request, "portal/payouts.html", {"me": me, "rows": rows, "balances": balances})


def _balances(conn: Connection, me: Me) -> dict[str, Any]:
    from partnerflow.storage import web_queries as q

    return q.balances(conn, me.scope, me.partner.id)


@require("partner")
async def payout_statement(request: Request) -> Response:
    services = _services(request)
    me = await _me_of(request)
    batch_id = str(request.path_params["batch_id"])[:64]
    batches = await _call(list_batches, services.money_uow(), me.program.id)
    found = next((b for b in batches if b.batch.id == batch_id), None)
    row = _mine(found, me.partner.id) if found is not None else None
    if row is None:
        raise HTTPException(404, NOT_FOUND)
    statements = await _call(batch_statements, services.money_uow(), batch_id)
    mine = [s for s in statements if s.partner_id == me.partner.id]
    return render(request, "portal/statement.html", {"me": me, **row, "statements": mine})


# Announcements and messages --------------------------------------------------------------------


@require("partner")
async def messages(request: Request) -> Response:
    services = _services(request)
    partner_id = _partner_id(request)

    def run() -> dict[str, Any]:
        with services.read() as conn:
            me = _me(conn, partner_id)
            return {
                "me": me,
                "inbox": msg.inbox(conn, partner_id),
                "thread": msg.thread(conn, partner_id),
            }

    data = await run_in_threadpool(run)
    now = services.clock.now()

    def mark_read() -> None:
        # Shown means read: the unread counts drop once the page has been rendered.
        with services.engine.begin() as conn:
            msg.mark_thread_read(conn, partner_id, "partner", now)
            for item in data["inbox"]:
                if item.read_at is None:
                    msg.mark_inbox_read(conn, partner_id, item.id, now)

    response = render(request, "portal/messages.html", data)
    await run_in_threadpool(mark_read)
    return response


@require("partner")
async def message_send(request: Request) -> Response:
    services = _services(request)
    partner_id = _partner_id(request)
    form = await request.form()
    body = str(form.get("body", ""))
    user = current_user(request)
    assert user is not None

    def post() -> None:
        with services.engine.begin() as conn:
            msg.post_message(
                conn,
                partner_id=partner_id,
                sender="partner",
                author=f"user:{user.email}",
                body=body,
                now=services.clock.now(),
            )

    await _call(post)
    return RedirectResponse("/portal/messages?done=sent", status_code=303)


# Terms -----------------------------------------------------------------------------------------


@require("partner")
async def terms(request: Request) -> Response:
    partner_id = _partner_id(request)

    def run(conn: Connection) -> dict[str, Any]:
        me = _me(conn, partner_id)
        return {
            "me": me,
            "current": content.current_terms(conn, me.program.id),
            "accepted": content.acceptances(conn, me.program.id, partner_id=partner_id),
            "render_text": render_text,
        }

    return render(request, "portal/terms.html", await load(request, run))


@require("partner")
async def terms_accept(request: Request) -> Response:
    services = _services(request)
    partner_id = _partner_id(request)
    document_id = _path_id(request, "document_id")
    user = current_user(request)
    assert user is not None
    ip = request.client.host if request.client else None

    def accept() -> None:
        with services.engine.begin() as conn:
            me = _me(conn, partner_id)
            content.accept_terms(
                conn,
                me.program.id,
                partner_id,
                document_id,
                f"user:{user.email}",
                ip,
                services.clock.now(),
            )

    await _call(accept)
    return RedirectResponse("/portal/terms?done=accepted", status_code=303)


# Creatives and resources ----------------------------------------------------------------------


def creative_links(
    base_url: str, links: list[tuple[str, str]], creative_id: int
) -> list[tuple[str, str]]:
    """(offer name, the link's URL with `cr=<creative id>`) for each of the partner's
    links: clicks through it are reported under the creative."""
    return [
        (offer, tracking_url(base_url, code, None, {"cr": str(creative_id)}))
        for offer, code in links
    ]


@require("partner")
async def creatives(request: Request) -> Response:
    partner_id = _partner_id(request)
    base_url = _services(request).settings.public_base_url

    def run(conn: Connection) -> dict[str, Any]:
        me = _me(conn, partner_id)
        offers = {o.id: o.name for o in me.offers}
        # Links to the program's active offers only: a paused offer's link goes nowhere.
        links = [
            (offers[link.offer_id], link.code)
            for link in SqlLinks(conn).list(me.program.id, me.partner.id)
            if link.offer_id in offers
        ]
        found = content.creatives(conn, me.program.id, active_only=True)
        return {
            "me": me,
            "creatives": found,
            "links": {c.id: creative_links(base_url, links, c.id) for c in found},
        }

    return render(request, "portal/creatives.html", await load(request, run))


@require("partner")
async def creative_file(request: Request) -> Response:
    partner_id = _partner_id(request)
    creative_id = _path_id(request, "creative_id")

    def run(conn: Connection) -> Any:
        me = _me(conn, partner_id)
        return content.creative_file(conn, me.program.id, creative_id, active_only=True)

    found = await load(request, run)
    if found is None:
        raise HTTPException(404, NOT_FOUND)
    response = image_response(*found)
    if request.query_params.get("download"):
        response.headers["content-disposition"] = (
            f'attachment; filename="creative-{found[0].id}.{found[0].content_type.split("/")[1]}"'
        )
    return response


@require("partner")
async def resources(request: Request) -> Response:
    partner_id = _partner_id(request)

    def run(conn: Connection) -> dict[str, Any]:
        me = _me(conn, partner_id)
        return {"me": me, "resources": content.resources(conn, me.program.id)}

    return render(request, "portal/resources.html", await load(request, run))


@require("partner")
async def resource_detail(request: Request) -> Response:
    partner_id = _partner_id(request)
    resource_id = _path_id(request, "resource_id")

    def run(conn: Connection) -> dict[str, Any]:
        me = _me(conn, partner_id)
        found = content.resource(conn, me.program.id, resource_id)
        if found is None:
            raise HTTPException(404, NOT_FOUND)
        return {"me": me, "resource": found, "html": render_text(found.body)}

    return render(request, "portal/resource.html", await load(request, run))


def routes() -> list[Route]:
    get, post = ["GET"], ["POST"]
    return [
        Route("/portal/targets", targets, methods=get),
        Route("/portal/caps", caps, methods=get),
        Route("/portal/payouts", payouts, methods=get),
        Route("/portal/payouts/{batch_id}", payout_statement, methods=get),
        Route("/portal/messages", messages, methods=get),
        Route("/portal/messages", message_send, methods=post),
        Route("/portal/terms", terms, methods=get),
        Route("/portal/terms/{document_id:int}/accept", terms_accept, methods=post),
        Route("/portal/creatives", creatives, methods=get),
        Route("/portal/creatives/{creative_id:int}/file", creative_file, methods=get),
        Route("/portal/resources", resources, methods=get),
        Route("/portal/resources/{resource_id:int}", resource_detail, methods=get),
    ]
