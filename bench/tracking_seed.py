"""Seed a benchmark database (program, offer, active partner, link) through the real use
cases; prints {"token": ..., "code": ...}. Reads PARTNERFLOW_DATABASE_URL like the server."""

from __future__ import annotations

import json

from partnerflow.bootstrap import build
from partnerflow.config import load_settings
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.programs.services import CreateOffer, CreateProgram, create_offer, create_program
from partnerflow.tracking.services import CreateLink, create_link


def main() -> None:
    svc = build(load_settings())
    svc.migrate()
    program = create_program(
        svc.uow(), svc.clock,
        CreateProgram(slug="bench", name="Bench", brand="Bench", currency="EUR"), actor="bench",
    )  # fmt: skip
    offer = create_offer(
        svc.uow(), svc.clock,
        CreateOffer(program_id=program.id, name="Shop",
                    landing_url="https://shop.example.com/landing",
                    commission_plan={"type": "cps", "percent": "10"}),
        actor="bench",
    )  # fmt: skip
    partner = create_partner(
        svc.uow(), svc.clock,
        CreatePartner(program_id=program.id, name="Ann", email="ann@example.com",
                      status="active"),
        actor="bench",
    )  # fmt: skip
    link = create_link(
        svc.uow(), svc.clock,
        CreateLink(partner_id=partner.id, offer_id=offer.id, code="bench-link"), actor="bench",
    )  # fmt: skip
    print(json.dumps({"token": program.postback_token, "code": link.code}))


if __name__ == "__main__":
    main()
