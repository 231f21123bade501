"""Inbound: signed Shopify and Stripe order webhooks, CSV imports, unsubscribe links.

Webhook bodies are read raw: the signature is over the exact bytes, so they are verified
before any JSON parsing. The program is named in the path by its slug; the secret is the
one set with `PUT /programs/{id}/integrations/{provider}`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request

from partnerflow.caps.services import import_spend_csv
from partnerflow.commissions.services import import_rates
from partnerflow.core.errors import Forbidden, InvalidInput, NotFound
from partnerflow.core.ids import ProgramId
from partnerflow.messaging.imports import decode, import_conversions, import_partners
from partnerflow.messaging.orders import shopify_order, stripe_invoice
from partnerflow.messaging.signatures import verify_shopify, verify_stripe
from partnerflow.storage import messages as msg
from partnerflow.storage import webhooks as wh
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.catalog import SqlPrograms
from partnerflow.storage.outbox import record_conversion_published
from partnerflow.tracking.services import RecordConversion
from partnerflow.web.api import schemas as s
from partnerflow.web.api.context import (
    ApiContext,
    actor,
    check_program,
    load_program,
    refuse_program_bound,
    scoped,
    tracking_uow,
)
from partnerflow.web.api.routing import ExactJsonRoute

Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", max_length=64)]
RAW_JSON: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
RAW_CSV: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("request body is not valid JSON", field="body") from None


def inbound_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=ExactJsonRoute)
    writer = scoped(ctx, "admin:write")
    svc = ctx.services

    def program_and_secret(slug: str, provider: str) -> tuple[Any, str]:
        with svc.engine.connect() as conn:
            program = SqlPrograms(conn).by_slug(slug)
            secret = wh.integration_secret(conn, program.id, provider) if program else None
        if program is None or secret is None:
            # Same answer for both: don't reveal which programs exist.
            raise Forbidden(f"no {provider} integration for this program", field="program")
        return program, secret

    def record(cmd: RecordConversion) -> dict[str, Any]:
        result = record_conversion_published(svc.uow(), svc.clock, cmd)
        return {
            "status": "duplicate" if result.duplicate else "recorded",
            "conversion_id": result.conversion.id,
            "duplicate": result.duplicate,
        }

    @router.post(
        "/inbound/shopify/{program_slug}",
        response_model=s.InboundOut,
        tags=["inbound"],
        openapi_extra=RAW_JSON,
    )
    async def shopify(
        program_slug: Slug,
        request: Request,
        x_shopify_hmac_sha256: Annotated[str, Header(max_length=200)] = "",
    ) -> Any:
        body = await request.body()
        program, secret = program_and_secret(program_slug, "shopify")
        verify_shopify(secret, body, x_shopify_hmac_sha256)
        cmd = shopify_order(_json(body), program.postback_token)
        return record(cmd)

    @router.post(
        "/inbound/stripe/{program_slug}",
        response_model=s.InboundOut,
        tags=["inbound"],
        openapi_extra=RAW_JSON,
    )
    async def stripe(
        program_slug: Slug,
        request: Request,
        stripe_signature: Annotated[str, Header(max_length=2000)] = "",
    ) -> Any:
        body = await request.body()
        program, secret = program_and_secret(program_slug, "stripe")
        verify_stripe(secret, body, stripe_signature, svc.clock.now())
        cmd = stripe_invoice(_json(body), program.postback_token)
        if cmd is None:
            return {"status": "ignored"}
        return record(cmd)

    @router.post(
        "/imports/partners",
        response_model=s.ImportReportOut,
        tags=["imports"],
        openapi_extra=RAW_CSV,
    )
    async def import_partner_csv(
        request: Request,
        program_id: Annotated[int, Query(ge=1, le=2_147_483_647)],
        key: ApiKey = writer,
    ) -> Any:
        check_program(key, program_id)
        data = await request.body()
        with svc.engine.connect() as conn:
            if SqlPrograms(conn).get(ProgramId(program_id)) is None:
                raise NotFound(f"program {program_id} not found", field="program_id")
        report = import_partners(
            tracking_uow(ctx),
            svc.clock,
            ProgramId(program_id),
            data,
            actor=f"api:{key.prefix}:import",
        )
        return s.ImportReportOut(
            kind=report.kind, rows=report.rows, imported=report.imported, duplicates=0
        )

    @router.post(
        "/imports/conversions",
        response_model=s.ImportReportOut,
        tags=["imports"],
        openapi_extra=RAW_CSV,
    )
    async def import_conversion_csv(
        request: Request,
        program_id: Annotated[int, Query(ge=1, le=2_147_483_647)],
        key: ApiKey = writer,
    ) -> Any:
        check_program(key, program_id)
        data = await request.body()
        with svc.engine.connect() as conn:
            program = SqlPrograms(conn).get(ProgramId(program_id))
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program_id")
        uow = tracking_uow(ctx)
        report = import_conversions(
            uow,
            svc.clock,
            program.postback_token,
            data,
            record=lambda cmd: record_conversion_published(uow, svc.clock, cmd),
        )
        return s.ImportReportOut(
            kind=report.kind,
            rows=report.rows,
            imported=report.imported,
            duplicates=report.duplicates,
        )

    @router.post(
        "/imports/exchange-rates",
        response_model=s.RatesImportedOut,
        tags=["imports"],
        openapi_extra=RAW_CSV,
    )
    async def import_rates_csv(request: Request, key: ApiKey = writer) -> Any:
        """`date,from,to,rate` rows; every bad line reported, nothing stored unless all pass;
        a stored rate is never overwritten."""
        refuse_program_bound(key, "the exchange-rate table")
        text = decode(await request.body())
        done = import_rates(svc.money_uow(), svc.clock,
                            text.splitlines())  # fmt: skip
        return s.RatesImportedOut(import_id=done.import_id, added=done.added,
                                  unchanged=done.unchanged)  # fmt: skip

    @router.post(
        "/imports/ad-spend",
        response_model=s.SpendRecordedOut,
        tags=["imports"],
        openapi_extra=RAW_CSV,
    )
    async def import_spend(
        request: Request,
        program_id: Annotated[int, Query(ge=1, le=2_147_483_647)],
        key: ApiKey = writer,
    ) -> Any:
        """`day,channel,campaign,partner,amount[,currency]` rows (partner: id or e-mail);
        any bad row: nothing imported, every bad row listed."""
        program = load_program(ctx, key, program_id)
        text = decode(await request.body())
        uow = SqlCapsUnitOfWork(svc.engine, svc.clock)
        count = import_spend_csv(uow, svc.clock, ProgramId(program.id), text, actor(key))
        return {"imported": count}

    def _unsubscribe(token: str) -> Any:
        with svc.engine.begin() as conn:
            program_id, partner_id = msg.unsubscribe(conn, ctx.secret, token, svc.clock.now())
        return {"program_id": program_id, "partner_id": partner_id, "unsubscribed": True}

    @router.get("/unsubscribe", response_model=s.UnsubscribedOut, tags=["communications"])
    def unsubscribe_get(token: Annotated[str, Query(max_length=100)]) -> Any:
        return _unsubscribe(token)

    @router.post("/unsubscribe", response_model=s.UnsubscribedOut, tags=["communications"])
    def unsubscribe_post(token: Annotated[str, Query(max_length=100)]) -> Any:
        """RFC 8058 one-click unsubscribe (mail clients POST to the List-Unsubscribe URL)."""
        return _unsubscribe(token)

    return router
