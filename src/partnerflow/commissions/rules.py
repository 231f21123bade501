"""Commission rules (pure): parse plans from data, compute a conversion's commission."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from partnerflow.commissions.model import (
    Commission,
    CommissionPlan,
    FlatPlan,
    PercentPlan,
    PlanType,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.core.money import Money, check_currency, parse_amount

# Which conversion event types each plan type pays for.
PAYABLE_EVENTS: dict[PlanType, frozenset[str]] = {
    PlanType.CPA: frozenset({"sale", "signup", "custom"}),
    PlanType.CPS: frozenset({"sale"}),
    PlanType.CPL: frozenset({"lead", "signup"}),
}


def parse_plan(data: dict[str, Any], program_currency: str) -> CommissionPlan:
    """Plan from its stored/data form, e.g. {"type": "cps", "percent": "10"} or
    {"type": "cpa", "amount": "25.00", "currency": "EUR"} (currency defaults to the program's).
    """
    if not isinstance(data, dict):
        raise InvalidInput("commission plan must be an object", field="commission_plan")
    kind = data.get("type")
    if kind not in {t.value for t in PlanType}:
        raise InvalidInput(
            "commission plan type must be one of cpa, cps, cpl", field="commission_plan.type"
        )
    plan_type = PlanType(kind)
    if plan_type is PlanType.CPS:
        unknown = set(data) - {"type", "percent"}
        if unknown:
            raise InvalidInput(
                f"unknown field(s) for cps: {', '.join(sorted(unknown))}", field="commission_plan"
            )
        percent = parse_amount(data.get("percent", ""), field="commission_plan.percent")
        if percent > 100:
            raise InvalidInput(
                "commission_plan.percent must be between 0 and 100",
                field="commission_plan.percent",
            )
        return PercentPlan(percent=percent)
    unknown = set(data) - {"type", "amount", "currency"}
    if unknown:
        raise InvalidInput(
            f"unknown field(s) for {kind}: {', '.join(sorted(unknown))}", field="commission_plan"
        )
    currency = check_currency(
        str(data.get("currency", program_currency)), field="commission_plan.currency"
    )
    amount = parse_amount(data.get("amount", ""), field="commission_plan.amount")
    return FlatPlan(type=plan_type, amount=Money(amount, currency))


def plan_to_data(plan: CommissionPlan) -> dict[str, str]:
    if isinstance(plan, PercentPlan):
        return {"type": "cps", "percent": str(plan.percent)}
    return {
        "type": plan.type.value,
        "amount": str(plan.amount.amount),
        "currency": plan.amount.currency,
    }


def describe_plan(plan: CommissionPlan) -> str:
    if isinstance(plan, PercentPlan):
        return f"CPS {plan.percent}% of sale"
    return f"{plan.type.value.upper()} {plan.amount.format()} flat"


def flat_commission(amount: Money) -> Commission:
    """CPA / CPL: the plan's fixed amount, whatever the order value."""
    paid = amount.rounded()
    return Commission(paid, f"flat {paid.format()}")


def percent_commission(sale: Money, percent: Decimal) -> Commission:
    """CPS: percent of the sale, rounded half-up to the currency's minor unit."""
    if sale.amount < 0:
        raise InvalidInput("sale amount must not be negative", field="amount")
    exact = sale.amount * percent / Decimal(100)
    paid = Money(exact, sale.currency).rounded()
    return Commission(paid, f"{sale.format()} x {percent}% = {exact} -> {paid.format()}")


def commission_for(plan: CommissionPlan, event_type: str, sale: Money) -> Commission | None:
    """The commission a conversion earns under `plan`, or None when the plan does not pay
    for this event type (e.g. a CPL plan and a sale)."""
    if event_type not in PAYABLE_EVENTS[plan.type]:
        return None
    if isinstance(plan, PercentPlan):
        return percent_commission(sale, plan.percent)
    return flat_commission(plan.amount)
