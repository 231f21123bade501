"""Per-program fraud policy: thresholds -> actions, and its JSON form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.fraud.policy import (
    DEFAULT_FRAUD_POLICY,
    Action,
    conversion_action,
    partner_action,
    policy_from_data,
    policy_to_data,
)


def test_default_conversion_actions_by_score() -> None:
    assert [conversion_action(s) for s in (0, 29, 30, 49, 50, 89, 90, 100)] == [
        None, None, Action.FLAG, Action.FLAG, Action.HOLD, Action.HOLD, Action.REJECT,
        Action.REJECT,
    ]  # fmt: skip


def test_default_partner_actions_by_quality() -> None:
    assert [partner_action(q) for q in (100, 71, 70, 31, 30, 0)] == [
        None, None, Action.FLAG, Action.FLAG, Action.SUSPEND, Action.SUSPEND,
    ]  # fmt: skip


def test_switching_an_action_off_and_tuning_scoring() -> None:
    policy = policy_from_data(
        {
            "actions": {"conversion_reject_at": None, "partner_suspend_below": None},
            "conversion": {"suspicious_ctit_seconds": 30, "paid_search_allowed": True},
            "target_countries": ["de", "AT"],
        }
    )
    assert conversion_action(100, policy) is Action.HOLD
    assert partner_action(0, policy) is Action.FLAG
    assert policy.conversion.suspicious_ctit_seconds == 30.0
    assert policy.conversion.paid_search_allowed is True
    assert policy.target_countries == ("DE", "AT")
    assert policy_to_data(policy) == {
        "actions": {"conversion_reject_at": None, "partner_suspend_below": None},
        "conversion": {"suspicious_ctit_seconds": 30.0, "paid_search_allowed": True},
        "target_countries": ["DE", "AT"],
    }
    assert policy_from_data(policy_to_data(policy)) == policy
    assert policy_to_data(DEFAULT_FRAUD_POLICY) == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": {}}, "unknown fraud policy section"),
        ({"actions": {"flag_at": 3}}, "unknown actions setting"),
        ({"actions": {"conversion_hold_at": -1}}, "whole number >= 0"),
        ({"actions": {"conversion_hold_at": "50"}}, "whole number >= 0"),
        ({"conversion": {"paid_search_allowed": "yes"}}, "true or false"),
        ({"conversion": {"injection_ctit_seconds": None}}, "must not be empty"),
        ({"actions": {"conversion_flag_at": 60}}, "thresholds must rise"),
        ({"actions": {"partner_suspend_below": 80}}, "must not exceed"),
        ({"target_countries": ["Germany"]}, "ISO alpha-2"),
        ({"actions": []}, "must be an object"),
    ],
)
def test_bad_policies_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        policy_from_data(data)


@given(
    flag=st.none() | st.integers(0, 100),
    hold=st.none() | st.integers(0, 100),
    reject=st.none() | st.integers(0, 100),
    score=st.integers(0, 100),
)
def test_actions_never_weaken_as_the_score_rises(
    flag: int | None, hold: int | None, reject: int | None, score: int
) -> None:
    given_order = [t for t in (flag, hold, reject) if t is not None]
    data = {
        "actions": {
            "conversion_flag_at": flag,
            "conversion_hold_at": hold,
            "conversion_reject_at": reject,
        }
    }
    if given_order != sorted(given_order):
        with pytest.raises(InvalidInput):
            policy_from_data(data)
        return
    policy = policy_from_data(data)
    strength = {None: 0, Action.FLAG: 1, Action.HOLD: 2, Action.REJECT: 3}
    assert (
        strength[conversion_action(score, policy)]
        <= strength[conversion_action(min(score + 1, 100), policy)]
    )
