"""Admin routes (`admin:read` / `admin:write`): programs, offers, partners, links, coupons,
conversions, the ledger, reports, webhooks, announcements and messages."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from partnerflow.caps.periods import local_date
from partnerflow.core.clock import FIRST_DAY, LAST_DAY, check_day
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import ConversionId, OfferId, PartnerId, ProgramId
from partnerflow.messaging.audiences import parse_segment
from partnerflow.partners.model import PartnerStatus
from partnerflow.partners.services import CreatePartner, change_status, create_partner
from partnerflow.programs.services import CreateOffer, CreateProgram, create_offer, create_program
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage import webhooks as wh
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.catalog import SqlOffers, SqlPartners, SqlPrograms
from partnerflow.storage.ledger import SqlLedger
from partnerflow.storage.outbox import record_conversion_published
from partnerflow.storage.reports import Dimension, ReportQuery, labels, report_sums
from partnerflow.tracking.model import ConversionStatus
from partnerflow.tracking.services import (
    CreateCoupon,
    CreateLink,
    RecordConversion,
    create_coupon,
    create_link,
)
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import (
    ApiContext,
    check_program,
    partners_uow,
    programs_uow,
    scoped,
    tracking_uow,
)
from partnerflow.web.api.errors import ApiError
from partnerflow.web.api.queries import page
from partnerflow.web.api.routing import ExactJsonRoute

IdPath = Annotated[int, Path(ge=1, le=2_147_483_647)]
IdQuery = Annotated[int | None, Query(ge=1, le=2_147_483_647)]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=64, description="from the previous page")]


def admin_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=ExactJsonRoute)
    reader = scoped(ctx, "admin:read")
    writer = scoped(ctx, "admin:write")
    svc = ctx.services

    def actor(key: ApiKey) -> str:
        return f"api:{key.prefix}:{key.name}"[:200]

    def program_of(key: ApiKey, program_id: int) -> Any:
        check_program(key, program_id)
        with svc.engine.connect() as conn:
            program = SqlPrograms(conn).get(ProgramId(program_id))
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program_id")
        return program

    def partner_of(key: ApiKey, partner_id: int) -> Any:
        with svc.engine.connect() as conn:
            partner = SqlPartners(conn, svc.clock.now).get(PartnerId(partner_id))
        if partner is None:
            raise NotFound(f"partner {partner_id} not found", field="partner_id")
        check_program(key, partner.program_id)
        return partner

    def offer_of(key: ApiKey, offer_id: int) -> Any:
        with svc.engine.connect() as conn:
            offer = SqlOffers(conn).get(OfferId(offer_id))
        if offer is None:
            raise NotFound(f"offer {offer_id} not found", field="offer_id")
        check_program(key, offer.program_id)
        return offer

    def scope_where(key: ApiKey, table: Any, program_id: int | None) -> list[Any]:
        where = []
        if key.program_id is not None:
            if program_id is not None and program_id != key.program_id:
                return [table.c.id < 0]  # another program: an empty page, not an error
            where.append(table.c.program_id == key.program_id)
        if program_id is not None:
            where.append(table.c.program_id == program_id)
        return where

    # --- programs ------------------------------------------------------------------------
    @router.get("/programs", response_model=s.Page[s.ProgramOut], tags=["programs"])
    def list_programs(key: ApiKey = reader, limit: Limit = 50, cursor: Cursor = None) -> Any:
        where = [t.programs.c.id == key.program_id] if key.program_id is not None else []
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, t.programs, where, cursor, limit)
            items = [SqlPrograms(conn).get(ProgramId(r.id)) for r in rows]
        return {"items": [ser.program_out(p) for p in items if p], "next_cursor": nxt}

    @router.post("/programs", response_model=s.ProgramOut, status_code=201, tags=["programs"])
    def post_program(body: s.ProgramIn, key: ApiKey = writer) -> Any:
        if key.program_id is not None:
            raise ApiError(403, "forbidden", "a program-bound key can't create programs")
        cmd = CreateProgram(**body.model_dump())
        return ser.program_out(create_program(programs_uow(ctx), svc.clock, cmd, actor(key)))

    @router.get("/programs/{program_id}", response_model=s.ProgramOut, tags=["programs"])
    def get_program(program_id: IdPath, key: ApiKey = reader) -> Any:
        return ser.program_out(program_of(key, program_id))

    # --- offers --------------------------------------------------------------------------
    @router.get("/offers", response_model=s.Page[s.OfferOut], tags=["offers"])
    def list_offers(
        key: ApiKey = reader, program_id: IdQuery = None, limit: Limit = 50, cursor: Cursor = None
    ) -> Any:
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, t.offers, scope_where(key, t.offers, program_id), cursor, limit)
            repo = SqlOffers(conn)
            items = [repo.get(OfferId(r.id)) for r in rows]
        return {"items": [ser.offer_out(o) for o in items if o], "next_cursor": nxt}

    @router.post("/offers", response_model=s.OfferOut, status_code=201, tags=["offers"])
    def post_offer(body: s.OfferIn, key: ApiKey = writer) -> Any:
        check_program(key, body.program_id)
        cmd = CreateOffer(
            program_id=ProgramId(body.program_id),
            name=body.name,
            landing_url=body.landing_url,
            commission_plan=dict(body.commission_plan),
            allowed_domains=tuple(body.allowed_domains),
            fallback_url=body.fallback_url,
        )
        return ser.offer_out(create_offer(programs_uow(ctx), svc.clock, cmd, actor(key)))

    @router.get("/offers/{offer_id}", response_model=s.OfferOut, tags=["offers"])
    def get_offer(offer_id: IdPath, key: ApiKey = reader) -> Any:
        return ser.offer_out(offer_of(key, offer_id))

    # --- partners ------------------------------------------------------------------------
    @router.get("/partners", response_model=s.Page[s.PartnerOut], tags=["partners"])
    def list_partners(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        status: PartnerStatus | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        where = scope_where(key, t.partners, program_id)
        if status is not None:
            where.append(t.partners.c.status == status)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, t.partners, where, cursor, limit)
        return {"items": [ser.partner_out(r) for r in rows], "next_cursor": nxt}

    @router.post("/partners", response_model=s.PartnerOut, status_code=201, tags=["partners"])
    def post_partner(body: s.PartnerIn, key: ApiKey = writer) -> Any:
        check_program(key, body.program_id)
        data = body.model_dump()
        data["program_id"] = ProgramId(body.program_id)
        partner = create_partner(partners_uow(ctx), svc.clock, CreatePartner(**data), actor(key))
        return ser.partner_out(partner)

    @router.get("/partners/{partner_id}", response_model=s.PartnerOut, tags=["partners"])
    def get_partner(partner_id: IdPath, key: ApiKey = reader) -> Any:
        return ser.partner_out(partner_of(key, partner_id))

    @router.post("/partners/{partner_id}/status", response_model=s.PartnerOut, tags=["partners"])
    def post_partner_status(
        partner_id: IdPath, body: s.StatusChangeIn, key: ApiKey = writer
    ) -> Any:
        partner_of(key, partner_id)
        changed = change_status(
            partners_uow(ctx), PartnerId(partner_id), body.status, actor(key), body.reason
        )
        return ser.partner_out(changed)

    @router.get("/partners/{partner_id}/balances", response_model=s.BalancesOut, tags=["ledger"])
    def get_balances(partner_id: IdPath, key: ApiKey = reader) -> Any:
        partner_of(key, partner_id)
        with svc.engine.connect() as conn:
            entries = SqlLedger(conn).for_partner(PartnerId(partner_id))
        return ser.balances_out(partner_id, entries)

    @router.get("/partners/{partner_id}/messages", response_model=s.ThreadOut, tags=["messages"])
    def get_thread(partner_id: IdPath, key: ApiKey = reader) -> Any:
        partner = partner_of(key, partner_id)
        with svc.engine.begin() as conn:
            if key.allows("admin:write"):
                msg.mark_thread_read(conn, partner_id, "manager", svc.clock.now())
            messages = msg.thread(conn, partner_id)
            unread = msg.unread_for_managers(conn, partner.program_id)
        return {
            "partner_id": partner_id,
            "unread": unread.get(partner_id, 0),
            "messages": [s.MessageOut.model_validate(m) for m in messages],
        }

    @router.post(
        "/partners/{partner_id}/messages",
        response_model=s.MessageOut,
        status_code=201,
        tags=["messages"],
    )
    def post_manager_message(partner_id: IdPath, body: s.MessageIn, key: ApiKey = writer) -> Any:
        partner_of(key, partner_id)
        with svc.engine.begin() as conn:
            m = msg.post_message(
                conn,
                partner_id=partner_id,
                sender="manager",
                author=actor(key),
                body=body.body,
                now=svc.clock.now(),
            )
        return s.MessageOut.model_validate(m)

    # --- links and coupons ---------------------------------------------------------------
    @router.get("/links", response_model=s.Page[s.LinkOut], tags=["links"])
    def list_links(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        partner_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        table = t.tracking_links
        where = scope_where(key, table, program_id)
        if partner_id is not None:
            where.append(table.c.partner_id == partner_id)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, where, cursor, limit)
        return {"items": [ser.link_out(r, ctx.base_url) for r in rows], "next_cursor": nxt}

    @router.post("/links", response_model=s.LinkOut, status_code=201, tags=["links"])
    def post_link(body: s.LinkIn, key: ApiKey = writer) -> Any:
        partner_of(key, body.partner_id)
        cmd = CreateLink(
            partner_id=PartnerId(body.partner_id),
            offer_id=OfferId(body.offer_id),
            code=body.code,
            sub_ids=dict(body.sub_ids),
        )
        return ser.link_out(
            create_link(tracking_uow(ctx), svc.clock, cmd, actor(key)), ctx.base_url
        )

    @router.get("/coupons", response_model=s.Page[s.CouponOut], tags=["coupons"])
    def list_coupons(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        partner_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        table = t.coupon_codes
        where = scope_where(key, table, program_id)
        if partner_id is not None:
            where.append(table.c.partner_id == partner_id)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, where, cursor, limit)
        return {"items": [ser.coupon_out(r) for r in rows], "next_cursor": nxt}

    @router.post("/coupons", response_model=s.CouponOut, status_code=201, tags=["coupons"])
    def post_coupon(body: s.CouponIn, key: ApiKey = writer) -> Any:
        partner_of(key, body.partner_id)
        cmd = CreateCoupon(
            partner_id=PartnerId(body.partner_id), offer_id=OfferId(body.offer_id), code=body.code
        )
        return ser.coupon_out(create_coupon(tracking_uow(ctx), svc.clock, cmd, actor(key)))

    # --- conversions and the ledger ------------------------------------------------------
    @router.get("/conversions", response_model=s.Page[s.ConversionOut], tags=["conversions"])
    def list_conversions(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        partner_id: IdQuery = None,
        status: ConversionStatus | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        table = t.conversions
        where = scope_where(key, table, program_id)
        if partner_id is not None:
            where.append(table.c.partner_id == partner_id)
        if status is not None:
            where.append(table.c.status == status)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, where, cursor, limit)
        return {"items": [ser.conversion_row_out(r) for r in rows], "next_cursor": nxt}

    @router.post(
        "/conversions",
        response_model=s.ConversionRecordedOut,
        status_code=201,
        tags=["conversions"],
    )
    def post_conversion(body: s.ConversionIn, key: ApiKey = writer) -> Any:
        program = program_of(key, body.program_id)
        cmd = RecordConversion(
            token=program.postback_token,
            order_id=body.order_id,
            amount=body.amount,
            currency=body.currency,
            click_id=body.click_id,
            coupon=body.coupon,
            customer_id=body.customer_id,
            event_type=body.event_type,
        )
        result = record_conversion_published(svc.uow(), svc.clock, cmd)
        return {
            "conversion": ser.conversion_out(result.conversion),
            "duplicate": result.duplicate,
            "commission": str(result.commission.amount) if result.commission else None,
            "explanation": result.explanation,
        }

    @router.get(
        "/conversions/{conversion_id}",
        response_model=s.ConversionDetailOut,
        tags=["conversions"],
    )
    def get_conversion(conversion_id: IdPath, key: ApiKey = reader) -> Any:
        with svc.uow() as uow:
            conv = uow.conversions.get(ConversionId(conversion_id))
            if conv is None:
                raise NotFound(f"conversion {conversion_id} not found", field="conversion")
            check_program(key, conv.program_id)
            entries = uow.ledger.for_conversion(conv.id)
        return {
            **ser.conversion_out(conv).model_dump(),
            "explanation": ser.explanation(conv, entries),
            "ledger": [ser.entry_out(e) for e in entries],
        }

    @router.get("/ledger", response_model=s.Page[s.LedgerEntryOut], tags=["ledger"])
    def list_ledger(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        partner_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        table = t.commission_entries
        where = scope_where(key, table, program_id)
        if partner_id is not None:
            where.append(table.c.partner_id == partner_id)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, where, cursor, limit)
        items = [
            s.LedgerEntryOut(
                id=r.id,
                program_id=r.program_id,
                partner_id=r.partner_id,
                conversion_id=r.conversion_id,
                kind=r.kind,
                bucket=r.bucket,
                amount=ser.money_text_micros(r.amount_micros),
                currency=r.currency,
                reason=r.reason,
                author=r.author,
                created_at=r.created_at,
            )
            for r in rows
        ]
        return {"items": items, "next_cursor": nxt}

    # --- reports -------------------------------------------------------------------------
    @router.get("/reports", response_model=s.ReportOut, tags=["reports"])
    def get_report(
        program_id: Annotated[int, Query(ge=1, le=2_147_483_647)],
        key: ApiKey = reader,
        group_by: Annotated[str, Query(pattern="^(partner|offer|day|creative)$")] = "day",
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> Any:
        program = program_of(key, program_id)
        for day, name in ((date_from, "date_from"), (date_to, "date_to")):
            if day is not None:  # before the default date_from, 29 days before, overflows
                check_day(day, name)
        last = date_to or local_date(svc.clock.now(), program.timezone)  # its "today"
        first = date_from or last - timedelta(days=29)
        if first > last:
            raise ApiError(422, "invalid_input", "date_from is after date_to", "date_from")
        if (last - first).days > 366:
            raise ApiError(422, "invalid_input", "at most 367 days per report", "date_from")
        if not FIRST_DAY <= first <= last <= LAST_DAY:  # the default first day too
            raise ApiError(422, "invalid_input", "dates must be in 2000-2200", "date_from")
        dimension = Dimension(group_by)
        query = ReportQuery(program.id, program.currency, program.timezone, dimension, first, last)
        with svc.engine.connect() as conn:
            sums = report_sums(conn, query)
            names = labels(conn, dimension, [x.key for x in sums])
        rows = [
            s.ReportRowOut(
                key=str(x.key),
                label=str(names.get(x.key, x.key)),
                clicks=x.clicks,
                unique_clicks=x.unique_clicks,
                conversions=x.conversions,
                refunds=x.refunds,
                revenue=ser.money_text(x.revenue),
                commission=ser.money_text(x.commission),
            )
            for x in sums
        ]
        return {
            "program_id": program.id,
            "group_by": group_by,
            "date_from": first,
            "date_to": last,
            "currency": program.currency,
            "rows": rows,
        }

    # --- webhooks ------------------------------------------------------------------------
    @router.get("/webhooks", response_model=s.Page[s.WebhookOut], tags=["webhooks"])
    def list_webhooks(
        key: ApiKey = reader, program_id: IdQuery = None, limit: Limit = 50, cursor: Cursor = None
    ) -> Any:
        table = t.webhook_endpoints
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, scope_where(key, table, program_id), cursor, limit)
        return {"items": [s.WebhookOut.model_validate(r) for r in rows], "next_cursor": nxt}

    @router.post(
        "/webhooks", response_model=s.WebhookCreatedOut, status_code=201, tags=["webhooks"]
    )
    def post_webhook(body: s.WebhookIn, key: ApiKey = writer) -> Any:
        check_program(key, body.program_id)
        with svc.engine.begin() as conn:
            endpoint = wh.create_endpoint(
                conn,
                program_id=body.program_id,
                url=body.url,
                events=list(body.events),
                description=body.description,
                now=svc.clock.now(),
                allow_private=ctx.allow_private_targets,
            )
        return s.WebhookCreatedOut.model_validate(endpoint)

    @router.post("/webhooks/{endpoint_id}/state", response_model=s.WebhookOut, tags=["webhooks"])
    def post_webhook_state(
        endpoint_id: IdPath, body: s.WebhookStateIn, key: ApiKey = writer
    ) -> Any:
        with svc.engine.begin() as conn:
            check_program(key, wh.get_endpoint(conn, endpoint_id).program_id)
            endpoint = wh.set_endpoint_active(conn, endpoint_id, body.is_active, actor(key))
        return s.WebhookOut.model_validate(endpoint)

    @router.get(
        "/webhooks/{endpoint_id}/deliveries",
        response_model=s.Page[s.DeliveryOut],
        tags=["webhooks"],
    )
    def list_deliveries(
        endpoint_id: IdPath, key: ApiKey = reader, limit: Limit = 50, cursor: Cursor = None
    ) -> Any:
        table = t.webhook_deliveries
        with svc.engine.connect() as conn:
            check_program(key, wh.get_endpoint(conn, endpoint_id).program_id)
            rows, nxt = page(conn, table, [table.c.endpoint_id == endpoint_id], cursor, limit)
        return {"items": [s.DeliveryOut.model_validate(r) for r in rows], "next_cursor": nxt}

    @router.post(
        "/webhook-deliveries/{delivery_id}/redeliver",
        response_model=s.DeliveryOut,
        tags=["webhooks"],
    )
    def post_redeliver(delivery_id: IdPath, key: ApiKey = writer) -> Any:
        with svc.engine.begin() as conn:
            delivery = wh.get_delivery(conn, delivery_id)
            if delivery.endpoint_id is None:
                raise NotFound(f"delivery {delivery_id} not found", field="delivery")
            check_program(key, wh.get_endpoint(conn, delivery.endpoint_id).program_id)
            return s.DeliveryOut.model_validate(wh.redeliver(conn, delivery_id, svc.clock.now()))

    @router.put(
        "/programs/{program_id}/integrations/{provider}",
        status_code=204,
        tags=["inbound"],
    )
    def put_integration(
        program_id: IdPath,
        provider: Annotated[str, Path(pattern="^(shopify|stripe)$")],
        body: s.IntegrationIn,
        key: ApiKey = writer,
    ) -> None:
        program_of(key, program_id)
        with svc.engine.begin() as conn:
            wh.set_integration_secret(conn, program_id, provider, body.secret, svc.clock.now())

    # --- communications ------------------------------------------------------------------
    @router.post(
        "/announcements",
        response_model=s.AnnouncementOut,
        status_code=201,
        tags=["communications"],
    )
    def post_announcement(body: s.AnnouncementIn, key: ApiKey = writer) -> Any:
        program_of(key, body.program_id)
        segment = parse_segment(body.segment.model_dump())
        with svc.engine.begin() as conn:
            ann = msg.queue_announcement(
                conn,
                program_id=body.program_id,
                kind=body.kind,
                subject=body.subject,
                body=body.body,
                segment=segment,
                author=actor(key),
                now=svc.clock.now(),
                secret=ctx.secret,
                base_url=ctx.base_url,
            )
        return s.AnnouncementOut.model_validate(ann)

    @router.get(
        "/programs/{program_id}/unread-messages",
        response_model=dict[str, int],
        tags=["messages"],
    )
    def get_unread(program_id: IdPath, key: ApiKey = reader) -> Any:
        program_of(key, program_id)
        with svc.engine.connect() as conn:
            counts = msg.unread_for_managers(conn, program_id)
        return {str(k): v for k, v in counts.items()}

    return router
