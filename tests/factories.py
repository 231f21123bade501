"""Plain factory functions that build a small, valid program through the real use cases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from partnerflow.bootstrap import Services
from partnerflow.caps.services import SetCap, set_caps
from partnerflow.core.ids import ProgramId, new_click_id
from partnerflow.partners.model import Partner
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.programs.model import Offer, Program
from partnerflow.programs.services import CreateOffer, CreateProgram, create_offer, create_program
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.event_writer import CLICK_COLUMNS, EventWriter
from partnerflow.tracking.model import Coupon, TrackingLink
from partnerflow.tracking.services import CreateCoupon, CreateLink, create_coupon, create_link


def make_program(svc: Services, slug: str = "acme", currency: str = "EUR", **kw: Any) -> Program:
    cmd = CreateProgram(
        slug=slug, name=f"{slug} program", brand=slug.title(), currency=currency, **kw
    )
    return create_program(svc.uow(), svc.clock, cmd, actor="test")


def make_offer(
    svc: Services,
    program: Program,
    name: str = "Shop",
    plan: dict[str, str] | None = None,
    landing_url: str = "https://shop.example.com/landing",
    **kw: Any,
) -> Offer:
    cmd = CreateOffer(
        program_id=program.id,
        name=name,
        landing_url=landing_url,
        commission_plan=plan or {"type": "cps", "percent": "10"},
        **kw,
    )
    return create_offer(svc.uow(), svc.clock, cmd, actor="test")


def make_partner(
    svc: Services,
    program: Program,
    email: str = "ann@blog.example",
    status: str = "active",
    **kw: Any,
) -> Partner:
    cmd = CreatePartner(
        program_id=program.id, name=email.split("@")[0].title(), email=email, status=status, **kw
    )
    return create_partner(svc.uow(), svc.clock, cmd, actor="test")


def make_link(
    svc: Services, partner: Partner, offer: Offer, code: str | None = None
) -> TrackingLink:
    return create_link(
        svc.uow(),
        svc.clock,
        CreateLink(partner_id=partner.id, offer_id=offer.id, code=code),
        actor="test",
    )


def make_coupon(svc: Services, partner: Partner, offer: Offer, code: str = "ANN10") -> Coupon:
    return create_coupon(
        svc.uow(),
        svc.clock,
        CreateCoupon(partner_id=partner.id, offer_id=offer.id, code=code),
        actor="test",
    )


@dataclass
class World:
    program: Program
    offer: Offer
    partner: Partner
    link: TrackingLink


def make_world(svc: Services) -> World:
    program = make_program(svc)
    offer = make_offer(svc, program)
    partner = make_partner(svc, program)
    link = make_link(svc, partner, offer, code="ann-shop")
    return World(program, offer, partner, link)


def cap_one_conversion_a_day(svc: Services, world: World) -> None:
    """A hard cap of one conversion a day on the world's offer."""
    set_caps(
        SqlCapsUnitOfWork(svc.engine, svc.clock), svc.cap_counter(), svc.clock,
        [SetCap(program_id=ProgramId(world.program.id), metric="conversions", period="day",
                limit="1", offer_id=world.offer.id)],
        "test",
    )  # fmt: skip


def click_row(
    writer: EventWriter, *, partner_id: int = 1, ip: str = "198.51.100.9", ua: str = "ua",
    sub1: str | None = None,
) -> tuple[object, ...]:  # fmt: skip
    """A click row as the tracker hands it to the writer (`CLICK_COLUMNS`): a new id, stamped
    now, program/offer/link 1; the later, nullable columns empty."""
    row = (
        new_click_id(), writer.stamp(), 1, 1, partner_id, 1, ip, ua, None, sub1, None, None,
        None, None, "PL", "desktop", "Linux", "Chrome", True, False, False, 0, None,
    )  # fmt: skip
    return row + (None,) * (len(CLICK_COLUMNS) - len(row))
