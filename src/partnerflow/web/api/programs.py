"""Per-program views and content: partner and customer segments, announcements sent,
message threads, terms versions and creatives.

Segments are computed on request by the same functions the CLI and the dashboard call
(`segments.rules.segment_partners`, `analytics.segmentation.segment_customers`); terms and
creatives are the rows `storage.content` keeps, checked by `web.content`'s rules.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from partnerflow.storage import content
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage.api_keys import ApiKey
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import (
    ApiContext,
    Cursor,
    IdPath,
    IdQuery,
    Limit,
    actor,
    load_program,
    scoped,
)
from partnerflow.web.api.queries import page
from partnerflow.web.api.routing import ExactJsonRoute
from partnerflow.web.content import TERMS_KINDS, check_kind, check_text, check_title

SEGMENTS = ("risky", "dormant", "stars", "rising", "steady")


def programs_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=ExactJsonRoute)
    reader = scoped(ctx, "admin:read")
    writer = scoped(ctx, "admin:write")
    svc = ctx.services

    # --- segments ------------------------------------------------------------------------------
    @router.get(
        "/programs/{program_id}/segments/partners",
        response_model=s.PartnerSegmentsOut,
        tags=["segments"],
    )
    def partner_segments(
        program_id: IdPath,
        key: ApiKey = reader,
        period_days: Annotated[int, Query(ge=1, le=366)] = 30,
        segment: Annotated[str | None, Query(pattern="^(" + "|".join(SEGMENTS) + ")$")] = None,
    ) -> Any:
        """Active and approved partners as stars, rising, steady, dormant or risky — the last
        `period_days` against the period before — each with the rule that decided and why."""
        from partnerflow.segments.rules import segment_partners
        from partnerflow.storage.segment_queries import partner_period_features

        program = load_program(ctx, key, program_id)
        now = svc.clock.now()
        with svc.engine.connect() as conn:
            features = partner_period_features(conn, program.id, program.currency, now, period_days)
            p = t.partners
            names = dict(
                conn.execute(select(p.c.id, p.c.name).where(p.c.program_id == program.id)).all()
            )
        assignments = segment_partners(features, currency=program.currency)
        counts: dict[str, int] = {}
        for a in assignments:
            counts[a.segment.value] = counts.get(a.segment.value, 0) + 1
        by_id = {f.partner_id: f for f in features}
        rows = []
        for a in assignments:
            if segment is not None and a.segment.value != segment:
                continue
            f = by_id[a.partner_id]
            rows.append(
                s.PartnerSegmentOut(
                    partner_id=a.partner_id,
                    name=names.get(a.partner_id, ""),
                    segment=a.segment.value,
                    rule=a.rule,
                    reason=a.reason,
                    clicks=f.clicks,
                    conversions=f.conversions,
                    refunds=f.refunds,
                    revenue=ser.money_text(f.revenue),
                    commission=ser.money_text(f.commission),
                    previous_clicks=f.previous_clicks,
                    previous_conversions=f.previous_conversions,
                    previous_revenue=ser.money_text(f.previous_revenue),
                    days_since_last_activity=f.days_since_last_activity,
                )
            )
        return {
            "program_id": program.id,
            "as_of": now,
            "period_days": period_days,
            "currency": program.currency,
            "counts": counts,
            "partners": rows,
        }

    @router.get(
        "/programs/{program_id}/segments/customers",
        response_model=s.CustomerSegmentsOut,
        tags=["segments"],
    )
    def customer_segments(
        program_id: IdPath,
        key: ApiKey = reader,
        clv: Annotated[str, Query(pattern="^(historical|predicted)$")] = "historical",
        members: Annotated[int, Query(ge=0, le=1000, description="list up to N customers")] = 0,
    ) -> Any:
        """Customer segments: RFM scores plus k-means clusters, named, with revenue and CLV
        (historical revenue, or predicted with BG/NBD + Gamma-Gamma)."""
        from partnerflow.analytics.segmentation import Purchase, segment_customers
        from partnerflow.storage.segment_queries import customer_purchases

        program = load_program(ctx, key, program_id)
        now = svc.clock.now()
        with svc.engine.connect() as conn:
            data = customer_purchases(conn, program.id, program.currency, now)
        result = segment_customers(
            (Purchase(r.customer_id, r.at, r.amount) for r in data.rows),
            as_of=now,
            currency=program.currency,
            timezone=program.timezone,
            predict_clv=clv == "predicted",
        )
        money = ser.money_text
        return {
            "program_id": program.id,
            "as_of": result.as_of,
            "currency": program.currency,
            "customers": result.customers,
            "purchases": result.purchases,
            "k": result.k,
            "clv_method": str(result.clv_method),
            "clv_note": result.clv_note,
            "segments": [
                s.CustomerSegmentOut(
                    name=x.name,
                    description=x.description,
                    customers=x.customers,
                    customer_share=str(x.customer_share),
                    revenue=money(x.revenue),
                    revenue_share=str(x.revenue_share),
                    clv_mean=money(x.clv_mean),
                    clv_total=money(x.clv_total),
                    rfm_segments=dict(x.rfm_segments),
                )
                for x in result.segments
            ],
            "members": [
                s.CustomerOut(
                    customer_id=m.customer_id,
                    segment=m.segment,
                    rfm_cell=m.rfm_cell,
                    rfm_segment=m.rfm_segment,
                    recency_days=m.recency_days,
                    frequency=m.frequency,
                    monetary=money(m.monetary),
                    clv=money(m.clv),
                )
                for m in result.members[:members]
            ]
            if members
            else None,
        }

    # --- announcements and message threads -----------------------------------------------------
    @router.get(
        "/announcements", response_model=s.Page[s.AnnouncementListOut], tags=["communications"]
    )
    def list_announcements(
        key: ApiKey = reader, program_id: IdQuery = None, limit: Limit = 50, cursor: Cursor = None
    ) -> Any:
        a = t.announcements
        where = []
        if key.program_id is not None:
            if program_id is not None and program_id != key.program_id:
                return {"items": [], "next_cursor": None}
            where.append(a.c.program_id == key.program_id)
        if program_id is not None:
            where.append(a.c.program_id == program_id)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, a, where, cursor, limit)
        return {
            "items": [s.AnnouncementListOut.model_validate(r) for r in rows],
            "next_cursor": nxt,
        }

    @router.get(
        "/programs/{program_id}/message-threads",
        response_model=list[s.ThreadSummaryOut],
        tags=["messages"],
    )
    def message_threads(program_id: IdPath, key: ApiKey = reader) -> Any:
        """Every partner with a message thread, unread (from partners) first."""
        program = load_program(ctx, key, program_id)
        m, p = t.partner_messages, t.partners
        with svc.engine.connect() as conn:
            unread = msg.unread_for_managers(conn, program.id)
            threads = conn.execute(
                select(p.c.id, p.c.name)
                .where(p.c.id.in_(select(m.c.partner_id).where(m.c.program_id == program.id)))
                .order_by(p.c.id)
            ).all()
        out = [
            s.ThreadSummaryOut(partner_id=i, name=n, unread=unread.get(i, 0)) for i, n in threads
        ]
        return sorted(out, key=lambda x: (-x.unread, x.partner_id))

    # --- terms and creatives -------------------------------------------------------------------
    @router.get("/programs/{program_id}/terms", response_model=list[s.TermsOut], tags=["terms"])
    def list_terms(program_id: IdPath, key: ApiKey = reader) -> Any:
        """Every version of the terms and guidelines, newest first, with how many partners
        accepted each."""
        program = load_program(ctx, key, program_id)
        with svc.engine.connect() as conn:
            docs = content.terms_documents(conn, program.id)
        return [s.TermsOut.model_validate(d) for d in docs]

    @router.post(
        "/programs/{program_id}/terms",
        response_model=s.TermsOut,
        status_code=201,
        tags=["terms"],
    )
    def publish_terms(program_id: IdPath, body: s.TermsIn, key: ApiKey = writer) -> Any:
        """Publish the next version of `terms` or `guidelines`; partners accept it under
        `/me/terms`."""
        program = load_program(ctx, key, program_id)
        kind = check_kind(body.kind, TERMS_KINDS)
        title = check_title(body.title)
        text = check_text(body.body)
        with svc.engine.begin() as conn:
            doc = content.publish_terms(conn, program.id, kind, title, text, actor(key),
                                        svc.clock.now())  # fmt: skip
        return s.TermsOut.model_validate(doc)

    @router.get(
        "/programs/{program_id}/creatives", response_model=list[s.CreativeOut], tags=["terms"]
    )
    def list_creatives(program_id: IdPath, key: ApiKey = reader, active_only: bool = False) -> Any:
        program = load_program(ctx, key, program_id)
        with svc.engine.connect() as conn:
            found = content.creatives(conn, program.id, active_only=active_only)
        return [s.CreativeOut.model_validate(c) for c in found]

    return router
