from datetime import UTC, datetime, timedelta
from decimal import Decimal

from partnerflow.attribution.accounts import (
    AccountRef,
    Deal,
    Lead,
    PartnerInfluence,
    account_credit,
    account_for,
    accounts_influenced,
    leads_by_account,
)
from partnerflow.attribution.models import AttributionModel, Touch

CLOSE = datetime(2024, 6, 30, tzinfo=UTC)


def t(partner: int, days_before: int) -> Touch:
    return Touch(partner, CLOSE - timedelta(days=days_before))


def test_explicit_account_id_wins_over_the_email_domain():
    assert account_for("ann@acme.com", "A-42") == AccountRef("id:A-42", "account_id")
    assert account_for("Ann@ACME.com.", None) == AccountRef("domain:acme.com", "email_domain")


def test_free_mail_domains_and_malformed_addresses_map_to_no_account():
    assert account_for("bob@gmail.com", None) is None
    assert account_for("bob@outlook.com", "") is None
    assert account_for("not-an-email", None) is None
    assert account_for(None, None) is None


def test_leads_are_grouped_by_account():
    leads = [
        Lead("l1", "ann@acme.com"),
        Lead("l2", "bob@acme.com"),
        Lead("l3", "eve@gmail.com"),
        Lead("l4", "x@globex.io", account_id="G1"),
    ]
    grouped = leads_by_account(leads)
    assert {k: [lead.id for lead in v] for k, v in grouped.items()} == {
        "domain:acme.com": ["l1", "l2"],
        "id:G1": ["l4"],
    }


def test_account_credit_pools_touches_of_all_leads_of_the_account():
    leads = [
        Lead("l1", "ann@acme.com", touches=(t(1, 20),)),
        Lead("l2", "bob@acme.com", touches=(t(2, 10), t(3, 2))),
        Lead("l3", "cto@other.com", touches=(t(9, 1),)),
    ]
    deal = Deal("d1", CLOSE, email="ceo@acme.com")
    result = account_credit(deal, leads, AttributionModel.LINEAR)
    assert result.by_partner == {
        1: Decimal("0.333333"),
        2: Decimal("0.333333"),
        3: Decimal("0.333334"),
    }
    assert "3 touch(es) pooled from 2 lead(s) of domain:acme.com" in result.explanation


def test_deal_without_an_account_gets_no_credit_and_says_why():
    result = account_credit(Deal("d2", CLOSE, email="x@gmail.com"), [])
    assert result.credits == ()
    assert result.account is None
    assert result.explanation.startswith("no account")


def test_accounts_influenced_per_partner_lists_touched_and_won_accounts():
    leads = [
        Lead("l1", "ann@acme.com", touches=(t(1, 20), t(2, 3))),
        Lead("l2", "x@globex.io", touches=(t(1, 5),)),
        Lead("l3", "eve@gmail.com", touches=(t(3, 1),)),
    ]
    report = accounts_influenced(leads, [Deal("d1", CLOSE, email="ceo@acme.com")])
    assert report == (
        PartnerInfluence(1, ("domain:acme.com", "domain:globex.io"), ("domain:acme.com",)),
        PartnerInfluence(2, ("domain:acme.com",), ("domain:acme.com",)),
    )
