"""Money routes: commission plans (revisions, setting one, simulating one), conversion
explanations, payout batches (build, list, statements, CSV export, mark paid) and the
exchange-rate table.

Every route calls the commission and payout use cases (`commissions.services`,
`payouts.services`, `attribution.services`) with the same unit of work the CLI uses, so the
rules — plan history that cannot be rewritten, a batch paid once, rates never overwritten —
are the engine's, not re-implemented here.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from partnerflow.attribution.services import explain_conversion
from partnerflow.commissions.plans import parse_plan
from partnerflow.commissions.services import (
    PROGRAM_SCOPE,
    decode_plan_text,
    import_rates,
    offer_scope,
    set_plan,
    simulate,
)
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.money import check_currency, parse_amount
from partnerflow.payouts.ports import StoredBatch
from partnerflow.payouts.services import (
    batch_statements,
    build_payout,
    export_batch,
    get_batch,
    list_batches,
    mark_batch_paid,
)
from partnerflow.storage import tables as t
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import (
    ApiContext,
    Cursor,
    IdPath,
    IdQuery,
    Limit,
    actor,
    check_program,
    load_program,
    refuse_program_bound,
    scoped,
)
from partnerflow.web.api.queries import page, page_items
from partnerflow.web.api.routing import ExactJsonRoute

BatchId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV file"}
}


def plan_text(plan: dict[str, object]) -> str:
    """The JSON body's plan as the JSON text the plan engine decodes itself (so its own
    checks — unknown keys, more than 6 decimals, dates with offsets — apply unchanged).
    The body was read with exact numbers (`routing.ExactJsonRoute`): each `Decimal` is
    written back as the JSON number it was, digit for digit (`12.50` stays `12.50`)."""
    try:
        return _json_text(plan)
    except ValueError:  # NaN or Infinity: Python's parser reads them, as floats
        raise InvalidInput("plan: numbers must be finite", field="plan") from None
    except RecursionError:
        raise InvalidInput("plan: nested too deeply", field="plan") from None


def _json_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)  # '12.50', '1E+2', '-0.000001': JSON numbers, exact
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {_json_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(value, allow_nan=False)


def money_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=ExactJsonRoute)
    reader = scoped(ctx, "admin:read")
    writer = scoped(ctx, "admin:write")
    svc = ctx.services

    def uow() -> SqlMoneyUnitOfWork:
        return svc.money_uow()

    # --- commission plans --------------------------------------------------------------------
    def scope_of(offer_id: int | None) -> str:
        return PROGRAM_SCOPE if offer_id is None else offer_scope(offer_id)

    @router.get("/programs/{program_id}/plans", response_model=list[s.PlanScopeOut], tags=["plans"])
    def list_plan_scopes(program_id: IdPath, key: ApiKey = reader) -> Any:
        """Every scope with a stored plan (the program's and each offer's own) and its
        current revision."""
        load_program(ctx, key, program_id)
        with uow() as w:
            current = [w.plans.current(program_id, sc) for sc in w.plans.scopes(program_id)]
        return [
            s.PlanScopeOut(
                scope=p.scope,
                offer_id=p.offer_id,
                revision=p.revision,
                plan_id=p.plan_id,
                created_at=p.created_at,
            )
            for p in current
            if p is not None
        ]

    @router.get("/programs/{program_id}/plan", response_model=s.PlanRevisionOut, tags=["plans"])
    def get_plan(program_id: IdPath, key: ApiKey = reader, offer_id: IdQuery = None) -> Any:
        """The current plan of the program (or of one offer) with its versions."""
        load_program(ctx, key, program_id)
        with uow() as w:
            stored = w.plans.current(program_id, scope_of(offer_id))
        if stored is None:
            raise NotFound(f"no plan stored for {scope_of(offer_id)}", field="plan")
        return ser.plan_revision_out(stored, parse_plan(stored.document))

    @router.get(
        "/programs/{program_id}/plan/revisions",
        response_model=s.Page[s.PlanRevisionOut],
        tags=["plans"],
    )
    def list_plan_revisions(
        program_id: IdPath,
        key: ApiKey = reader,
        offer_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        """Every stored revision of the scope (the audit trail) and the versions it holds."""
        load_program(ctx, key, program_id)
        with uow() as w:
            revisions = w.plans.revisions(program_id, scope_of(offer_id))
        items, nxt = page_items(revisions, cursor, limit)
        return {
            "items": [ser.plan_revision_out(r, parse_plan(r.document)) for r in items],
            "next_cursor": nxt,
        }

    @router.post(
        "/programs/{program_id}/plan",
        response_model=s.PlanRevisionOut,
        status_code=201,
        tags=["plans"],
    )
    def post_plan(program_id: IdPath, body: s.PlanIn, key: ApiKey = writer) -> Any:
        """Validate the plan with the commission engine and store it as the scope's next
        revision. Versions already in force must be carried unchanged; new versions can't
        start in the past. Refused: 422 with the offending path, nothing stored."""
        load_program(ctx, key, program_id)
        done = set_plan(
            uow(),
            svc.clock,
            program_id=program_id,
            text=plan_text(body.plan),
            fmt="json",
            offer_id=body.offer_id,
            author=actor(key),
        )
        return ser.plan_revision_out(done.stored, done.plan)

    @router.post(
        "/programs/{program_id}/plan/simulate",
        response_model=s.SimulationOut,
        tags=["plans"],
    )
    def post_simulation(program_id: IdPath, body: s.SimulateIn, key: ApiKey = reader) -> Any:
        """Replay the period's conversions under a proposed plan: cost, margin and the
        change per partner. Writes nothing (hence the read scope)."""
        load_program(ctx, key, program_id)
        if (body.date_to - body.date_from).days > 366:
            raise InvalidInput("simulate at most 367 days at once", field="date_from")
        with uow() as w:
            offers = w.facts.offer_ids(program_id)
        proposed = parse_plan(decode_plan_text(plan_text(body.plan), "json"), known_offers=offers)
        sim = simulate(
            uow(), program_id=program_id, proposed=proposed, start=body.date_from,
            end=body.date_to,
        )  # fmt: skip
        return ser.simulation_out(sim)

    # --- conversion explanation ----------------------------------------------------------------
    @router.get(
        "/conversions/{conversion_id}/explanation",
        response_model=s.ExplanationOut,
        tags=["conversions"],
    )
    def get_explanation(conversion_id: IdPath, key: ApiKey = reader) -> Any:
        """Which click or coupon, model and window; the plan version and rule; holds; the
        arithmetic; every ledger entry with its reason."""
        found = explain_conversion(uow(), conversion_id)
        check_program(key, found.conversion.program_id)
        return ser.explanation_out(found)

    # --- payouts -------------------------------------------------------------------------------
    def batch_of(key: ApiKey, batch_id: str) -> StoredBatch:
        stored = get_batch(uow(), batch_id)
        check_program(key, stored.batch.program_id)
        return stored

    @router.post("/payouts", response_model=s.PayoutBatchOut, status_code=201, tags=["payouts"])
    def post_payout(body: s.PayoutBuildIn, key: ApiKey = writer) -> Any:
        """Build the batch paying approved balances up to `period_end`. Same content, same
        batch id: building twice returns the same batch."""
        load_program(ctx, key, body.program_id)
        minimums = {
            check_currency(cur, field="minimums"): parse_amount(amount, field="minimums")
            for cur, amount in body.minimums.items()
        }
        stored = build_payout(
            uow(), svc.clock, program_id=body.program_id, period_end=body.period_end,
            minimums=minimums, author=actor(key),
        )  # fmt: skip
        return ser.batch_out(stored)

    @router.get("/payouts", response_model=s.Page[s.PayoutBatchOut], tags=["payouts"])
    def list_payouts(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        status: Annotated[str | None, Query(pattern="^(open|paid|superseded)$")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        if key.program_id is not None:
            if program_id is not None and program_id != key.program_id:
                return {"items": [], "next_cursor": None}
            program_id = key.program_id
        batches = [b for b in list_batches(uow(), program_id) if status in (None, b.status)]
        items, nxt = page_items(batches, cursor, limit)
        return {"items": [ser.batch_out(b) for b in items], "next_cursor": nxt}

    @router.get("/payouts/{batch_id}", response_model=s.PayoutDetailOut, tags=["payouts"])
    def get_payout(batch_id: BatchId, key: ApiKey = reader) -> Any:
        """The batch with a statement per partner: opening balance, every movement with its
        reason, closing balance, what is still pending."""
        stored = batch_of(key, batch_id)
        statements = batch_statements(uow(), batch_id)
        return {
            **ser.batch_out(stored).model_dump(),
            "statements": [ser.statement_out(x) for x in statements],
        }

    @router.get(
        "/payouts/{batch_id}/export",
        response_class=Response,
        responses=CSV_RESPONSE,
        tags=["payouts"],
    )
    def export_payout(
        batch_id: BatchId,
        key: ApiKey = reader,
        format: Annotated[str, Query(pattern="^(generic|paypal)$")] = "generic",
        currency: Annotated[str | None, Query(pattern="^[A-Za-z]{3}$")] = None,
    ) -> Response:
        """The payment file (generic CSV, or PayPal Payouts: one currency per file).
        Re-exporting, also after payment, gives the same file."""
        batch_of(key, batch_id)
        text = export_batch(uow(), batch_id, format, currency)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="payout-{batch_id}-{format}.csv"'
            },
        )

    @router.post("/payouts/{batch_id}/paid", response_model=s.PayoutPaidOut, tags=["payouts"])
    def post_payout_paid(batch_id: BatchId, key: ApiKey = writer) -> Any:
        """Record the batch's payments in the ledger — once. Repeating the request answers
        the paid batch with `already_paid: true` and writes nothing; a superseded batch or a
        suspended partner is refused (409) with nothing written."""
        stored = batch_of(key, batch_id)
        if stored.status == "paid":
            return {"batch": ser.batch_out(stored), "already_paid": True, "payments": 0}
        try:
            paid = mark_batch_paid(uow(), svc.clock, batch_id, author=actor(key))
        except Conflict:
            # A concurrent request paid it first: the same answer as a repeat.
            again = get_batch(uow(), batch_id)
            if again.status != "paid":
                raise
            return {"batch": ser.batch_out(again), "already_paid": True, "payments": 0}
        payments = sum(1 for e in paid.entries if e.bucket.value == "paid")
        return {"batch": ser.batch_out(paid.batch), "already_paid": False, "payments": payments}

    # --- exchange rates ------------------------------------------------------------------------
    @router.get("/exchange-rates", response_model=s.Page[s.RateOut], tags=["rates"])
    def list_rates(
        key: ApiKey = reader,
        source: Annotated[str | None, Query(pattern="^[A-Za-z]{3}$")] = None,
        target: Annotated[str | None, Query(pattern="^[A-Za-z]{3}$")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        table = t.exchange_rates
        where = []
        if source is not None:
            where.append(table.c.source == source.upper())
        if target is not None:
            where.append(table.c.target == target.upper())
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, where, cursor, limit)
        return {"items": [s.RateOut.model_validate(r) for r in rows], "next_cursor": nxt}

    @router.post(
        "/exchange-rates", response_model=s.RatesImportedOut, status_code=201, tags=["rates"]
    )
    def post_rates(body: s.RatesIn, key: ApiKey = writer) -> Any:
        """Add rates; every bad row is reported and nothing is stored unless all are good.
        A stored rate is never overwritten (commissions used it): the same value again is
        counted as unchanged, another value is refused."""
        refuse_program_bound(key, "the exchange-rate table")
        out = io.StringIO()
        writer_ = csv.writer(out, lineterminator="\n")
        writer_.writerow(("date", "from", "to", "rate"))
        for r in body.rows:
            writer_.writerow((r.valid_from.isoformat(), r.source, r.target, r.rate))
        done = import_rates(uow(), svc.clock, out.getvalue().splitlines())
        return s.RatesImportedOut(import_id=done.import_id, added=done.added,
                                  unchanged=done.unchanged)  # fmt: skip

    return router
