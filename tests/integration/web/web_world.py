"""A small program with two partners, their links, coupons, clicks and conversions, plus
logins for every role — built through the real use cases (shared by web and e2e tests)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert
from tests.factories import make_coupon, make_link, make_offer, make_partner, make_program

from partnerflow.bootstrap import Services
from partnerflow.core.ids import new_click_id
from partnerflow.partners.model import Partner
from partnerflow.programs.model import Offer, Program
from partnerflow.storage import tables as t
from partnerflow.storage.sessions import SqlAuthStore
from partnerflow.tracking.model import Coupon, TrackingLink
from partnerflow.tracking.services import RecordConversion, record_conversion
from partnerflow.web.auth.passwords import hash_password

PASSWORD = "correct horse battery"
ADMIN = "admin@web.test"
MANAGER = "manager@web.test"
ANN = "ann@blog.example"
BOB = "bob@video.example"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@functools.cache
def password_hash() -> str:
    # argon2 is slow on purpose: hash the shared test password once per test session.
    return hash_password(PASSWORD)


@dataclass
class WebWorld:
    program: Program
    offer: Offer
    ann: Partner
    bob: Partner
    ann_link: TrackingLink
    bob_link: TrackingLink
    ann_coupon: Coupon
    bob_coupon: Coupon


def add_user(services: Services, email: str, role: str, partner_id: int | None = None) -> int:
    with services.engine.begin() as conn:
        user = SqlAuthStore(conn).add_user(
            email=email,
            password_hash=password_hash(),
            role=role,
            partner_id=partner_id,
            now=services.clock.now(),
        )
    return int(user.id)


def add_clicks(
    services: Services, link: TrackingLink, count: int, *, days_ago: int = 1, bots: bool = False
) -> list[str]:
    when = services.clock.now() - timedelta(days=days_ago)
    ids = [new_click_id(int(when.timestamp() * 1000) + i) for i in range(count)]
    rows = [
        {
            "id": cid,
            "created_at": when + timedelta(seconds=i),
            "program_id": link.program_id,
            "offer_id": link.offer_id,
            "partner_id": link.partner_id,
            "link_id": link.id,
            "is_unique": i % 2 == 0,
            "is_bot": bots,
            "is_qr": False,
            "fraud_score": 0,
        }
        for i, cid in enumerate(ids)
    ]
    with services.engine.begin() as conn:
        conn.execute(insert(t.clicks), rows)
    return ids


def convert(services: Services, program: Program, order_id: str, amount: str, **kw: str) -> None:
    record_conversion(
        services.uow(),
        services.clock,
        RecordConversion(token=program.postback_token, order_id=order_id, amount=amount, **kw),
    )


def make_web_world(services: Services) -> WebWorld:
    program = make_program(services)
    offer = make_offer(services, program, allowed_domains=("*.example.com",))
    ann = make_partner(services, program, ANN)
    bob = make_partner(services, program, BOB)
    ann_link = make_link(services, ann, offer, code="ann-shop")
    bob_link = make_link(services, bob, offer, code="bob-shop")
    ann_coupon = make_coupon(services, ann, offer, "ANN10")
    bob_coupon = make_coupon(services, bob, offer, "BOB10")
    ann_clicks = add_clicks(services, ann_link, 10)
    add_clicks(services, bob_link, 4)
    convert(services, program, "A-1", "100.00", click_id=ann_clicks[0])
    convert(services, program, "A-2", "50.00", click_id=ann_clicks[1])
    convert(services, program, "A-3", "80.00", coupon="ANN10")
    convert(services, program, "B-1", "999.00", coupon="BOB10")
    add_user(services, ADMIN, "admin")
    add_user(services, MANAGER, "manager")
    add_user(services, ANN, "partner", ann.id)
    add_user(services, BOB, "partner", bob.id)
    return WebWorld(program, offer, ann, bob, ann_link, bob_link, ann_coupon, bob_coupon)


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)
