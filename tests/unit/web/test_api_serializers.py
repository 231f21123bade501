"""Numbers the REST API writes: money rounds half-up, like everywhere else."""

from __future__ import annotations

from decimal import Decimal

from partnerflow.caps.goals import GoalMetric
from partnerflow.web.api.serializers import goal_number


def test_money_goal_figures_round_half_up_and_counts_are_exact() -> None:
    money = next(m for m in GoalMetric if m.is_money)
    count = next(m for m in GoalMetric if not m.is_money)
    assert goal_number(money, Decimal("0.125")) == "0.13"  # banker's rounding gave 0.12
    assert goal_number(money, Decimal("2.5")) == "2.50"
    assert goal_number(count, Decimal("12.50")) == "12.5"
    assert goal_number(money, None) is None
