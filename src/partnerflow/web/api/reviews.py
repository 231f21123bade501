"""The fraud review queue: list findings with their reasons, approve or reject them in bulk
with a note, reverse a decision (`fraud.services`: all or nothing, the ledger follows)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from partnerflow.core.errors import NotFound
from partnerflow.fraud.services import decide_reviews, reverse_decisions
from partnerflow.storage import tables as t
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import (
    ApiContext,
    Cursor,
    IdPath,
    IdQuery,
    Limit,
    actor,
    scoped,
)
from partnerflow.web.api.queries import page
from partnerflow.web.api.routing import ExactJsonRoute


def reviews_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["fraud"], route_class=ExactJsonRoute)
    reader = scoped(ctx, "admin:read")
    writer = scoped(ctx, "admin:write")
    svc = ctx.services
    table = t.fraud_reviews

    def uow() -> SqlFraudUnitOfWork:
        return svc.fraud_uow()

    def check_all(key: ApiKey, ids: list[int]) -> None:
        """A program-bound key may decide only its program's reviews: another program's id
        is as unknown to it as a missing one (checked before anything is decided)."""
        with svc.engine.connect() as conn:
            rows = dict(
                conn.execute(
                    table.select().with_only_columns(table.c.id, table.c.program_id)
                    .where(table.c.id.in_(ids))
                ).all()
            )  # fmt: skip
        for review_id in ids:
            program_id = rows.get(review_id)
            if program_id is None or key.program_id not in (None, program_id):
                raise NotFound(f"fraud review {review_id} not found", field="ids")

    @router.get("/fraud-reviews", response_model=s.Page[s.ReviewOut])
    def list_reviews(
        key: ApiKey = reader,
        program_id: IdQuery = None,
        partner_id: IdQuery = None,
        status: Annotated[str | None, Query(pattern="^(open|approved|rejected|reversed)$")] = None,
        action: Annotated[str | None, Query(pattern="^(flag|hold|reject|suspend)$")] = None,
        subject: Annotated[str | None, Query(pattern="^(click|conversion|partner)$")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        """The queue, oldest first: each finding with its score, automated action and
        reasons. Filter with `status=open` for what still needs a person."""
        where = []
        if key.program_id is not None:
            if program_id is not None and program_id != key.program_id:
                return {"items": [], "next_cursor": None}
            where.append(table.c.program_id == key.program_id)
        if program_id is not None:
            where.append(table.c.program_id == program_id)
        for column, value in (
            (table.c.partner_id, partner_id),
            (table.c.status, status),
            (table.c.action, action),
            (table.c.subject_type, subject),
        ):
            if value is not None:
                where.append(column == value)
        with svc.engine.connect() as conn:
            rows, nxt = page(conn, table, where, cursor, limit)
        return {"items": [ser.review_row_out(r) for r in rows], "next_cursor": nxt}

    @router.get("/fraud-reviews/{review_id}", response_model=s.ReviewOut)
    def get_review(review_id: IdPath, key: ApiKey = reader) -> Any:
        check_all(key, [review_id])
        with uow() as w:
            review = w.reviews.get(review_id)
        if review is None:  # pragma: no cover - checked above
            raise NotFound(f"fraud review {review_id} not found", field="review")
        return ser.review_out(review)

    def decisions_out(decided: list[Any]) -> list[s.DecisionOut]:
        return [
            s.DecisionOut(
                review_id=d.review.id,
                status=str(d.status),
                effects=list(d.effects),
                reopened_as=d.reopened_as,
            )
            for d in decided
        ]

    @router.post("/fraud-reviews/decisions", response_model=list[s.DecisionOut])
    def post_decisions(body: s.ReviewDecisionIn, key: ApiKey = writer) -> Any:
        """Approve (clear the traffic: the automated action is undone) or reject (confirm
        the fraud) open reviews, all or nothing; a review already decided is refused (409)."""
        ids = list(dict.fromkeys(body.ids))
        check_all(key, ids)
        decided = decide_reviews(uow(), svc.clock, ids, body.decision, actor(key), body.note)
        return decisions_out(decided)

    @router.post("/fraud-reviews/reversals", response_model=list[s.DecisionOut])
    def post_reversals(body: s.ReviewReversalIn, key: ApiKey = writer) -> Any:
        """Take decisions back (a note is required): what each did is undone and the finding
        is re-opened as a new review (`reopened_as`) with its automated action in force."""
        ids = list(dict.fromkeys(body.ids))
        check_all(key, ids)
        return decisions_out(reverse_decisions(uow(), svc.clock, ids, actor(key), body.note))

    return router
