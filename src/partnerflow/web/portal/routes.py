"""Partner portal pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from partnerflow.bootstrap import Services
from partnerflow.core.errors import InvalidInput, PartnerflowError
from partnerflow.core.ids import MAX_ID, OfferId, PartnerId
from partnerflow.partners.model import Partner
from partnerflow.partners.rules import EARNING_STATUSES
from partnerflow.programs.model import Offer, OfferStatus, Program
from partnerflow.storage import content
from partnerflow.storage import web_queries as q
from partnerflow.storage.catalog import SqlOffers, SqlPartners, SqlPrograms
from partnerflow.tracking.clicks import safe_deep_link
from partnerflow.tracking.model import SUB_ID_KEYS
from partnerflow.tracking.ports import TrackingUnitOfWork
from partnerflow.tracking.rules import check_sub_id
from partnerflow.tracking.services import CreateLink, create_link
from partnerflow.web.auth.access import current_user, require
from partnerflow.web.rendering import load, render

PERIOD_DAYS = 30


@dataclass(frozen=True)
class Me:
    partner: Partner
    program: Program
    offers: list[Offer]
    # Current terms not accepted yet (a banner on every portal page; no new links until
    # accepted) and unread announcements plus manager messages (the navigation badge).
    pending_terms: tuple[Any, ...] = ()
    unread: int = 0

    @property
    def scope(self) -> q.Scope:
        return q.Scope(
            self.program.id, self.program.currency, self.program.timezone, self.partner.id
        )

    @property
    def can_earn(self) -> bool:
        return self.partner.status in EARNING_STATUSES


def _path_id(request: Request, name: str) -> int:
    """An id from the path: past the INTEGER id columns it names nothing (a 404, before the
    database refuses the number)."""
    value = int(request.path_params[name])
    if value > MAX_ID:
        raise HTTPException(404, "Not found.")
    return value


def _me(conn: Connection, partner_id: int) -> Me:
    partner = SqlPartners(conn, None).get(PartnerId(partner_id))
    if partner is None:
        raise HTTPException(403, "Your partner account no longer exists.")
    program = SqlPrograms(conn).get(partner.program_id)
    assert program is not None
    offers = [o for o in SqlOffers(conn).list(program.id) if o.status is OfferStatus.ACTIVE]
    pending = tuple(content.pending_terms(conn, program.id, partner.id))
    unread = q.unread_count(conn, partner.id)
    return Me(partner, program, offers, pending, unread)


def _partner_id(request: Request) -> int:
    user = current_user(request)
    assert user is not None and user.partner_id is not None  # guaranteed by require()
    return int(user.partner_id)


def _now(request: Request) -> datetime:
    services: Services = request.app.state.services
    return services.clock.now()


def dashboard_data(conn: Connection, partner_id: int, now: datetime) -> dict[str, Any]:
    me = _me(conn, partner_id)
    current = q.Period.last_days(now, PERIOD_DAYS)
    marks = q.read_marks(conn)
    totals, points = q.summary(conn, me.scope, current, impressions=True, marks=marks)
    return {
        "me": me,
        "current": totals,
        "previous": q.totals(conn, me.scope, current.previous(), marks=marks),
        "balances": q.balances(conn, me.scope, me.partner.id),
        "series": q.series_for_chart(points),
        "links": q.link_stats(conn, me.scope, current, marks=marks),
        "coupons": q.coupon_stats(conn, me.scope, current),
        "period_days": PERIOD_DAYS,
    }


@require("partner")
async def dashboard(request: Request) -> Response:
    data = await load(request, dashboard_data, _partner_id(request), _now(request))
    return render(request, "portal/dashboard.html", data)


# Links and the link generator ------------------------------------------------------------


def tracking_url(base_url: str, code: str, deep_link: str | None, subs: dict[str, str]) -> str:
    params = [(k, v) for k, v in subs.items() if v]
    if deep_link:
        params.insert(0, ("url", deep_link))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    return f"{base_url}/c/{code}" + (f"?{query}" if query else "")


def links_data(conn: Connection, partner_id: int, now: datetime) -> dict[str, Any]:
    me = _me(conn, partner_id)
    return {
        "me": me,
        "links": q.link_stats(conn, me.scope, q.Period.last_days(now, PERIOD_DAYS)),
        "period_days": PERIOD_DAYS,
    }


@require("partner")
async def links(request: Request) -> Response:
    data = await load(request, links_data, _partner_id(request), _now(request))
    return render(request, "portal/links.html", {**data, "error": None, "sub_keys": SUB_ID_KEYS})


def link_data(conn: Connection, partner_id: int, link_id: int, now: datetime) -> dict[str, Any]:
    me = _me(conn, partner_id)
    found = q.link_stats(conn, me.scope, q.Period.last_days(now, PERIOD_DAYS), link_id=link_id)
    if not found:
        raise HTTPException(404, "No such link.")
    offer = next(
        (o for o in SqlOffers(conn).list(me.program.id) if o.id == found[0].offer_id), None
    )
    return {"me": me, "link": found[0], "offer": offer, "period_days": PERIOD_DAYS}


@require("partner")
async def link_detail(request: Request) -> Response:
    data = await load(
        request, link_data, _partner_id(request), _path_id(request, "link_id"), _now(request)
    )
    link: q.LinkStats = data["link"]
    offer: Offer | None = data["offer"]
    services: Services = request.app.state.services
    deep = request.query_params.get("url", "").strip()
    subs = {k: request.query_params.get(k, "").strip() for k in SUB_ID_KEYS}
    error = None
    try:
        if deep:
            allowed = (*offer.allowed_domains,) if offer else ()
            safe_deep_link(deep, allowed)
        for key, value in subs.items():
            if value:
                check_sub_id(key, value)
    except InvalidInput as exc:
        error = exc.message
    generated = (
        None
        if error
        else tracking_url(services.settings.public_base_url, link.code, deep or None, subs)
    )
    return render(
        request,
        "portal/link.html",
        {
            **data,
            "deep": deep,
            "subs": subs,
            "generated": generated,
            "error": error,
            "sub_keys": SUB_ID_KEYS,
        },
        status_code=400 if error else 200,
    )


def _create_link(
    services: Services, partner_id: int, offer_id: int, subs: dict[str, str], actor: str
) -> int:
    with services.read() as conn:
        me = _me(conn, partner_id)
    if not me.can_earn:
        raise InvalidInput("your application is not approved yet", field="offer_id")
    if me.pending_terms:
        raise InvalidInput("accept the program's current terms first", field="offer_id")
    if all(o.id != offer_id for o in me.offers):
        # Another program's offer, a paused one or a made-up id: all look the same.
        raise InvalidInput("choose one of this program's active offers", field="offer_id")
    link = create_link(
        cast("TrackingUnitOfWork", services.uow()),
        services.clock,
        CreateLink(partner_id=me.partner.id, offer_id=OfferId(offer_id), sub_ids=subs),
        actor=actor,
    )
    return int(link.id)


@require("partner")
async def link_create(request: Request) -> Response:
    form = await request.form()
    services: Services = request.app.state.services
    user = current_user(request)
    assert user is not None
    subs = {k: str(form.get(k, "")).strip() for k in SUB_ID_KEYS}
    subs = {k: v for k, v in subs.items() if v}
    try:
        offer_id = int(str(form.get("offer_id", "")))
    except ValueError:
        offer_id = 0
    try:
        link_id = await run_in_threadpool(
            _create_link, services, _partner_id(request), offer_id, subs, f"user:{user.email}"
        )
    except PartnerflowError as exc:
        data = await load(request, links_data, _partner_id(request), _now(request))
        return render(
            request,
            "portal/links.html",
            {**data, "error": exc.message, "sub_keys": SUB_ID_KEYS},
            status_code=400,
        )
    return RedirectResponse(f"/portal/links/{link_id}", status_code=303)


# Coupons and conversions ------------------------------------------------------------------


def coupons_data(
    conn: Connection, partner_id: int, now: datetime, coupon_id: int | None = None
) -> dict[str, Any]:
    me = _me(conn, partner_id)
    coupons = q.coupon_stats(
        conn, me.scope, q.Period.last_days(now, PERIOD_DAYS), coupon_id=coupon_id
    )
    if coupon_id is not None and not coupons:
        raise HTTPException(404, "No such coupon.")
    return {"me": me, "coupons": coupons, "period_days": PERIOD_DAYS}


@require("partner")
async def coupons(request: Request) -> Response:
    data = await load(request, coupons_data, _partner_id(request), _now(request))
    return render(request, "portal/coupons.html", data)


@require("partner")
async def coupon_detail(request: Request) -> Response:
    data = await load(
        request,
        coupons_data,
        _partner_id(request),
        _now(request),
        _path_id(request, "coupon_id"),
    )
    return render(request, "portal/coupon.html", {**data, "coupon": data["coupons"][0]})


def conversions_data(conn: Connection, partner_id: int, page: int) -> dict[str, Any]:
    me = _me(conn, partner_id)
    rows, pager = q.conversions_page(conn, me.scope, page=page)
    return {"me": me, "rows": rows, "page": pager}


@require("partner")
async def conversions(request: Request) -> Response:
    try:
        # At most 1,000,000, as the dashboard's lists: the OFFSET of ?page=10**20 did not
        # fit the database's integer (a 500).
        page = max(1, min(int(request.query_params.get("page", "1")), 1_000_000))
    except ValueError:
        page = 1
    data = await load(request, conversions_data, _partner_id(request), page)
    return render(request, "portal/conversions.html", data)


def routes() -> list[Route]:
    return [
        Route("/portal", dashboard, methods=["GET"]),
        Route("/portal/links", links, methods=["GET"]),
        Route("/portal/links", link_create, methods=["POST"]),
        Route("/portal/links/{link_id:int}", link_detail, methods=["GET"]),
        Route("/portal/coupons", coupons, methods=["GET"]),
        Route("/portal/coupons/{coupon_id:int}", coupon_detail, methods=["GET"]),
        Route("/portal/conversions", conversions, methods=["GET"]),
    ]
