"""Account-based (ABM) attribution: credit B2B deals to partners at the company level.

In B2B several people of one company are touched by partners before a deal closes; crediting
only the person who signed would miss the partner who brought in their colleague. Leads are
therefore mapped to a company account (an explicit account id, else the e-mail domain — free
mail domains say nothing about the employer and are ignored), and the touches of every lead
of the account are pooled before the attribution model runs.

The domain is used as written (lower-cased, without a trailing dot): without a public-suffix
list `eu.acme.com` and `acme.com` stay different accounts; send an explicit account id to
merge them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from partnerflow.attribution.models import (
    DEFAULT_HALF_LIFE,
    DEFAULT_WINDOW,
    AttributionModel,
    Credit,
    Touch,
    attribute,
    describe_duration,
    shares_by_partner,
)

# Consumer mailbox providers: an address there identifies a person, not a company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "icloud.com",
        "live.com",
        "mac.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "web.de",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yandex.ru",
        "zoho.com",
        "orange.fr",
        "free.fr",
        "t-online.de",
        "libero.it",
        "163.com",
    }
)


@dataclass(frozen=True, slots=True)
class AccountRef:
    """A company account and how it was recognised ('account_id' or 'email_domain')."""

    key: str
    source: str


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    email: str | None = None
    account_id: str | None = None
    touches: tuple[Touch, ...] = ()


@dataclass(frozen=True, slots=True)
class Deal:
    id: str
    closed_at: datetime
    email: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccountCredit:
    deal_id: str
    account: AccountRef | None
    credits: tuple[Credit, ...]
    by_partner: dict[int, Decimal]
    explanation: str


@dataclass(frozen=True, slots=True)
class PartnerInfluence:
    """Accounts a partner touched (through any lead), and those among them that closed."""

    partner_id: int
    accounts: tuple[str, ...]
    won_accounts: tuple[str, ...]


def email_domain(email: str) -> str | None:
    if "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return domain or None


def account_for(email: str | None, account_id: str | None) -> AccountRef | None:
    """The account a person belongs to: an explicit id wins, then a non-free-mail domain."""
    if account_id and account_id.strip():
        return AccountRef(f"id:{account_id.strip()}", "account_id")
    if email:
        domain = email_domain(email)
        if domain and domain not in FREE_MAIL_DOMAINS:
            return AccountRef(f"domain:{domain}", "email_domain")
    return None


def leads_by_account(leads: Iterable[Lead]) -> dict[str, list[Lead]]:
    """Group leads by account key; leads without a recognisable account are left out."""
    out: dict[str, list[Lead]] = {}
    for lead in leads:
        ref = account_for(lead.email, lead.account_id)
        if ref is not None:
            out.setdefault(ref.key, []).append(lead)
    return out


def account_credit(
    deal: Deal,
    leads: Iterable[Lead],
    model: AttributionModel = AttributionModel.LAST_CLICK,
    window: timedelta = DEFAULT_WINDOW,
    half_life: timedelta = DEFAULT_HALF_LIFE,
) -> AccountCredit:
    """Credit for one deal across the partners that touched anyone at the deal's account."""
    ref = account_for(deal.email, deal.account_id)
    if ref is None:
        return AccountCredit(
            deal.id, None, (), {}, "no account: the deal has no account id and no company domain"
        )
    members = leads_by_account(leads).get(ref.key, [])
    pooled = [t for lead in members for t in lead.touches]
    credits = attribute(pooled, deal.closed_at, model, window, half_life)
    if not credits:
        why = (
            f"no partner touch on {len(members)} lead(s) of {ref.key} within the "
            f"{describe_duration(window)} window"
        )
    else:
        why = (
            f"{model.value} over {len(pooled)} touch(es) pooled from {len(members)} lead(s) of "
            f"{ref.key} (matched by {ref.source})"
        )
    return AccountCredit(deal.id, ref, credits, shares_by_partner(credits), why)


def accounts_influenced(
    leads: Iterable[Lead], deals: Iterable[Deal] = ()
) -> tuple[PartnerInfluence, ...]:
    """Report: for each partner, the accounts it touched and which of them closed a deal."""
    touched: dict[int, set[str]] = {}
    for key, members in leads_by_account(leads).items():
        for lead in members:
            for t in lead.touches:
                touched.setdefault(t.partner_id, set()).add(key)
    won = {ref.key for d in deals if (ref := account_for(d.email, d.account_id)) is not None}
    return tuple(
        PartnerInfluence(pid, tuple(sorted(keys)), tuple(sorted(keys & won)))
        for pid, keys in sorted(touched.items())
    )
