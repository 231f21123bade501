"""The partner-scoped API (`partner` keys): a partner sees only its own links, coupons,
conversions, balances, postbacks, messages and inbox — the partner id comes from the key,
never from the request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from partnerflow.core.errors import NotFound
from partnerflow.core.ids import PartnerId
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage import webhooks as wh
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.catalog import SqlPartners
from partnerflow.storage.ledger import SqlLedger
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import ApiContext, scoped
from partnerflow.web.api.queries import page

IdPath = Annotated[int, Path(ge=1, le=2_147_483_647)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=64)]


def partner_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/me", tags=["partner"])
    partner_key = scoped(ctx, "partner")
    svc = ctx.services

    def pid(key: ApiKey) -> int:
        assert key.partner_id is not None  # 'partner' keys always carry one (check_scopes)
        return key.partner_id

    @router.get("", response_model=s.MeOut)
    def me(key: ApiKey = partner_key) -> Any:
        with svc.engine.connect() as conn:
            partner = SqlPartners(conn, svc.clock.now).get(PartnerId(pid(key)))
            if partner is None:
                raise NotFound("partner not found", field="partner")
            return {
                "partner": ser.partner_out(partner),
                "unread_messages": msg.unread_for_partner(conn, pid(key)),
                "unread_inbox": msg.inbox_unread(conn, pid(key)),
            }

    def own(table: Any, key: ApiKey) -> list[Any]:
        return [table.c.partner_id == pid(key)]

    @router.get("/links", response_model=s.Page[s.LinkOut])
    def links(key: ApiKey = partner_key, limit: Limit = 50, cursor: Cursor = None) -> Any:
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, t.tracking_links, own(t.tracking_links, key), cursor, limit)
        return {"items": [ser.link_out(r, ctx.base_url) for r in rows], "next_cursor": nxt}

    @router.get("/coupons", response_model=s.Page[s.CouponOut])
    def coupons(key: ApiKey = partner_key, limit: Limit = 50, cursor: Cursor = None) -> Any:
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, t.coupon_codes, own(t.coupon_codes, key), cursor, limit)
        return {"items": [ser.coupon_out(r) for r in rows], "next_cursor": nxt}

    @router.get("/conversions", response_model=s.Page[s.ConversionOut])
    def conversions(key: ApiKey = partner_key, limit: Limit = 50, cursor: Cursor = None) -> Any:
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, t.conversions, own(t.conversions, key), cursor, limit)
        # Customer ids belong to the brand, not the partner.
        items = [ser.conversion_row_out(r).model_copy(update={"customer_id": None}) for r in rows]
        return {"items": items, "next_cursor": nxt}

    @router.get("/balances", response_model=s.BalancesOut)
    def balances(key: ApiKey = partner_key) -> Any:
        with svc.engine.connect() as conn:
            entries = SqlLedger(conn).for_partner(PartnerId(pid(key)))
        return ser.balances_out(pid(key), entries)

    @router.get("/postbacks", response_model=list[s.PostbackOut])
    def postbacks(key: ApiKey = partner_key) -> Any:
        with svc.engine.connect() as conn:
            return [s.PostbackOut.model_validate(p) for p in wh.list_postbacks(conn, pid(key))]

    @router.post("/postbacks", response_model=s.PostbackOut, status_code=201)
    def add_postback(body: s.PostbackIn, key: ApiKey = partner_key) -> Any:
        with svc.engine.begin() as conn:
            pb = wh.create_postback(
                conn,
                partner_id=pid(key),
                url_template=body.url_template,
                now=svc.clock.now(),
                allow_private=ctx.allow_private_targets,
            )
        return s.PostbackOut.model_validate(pb)

    @router.delete("/postbacks/{postback_id}", status_code=204)
    def delete_postback(postback_id: IdPath, key: ApiKey = partner_key) -> None:
        with svc.engine.begin() as conn:
            wh.delete_postback(conn, pid(key), postback_id)

    @router.get("/messages", response_model=s.ThreadOut)
    def messages(key: ApiKey = partner_key) -> Any:
        with svc.engine.begin() as conn:
            msg.mark_thread_read(conn, pid(key), "partner", svc.clock.now())
            thread = msg.thread(conn, pid(key))
            unread = msg.unread_for_partner(conn, pid(key))
        return {
            "partner_id": pid(key),
            "unread": unread,
            "messages": [s.MessageOut.model_validate(m) for m in thread],
        }

    @router.post("/messages", response_model=s.MessageOut, status_code=201)
    def send_message(body: s.MessageIn, key: ApiKey = partner_key) -> Any:
        with svc.engine.begin() as conn:
            m = msg.post_message(
                conn,
                partner_id=pid(key),
                sender="partner",
                author=f"partner:{pid(key)}",
                body=body.body,
                now=svc.clock.now(),
            )
        return s.MessageOut.model_validate(m)

    @router.get("/inbox", response_model=s.InboxOut)
    def inbox(key: ApiKey = partner_key, limit: Limit = 50) -> Any:
        with svc.engine.connect() as conn:
            items = msg.inbox(conn, pid(key), limit)
            unread = msg.inbox_unread(conn, pid(key))
        return {"unread": unread, "items": [s.InboxItemOut.model_validate(i) for i in items]}

    @router.post("/inbox/{item_id}/read", status_code=204)
    def read_item(item_id: IdPath, key: ApiKey = partner_key) -> None:
        with svc.engine.begin() as conn:
            msg.mark_inbox_read(conn, pid(key), item_id, svc.clock.now())

    return router
