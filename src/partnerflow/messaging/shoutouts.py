"""Monthly top-performers shout-out and automatic notices (pure text composition)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Notice:
    """An automatic notice: a plain-text subject, a body template and the data it uses
    (values are passed as data, never pasted into the template, so they render literally)."""

    subject: str
    body: str
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PerformerTotals:
    partner_id: int
    name: str
    conversions: int
    revenue: Decimal
    commission: Decimal


def rank(totals: list[PerformerTotals], top: int = 3) -> list[PerformerTotals]:
    """Highest revenue first; ties by commission, then conversions, then partner id (so the
    order is stable). Partners with no conversion are not shouted out."""
    eligible = [t for t in totals if t.conversions > 0]
    eligible.sort(key=lambda t: (-t.revenue, -t.commission, -t.conversions, t.partner_id))
    return eligible[:top]


def month_label(month: date) -> str:
    return month.strftime("%B %Y")


def shoutout(
    program_name: str, month: date, top: list[PerformerTotals], currency: str
) -> tuple[str, str]:
    """(subject, body template). The body is a Jinja template rendered per recipient; the
    names are passed as data, so a partner named '{{ ... }}' renders literally."""
    subject = f"Top partners of {month_label(month)} at {program_name}"
    lines = [
        "Hello {{ partner.name }},",
        "",
        f"Thank you for a great {month_label(month)}! Our top partners this month:",
        "",
        "{% for p in top %}{{ loop.index }}. {{ p.name }} — {{ p.conversions }} conversions, "
        "{{ p.revenue }} " + currency + " in sales\n{% endfor %}",
        "Keep it up — see your own numbers in the partner portal.",
    ]
    if not top:
        lines[2:5] = ["No conversions were recorded this month — a fresh start next month!"]
    return subject, "\n".join(lines)


def commission_change_notice(offer_name: str, old: str, new: str) -> Notice:
    return Notice(
        f"Commission change for {offer_name}"[:200],
        "Hello {{ partner.name }},\n\nThe commission for {{ offer_name }} changes from "
        "{{ old }} to {{ new }}. Conversions recorded before the change keep the commission "
        "they earned.",
        {"offer_name": offer_name, "old": old, "new": new},
    )


def terms_change_notice(version: str, summary: str) -> Notice:
    return Notice(
        f"Updated program terms (version {version})"[:200],
        "Hello {{ partner.name }},\n\nWe have updated the program terms to version "
        "{{ version }}.\n\n{{ summary }}\n\nPlease review and accept them in the partner "
        "portal.",
        {"version": version, "summary": summary},
    )


def cap_change_notice(offer_name: str, description: str) -> Notice:
    return Notice(
        f"Cap change for {offer_name}"[:200],
        "Hello {{ partner.name }},\n\nThe caps for {{ offer_name }} changed: {{ description }}",
        {"offer_name": offer_name, "description": description},
    )


def queued_notice(subject: str, text: str) -> Notice:
    """A notice whose text was composed earlier (a queued cap or plan notice): the text is
    template *data*, so whatever it contains renders literally."""
    return Notice(subject[:200], "Hello {{ partner.name }},\n\n{{ text }}", {"text": text})


def plan_change_text(scope_name: str, revision: int, plan_id: str) -> tuple[str, str]:
    """(subject, text) announcing a new commission plan revision."""
    return (
        f"Commission change for {scope_name}"[:200],
        f"The commission plan for {scope_name} changed (plan {plan_id}, revision {revision}). "
        "Conversions recorded before the change keep the commission they earned; the new "
        "rates are shown in the partner portal.",
    )


def terms_change_text(version: str, summary: str) -> tuple[str, str]:
    """(subject, text) announcing new program terms."""
    return (
        f"Updated program terms (version {version})"[:200],
        f"We have updated the program terms to version {version}.\n\n{summary}\n\n"
        "Please review and accept them in the partner portal.",
    )
