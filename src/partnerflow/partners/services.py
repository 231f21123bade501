"""Partner use cases: apply / create, move through the lifecycle.

Each change publishes its event (`partner.applied`, `partner.approved`,
`partner.status_changed`) in the same unit of work, so it is announced iff it committed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from partnerflow.core.clock import Clock
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.events import PARTNER_APPLIED, PARTNER_APPROVED, PARTNER_STATUS_CHANGED
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.core.text import display_text
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.rules import check_email, check_social, check_transition
from partnerflow.programs.rules import check_http_url


def partner_payload(partner: Partner) -> dict[str, Any]:
    """The `partner` object of partner events (see docs/webhooks.md)."""
    return {
        "id": partner.id,
        "program_id": partner.program_id,
        "name": partner.name,
        "email": partner.email,
        "status": partner.status.value,
        "website": partner.website,
        "country": partner.country,
        "created_at": partner.created_at.isoformat(),
    }


def _publish_change(
    uow: PartnersUnitOfWork,
    event_type: str,
    partner: Partner,
    previous: PartnerStatus | None,
    reason: str,
    actor: str,
) -> None:
    uow.events.publish(
        event_type,
        {
            "partner": partner_payload(partner),
            "previous_status": previous.value if previous else None,
            "reason": reason,
            "actor": actor,
        },
        program_id=partner.program_id,
        partner_id=partner.id,
    )


@dataclass(frozen=True)
class CreatePartner:
    program_id: ProgramId
    name: str
    email: str
    status: str = PartnerStatus.APPLIED.value
    website: str | None = None
    country: str | None = None
    social: dict[str, str] = field(default_factory=dict)


def create_partner(
    uow: PartnersUnitOfWork, clock: Clock, cmd: CreatePartner, actor: str
) -> Partner:
    name = display_text(cmd.name, field="name")
    try:
        status = PartnerStatus(cmd.status)
    except ValueError:
        allowed = ", ".join(s.value for s in PartnerStatus)
        raise InvalidInput(f"status must be one of {allowed}", field="status") from None
    country = cmd.country.strip().upper() if cmd.country else None
    if country is not None and (
        len(country) != 2 or not country.isalpha() or not country.isascii()
    ):
        raise InvalidInput("country must be an ISO 3166 alpha-2 code", field="country")
    partner = Partner(
        id=PartnerId(0),
        program_id=cmd.program_id,
        name=name,
        email=check_email(cmd.email),
        status=status,
        created_at=clock.now(),
        website=check_http_url(cmd.website, field="website") if cmd.website else None,
        country=country,
        social=check_social(cmd.social),
    )
    with uow:
        if uow.programs.get(cmd.program_id) is None:
            raise NotFound(f"program {cmd.program_id} not found", field="program_id")
        if uow.partners.by_email(cmd.program_id, partner.email) is not None:
            raise Conflict(f"{partner.email} is already a partner of this program", field="email")
        stored = uow.partners.add(partner)
        uow.audit.record(
            actor=actor,
            action="partner.created",
            entity_type="partner",
            entity_id=str(stored.id),
            detail={"status": stored.status.value, "email": stored.email},
        )
        # Only an application is an event: a partner a manager adds (or imports) in another
        # status was never applied for nor approved, so nothing is announced.
        if stored.status is PartnerStatus.APPLIED:
            _publish_change(uow, PARTNER_APPLIED, stored, None, "", actor)
    return stored


def _optional_text(value: str, field: str) -> str:
    """A reason or note: empty, or display text of at most 2,000 characters."""
    if not value.strip():
        return ""
    return display_text(value, field=field, max_length=2000, multiline=True)


def change_status(
    uow: PartnersUnitOfWork, partner_id: PartnerId, target: str, actor: str, reason: str = ""
) -> Partner:
    try:
        new_status = PartnerStatus(target)
    except ValueError:
        raise InvalidInput(f"unknown partner status {target[:32]!r}", field="status") from None
    reason = _optional_text(reason, "reason")
    with uow:
        partner = uow.partners.get(partner_id)
        if partner is None:
            raise NotFound(f"partner {partner_id} not found", field="partner")
        check_transition(partner.status, new_status)
        uow.partners.set_status(partner_id, new_status)
        uow.audit.record(
            actor=actor,
            action="partner.status_changed",
            entity_type="partner",
            entity_id=str(partner_id),
            detail={"from": partner.status.value, "to": new_status.value, "reason": reason},
        )
        changed = replace(partner, status=new_status)
        _publish_change(uow, PARTNER_STATUS_CHANGED, changed, partner.status, reason, actor)
        # Approved = accepted into the program; active after approved, or back from a
        # suspension, is not a new acceptance.
        if new_status is PartnerStatus.APPROVED:
            _publish_change(uow, PARTNER_APPROVED, changed, partner.status, reason, actor)
    return changed


def get_partner(uow: PartnersUnitOfWork, partner_id: PartnerId) -> Partner:
    with uow:
        partner = uow.partners.get(partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner")
    return partner
