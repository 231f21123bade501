"""Admin use cases on real storage (SQLite and PostgreSQL): happy paths and refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.factories import make_offer, make_partner, make_program, make_world

from partnerflow.bootstrap import Services
from partnerflow.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from partnerflow.core.ids import OfferId, PartnerId, ProgramId
from partnerflow.partners.model import PartnerStatus
from partnerflow.partners.services import CreatePartner, change_status, create_partner
from partnerflow.programs.services import (
    CreateOffer,
    CreateProgram,
    create_offer,
    create_program,
    get_program,
)
from partnerflow.storage import tables as t
from partnerflow.tracking.services import CreateCoupon, CreateLink, create_coupon, create_link


def _count(svc: Services, table: t.Table) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_create_program_and_read_it_back_by_slug_and_id(services: Services) -> None:
    program = make_program(services, slug="acme", currency="pln", timezone="Europe/Warsaw")
    assert program.currency == "PLN"
    assert get_program(services.uow(), "acme") == program
    assert get_program(services.uow(), str(program.id)) == program
    assert program.created_at.tzinfo is not None
    assert len(program.postback_token) >= 32


def test_duplicate_program_slug_is_a_conflict_and_writes_nothing(services: Services) -> None:
    make_program(services, slug="acme")
    audit_before = _count(services, t.audit_log)
    with pytest.raises(Conflict):
        make_program(services, slug="acme")
    assert _count(services, t.programs) == 1
    assert _count(services, t.audit_log) == audit_before


@pytest.mark.parametrize(
    "changes",
    [
        {"currency": "XYZ"},
        {"timezone": "Nowhere/City"},
        {"attribution_model": "random"},
        {"cookie_window_days": -1},
        {"slug": "Bad Slug"},
        {"fallback_url": "javascript:x"},
    ],
)
def test_invalid_program_is_refused(services: Services, changes: dict[str, object]) -> None:
    fields: dict[str, object] = {"slug": "acme", "name": "Acme", "brand": "Acme"} | changes
    with pytest.raises(InvalidInput):
        create_program(services.uow(), services.clock, CreateProgram(**fields), actor="t")  # type: ignore[arg-type]
    assert _count(services, t.programs) == 0


def test_offer_always_allows_its_own_landing_domain(services: Services) -> None:
    program = make_program(services)
    offer = make_offer(services, program, allowed_domains=("*.brand.example",))
    assert offer.allowed_domains == ("shop.example.com", "*.brand.example")
    assert offer.commission_plan == {"type": "cps", "percent": "10"}


def test_offer_refusals_write_nothing(services: Services) -> None:
    program = make_program(services)
    bad = [
        CreateOffer(
            program_id=program.id,
            name="x",
            landing_url="ftp://x",
            commission_plan={"type": "cpa", "amount": "1"},
        ),
        CreateOffer(
            program_id=program.id,
            name="x",
            landing_url="https://x.test",
            commission_plan={"type": "cps", "percent": "300"},
        ),
        CreateOffer(
            program_id=ProgramId(999),
            name="x",
            landing_url="https://x.test",
            commission_plan={"type": "cpa", "amount": "1"},
        ),
        CreateOffer(
            program_id=program.id,
            name="x",
            landing_url="https://x.test",
            commission_plan={"type": "cpa", "amount": "1"},
            allowed_domains=("not a domain",),
        ),
    ]
    for cmd in bad:
        with pytest.raises((InvalidInput, NotFound)):
            create_offer(services.uow(), services.clock, cmd, actor="t")
    assert _count(services, t.offers) == 0


def test_partner_lifecycle_is_enforced_and_audited(services: Services) -> None:
    program = make_program(services)
    partner = make_partner(services, program, status="applied")
    approved = change_status(
        services.uow(), partner.id, "approved", actor="mgr", reason="good site"
    )
    assert approved.status is PartnerStatus.APPROVED
    with pytest.raises(InvalidTransition):
        change_status(services.uow(), partner.id, "applied", actor="mgr")
    with services.uow() as uow:
        stored = uow.partners.get(partner.id)
        log = uow.audit.recent()
    assert stored is not None and stored.status is PartnerStatus.APPROVED
    assert log[0]["action"] == "partner.status_changed"
    assert log[0]["detail"] == {"from": "applied", "to": "approved", "reason": "good site"}


def test_duplicate_partner_email_in_a_program_is_refused(services: Services) -> None:
    program = make_program(services)
    make_partner(services, program, email="ann@blog.example")
    with pytest.raises(Conflict):
        create_partner(
            services.uow(),
            services.clock,
            CreatePartner(program_id=program.id, name="Ann 2", email="ANN@blog.example"),
            actor="t",
        )
    assert _count(services, t.partners) == 1


def test_links_and_coupons(services: Services) -> None:
    world = make_world(services)
    assert world.link.code == "ann-shop"
    coupon = create_coupon(
        services.uow(),
        services.clock,
        CreateCoupon(partner_id=world.partner.id, offer_id=world.offer.id, code="ann-tiktok"),
        actor="t",
    )
    assert coupon.code == "ANN-TIKTOK"
    with pytest.raises(Conflict):
        create_link(
            services.uow(),
            services.clock,
            CreateLink(world.partner.id, world.offer.id, code="ann-shop"),
            actor="t",
        )
    with pytest.raises(Conflict):
        create_coupon(
            services.uow(),
            services.clock,
            CreateCoupon(world.partner.id, world.offer.id, code="ANN-tiktok"),
            actor="t",
        )
    with pytest.raises(NotFound):
        create_link(
            services.uow(), services.clock, CreateLink(PartnerId(999), world.offer.id), actor="t"
        )
    with pytest.raises(InvalidInput):
        create_link(
            services.uow(),
            services.clock,
            CreateLink(world.partner.id, OfferId(world.offer.id), sub_ids={"sub9": "x"}),
            actor="t",
        )
    assert _count(services, t.tracking_links) == 1
    assert _count(services, t.coupon_codes) == 1


@pytest.mark.parametrize(
    ("sub_ids", "reason"),
    [
        ({"sub1": "promo\u202eevil"}, "sub1 must not contain U+202E "),
        ({"sub2": "\u2067x\u2069"}, "sub2 must not contain U+2067 "),
        ({"sub3": "a\x85b"}, "sub3 must not contain U+0085 (a control character)"),
        ({"sub1": "x" * 256}, "sub1 must be at most 255 characters"),
    ],
)
def test_link_sub_ids_with_bidi_or_control_characters_are_refused(
    services: Services, sub_ids: dict[str, str], reason: str
) -> None:
    world = make_world(services)
    with pytest.raises(InvalidInput) as refused:
        create_link(
            services.uow(), services.clock,
            CreateLink(world.partner.id, world.offer.id, sub_ids=sub_ids), actor="t",
        )  # fmt: skip
    assert refused.value.message.startswith(reason)
    assert refused.value.field == next(iter(sub_ids))
    assert _count(services, t.tracking_links) == 1  # the world's own


def test_link_across_programs_is_refused(services: Services) -> None:
    world = make_world(services)
    other = make_program(services, slug="other")
    other_offer = make_offer(services, other)
    with pytest.raises(InvalidInput):
        create_link(
            services.uow(), services.clock, CreateLink(world.partner.id, other_offer.id), actor="t"
        )
