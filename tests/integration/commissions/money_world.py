"""Helpers for the commission and payout integration tests: a program with partners and
conversions recorded through the real postback use case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from tests.factories import make_coupon, make_offer, make_partner, make_program

from partnerflow.bootstrap import Services
from partnerflow.core.clock import FixedClock
from partnerflow.partners.model import Partner
from partnerflow.programs.model import Offer, Program
from partnerflow.storage import tables as t
from partnerflow.storage.payouts import SqlMoneyUnitOfWork
from partnerflow.tracking.services import RecordConversion, record_conversion


@dataclass
class MoneyWorld:
    svc: Services
    program: Program
    offer: Offer
    ann: Partner
    bob: Partner

    def uow(self) -> SqlMoneyUnitOfWork:
        return SqlMoneyUnitOfWork(self.svc.engine, self.svc.clock)

    @property
    def clock(self) -> FixedClock:
        clock = self.svc.clock
        assert isinstance(clock, FixedClock)
        return clock

    def sale(self, order_id: str, amount: str, partner: str = "ann", **kw: str) -> int:
        """Record a sale credited by the partner's coupon; returns the conversion id."""
        result = record_conversion(
            self.svc.uow(),
            self.svc.clock,
            RecordConversion(
                token=self.program.postback_token,
                order_id=order_id,
                amount=amount,
                coupon="ANN10" if partner == "ann" else "BOB10",
                **kw,
            ),
        )
        return int(result.conversion.id)

    def advance(self, days: int) -> None:
        self.clock.advance(timedelta(days=days))


def make_money_world(svc: Services, lock_days: int = 30, percent: str = "10") -> MoneyWorld:
    program = make_program(svc, lock_period_days=lock_days)
    offer = make_offer(svc, program, plan={"type": "cps", "percent": percent})
    ann = make_partner(svc, program, email="ann@blog.example")
    bob = make_partner(svc, program, email="bob@blog.example")
    make_coupon(svc, ann, offer, code="ANN10")
    make_coupon(svc, bob, offer, code="BOB10")
    return MoneyWorld(svc, program, offer, ann, bob)


def count(svc: Services, table: t.Table) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def approved_sum(svc: Services, partner_id: int) -> Decimal:
    e = t.commission_entries.c
    with svc.engine.connect() as conn:
        micros = conn.execute(
            select(func.coalesce(func.sum(e.amount_micros), 0)).where(
                e.partner_id == partner_id, e.bucket == "approved"
            )
        ).scalar_one()
    return Decimal(int(micros)) / Decimal(1_000_000)
