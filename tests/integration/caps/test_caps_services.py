"""Caps, adaptive caps, goals and spend through the real use cases and storage."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from tests.factories import World, make_offer, make_partner, make_program, make_world

from partnerflow.bootstrap import Services
from partnerflow.caps.model import CapMetric
from partnerflow.caps.services import (
    CachedCapRules,
    CapGuard,
    SetCap,
    SpendImportError,
    cap_history,
    cap_usage,
    goal_progress,
    import_spend_csv,
    list_caps,
    recompute_caps,
    report_met_targets,
    set_caps,
    set_goal,
    set_partner_target,
    spend_report,
    target_progress,
)
from partnerflow.core.clock import FixedClock
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.ids import OfferId, PartnerId
from partnerflow.storage import tables as t
from partnerflow.storage.cap_reservations import SqlCapCounter
from partnerflow.storage.caps import (
    SqlCapNotices,
    SqlCapsUnitOfWork,
    load_active_caps,
    store_alerts,
)


def uow(svc: Services) -> SqlCapsUnitOfWork:
    return SqlCapsUnitOfWork(svc.engine, svc.clock)


def add_clicks(
    svc: Services, w: World, n: int, at: datetime, partner: int | None = None, *, bot: bool = False
) -> None:
    rows = [
        {
            "id": secrets.token_hex(12),
            "created_at": at,
            "program_id": w.program.id,
            "offer_id": w.offer.id,
            "partner_id": partner or w.partner.id,
            "link_id": w.link.id,
            "is_unique": True,
            "is_bot": bot,
            "is_qr": False,
            "fraud_score": 0,
        }
        for _ in range(n)
    ]
    with svc.engine.begin() as conn:
        conn.execute(t.clicks.insert(), rows)


def add_sales(
    svc: Services,
    w: World,
    n: int,
    at: datetime,
    *,
    amount: int = 100,
    commission: int = 10,
    status: str = "approved",
    partner: int | None = None,
) -> None:
    with svc.engine.begin() as conn:
        for _ in range(n):
            cid = conn.execute(
                t.conversions.insert()
                .values(
                    created_at=at,
                    program_id=w.program.id,
                    offer_id=w.offer.id,
                    partner_id=partner or w.partner.id,
                    order_id=secrets.token_hex(8),
                    event_type="sale",
                    amount_micros=amount * 1_000_000,
                    currency="EUR",
                    status=status,
                    attributed_by="click_id",
                    is_flagged=False,
                )
                .returning(t.conversions.c.id)
            ).scalar_one()
            conn.execute(
                t.commission_entries.insert().values(
                    txn_id=secrets.token_hex(8),
                    created_at=at,
                    program_id=w.program.id,
                    partner_id=partner or w.partner.id,
                    conversion_id=cid,
                    kind="commission",
                    bucket="pending",
                    amount_micros=commission * 1_000_000,
                    currency="EUR",
                    reason="test",
                    author="test",
                )
            )


def click_cap(w: World, limit: str, **kw: object) -> SetCap:
    return SetCap(
        program_id=w.program.id,
        metric="clicks",
        period="day",
        limit=limit,
        offer_id=w.offer.id,
        partner_id=w.partner.id,
        **kw,  # type: ignore[arg-type]
    )


def test_a_new_cap_counts_the_period_so_far_and_refuses_a_lower_limit(services: Services) -> None:
    w = make_world(services)
    add_clicks(services, w, 5, services.clock.now() - timedelta(hours=1))
    add_clicks(services, w, 3, services.clock.now() - timedelta(days=1))  # yesterday
    counter = SqlCapCounter(services.engine, services.clock)
    with pytest.raises(InvalidInput) as err:
        set_caps(uow(services), counter, services.clock, [click_cap(w, "4")], "ann")
    assert "limit 4 is below the usage already counted this period (5 clicks in 2026-03-02)" in (
        err.value.message
    )
    assert list_caps(uow(services), w.program.id) == []
    [cap] = set_caps(uow(services), counter, services.clock, [click_cap(w, "6")], "ann")
    [usage] = cap_usage(uow(services), counter, services.clock, w.program.id)
    assert (usage.used, usage.remaining, usage.percent) == (Decimal(5), Decimal(1), Decimal("83.3"))
    # Lowering an existing cap below its live usage needs force, and says so in the history.
    lower = click_cap(w, "2", cap_id=cap.id, reason="budget cut")
    with pytest.raises(InvalidInput, match="below the usage"):
        set_caps(uow(services), counter, services.clock, [lower], "ann")
    set_caps(uow(services), counter, services.clock, [lower], "ann", force=True)
    history = cap_history(uow(services), w.program.id)
    assert [(c.old_limit, c.new_limit, c.reason) for c, _ in history] == [
        (None, Decimal(6), "manual change: set to 6"),
        (Decimal(6), Decimal(2), "budget cut: changed 6 → 2 (forced below current usage)"),
    ]


def test_a_reason_with_an_invisible_character_fails_the_whole_batch(services: Services) -> None:
    """Every way in (dashboard, CLI, API) goes through set_caps: one refused reason and
    nothing is written, the message names the code point."""
    w = make_world(services)
    counter = SqlCapCounter(services.engine, services.clock)
    other = make_offer(services, w.program, name="Other")
    good = SetCap(program_id=w.program.id, metric="clicks", period="day", limit="5",
                  offer_id=other.id, reason="launch")  # fmt: skip
    with pytest.raises(InvalidInput) as err:
        set_caps(uow(services), counter, services.clock,
                 [good, click_cap(w, "10", reason="spring\ufeff sale")], "ann")  # fmt: skip
    assert (err.value.field, err.value.message) == (
        "reason",
        "reason must not contain U+FEFF (an invisible or bidirectional formatting character)",
    )
    assert list_caps(uow(services), w.program.id) == []
    assert cap_history(uow(services), w.program.id) == []


def test_overlapping_or_invalid_batches_apply_nothing(services: Services) -> None:
    w = make_world(services)
    counter = SqlCapCounter(services.engine, services.clock)
    set_caps(uow(services), counter, services.clock, [click_cap(w, "10")], "ann")
    other = make_offer(services, w.program, name="Other")
    good = SetCap(
        program_id=w.program.id, metric="conversions", period="month", limit="5", offer_id=other.id
    )
    with pytest.raises(Conflict, match="overlaps cap #1"):
        set_caps(uow(services), counter, services.clock, [good, click_cap(w, "20")], "ann")
    bad_bounds = click_cap(w, "10", adaptive_min="50", adaptive_max="5", adaptive_step_percent="10")
    with pytest.raises(InvalidInput, match="above the maximum"):
        set_caps(uow(services), counter, services.clock, [good, bad_bounds], "ann")
    negative = SetCap(
        program_id=w.program.id, metric="payout", period="week", limit="-1", offer_id=other.id
    )
    with pytest.raises(InvalidInput, match="must not be negative"):
        set_caps(uow(services), counter, services.clock, [negative], "ann")
    assert [c.id for c in list_caps(uow(services), w.program.id)] == [1]


def test_guard_enforces_hard_click_caps_and_alerts_once(services: Services) -> None:
    w = make_world(services)
    counter = SqlCapCounter(services.engine, services.clock)
    set_caps(uow(services), counter, services.clock, [click_cap(w, "2", alerts="50")], "ann")
    soft = SetCap(
        program_id=w.program.id,
        metric="clicks",
        period="month",
        limit="1",
        offer_id=w.offer.id,
        mode="soft",
    )
    set_caps(uow(services), counter, services.clock, [soft], "ann")
    raised: list[tuple[str, CapMetric]] = []
    rules = CachedCapRules(lambda pid: load_active_caps(services.engine, pid), ttl=60)
    guard = CapGuard(counter, rules, on_alert=lambda a, c: raised.append((a.message, c.metric)))
    now = services.clock.now()
    decisions = [
        guard.check_click(
            program_id=w.program.id,
            tz="Europe/Berlin",
            offer_id=w.offer.id,
            partner_id=w.partner.id,
            at=now,
            fallback_url="https://fb.example",
        )
        for _ in range(3)
    ]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].fallback_url == "https://fb.example"
    assert [m for m, _ in raised] == [
        "hard cap #1: 2 clicks per day for partner 1 on offer 1 reached 50% in 2026-03-02: 1 of 2",
        "soft cap #2: 1 clicks per month for offer 1 reached 90% in 2026-03: 1 of 1",
        "soft cap #2: 1 clicks per month for offer 1 reached 100% in 2026-03: 1 of 1",
    ]
    # The refused third click charged nothing, so the soft cap saw two clicks only.
    assert sum(len(d.alerts) for d in decisions) == 3
    stored = store_alerts(
        services.engine,
        [(a, CapMetric.CLICKS) for d in decisions for a in d.alerts] * 2,
        now,
    )
    assert stored == 3  # stored once each, even when reported twice


def test_refused_conversion_is_not_payable_and_release_frees_room(services: Services) -> None:
    w = make_world(services)
    counter = SqlCapCounter(services.engine, services.clock)
    cap = SetCap(
        program_id=w.program.id,
        metric="payout",
        period="month",
        limit="15",
        partner_id=w.partner.id,
    )
    set_caps(uow(services), counter, services.clock, [cap], "ann")
    guard = CapGuard(counter, CachedCapRules(lambda pid: load_active_caps(services.engine, pid)))

    def convert(payout: str) -> object:
        return guard.check_conversion(
            program_id=w.program.id,
            tz="UTC",
            offer_id=w.offer.id,
            partner_id=w.partner.id,
            at=services.clock.now(),
            revenue=Decimal(100),
            payout=Decimal(payout),
        )

    first = convert("10")
    second = convert("10")
    assert first.allowed and not second.allowed  # type: ignore[attr-defined]
    assert second.reason.endswith("conversion recorded but not payable")  # type: ignore[attr-defined]
    assert guard.release(first.reservation.id)  # type: ignore[attr-defined]
    assert convert("10").allowed  # type: ignore[attr-defined]


def test_adaptive_run_changes_once_explains_and_queues_a_notice(services: Services) -> None:
    w = make_world(services)
    rival = make_partner(services, w.program, email="bob@x.example")
    counter = SqlCapCounter(services.engine, services.clock)
    cap = SetCap(
        program_id=w.program.id,
        metric="conversions",
        period="day",
        limit="100",
        offer_id=w.offer.id,
        partner_id=w.partner.id,
        adaptive_min="50",
        adaptive_max="300",
        adaptive_step_percent="20",
    )
    set_caps(uow(services), counter, services.clock, [cap], "ann")
    past = services.clock.now() - timedelta(days=3)
    add_clicks(services, w, 200, past)
    add_sales(services, w, 6, past, commission=20)
    add_clicks(services, w, 800, past, partner=rival.id)
    add_sales(services, w, 8, past, commission=10, partner=rival.id)
    run = recompute_caps(uow(services), services.clock, w.program.id, quality={w.partner.id: 95})
    assert [(o.decision.old_limit, o.decision.new_limit) for o in run] == [
        (Decimal(100), Decimal(120))
    ]
    assert run[0].decision.reason.startswith(
        "EPC 0.60 EUR (+200% vs program 0.20 EUR), CR 3.0% (+114% vs program)"
    )
    again = recompute_caps(uow(services), services.clock, w.program.id, quality={w.partner.id: 95})
    assert again == []
    [cap_now] = list_caps(uow(services), w.program.id)
    assert cap_now.limit == Decimal(120)
    history = cap_history(uow(services), w.program.id, partner_id=PartnerId(w.partner.id))
    assert history[-1][0].inputs["quality"] == 95
    with services.engine.connect() as conn:
        notices = SqlCapNotices(conn).list(partner_id=PartnerId(w.partner.id))
    assert len(notices) == 1
    assert notices[0].subject == "Your conversions cap on offer 1 was raised"
    assert "is now 120 (was 100)" in notices[0].body


def test_goals_targets_projection_and_met_hook(services: Services, clock: FixedClock) -> None:
    w = make_world(services)
    clock.set(datetime(2026, 3, 11, tzinfo=UTC))  # 10 of 31 days into March
    now = clock.now()
    set_goal(
        uow(services),
        services.clock,
        w.program.id,
        metric="sales",
        period="month",
        target="100",
        actor="ann",
    )
    set_partner_target(
        uow(services),
        services.clock,
        w.program.id,
        partner_id=w.partner.id,
        metric="sales",
        period="month",
        growth_percent="50",
        bonus_id="b1",
        actor="ann",
    )
    add_sales(services, w, 4, now - timedelta(days=20))  # February
    add_sales(services, w, 6, now - timedelta(hours=2))
    [(_goal, p)] = goal_progress(uow(services), services.clock, w.program.id)
    assert (p.actual, p.target, p.projected, p.on_track) == (
        Decimal(6),
        Decimal(100),
        Decimal("18.60"),  # 6 sales in 10 of 31 days
        False,
    )
    [tp] = target_progress(uow(services), services.clock, w.program.id)
    assert (tp.progress.target, tp.progress.met) == (Decimal(6), True)
    met = report_met_targets(uow(services), services.clock, w.program.id)
    assert [(m.target.bonus_id, m.period_key, m.actual) for m in met] == [("b1", "2026-03", 6)]
    assert report_met_targets(uow(services), services.clock, w.program.id) == []


def test_spend_import_is_all_or_nothing_and_reports_roas(services: Services) -> None:
    w = make_world(services)
    bad = (
        "day,channel,campaign,partner,amount\n"
        "2026-03-01,tiktok,spring,ann@blog.example,50\n"
        "2026-03-01,tiktok,spring,nobody@x.example,5\n"
        "2026-03-09,tiktok,spring,ann@blog.example,5\n"
    )
    with pytest.raises(SpendImportError) as err:
        import_spend_csv(uow(services), services.clock, w.program.id, bad, "ann")
    assert err.value.errors == (
        "line 3: unknown partner 'nobody@x.example'",
        "line 4: day 2026-03-09 is in the future (today is 2026-03-02)",
    )
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.ad_spend)).scalar_one() == 0
    good = "day,channel,campaign,partner,amount\n2026-03-01,tiktok,spring,ann@blog.example,50\n"
    assert import_spend_csv(uow(services), services.clock, w.program.id, good, "ann") == 1
    assert import_spend_csv(uow(services), services.clock, w.program.id, good, "ann") == 1
    add_clicks(services, w, 100, datetime(2026, 3, 1, 9, tzinfo=UTC))
    add_sales(services, w, 2, datetime(2026, 3, 1, 10, tzinfo=UTC), amount=80, commission=8)
    [row] = spend_report(
        uow(services),
        w.program.id,
        datetime(2026, 3, 1).date(),
        datetime(2026, 3, 2).date(),
        "partner",
    )
    assert (row.key, row.spend, row.cpc, row.cpa, row.roas, row.profit) == (
        str(w.partner.id),
        Decimal(50),
        Decimal("0.5000"),
        Decimal("25.00"),
        Decimal("3.20"),
        Decimal("94.00"),
    )


def test_spend_kpis_count_human_clicks_and_net_revenue_and_commission(
    services: Services,
) -> None:
    """Bots are not clicks, and a partially refunded order counts what was kept, net of the
    commission reversed: the spend report agrees with `partnerflow report`."""
    w = make_world(services)
    spend = "day,channel,campaign,partner,amount\n2026-03-01,tiktok,spring,ann@blog.example,30\n"
    import_spend_csv(uow(services), services.clock, w.program.id, spend, "ann")
    day = datetime(2026, 3, 1, 9, tzinfo=UTC)
    add_clicks(services, w, 60, day)
    add_clicks(services, w, 40, day, bot=True)
    add_sales(services, w, 1, day, amount=100, commission=10)
    with services.engine.begin() as conn:  # 40.00 of the 100.00 refunded, 4.00 taken back
        conversion_id = conn.execute(select(t.conversions.c.id)).scalar_one()
        conn.execute(t.conversions.update().values(refunded_micros=40_000_000))
        conn.execute(
            t.commission_entries.insert().values(
                txn_id=secrets.token_hex(8), created_at=day, program_id=w.program.id,
                partner_id=w.partner.id, conversion_id=conversion_id, kind="reversal",
                bucket="pending", amount_micros=-4_000_000, currency="EUR", reason="refund",
                author="test",
            )
        )  # fmt: skip
    [row] = spend_report(uow(services), w.program.id, day.date(), day.date(), "partner")
    o = row.outcome
    assert (o.clicks, o.revenue, o.payout) == (60, 60, 6)
    assert (row.cpc, row.cpa, row.roas, row.profit) == (
        Decimal("0.5000"), Decimal("30.0000"), Decimal("2.000000"), Decimal(24),
    )  # fmt: skip


def test_caps_belong_to_their_program(services: Services) -> None:
    w = make_world(services)
    other = make_program(services, slug="other")
    counter = SqlCapCounter(services.engine, services.clock)
    cmd = SetCap(
        program_id=other.id, metric="clicks", period="day", limit="5", offer_id=OfferId(w.offer.id)
    )
    with pytest.raises(Exception, match="offer 1 not found in program other"):
        set_caps(uow(services), counter, services.clock, [cmd], "ann")


def test_the_scheduled_job_runs_the_same_recompute(services: Services) -> None:
    from partnerflow.jobs import adaptive_caps

    w = make_world(services)
    counter = SqlCapCounter(services.engine, services.clock)
    cap = SetCap(
        program_id=w.program.id,
        metric="clicks",
        period="week",
        limit="1000",
        offer_id=w.offer.id,
        partner_id=w.partner.id,
        adaptive_min="500",
        adaptive_max="2000",
        adaptive_step_percent="10",
    )
    set_caps(uow(services), counter, services.clock, [cap], "ann")
    [outcome] = adaptive_caps.run(services, "acme", quality={w.partner.id: 20})
    assert (outcome.decision.new_limit, outcome.cap.limit) == (Decimal(900), Decimal(900))
    assert adaptive_caps.run(services, "acme", quality={w.partner.id: 20}) == []
