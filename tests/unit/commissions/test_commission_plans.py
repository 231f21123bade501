from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.commissions.model import FlatPlan, PercentPlan, PlanType
from partnerflow.commissions.plans import (
    ConversionContext,
    TierPeriod,
    compute,
    compute_at,
    from_simple_plan,
    parse_plan,
    parse_plan_json,
    parse_plan_toml,
    period_start,
    plan_version_at,
)
from partnerflow.commissions.rules import commission_for
from partnerflow.commissions.services import decode_plan_text
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.money import Money

AT = datetime(2024, 3, 15, 10, 0, tzinfo=UTC)

PLAN_TOML = """
id = "standard"
currency = "EUR"

[[versions]]
version = 1
effective_from = 2024-01-01T00:00:00Z
effective_to = 2024-04-01T00:00:00Z

  [[versions.rules]]
  id = "books-de"
  type = "cps"
  percent = "15"
  when = { countries = ["de", "AT"], categories = ["books"] }

  [[versions.rules]]
  id = "sales"
  type = "cps"
  tiers = [
    { from = 1, to = 50, percent = "10" },
    { from = 51, percent = "12" },
  ]

  [[versions.rules]]
  id = "leads"
  type = "cpl"
  amount = "2.50"

  [[versions.rules]]
  id = "subs"
  type = "recurring"
  percent = "20"
  months = 12

  [[versions.bonuses]]
  id = "target-100"
  type = "target"
  threshold = 100
  amount = "50"

  [[versions.bonuses]]
  id = "new-customer"
  type = "new_customer"
  amount = "3"

  [[versions.overrides]]
  partner = 7
  rules = [{ id = "vip", type = "cps", percent = "20" }]

[[versions]]
version = 2
effective_from = 2024-04-01
  [[versions.rules]]
  id = "flat"
  type = "cpa"
  amount = "30"
"""


def plan():
    return parse_plan_toml(PLAN_TOML)


def sale(value: str, **kw):
    defaults = {"event": "sale", "at": AT, "partner_id": 1, "order_value": Money.of(value, "EUR")}
    defaults.update(kw)
    return ConversionContext(**defaults)


def v1():
    return plan().versions[0]


def test_cps_tiers_pay_10_percent_up_to_50_and_12_beyond():
    r50 = compute(v1(), sale("200.00", period_count=50))
    r51 = compute(v1(), sale("200.00", period_count=51))
    assert (r50.amount, r50.rule_id) == (Money.of("20.00", "EUR"), "sales")
    assert (r51.amount, r51.rule_id) == (Money.of("24.00", "EUR"), "sales")
    assert "tier conversions 51+ this month (this is conversion 51)" in r51.explanation
    assert "200.00 EUR x 12% = 24.00" in r51.explanation


def test_conditions_pick_the_first_matching_rule():
    r = compute(v1(), sale("100", country="de", category="books"))
    assert (r.amount, r.rule_id) == (Money.of("15", "EUR"), "books-de")
    other = compute(v1(), sale("100", country="FR", category="books"))
    assert other.rule_id == "sales"


def test_rounding_is_half_up_once_at_the_end():
    r = compute(v1(), sale("0.05"))  # 10% of 0.05 = 0.005 -> 0.01
    assert r.amount == Money.of("0.01", "EUR")
    assert "total 0.005 -> 0.01 EUR" in r.explanation


def test_bonuses_add_on_top_with_their_reasons():
    r = compute(v1(), sale("100", period_count=100, new_customer=True))
    # 12% of 100 = 12 + target 50 + new customer 3
    assert r.amount == Money.of("65.00", "EUR")
    assert r.bonuses == ("target-100", "new-customer")
    assert "bonus target-100 (target of 100 conversions reached): +flat 50 EUR" in r.explanation
    assert compute(v1(), sale("100", period_count=101)).bonuses == ()


def test_per_partner_override_is_tried_first():
    r = compute(v1(), sale("100", partner_id=7, country="DE", category="books"))
    assert (r.amount, r.rule_id) == (Money.of("20", "EUR"), "vip")
    assert "override for partner 7" in r.explanation


def test_cpl_pays_leads_flat_and_recurring_stops_after_n_months():
    lead = compute(v1(), ConversionContext("lead", AT, 1))
    assert (lead.amount, lead.rule_id) == (Money.of("2.50", "EUR"), "leads")
    m12 = compute(v1(), sale("30", event="renewal", subscription_month=12))
    m13 = compute(v1(), sale("30", event="renewal", subscription_month=13))
    assert (m12.amount, m12.rule_id) == (Money.of("6.00", "EUR"), "subs")
    assert (m13.amount, m13.rule_id) == (Money.of("0", "EUR"), None)
    assert "recurring for 12 payment(s), this is payment 13" in m13.explanation


