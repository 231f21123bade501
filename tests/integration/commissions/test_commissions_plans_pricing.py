"""Stored plans, pricing by the version in force, multi-currency and backtesting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from tests.integration.commissions.money_world import count, make_money_world

from partnerflow.bootstrap import Services
from partnerflow.commissions.plans import parse_plan_toml
from partnerflow.commissions.ports import ProgramTerms
from partnerflow.commissions.services import (
    ConversionInput,
    commission_for_conversion,
    import_rates,
    set_plan,
    simulate,
)
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import Money
from partnerflow.storage import tables as t

PLAN = """
id = "standard"
currency = "EUR"

[[versions]]
version = 1
effective_from = 2026-01-01
effective_to = 2026-03-01
  [[versions.rules]]
  id = "sales"
  type = "cps"
  tiers = [{ from = 1, to = 2, percent = "10" }, { from = 3, percent = "20" }]

[[versions]]
version = 2
effective_from = 2026-03-01
  [[versions.rules]]
  id = "flat"
  type = "cpa"
  amount = "30"
"""


def _terms(w: object) -> ProgramTerms:
    from tests.integration.commissions.money_world import MoneyWorld

    assert isinstance(w, MoneyWorld)
    p = w.program
    return ProgramTerms(p.id, p.slug, p.currency, p.lock_period_days,
                        p.attribution_model.value, p.cookie_window_days)  # fmt: skip


def _price(w: object, at: datetime, amount: str = "100", currency: str = "EUR",
           partner: int | None = None) -> tuple[Money | None, str]:  # fmt: skip
    from tests.integration.commissions.money_world import MoneyWorld

    assert isinstance(w, MoneyWorld)
    with w.uow() as uow:
        priced = commission_for_conversion(
            uow.plans, uow.facts, uow.rates, _terms(w),
            ConversionInput(partner or w.ann.id, w.offer.id, "sale",
                            Money(Decimal(amount), currency), at),
            simple_plan=w.offer.commission_plan,
        )  # fmt: skip
    return priced.amount, priced.explanation


def test_conversion_uses_the_plan_version_in_force_when_it_happened(services: Services) -> None:
    w = make_money_world(services)
    stored = set_plan(w.uow(), w.clock, program_id=w.program.id, text=PLAN, author="kim")
    assert (stored.stored.revision, stored.stored.scope) == (1, "program")
    feb = datetime(2026, 2, 10, tzinfo=UTC)
    amount, why = _price(w, feb)
    assert amount == Money(Decimal("10.00"), "EUR")
    assert "program plan: plan standard v1" in why and "rule sales" in why
    # Third February sale of the partner reaches the 20 % tier.
    w.clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    w.sale("F-1", "100")
    w.sale("F-2", "100")
    amount, why = _price(w, feb)
    assert amount == Money(Decimal("20.00"), "EUR")
    assert "tier conversions 3+ this month (this is conversion 3)" in why
    amount, why = _price(w, datetime(2026, 3, 1, tzinfo=UTC))
    assert amount == Money(Decimal("30.00"), "EUR")
    assert "plan standard v2" in why


def test_without_a_stored_plan_the_offers_simple_plan_pays(services: Services) -> None:
    w = make_money_world(services, percent="12.5")
    amount, why = _price(w, datetime(2026, 3, 2, tzinfo=UTC), amount="80")
    assert amount == Money(Decimal("10.00"), "EUR")
    assert why.startswith(f"offer {w.offer.id}'s simple plan (CPS 12.5% of sale): rule cps")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PLAN.replace("effective_from = 2026-03-01", "effective_from = 2026-02-15"), "overlaps"),
        (PLAN.replace("{ from = 3,", "{ from = 4,"), "leaves a gap: expected from = 3, got 4"),
        (PLAN.replace('id = "sales"', 'id = "sales"\n  when = { offers = [999] }'),
         "unknown offer 999"),
        (PLAN.replace('currency = "EUR"', 'currency = "USD"'), "plan pays in USD"),
        (PLAN.replace('percent = "10"', "percent = 10.5"), "versions[0].rules[0].tiers[0]"),
    ],
)  # fmt: skip
def test_bad_plans_are_refused_with_nothing_written(
    services: Services, text: str, message: str
) -> None:
    w = make_money_world(services)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        set_plan(w.uow(), w.clock, program_id=w.program.id, text=text, author="kim")
    assert count(services, t.commission_plans) == 0
    assert count(services, t.commission_plan_versions) == 0


def test_started_versions_cannot_be_rewritten(services: Services) -> None:
    w = make_money_world(services)
    set_plan(w.uow(), w.clock, program_id=w.program.id, text=PLAN, author="kim")
    rewrite = PLAN.replace('amount = "30"', 'amount = "35"')
    with pytest.raises(InvalidInput, match="version 2 has been in force"):
        set_plan(w.uow(), w.clock, program_id=w.program.id, text=rewrite, author="kim")
    backdated = PLAN.replace(
        "effective_from = 2026-03-01\n  [[versions.rules]]\n  id = \"flat\"",
        "effective_from = 2026-03-01\neffective_to = 2026-04-01\n  [[versions.rules]]\n"
        "  id = \"flat\"",
    ) + '\n[[versions]]\nversion = 3\neffective_from = 2026-04-01\n  [[versions.rules]]\n' \
        '  id = "new"\n  type = "cpa"\n  amount = "40"\n'  # fmt: skip
    done = set_plan(w.uow(), w.clock, program_id=w.program.id, text=backdated, author="kim")
    assert done.stored.revision == 2
    assert count(services, t.commission_plans) == 2
    assert count(services, t.commission_plan_versions) == 5


def test_other_currency_is_converted_with_the_stored_rate(services: Services) -> None:
    w = make_money_world(services)
    csv = ["date,from,to,rate", "2026-02-27,USD,EUR,0.9150", "2026-03-02,USD,EUR,0.92"]
    done = import_rates(w.uow(), w.clock, csv)
    assert (done.added, done.unchanged) == (2, 0)
    amount, why = _price(w, datetime(2026, 3, 1, tzinfo=UTC), amount="100", currency="USD")
    assert amount == Money(Decimal("9.15"), "EUR")
    assert why.startswith("order value 100.00 USD at 0.9150 (2026-02-27) = 91.50 EUR; ")
    amount, why = _price(w, datetime(2026, 2, 1, tzinfo=UTC), amount="100", currency="USD")
    assert amount is None
    assert "no USD->EUR rate on or before 2026-02-01" in why


def test_rates_import_with_any_bad_row_imports_nothing(services: Services) -> None:
    w = make_money_world(services)
    bad = ["date,from,to,rate", "2026-03-01,USD,EUR,0.92", "2026-13-01,USD,EUR,0.9",
           "2026-03-01,GBP,XXX,1.1", "2026-03-02,USD,EUR,-1"]  # fmt: skip
    with pytest.raises(InvalidInput) as info:
        import_rates(w.uow(), w.clock, bad)
    assert "line 3: date '2026-13-01' is not YYYY-MM-DD" in info.value.message
    assert "line 4: unknown currency 'XXX'" in info.value.message
    assert "line 5: rate must be a positive number" in info.value.message
    assert count(services, t.exchange_rates) == 0
    import_rates(w.uow(), w.clock, bad[:2])
    with pytest.raises(InvalidInput, match="already stored"):
        import_rates(w.uow(), w.clock, ["date,from,to,rate", "2026-03-01,USD,EUR,0.95"])
    assert count(services, t.exchange_rates) == 1


def test_simulate_replays_conversions_under_a_proposed_plan(services: Services) -> None:
    w = make_money_world(services, percent="10")
    w.sale("A-1", "100")  # ann: 10.00 now
    w.sale("A-2", "300")  # ann: 30.00 now
    w.sale("B-1", "50", partner="bob")  # bob: 5.00 now
    proposed = parse_plan_toml(
        'id = "flat"\ncurrency = "EUR"\n[[versions]]\nversion = 1\n'
        'effective_from = 2026-01-01\n  [[versions.rules]]\n  type = "cpa"\n  amount = "12"\n'
    )
    sim = simulate(w.uow(), program_id=w.program.id, proposed=proposed,
                   start=date(2026, 3, 1), end=date(2026, 3, 31))  # fmt: skip
    assert sim.conversions == 3
    assert sim.revenue == Money(Decimal("450.00"), "EUR")
    assert (sim.current_cost.amount, sim.proposed_cost.amount) == (Decimal("45"), Decimal("36"))
    assert sim.proposed_margin == Money(Decimal("414"), "EUR")
    assert [(p.partner_id, p.conversions, p.delta.amount) for p in sim.partners] == [
        (w.ann.id, 2, Decimal("-16")),
        (w.bob.id, 1, Decimal("7")),
    ]
    with pytest.raises(NotFound):
        simulate(w.uow(), program_id=999, proposed=proposed,
                 start=date(2026, 3, 1), end=date(2026, 3, 31))  # fmt: skip
