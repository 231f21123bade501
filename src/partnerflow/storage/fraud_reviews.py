"""The fraud review queue, per-program fraud policies and the unit of work fraud decisions
run in.

`held_conversion_ids` is the contract with the commission approval job: a conversion with
an *open* fraud review of action 'hold' is never approved. Nothing else holds money here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection, Row, and_, select, update
from sqlalchemy.exc import IntegrityError

from partnerflow.core.errors import Conflict
from partnerflow.fraud.policy import Action, FraudPolicy, Subject, policy_from_data, policy_to_data
from partnerflow.fraud.ports import (
    ConversionState,
    NewReview,
    Review,
    ReviewFilter,
    ReviewStatus,
)
from partnerflow.storage import tables as t
from partnerflow.storage.unit_of_work import SqlUnitOfWork

R = t.fraud_reviews.c


def held_conversion_ids(conn: Connection, program_id: int) -> set[int]:
    """Conversions of a program whose commission is on fraud hold (open 'hold' reviews)."""
    rows = conn.execute(
        select(R.subject_id).where(
            R.program_id == program_id,
            R.subject_type == Subject.CONVERSION.value,
            R.action == Action.HOLD.value,
            R.status == ReviewStatus.OPEN.value,
        )
    )
    return {int(subject_id) for (subject_id,) in rows}


def _review(row: Row[Any]) -> Review:
    return Review(
        id=row.id,
        program_id=row.program_id,
        partner_id=row.partner_id,
        subject=Subject(row.subject_type),
        subject_id=row.subject_id,
        action=Action(row.action),
        score=row.score,
        reasons=tuple(row.reasons or ()),
        detail=dict(row.detail or {}),
        status=ReviewStatus(row.status),
        scan_key=row.scan_key,
        reopened_from=row.reopened_from,
        created_by=row.created_by,
        created_at=row.created_at,
        decided_by=row.decided_by,
        note=row.note,
        decided_at=row.decided_at,
    )


class SqlReviews:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, review: NewReview, actor: str, at: datetime) -> Review | None:
        if review.scan_key is not None and self._by_scan_key(review.scan_key) is not None:
            return None
        values = {
            "program_id": review.program_id,
            "partner_id": review.partner_id,
            "subject_type": review.subject.value,
            "subject_id": review.subject_id,
            "action": review.action.value,
            "score": review.score,
            "reasons": [reason[:500] for reason in review.reasons],
            "detail": review.detail or {},
            "status": ReviewStatus.OPEN.value,
            "scan_key": review.scan_key,
            "reopened_from": review.reopened_from,
            "created_by": actor[:200],
            "created_at": at,
        }
        try:
            # A savepoint: a scan racing another one loses only this insert, not its
            # transaction.
            with self.conn.begin_nested():
                new_id = self.conn.execute(
                    t.fraud_reviews.insert().values(values).returning(R.id)
                ).scalar_one()
        except IntegrityError:
            if review.scan_key is not None and self._by_scan_key(review.scan_key) is not None:
                return None
            raise
        found = self.get(new_id)
        assert found is not None
        return found

    def refresh(
        self, scan_key: str, score: int, reasons: Sequence[str], detail: dict[str, Any]
    ) -> bool:
        """Bring an *open* aggregated finding (e.g. one partner's datacenter clicks on one
        day, queued while the day was running) up to date with its latest counts. Decided
        reviews are never rewritten: a person decided on what they saw."""
        result = self.conn.execute(
            update(t.fraud_reviews)
            .where(R.scan_key == scan_key, R.status == ReviewStatus.OPEN.value)
            .values(score=score, reasons=[reason[:500] for reason in reasons], detail=detail)
        )
        return bool(result.rowcount)

    def open_scan_keys(self, program_id: int, prefix: str) -> dict[str, dict[str, Any]]:
        """scan_key -> detail of the program's open reviews whose key starts with prefix."""
        rows = self.conn.execute(
            select(R.scan_key, R.detail).where(
                R.program_id == program_id,
                R.status == ReviewStatus.OPEN.value,
                R.scan_key.like(prefix.replace("%", "").replace("_", r"\_") + "%", escape="\\"),
            )
        )
        return {key: dict(detail or {}) for key, detail in rows}

    def _by_scan_key(self, key: str) -> Review | None:
        row = self.conn.execute(select(t.fraud_reviews).where(R.scan_key == key)).first()
        return _review(row) if row else None

    def get(self, review_id: int) -> Review | None:
        row = self.conn.execute(select(t.fraud_reviews).where(R.id == review_id)).first()
        return _review(row) if row else None

    def find(self, query: ReviewFilter) -> list[Review]:
        stmt = select(t.fraud_reviews).order_by(R.id.desc()).limit(query.limit)
        if query.program_id is not None:
            stmt = stmt.where(R.program_id == query.program_id)
        if query.status is not None:
            stmt = stmt.where(R.status == query.status.value)
        if query.action is not None:
            stmt = stmt.where(R.action == query.action.value)
        if query.partner_id is not None:
            stmt = stmt.where(R.partner_id == query.partner_id)
        if query.subject is not None:
            stmt = stmt.where(R.subject_type == query.subject.value)
        return [_review(r) for r in self.conn.execute(stmt)]

    def for_subject(self, subject: Subject, subject_id: str) -> list[Review]:
        rows = self.conn.execute(
            select(t.fraud_reviews)
            .where(R.subject_type == subject.value, R.subject_id == subject_id)
            .order_by(R.id)
        )
        return [_review(r) for r in rows]

    def decide(
        self, review_id: int, status: ReviewStatus, actor: str, note: str | None, at: datetime
    ) -> None:
        expected = (
            [ReviewStatus.APPROVED.value, ReviewStatus.REJECTED.value]
            if status is ReviewStatus.REVERSED
            else [ReviewStatus.OPEN.value]
        )
        result = self.conn.execute(
            update(t.fraud_reviews)
            .where(and_(R.id == review_id, R.status.in_(expected)))
            .values(status=status.value, decided_by=actor[:200], note=note, decided_at=at)
        )
        if result.rowcount != 1:
            raise Conflict(f"fraud review {review_id} was decided by someone else meanwhile")


