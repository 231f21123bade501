"""A partner never sees another partner's data: every portal page and action is tried with
the other partner's ids, and user-typed text is escaped everywhere it appears."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.factories import make_offer, make_partner, make_program
from tests.integration.web.conftest import Login
from tests.integration.web.web_world import ADMIN, ANN, BOB, WebWorld, add_user, csrf_of

from partnerflow.bootstrap import Services
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.storage import tables as t

pytestmark = pytest.mark.anyio

BOB_MARKERS = ("bob-shop", "BOB10", "999.00", "Bob", BOB)


async def test_other_partners_link_is_404(login: Login, world: WebWorld) -> None:
    ann = await login(ANN)
    response = await ann.get(f"/portal/links/{world.bob_link.id}")
    assert response.status_code == 404
    assert not any(m in response.text for m in BOB_MARKERS)
    assert (await ann.get(f"/portal/links/{world.ann_link.id}")).status_code == 200


async def test_other_partners_coupon_is_404(login: Login, world: WebWorld) -> None:
    ann = await login(ANN)
    response = await ann.get(f"/portal/coupons/{world.bob_coupon.id}")
    assert response.status_code == 404
    assert not any(m in response.text for m in BOB_MARKERS)


async def test_missing_ids_look_the_same_as_other_partners_ids(
    login: Login, world: WebWorld
) -> None:
    ann = await login(ANN)
    missing = await ann.get("/portal/links/987654")
    foreign = await ann.get(f"/portal/links/{world.bob_link.id}")
    assert (missing.status_code, missing.text) == (foreign.status_code, foreign.text)


@pytest.mark.parametrize(
    "path",
    [
        "/portal",
        "/portal/links",
        "/portal/coupons",
        "/portal/conversions",
        "/portal/conversions?partner_id={bob}",
        "/portal?partner={bob}",
        "/portal/links?partner_id={bob}",
    ],
)
async def test_portal_lists_show_nothing_of_the_other_partner(
    login: Login, world: WebWorld, path: str
) -> None:
    ann = await login(ANN)
    response = await ann.get(path.format(bob=world.bob.id))
    assert response.status_code == 200
    assert not any(m in response.text for m in BOB_MARKERS), path


async def test_partner_cannot_create_a_link_on_another_programs_offer(
    login: Login, world: WebWorld, services: Services
) -> None:
    other_program = make_program(services, slug="other")
    other_offer = make_offer(services, other_program, name="Other shop")
    ann = await login(ANN)
    page = await ann.get("/portal/links")
    before = _links(services)
    response = await ann.post(
        "/portal/links", data={"offer_id": str(other_offer.id), "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 400
    assert "choose one of this program&#39;s active offers" in response.text
    assert _links(services) == before


async def test_partner_creates_a_link_with_sub_ids_for_themselves(
    login: Login, world: WebWorld, services: Services
) -> None:
    ann = await login(ANN)
    page = await ann.get("/portal/links")
    response = await ann.post(
        "/portal/links",
        data={
            "offer_id": str(world.offer.id),
            "sub1": "newsletter",
            "partner_id": str(world.bob.id),  # ignored: the partner comes from the session
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 303
    with services.engine.connect() as conn:
        link = conn.execute(select(t.tracking_links).order_by(t.tracking_links.c.id.desc())).first()
    assert link is not None
    assert (link.partner_id, link.sub_ids) == (world.ann.id, {"sub1": "newsletter"})
    assert response.headers["location"] == f"/portal/links/{link.id}"


async def test_applied_partner_cannot_create_links(
    login: Login, world: WebWorld, services: Services
) -> None:
    newbie = make_partner(services, world.program, "new@blog.example", status="applied")
    add_user(services, "new@blog.example", "partner", newbie.id)
    client = await login("new@blog.example")
    page = await client.get("/portal/links")
    assert "New link" not in page.text
    before = _links(services)
    response = await client.post(
        "/portal/links", data={"offer_id": str(world.offer.id), "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 400
    assert _links(services) == before


def _links(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.tracking_links)).scalar_one())


async def test_link_generator_builds_deep_links_only_to_allowed_domains(
    login: Login, world: WebWorld
) -> None:
    ann = await login(ANN)
    good = await ann.get(
        f"/portal/links/{world.ann_link.id}",
        params={"url": "https://shop.example.com/shoes?size=42", "sub1": "tiktok bio"},
    )
    assert good.status_code == 200
    assert (
        'value="http://127.0.0.1:8000/c/ann-shop?url=https%3A%2F%2Fshop.example.com%2Fshoes'
        '%3Fsize%3D42&amp;sub1=tiktok%20bio"' in good.text
    )
    bad = await ann.get(
        f"/portal/links/{world.ann_link.id}", params={"url": "https://evil.test/phish"}
    )
    assert bad.status_code == 400
    assert "is not an allowed deep-link domain" in bad.text
    assert "/c/ann-shop?url=" not in bad.text


async def test_html_in_names_is_escaped_on_every_page(
    login: Login, world: WebWorld, services: Services
) -> None:
    create_partner(
        services.uow(),
        services.clock,
        CreatePartner(
            program_id=world.program.id,
            name='<script>alert("x")</script>',
            email="evil@x.example",
        ),
        actor="test",
    )
    admin = await login(ADMIN)
    for path in ("/admin/partners", "/admin/audit", "/admin/partners?q=%3Cscript"):
        html = (await admin.get(path)).text
        assert '<script>alert("x")</script>' not in html
    html = (await admin.get("/admin/partners?q=%3Cscript%3E")).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
