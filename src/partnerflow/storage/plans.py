"""Commission plans as stored data, and the conversion facts the plan engine prices from.

`SqlPlans` appends plan revisions (never updates them). `SqlConversionFacts` reads programs,
offers, partners, conversions and clicks into the small values `commissions.ports` defines,
and keeps a conversion's refunded total in step with the tracker's fast path
(`conversions.refunded_micros`, status 'reversed' once fully refunded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from partnerflow.commissions.plans import SUBSCRIPTION_EVENTS
from partnerflow.commissions.ports import (
    ConversionFacts,
    ProgramTerms,
    StoredPlan,
    StoredVersion,
)
from partnerflow.core.errors import Conflict
from partnerflow.core.money import Money
from partnerflow.storage import tables as t


def _stored(row: Row[Any]) -> StoredPlan:
    return StoredPlan(
        program_id=row.program_id,
        scope=row.scope,
        offer_id=row.offer_id,
        revision=row.revision,
        plan_id=row.plan_id,
        currency=row.currency,
        document=dict(row.document),
        author=row.author,
        created_at=row.created_at,
    )


class SqlPlans:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def current(self, program_id: int, scope: str) -> StoredPlan | None:
        c = t.commission_plans.c
        row = self.conn.execute(
            select(t.commission_plans)
            .where(c.program_id == program_id, c.scope == scope)
            .order_by(c.revision.desc())
            .limit(1)
        ).first()
        return _stored(row) if row else None

    def revisions(self, program_id: int, scope: str) -> list[StoredPlan]:
        c = t.commission_plans.c
        rows = self.conn.execute(
            select(t.commission_plans)
            .where(c.program_id == program_id, c.scope == scope)
            .order_by(c.revision)
        )
        return [_stored(r) for r in rows]

    def scopes(self, program_id: int) -> list[str]:
        c = t.commission_plans.c
        rows = self.conn.execute(
            select(c.scope).where(c.program_id == program_id).distinct().order_by(c.scope)
        )
        return [r[0] for r in rows]

    def add(self, plan: StoredPlan, versions: Sequence[StoredVersion]) -> None:
        try:
            with self.conn.begin_nested():
                row_id = self.conn.execute(
                    t.commission_plans.insert()
                    .values(
                        program_id=plan.program_id,
                        scope=plan.scope,
                        offer_id=plan.offer_id,
                        revision=plan.revision,
                        plan_id=plan.plan_id,
                        currency=plan.currency,
                        document=dict(plan.document),
                        author=plan.author,
                        created_at=plan.created_at,
                    )
                    .returning(t.commission_plans.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            raise Conflict(
                f"plan revision {plan.revision} of {plan.scope} was written concurrently: retry"
            ) from exc
        if versions:
            self.conn.execute(
                t.commission_plan_versions.insert(),
                [
                    {
                        "plan_row_id": row_id,
                        "program_id": plan.program_id,
                        "scope": plan.scope,
                        "version": v.version,
                        "effective_from": v.effective_from,
                        "effective_to": v.effective_to,
                        "document": dict(v.document),
                    }
                    for v in versions
                ],
            )


def _program(row: Row[Any]) -> ProgramTerms:
    return ProgramTerms(
        id=row.id,
        slug=row.slug,
        currency=row.currency,
        lock_period_days=row.lock_period_days,
        attribution_model=row.attribution_model,
        cookie_window_days=row.cookie_window_days,
    )


_conv = t.conversions
_click = t.clicks
_partner = t.partners
_FACT_COLUMNS = (
    _conv,
    _click.c.created_at.label("click_at"),
    _click.c.country.label("click_country"),
    _partner.c.status.label("partner_status"),
)


def _facts_query() -> Any:
    return select(*_FACT_COLUMNS).select_from(
        _conv.outerjoin(_click, _click.c.id == _conv.c.click_id).outerjoin(
            _partner, _partner.c.id == _conv.c.partner_id
        )
    )


def _facts(row: Row[Any]) -> ConversionFacts:
    return ConversionFacts(
        id=row.id,
        program_id=row.program_id,
        offer_id=row.offer_id,
        partner_id=row.partner_id,
        order_id=row.order_id,
        event_type=row.event_type,
        amount=Money.from_micros(row.amount_micros, row.currency),
        created_at=row.created_at,
        status=row.status,
        attributed_by=row.attributed_by,
        refunded=Money.from_micros(row.refunded_micros or 0, row.currency),
        click_id=row.click_id,
        click_at=row.click_at,
        click_country=row.click_country,
        coupon_code=row.coupon_code,
        customer_id=row.customer_id,
        is_flagged=bool(row.is_flagged),
        flags=row.flags,
        partner_status=row.partner_status,
    )


def _before(at: datetime, before_id: int | None) -> Any:
    # "Earlier than this conversion": strictly before in time, or at the same instant with
    # a smaller id. A conversion not stored yet counts everything up to and including `at`.
    if before_id is None:
        return _conv.c.created_at <= at
    return or_(_conv.c.created_at < at, and_(_conv.c.created_at == at, _conv.c.id < before_id))


class SqlConversionFacts:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def cap_description(self, cap_id: int) -> str | None:
        from partnerflow.storage.caps import SqlCaps  # storage.caps imports the outbox chain

        rule = SqlCaps(self.conn).get(cap_id)
        return rule.describe() if rule is not None else None

    def program(self, program_id: int) -> ProgramTerms | None:
        row = self.conn.execute(select(t.programs).where(t.programs.c.id == program_id)).first()
        return _program(row) if row else None

    def programs(self) -> list[ProgramTerms]:
        return [
            _program(r) for r in self.conn.execute(select(t.programs).order_by(t.programs.c.id))
        ]

    def offer_ids(self, program_id: int) -> list[int]:
        rows = self.conn.execute(
            select(t.offers.c.id).where(t.offers.c.program_id == program_id).order_by(t.offers.c.id)
        )
        return [r[0] for r in rows]

    def offer_plan(self, offer_id: int) -> tuple[int, Mapping[str, Any]] | None:
        row = self.conn.execute(
            select(t.offers.c.program_id, t.offers.c.commission_plan).where(
                t.offers.c.id == offer_id
            )
        ).first()
        return (row[0], dict(row[1])) if row else None

    def partner_program(self, partner_id: int) -> int | None:
        row = self.conn.execute(
            select(t.partners.c.program_id).where(t.partners.c.id == partner_id)
        ).first()
        return int(row[0]) if row else None

    def get(self, conversion_id: int) -> ConversionFacts | None:
        row = self.conn.execute(_facts_query().where(_conv.c.id == conversion_id)).first()
        return _facts(row) if row else None

    def by_order(self, program_id: int, order_id: str) -> ConversionFacts | None:
        row = self.conn.execute(
            _facts_query().where(_conv.c.program_id == program_id, _conv.c.order_id == order_id)
        ).first()
        return _facts(row) if row else None

    def in_range(self, program_id: int, start: datetime, end: datetime) -> list[ConversionFacts]:
        rows = self.conn.execute(
            _facts_query()
            .where(
                _conv.c.program_id == program_id,
                _conv.c.partner_id.is_not(None),
                _conv.c.created_at >= start,
                _conv.c.created_at < end,
            )
            .order_by(_conv.c.created_at, _conv.c.id)
        )
        return [_facts(r) for r in rows]

    def period_count(
        self,
        program_id: int,
        partner_id: int,
        event_type: str,
        start: datetime,
        at: datetime,
        before_id: int | None,
    ) -> int:
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(_conv)
                .where(
                    _conv.c.program_id == program_id,
                    _conv.c.partner_id == partner_id,
                    _conv.c.event_type == event_type,
                    _conv.c.created_at >= start,
                    _before(at, before_id),
                )
            ).scalar_one()
        )

    def customer_purchases(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int:
        return self._customer_count(program_id, customer_id, at, before_id)

    def subscription_payments(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None
    ) -> int:
        return self._customer_count(
            program_id, customer_id, at, before_id,
            _conv.c.event_type.in_(sorted(SUBSCRIPTION_EVENTS)),
        )  # fmt: skip

    def _customer_count(
        self, program_id: int, customer_id: str, at: datetime, before_id: int | None, *also: Any
    ) -> int:
        """The customer's conversions of the program before this one (`also`: more filters)."""
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(_conv)
                .where(
                    _conv.c.program_id == program_id,
                    _conv.c.customer_id == customer_id,
                    _before(at, before_id),
                    *also,
                )
            ).scalar_one()
        )

    def flagged(self, program_id: int) -> set[int]:
        rows = self.conn.execute(
            select(_conv.c.id).where(_conv.c.program_id == program_id, _conv.c.is_flagged.is_(True))
        )
        return {r[0] for r in rows}

    def record_refund(self, conversion_id: int, refunded: Money, fully: bool) -> None:
        values: dict[str, Any] = {"refunded_micros": refunded.to_micros()}
        if fully:
            values["status"] = "reversed"
        self.conn.execute(update(_conv).where(_conv.c.id == conversion_id).values(**values))
