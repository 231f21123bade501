"""The partner-scoped API (`partner` keys): a partner sees only its own links, coupons,
conversions, balances, payouts and statements, targets, caps (with the reasons they
changed), terms, creatives, postbacks, messages and inbox — the partner id comes from the
key, never from the request, and another partner's id answers the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from partnerflow.caps.services import cap_history, cap_usage, target_progress
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import PartnerId
from partnerflow.payouts.ports import StoredBatch
from partnerflow.payouts.services import batch_statements, list_batches
from partnerflow.storage import content
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage import webhooks as wh
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.catalog import SqlPartners
from partnerflow.storage.ledger import SqlLedger
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import ApiContext, own_partner, scoped
from partnerflow.web.api.queries import page, page_items
from partnerflow.web.api.routing import ExactJsonRoute

IdPath = Annotated[int, Path(ge=1, le=2_147_483_647)]
BatchId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=64)]


def partner_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/me", tags=["partner"], route_class=ExactJsonRoute)
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

    # --- payouts and statements ----------------------------------------------------------------
    def money_uow() -> SqlMoneyUnitOfWork:
        return svc.money_uow()

    def my_payout(stored: StoredBatch, partner_id: int) -> s.MyPayoutOut | None:
        b = stored.batch
        line = next((x for x in b.lines if x.partner_id == partner_id), None)
        held = next((x for x in b.held if x.partner_id == partner_id), None)
        if line is None and held is None:
            return None  # a batch that neither pays nor holds this partner isn't theirs
        return s.MyPayoutOut(
            batch_id=b.id,
            period_start=b.period.start,
            period_end=b.period.end,
            status=stored.status,
            paid_at=stored.paid_at,
            line=ser.payout_line_out(line) if line else None,
            held=ser.held_line_out(held) if held else None,
        )

    @router.get("/payouts", response_model=s.Page[s.MyPayoutOut])
    def payouts(key: ApiKey = partner_key, limit: Limit = 50, cursor: Cursor = None) -> Any:
        """Batches that pay (or hold back) this partner, newest first; superseded drafts
        are left out."""
        me = own_partner(ctx, key)
        batches = list_batches(money_uow(), me.program_id)
        mine = [
            x
            for x in (my_payout(b, me.id) for b in batches if b.status != "superseded")
            if x is not None
        ]
        items, nxt = page_items(mine, cursor, limit)
        return {"items": items, "next_cursor": nxt}

    @router.get("/payouts/{batch_id}", response_model=s.MyPayoutDetailOut)
    def payout(batch_id: BatchId, key: ApiKey = partner_key) -> Any:
        """One batch with this partner's statement: opening balance, each movement with its
        reason, closing balance."""
        me = own_partner(ctx, key)
        batches = list_batches(money_uow(), me.program_id)
        found = next((b for b in batches if b.batch.id == batch_id), None)
        row = my_payout(found, me.id) if found is not None else None
        if row is None:
            raise NotFound("payout batch not found", field="batch")
        statements = [
            ser.statement_out(x)
            for x in batch_statements(money_uow(), batch_id)
            if x.partner_id == me.id
        ]
        return {**row.model_dump(), "statements": statements}

    # --- targets and caps ----------------------------------------------------------------------
    def caps_uow() -> SqlCapsUnitOfWork:
        return SqlCapsUnitOfWork(svc.engine, svc.clock)

    @router.get("/targets", response_model=list[s.TargetProgressOut])
    def targets(key: ApiKey = partner_key) -> Any:
        """This partner's targets in force and the progress towards each."""
        me = own_partner(ctx, key)
        found = target_progress(caps_uow(), svc.clock, me.program_id, partner_id=me.id)
        return [
            {"target": ser.target_out(x.target), "progress": ser.progress_out(x.progress)}
            for x in found
        ]

    @router.get("/caps", response_model=s.MyCapsOut)
    def caps(key: ApiKey = partner_key) -> Any:
        """The caps that name this partner, their usage now, and every change with its
        reason (program-wide caps are the manager's business, another partner's never
        shows)."""
        me = own_partner(ctx, key)
        currency = _currency(me.program_id)
        counter = ctx.cap_counter()
        usages = [
            u
            for u in cap_usage(caps_uow(), counter, svc.clock, me.program_id, partner_id=me.id)
            if u.cap.scope.partner_id == me.id
        ]
        history = cap_history(caps_uow(), me.program_id, partner_id=me.id)
        changes = [
            ser.cap_change_out(ch, rule)
            for ch, rule in reversed(history)
            if rule.scope.partner_id == me.id
        ]
        return {"caps": [ser.cap_usage_out(u, currency) for u in usages], "changes": changes}

    def _currency(program_id: int) -> str:
        with svc.engine.connect() as conn:
            value = conn.execute(
                t.programs.select()
                .with_only_columns(t.programs.c.currency)
                .where(t.programs.c.id == program_id)
            ).scalar_one()
        return str(value)

    # --- terms and creatives -------------------------------------------------------------------
    @router.get("/terms", response_model=list[s.MyTermsOut])
    def terms(key: ApiKey = partner_key) -> Any:
        """The current terms and guidelines, and whether this partner accepted each."""
        me = own_partner(ctx, key)
        with svc.engine.connect() as conn:
            current = content.current_terms(conn, me.program_id)
            pending = {d.id for d in content.pending_terms(conn, me.program_id, me.id)}
        return [
            s.MyTermsOut(
                id=d.id,
                kind=d.kind,
                version=d.version,
                title=d.title,
                body=d.body,
                created_at=d.created_at,
                accepted=d.id not in pending,
            )
            for d in current
        ]

    @router.post("/terms/{document_id}/accept", response_model=s.AcceptedOut)
    def accept_terms(document_id: IdPath, key: ApiKey = partner_key) -> Any:
        """Accept a current document of this partner's program (an outdated version is
        refused with 422; accepting twice changes nothing)."""
        me = own_partner(ctx, key)
        with svc.engine.begin() as conn:
            newly = content.accept_terms(conn, me.program_id, me.id, document_id,
                                         f"api:{key.prefix}:{key.name}"[:200], None,
                                         svc.clock.now())  # fmt: skip
        return {"document_id": document_id, "accepted": True, "newly": newly}

    @router.get("/creatives", response_model=list[s.CreativeOut])
    def creatives(key: ApiKey = partner_key) -> Any:
        """Active banners, product images and social posts of the program."""
        me = own_partner(ctx, key)
        with svc.engine.connect() as conn:
            found = content.creatives(conn, me.program_id, active_only=True)
        return [s.CreativeOut.model_validate(c) for c in found]

    return router