C = t.conversions.c


class SqlConversionMarks:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, conversion_id: int) -> ConversionState | None:
        row = self.conn.execute(
            select(C.id, C.program_id, C.partner_id, C.status, C.is_flagged, C.flags).where(
                C.id == conversion_id
            )
        ).first()
        if row is None:
            return None
        return ConversionState(
            row.id, row.program_id, row.partner_id, row.status, bool(row.is_flagged), row.flags
        )

    def set_status(self, conversion_id: int, status: str) -> None:
        self.conn.execute(update(t.conversions).where(C.id == conversion_id).values(status=status))

    def mark(self, conversion_id: int, flags: Sequence[str]) -> None:
        current = self.get(conversion_id)
        if current is None:
            return
        merged = [f for f in (current.flags or "").split(";") if f]
        merged += [f for f in flags if f and f not in merged]
        self.conn.execute(
            update(t.conversions)
            .where(C.id == conversion_id)
            .values(is_flagged=True, flags=";".join(merged)[:2000] or None)
        )


class SqlFraudPolicies:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, program_id: int) -> FraudPolicy:
        row = self.conn.execute(
            select(t.fraud_policies.c.settings).where(t.fraud_policies.c.program_id == program_id)
        ).first()
        return policy_from_data(row.settings if row else None)

    def set(self, program_id: int, policy: FraudPolicy, actor: str, at: datetime) -> None:
        values = {"settings": policy_to_data(policy), "updated_by": actor[:200], "updated_at": at}
        result = self.conn.execute(
            update(t.fraud_policies)
            .where(t.fraud_policies.c.program_id == program_id)
            .values(values)
        )
        if result.rowcount == 0:
            self.conn.execute(t.fraud_policies.insert().values(program_id=program_id, **values))


class SqlFraudUnitOfWork(SqlUnitOfWork):
    """The SQL unit of work plus the fraud repositories, on the same connection (so a
    decision, its ledger entries, the partner's status change and the audit rows commit or
    roll back together). Satisfies `fraud.ports.FraudUnitOfWork` and
    `partners.ports.PartnersUnitOfWork`."""

    reviews: SqlReviews
    conversion_marks: SqlConversionMarks
    fraud_policies: SqlFraudPolicies

    def __enter__(self) -> Self:
        super().__enter__()
        if self._depth == 1:
            conn = self.connection
            self.reviews = SqlReviews(conn)
            self.conversion_marks = SqlConversionMarks(conn)
            self.fraud_policies = SqlFraudPolicies(conn)
        return self

    @property
    def fraud_ledger(self) -> Any:
        return self.ledger