def test_unpaid_conversion_explains_every_declined_rule():
    r = compute(v1(), ConversionContext("click", AT, 1))
    assert r.amount.is_zero()
    assert r.explanation.startswith("plan standard v1")
    assert "rule leads: pays lead/signup, not click" in r.explanation


def test_order_in_another_currency_must_be_converted_first():
    with pytest.raises(InvalidInput, match="convert"):
        compute(v1(), sale("10", order_value=Money.of("10", "USD")))


def test_the_version_in_force_at_the_conversion_is_used():
    versions = plan().versions
    assert compute_at(versions, sale("100")).rule_id == "sales"
    april = datetime(2024, 4, 1, tzinfo=UTC)
    assert compute_at(versions, sale("100", at=april)).amount == Money.of("30", "EUR")
    with pytest.raises(NotFound):
        plan_version_at(versions, datetime(2023, 12, 31, tzinfo=UTC))


def test_overlapping_versions_are_refused():
    doc = plan_doc()
    doc["versions"][1]["effective_from"] = "2024-03-31T00:00:00+00:00"
    with pytest.raises(InvalidInput, match="overlaps"):
        parse_plan(doc)
    open_first = plan_doc()
    del open_first["versions"][0]["effective_to"]
    with pytest.raises(InvalidInput, match="overlaps"):
        parse_plan(open_first)


def plan_doc():
    return {
        "id": "p",
        "currency": "EUR",
        "versions": [
            {
                "version": 1,
                "effective_from": "2024-01-01",
                "effective_to": "2024-04-01",
                "rules": [{"type": "cps", "percent": "10"}],
            },
            {
                "version": 2,
                "effective_from": "2024-04-01",
                "rules": [{"type": "cps", "percent": "12"}],
            },
        ],
    }


@pytest.mark.parametrize(
    ("tiers", "field", "message"),
    [
        (
            [{"from": 1, "to": 50, "percent": "10"}, {"from": 52, "percent": "12"}],
            "versions[0].rules[0].tiers[1].from",
            "leaves a gap",
        ),
        (
            [{"from": 1, "to": 50, "percent": "10"}, {"from": 40, "percent": "12"}],
            "versions[0].rules[0].tiers[1].from",
            "overlaps the previous tier",
        ),
        ([{"from": 2, "percent": "10"}], "versions[0].rules[0].tiers[0].from", "expected from = 1"),
        ([{"from": 1, "to": 9, "percent": "10"}], "versions[0].rules[0].tiers[0].to", "open-ended"),
        ([{"from": 1, "amount": "3"}], "versions[0].rules[0].tiers[0].amount", "use percent"),
    ],
)
def test_bad_tier_tables_are_refused_with_the_field_path(tiers, field, message):
    doc = plan_doc()
    doc["versions"][0]["rules"] = [{"type": "cps", "tiers": tiers}]
    with pytest.raises(InvalidInput, match=message) as exc:
        parse_plan(doc)
    assert exc.value.field == field
    assert exc.value.message.startswith(field)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["versions"][0]["rules"][0].update(percent="101"),
            "versions[0].rules[0].percent",
        ),
        (lambda d: d["versions"][0]["rules"][0].update(pecrent="1"), "versions[0].rules[0]"),
        (lambda d: d["versions"][0]["rules"][0].update(type="cpm"), "versions[0].rules[0].type"),
        (
            lambda d: d["versions"][0]["rules"][0].update(percent=10.5),
            "versions[0].rules[0].percent",
        ),
        (
            lambda d: d["versions"][0].update(effective_from="2024-01-01T00:00:00"),
            "versions[0].effective_from",
        ),
        (
            lambda d: d["versions"][1]["rules"].append({"type": "recurring", "percent": "5"}),
            "versions[1].rules[1].months",
        ),
        (
            lambda d: d["versions"][1]["rules"][0].update(when={"offers": [99]}),
            "versions[1].rules[0].when.offers[0]",
        ),
        (lambda d: d.update(currency="EURO"), "currency"),
        (lambda d: d["versions"][0].update(rules=[]), "versions[0].rules"),
        # Beyond the 32-bit columns, lone surrogates and over-long ids: refused, not a 500.
        (lambda d: d["versions"][0].update(version=2**63), "versions[0].version"),
        (
            lambda d: d["versions"][0].update(overrides=[{"partner": 10**20, "rules": []}]),
            "versions[0].overrides[0].partner",
        ),
        (lambda d: d["versions"][0]["rules"][0].update(id="\ud800"), "versions[0].rules[0].id"),
        (lambda d: d["versions"][0]["rules"][0].update(id="a\x00b"), "versions[0].rules[0].id"),
        (lambda d: d.update(id="\ud800"), "id"),
        (lambda d: d.update(id="p" * 65), "id"),
    ],
)
def test_invalid_plans_name_the_field(mutate, field):
    doc = plan_doc()
    mutate(doc)
    with pytest.raises(InvalidInput) as exc:
        parse_plan(doc, known_offers={1, 2})
    assert exc.value.field == field


