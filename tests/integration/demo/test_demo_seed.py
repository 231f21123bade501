"""The demo seed: deterministic, realistic in shape, refuses to seed twice, resets cleanly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock
from partnerflow.core.errors import Conflict
from partnerflow.core.ids import click_id_time_ms, is_click_id
from partnerflow.demo.seed import DAYS, DEMO_LOGINS, seed_demo
from partnerflow.storage import tables as t
from partnerflow.storage.reports import event_totals

CLICKS = 5000
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def fingerprint(svc: Services) -> tuple[object, ...]:
    with svc.engine.connect() as conn:
        totals = event_totals(conn)
        money = conn.execute(
            select(func.sum(t.conversions.c.amount_micros), func.count(t.conversions.c.order_id))
        ).one()
        ledger = conn.execute(select(func.sum(t.commission_entries.c.amount_micros))).scalar()
        first_clicks = conn.execute(
            select(t.clicks.c.id, t.clicks.c.partner_id).order_by(t.clicks.c.id).limit(5)
        ).all()
    return (totals, tuple(money), ledger, tuple(map(tuple, first_clicks)))


@pytest.fixture
def seeded(services: Services) -> Services:
    services.clock = FixedClock(NOW)
    seed_demo(services.engine, services.clock, seed=7, clicks=CLICKS)
    return services


def test_same_seed_gives_identical_data(seeded: Services, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    other = build(Settings(database_url=url), clock=FixedClock(NOW))
    other.migrate()
    try:
        seed_demo(other.engine, other.clock, seed=7, clicks=CLICKS)
        assert fingerprint(other) == fingerprint(seeded)
    finally:
        other.close()


def test_seed_shape_is_realistic(seeded: Services) -> None:
    with seeded.engine.connect() as conn:
        totals = event_totals(conn)
        per_partner = sorted(
            (
                n
                for (n,) in conn.execute(
                    select(func.count())
                    .select_from(t.conversions)
                    .group_by(t.conversions.c.partner_id)
                )
            ),
            reverse=True,
        )
        statuses = dict(
            conn.execute(
                select(t.partners.c.status, func.count()).group_by(t.partners.c.status)
            ).all()
        )
        span = conn.execute(
            select(func.min(t.clicks.c.created_at), func.max(t.clicks.c.created_at))
        ).one()
        click_ids = conn.execute(select(t.clicks.c.id, t.clicks.c.created_at).limit(50)).all()
        coupon_only = conn.execute(
            select(func.count()).where(t.conversions.c.attributed_by == "coupon")
        ).scalar_one()
        flagged_fast = conn.execute(
            select(func.count()).where(t.conversions.c.is_flagged.is_(True))
        ).scalar_one()
    assert totals["clicks"] == CLICKS
    assert (totals["programs"], totals["offers"], totals["partners"]) == (1, 3, 200)
    assert totals["bot_clicks"] > 0 and totals["flagged_clicks"] >= totals["bot_clicks"]
    assert totals["impressions"] > 0
    by_click = totals["conversions"] - coupon_only
    assert 0.01 <= by_click / (CLICKS - totals["bot_clicks"]) <= 0.06
    assert totals["refunded_conversions"] > 0
    assert coupon_only > 0 and flagged_fast > 0
    # Long tail: the top 10% of partners (20) bring more than half of the conversions.
    assert sum(per_partner[:20]) > 0.5 * sum(per_partner)
    assert statuses.get("applied", 0) > 0 and statuses["active"] > 150
    assert span[1] <= NOW and NOW - span[0] <= timedelta(days=DAYS)
    for click_id, created_at in click_ids:
        assert is_click_id(click_id)
        assert click_id_time_ms(click_id) == int(created_at.timestamp() * 1000)
    assert totals["users"] == len(DEMO_LOGINS)


def test_ledger_balances_match_conversion_states(seeded: Services) -> None:
    e, c = t.commission_entries, t.conversions
    with seeded.engine.connect() as conn:
        # An approval moves money between buckets and nets to zero per transaction.
        approvals = conn.execute(
            select(e.c.txn_id, func.sum(e.c.amount_micros)).where(e.c.kind == "approval")
            .group_by(e.c.txn_id)
        ).all()  # fmt: skip
        reversed_net = conn.execute(
            select(func.coalesce(func.sum(e.c.amount_micros), 0))
            .select_from(e.join(c, e.c.conversion_id == c.c.id))
            .where(c.c.status == "reversed")
        ).scalar_one()
        approved_bucket = conn.execute(
            select(func.sum(e.c.amount_micros))
            .select_from(e.join(c, e.c.conversion_id == c.c.id))
            .where(e.c.bucket == "approved", c.c.status == "approved")
        ).scalar_one()
    assert approvals and all(total == 0 for _txn, total in approvals)
    assert reversed_net == 0
    assert approved_bucket > 0


def test_seeding_twice_is_refused_without_reset(seeded: Services) -> None:
    before = fingerprint(seeded)
    with pytest.raises(Conflict, match="already seeded"):
        seed_demo(seeded.engine, seeded.clock, seed=8, clicks=CLICKS)
    assert fingerprint(seeded) == before


def test_reset_replaces_the_demo_program(seeded: Services) -> None:
    result = seed_demo(seeded.engine, seeded.clock, seed=9, clicks=1000, reset=True)
    with seeded.engine.connect() as conn:
        totals = event_totals(conn)
    assert totals["clicks"] == 1000
    assert (totals["programs"], totals["partners"], totals["users"]) == (1, 200, 3)
    assert result.clicks == 1000
    assert Decimal(result.conversions) == Decimal(totals["conversions"])
