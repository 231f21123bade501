from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput, InvalidTransition
from partnerflow.partners.model import PartnerStatus
from partnerflow.partners.rules import TRANSITIONS, check_email, check_social, check_transition

S = PartnerStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.APPLIED, S.APPROVED),
        (S.APPLIED, S.REJECTED),
        (S.APPROVED, S.ACTIVE),
        (S.ACTIVE, S.SUSPENDED),
        (S.SUSPENDED, S.ACTIVE),
        (S.ACTIVE, S.BANNED),
    ],
)
def test_lifecycle_allows(current: PartnerStatus, target: PartnerStatus) -> None:
    assert check_transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.APPLIED, S.ACTIVE), (S.BANNED, S.ACTIVE), (S.REJECTED, S.ACTIVE), (S.ACTIVE, S.APPLIED)],
)
def test_lifecycle_refuses(current: PartnerStatus, target: PartnerStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(current, target)


@given(st.sampled_from(list(S)))
def test_banned_is_terminal_and_reachable_from_everywhere_else(status: PartnerStatus) -> None:
    assert TRANSITIONS[S.BANNED] == frozenset()
    if status is not S.BANNED:
        assert S.BANNED in TRANSITIONS[status]


def test_email_is_normalised_and_validated() -> None:
    assert check_email(" Ann@Blog.Example ") == "ann@blog.example"
    for bad in ["", "ann", "ann@", "@x.com", "a b@x.com", "ann@x"]:
        with pytest.raises(InvalidInput):
            check_email(bad)


@pytest.mark.parametrize(
    ("value", "point"),
    [("ann\u202e@blog.example", "U+202E"), ("a\u200bnn@blog.example", "U+200B"),
     ("ann@blog.example\ufeff", "U+FEFF")],
)  # fmt: skip
def test_emails_shown_in_partner_lists_refuse_bidi_and_invisible_characters(
    value: str, point: str
) -> None:
    with pytest.raises(InvalidInput, match=rf"email must not contain {re.escape(point)} \("):
        check_email(value)
    # Addresses in other scripts (RFC 6531) are still e-mail addresses.
    assert check_email("zoë@exämple.de") == "zoë@exämple.de"


def test_social_handles() -> None:
    assert check_social({"tiktok": " @ann "}) == {"tiktok": "@ann"}
    with pytest.raises(InvalidInput):
        check_social({"myspace": "ann"})
    with pytest.raises(InvalidInput):
        check_social({"tiktok": ""})