def test_json_plans_keep_decimals_exact():
    text = (
        '{"id": "j", "currency": "USD", "versions": [{"version": 1, '
        '"effective_from": "2024-01-01", "rules": [{"type": "cps", "percent": "12.1"}]}]}'
    )
    version = parse_plan_json(text).versions[0]
    ctx = ConversionContext("sale", AT, 1, Money.of("100", "USD"))
    assert compute(version, ctx).amount == Money.of("12.10", "USD")


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "j", "currency": "USD", "versions": 1e-9999999999999999999999}',
        "[" * 100_000 + "]" * 100_000,
        '{"id": "j"',
    ],
)
def test_unreadable_json_plans_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_plan_json(text)
    assert exc.value.field == "plan"
    with pytest.raises(InvalidInput) as decoded:
        decode_plan_text(text, "json")
    assert decoded.value.field == "plan"


def test_simple_rules_plans_run_through_the_engine_with_identical_results():
    cps = PercentPlan(Decimal("7.5"))
    cpa = FlatPlan(PlanType.CPA, Money.of("25", "EUR"))
    for simple in (cps, cpa):
        version = from_simple_plan(simple, "EUR")
        for event in ("sale", "lead", "signup"):
            ctx = ConversionContext(event, AT, 1, Money.of("99.99", "EUR"))
            old = commission_for(simple, event, Money.of("99.99", "EUR"))
            new = compute(version, ctx)
            assert new.amount == (old.amount if old else Money.zero("EUR"))


def test_period_start_buckets():
    assert period_start(AT, TierPeriod.MONTH) == datetime(2024, 3, 1, tzinfo=UTC)
    assert period_start(AT, TierPeriod.WEEK) == datetime(2024, 3, 11, tzinfo=UTC)
    assert period_start(AT, TierPeriod.QUARTER) == datetime(2024, 1, 1, tzinfo=UTC)
    assert period_start(AT, TierPeriod.YEAR) == datetime(2024, 1, 1, tzinfo=UTC)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=5),
    st.integers(1, 300),
    st.integers(0, 10**6),
)
def test_tier_boundaries_pick_exactly_the_tier_containing_the_count(widths, count, cents):
    tiers, start = [], 1
    for i, w in enumerate(widths):
        tiers.append({"from": start, "to": start + w - 1, "percent": str(i + 1)})
        start += w
    tiers.append({"from": start, "percent": "50"})
    doc = plan_doc()
    doc["versions"][0]["rules"] = [{"type": "cps", "tiers": tiers}]
    version = parse_plan(doc).versions[0]
    value = Money(Decimal(cents) / 100, "EUR")
    result = compute(version, sale("0", order_value=value, period_count=count))
    expected = next(
        Decimal(t["percent"]) for t in tiers if t["from"] <= count <= t.get("to", 10**9)
    )
    assert result.amount == Money(value.amount * expected / 100, "EUR").rounded()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 400), min_size=1, max_size=6, unique=True),
    st.integers(-10, 2500),
)
def test_plan_versions_by_date_pick_the_one_in_force(day_offsets, probe):
    base = datetime(2024, 1, 1, tzinfo=UTC)
    starts = sorted(base + timedelta(days=d) for d in day_offsets)
    versions = []
    for i, start in enumerate(starts):
        v = {
            "version": i + 1,
            "effective_from": start.isoformat(),
            "rules": [{"type": "cps", "percent": str(i + 1)}],
        }
        if i + 1 < len(starts):
            v["effective_to"] = starts[i + 1].isoformat()
        versions.append(v)
    parsed = parse_plan({"id": "p", "currency": "EUR", "versions": versions[::-1]}).versions
    at = base + timedelta(days=probe, hours=1)
    expected = [i + 1 for i, s in enumerate(starts) if s <= at]
    if not expected:
        with pytest.raises(NotFound):
            plan_version_at(parsed, at)
    else:
        assert plan_version_at(parsed, at).version == expected[-1]
