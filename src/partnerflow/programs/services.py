"""Program and offer use cases."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from partnerflow.commissions.rules import parse_plan, plan_to_data
from partnerflow.core.clock import Clock
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.ids import OfferId, ProgramId
from partnerflow.core.money import check_currency
from partnerflow.core.text import display_text
from partnerflow.programs.model import AttributionModel, Offer, OfferStatus, Program
from partnerflow.programs.ports import ProgramsUnitOfWork
from partnerflow.programs.rules import (
    check_domain,
    check_http_url,
    check_range,
    check_slug,
    check_timezone,
    landing_domain,
)


@dataclass(frozen=True)
class CreateProgram:
    slug: str
    name: str
    brand: str
    currency: str = "USD"
    timezone: str = "UTC"
    cookie_window_days: int = 30
    attribution_model: str = AttributionModel.LAST_CLICK.value
    lock_period_days: int = 30
    fallback_url: str | None = None


@dataclass(frozen=True)
class CreateOffer:
    program_id: ProgramId
    name: str
    landing_url: str
    commission_plan: dict[str, Any]
    allowed_domains: tuple[str, ...] = field(default_factory=tuple)
    fallback_url: str | None = None


def _text(value: str, field: str, limit: int = 200) -> str:
    return display_text(value, field=field, max_length=limit)


def create_program(
    uow: ProgramsUnitOfWork, clock: Clock, cmd: CreateProgram, actor: str
) -> Program:
    try:
        model = AttributionModel(cmd.attribution_model)
    except ValueError:
        allowed = ", ".join(m.value for m in AttributionModel)
        raise InvalidInput(
            f"attribution_model must be one of {allowed}", field="attribution_model"
        ) from None
    program = Program(
        id=ProgramId(0),
        slug=check_slug(cmd.slug),
        name=_text(cmd.name, "name"),
        brand=_text(cmd.brand, "brand"),
        currency=check_currency(cmd.currency),
        timezone=check_timezone(cmd.timezone),
        cookie_window_days=check_range(
            cmd.cookie_window_days, field="cookie_window_days", low=0, high=3650
        ),
        attribution_model=model,
        lock_period_days=check_range(
            cmd.lock_period_days, field="lock_period_days", low=0, high=365
        ),
        postback_token=secrets.token_urlsafe(24),
        fallback_url=check_http_url(cmd.fallback_url, field="fallback_url")
        if cmd.fallback_url
        else None,
        created_at=clock.now(),
    )
    with uow:
        if uow.programs.by_slug(program.slug) is not None:
            raise Conflict(f"a program with slug {program.slug!r} exists", field="slug")
        stored = uow.programs.add(program)
        uow.audit.record(
            actor=actor,
            action="program.created",
            entity_type="program",
            entity_id=str(stored.id),
            detail={"slug": stored.slug, "currency": stored.currency},
        )
    return stored


def create_offer(uow: ProgramsUnitOfWork, clock: Clock, cmd: CreateOffer, actor: str) -> Offer:
    landing = check_http_url(cmd.landing_url, field="landing_url")
    domains = tuple(dict.fromkeys(check_domain(d) for d in cmd.allowed_domains))
    with uow:
        program = uow.programs.get(cmd.program_id)
        if program is None:
            raise NotFound(f"program {cmd.program_id} not found", field="program_id")
        plan = parse_plan(cmd.commission_plan, program.currency)
        if landing_domain(landing) not in domains:
            # The landing page's own domain is always a valid deep-link target.
            domains = (landing_domain(landing), *domains)
        offer = Offer(
            id=OfferId(0),
            program_id=program.id,
            name=_text(cmd.name, "name"),
            landing_url=landing,
            commission_plan=plan_to_data(plan),
            status=OfferStatus.ACTIVE,
            created_at=clock.now(),
            allowed_domains=domains,
            fallback_url=check_http_url(cmd.fallback_url, field="fallback_url")
            if cmd.fallback_url
            else None,
        )
        if any(o.name == offer.name for o in uow.offers.list(program.id)):
            raise Conflict(f"offer {offer.name!r} exists in this program", field="name")
        stored = uow.offers.add(offer)
        uow.audit.record(
            actor=actor,
            action="offer.created",
            entity_type="offer",
            entity_id=str(stored.id),
            detail={"program_id": program.id, "plan": stored.commission_plan},
        )
    return stored


def get_program(uow: ProgramsUnitOfWork, ref: str) -> Program:
    """A program by numeric id or slug."""
    with uow:
        program = (
            uow.programs.get(ProgramId(int(ref))) if ref.isdigit() else uow.programs.by_slug(ref)
        )
    if program is None:
        raise NotFound(f"program {ref[:64]!r} not found", field="program")
    return program


def get_offer(uow: ProgramsUnitOfWork, offer_id: OfferId) -> Offer:
    with uow:
        offer = uow.offers.get(offer_id)
    if offer is None:
        raise NotFound(f"offer {offer_id} not found", field="offer")
    return offer


# Program settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateProgram:
    """The settings a manager may change after creation. Currency, time zone and slug stay:
    changing them would re-date or re-price recorded history."""

    program_id: ProgramId
    cookie_window_days: int
    lock_period_days: int
    attribution_model: str
    fallback_url: str | None = None


class ProgramSettingsStore(Protocol):
    def save_settings(self, program: Program) -> None: ...


class ProgramSettingsUnitOfWork(ProgramsUnitOfWork, Protocol):
    @property
    def program_settings(self) -> ProgramSettingsStore: ...


def update_program(uow: ProgramSettingsUnitOfWork, cmd: UpdateProgram, actor: str) -> Program:
    """Validate with the same rules as `create_program`, save, and audit the old and new
    values of every field that changed (nothing is written when nothing changed)."""
    try:
        model = AttributionModel(cmd.attribution_model)
    except ValueError:
        allowed = ", ".join(m.value for m in AttributionModel)
        raise InvalidInput(
            f"attribution_model must be one of {allowed}", field="attribution_model"
        ) from None
    cookie = check_range(cmd.cookie_window_days, field="cookie_window_days", low=0, high=3650)
    lock = check_range(cmd.lock_period_days, field="lock_period_days", low=0, high=365)
    fallback = check_http_url(cmd.fallback_url, field="fallback_url") if cmd.fallback_url else None
    with uow:
        program = uow.programs.get(cmd.program_id)
        if program is None:
            raise NotFound(f"program {cmd.program_id} not found", field="program")
        updated = replace(
            program,
            cookie_window_days=cookie,
            lock_period_days=lock,
            attribution_model=model,
            fallback_url=fallback,
        )
        changes = {
            name: {"from": str(getattr(program, name)), "to": str(getattr(updated, name))}
            for name in (
                "cookie_window_days",
                "lock_period_days",
                "attribution_model",
                "fallback_url",
            )
            if getattr(program, name) != getattr(updated, name)
        }
        if changes:
            uow.program_settings.save_settings(updated)
            uow.audit.record(
                actor=actor,
                action="program.settings_changed",
                entity_type="program",
                entity_id=str(program.id),
                detail=changes,
            )
    return updated
