"""Admin dashboard and partner portal pages render the right numbers for the right people."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from tests.integration.web.conftest import Login
from tests.integration.web.web_world import ADMIN, ANN, MANAGER, WebWorld, add_clicks

from partnerflow.bootstrap import Services
from partnerflow.commissions.services import reverse_conversion
from partnerflow.storage.payouts import SqlMoneyUnitOfWork

pytestmark = pytest.mark.anyio


async def test_home_page_lists_programs_for_visitors(
    client: httpx.AsyncClient, world: WebWorld
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert 'href="/p/acme"' in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_admin_overview_shows_kpis_for_the_last_30_days(
    login: Login, world: WebWorld
) -> None:
    admin = await login(ADMIN)
    response = await admin.get("/admin")
    assert response.status_code == 200
    html = response.text
    # 14 clicks; 4 conversions: 100 + 50 + 80 + 999 = 1229.00 EUR; 10% CPS commission.
    assert '<span class="value">14</span>' in html
    assert '<span class="value">4</span>' in html
    assert '1,229.00<span class="unit"> EUR</span>' in html
    assert '122.90<span class="unit"> EUR</span>' in html
    # CR 4/14 = 28.57%, EPC 122.90 / 14 = 8.78
    assert "28.57%" in html
    assert '8.78<span class="unit"> EUR</span>' in html
    assert 'id="chart-data"' in html
    # Top partners ranked by revenue: Bob (999) before Ann (230).
    assert html.index(">Bob<") < html.index(">Ann<")


async def test_overview_leaves_bot_clicks_out_of_clicks_and_rates(
    login: Login, world: WebWorld, services: Services
) -> None:
    """Six more clicks flagged as bots: clicks, CR and EPC stay as the reports count them
    (14 clicks, 28.57%, 8.78), and the bots are shown apart under the clicks."""
    add_clicks(services, world.ann_link, 6, bots=True)
    html = (await (await login(ADMIN)).get("/admin")).text
    assert '<span class="value">14</span>' in html
    assert "6 bot clicks left out" in html
    assert "28.57%" in html
    assert '8.78<span class="unit"> EUR</span>' in html


async def test_overview_revenue_is_net_of_partial_refunds(
    login: Login, world: WebWorld, services: Services
) -> None:
    """Bob's 999.00 order is refunded 800.00: revenue counts the 199.00 kept (as reports
    do, and as the commission already was), and Ann (230) now ranks before Bob."""
    reverse_conversion(
        SqlMoneyUnitOfWork(services.engine, services.clock), services.clock,
        program_id=world.program.id, order_id="B-1", amount=Decimal("800.00"),
        reason="returned", author="test",
    )  # fmt: skip
    html = (await (await login(ADMIN)).get("/admin")).text
    assert '429.00<span class="unit"> EUR</span>' in html  # 100 + 50 + 80 + 199
    assert html.index(">Ann<") < html.index(">Bob<")


async def test_manager_sees_the_dashboard_too(login: Login, world: WebWorld) -> None:
    manager = await login(MANAGER)
    assert (await manager.get("/admin/partners")).status_code == 200


async def test_partners_list_filters_by_status_and_search(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    everyone = await admin.get("/admin/partners")
    assert ">Ann<" in everyone.text and ">Bob<" in everyone.text
    found = await admin.get("/admin/partners", params={"q": "video"})
    assert ">Bob<" in found.text and ">Ann<" not in found.text
    applied = await admin.get("/admin/partners", params={"status": "applied"})
    assert "No partner matches." in applied.text


async def test_partner_detail_shows_links_coupons_and_balances(
    login: Login, world: WebWorld
) -> None:
    admin = await login(ADMIN)
    response = await admin.get(f"/admin/partners/{world.ann.id}")
    assert response.status_code == 200
    html = response.text
    assert "ann-shop" in html and "ANN10" in html
    # Ann earned 10 + 5 + 8 = 23.00 EUR, all still pending.
    assert '<dt>Pending</dt><dd><span class="value">23.00 EUR</span>' in html
    assert '<dt>Paid</dt><dd><span class="value">0.00 EUR</span>' in html


async def test_unknown_partner_is_404(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    assert (await admin.get("/admin/partners/99999")).status_code == 404


async def test_offers_page_shows_the_postback_template(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    html = (await admin.get("/admin/offers")).text
    assert f"/postback?token={world.program.postback_token}&amp;click_id={{click_id}}" in html
    assert "CPS 10% of sale" in html


async def test_conversions_list_explains_each_conversion(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    html = (await admin.get("/admin/conversions")).text
    assert "B-1" in html and "A-3" in html
    assert "coupon BOB10" in html
    assert "99.90 EUR" in html


@pytest.mark.parametrize("page", ["99999999999999999999", str(2**63), "-5", "x", "9" * 5000])
async def test_a_page_number_past_any_page_is_a_page(
    login: Login, world: WebWorld, page: str
) -> None:
    # The portal took ?page= as it came: the OFFSET of 10**20 did not fit SQLite's
    # INTEGER (PostgreSQL's BIGINT): a 500. The dashboard's lists clamp it (to 1,000,000).
    ann = await login(ANN)
    assert (await ann.get("/portal/conversions", params={"page": page})).status_code == 200
    admin = await login(ADMIN)
    for path in ("/admin/conversions", "/admin/partners", "/admin/audit"):
        assert (await admin.get(path, params={"page": page})).status_code == 200


async def test_audit_log_lists_changes(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    html = (await admin.get("/admin/audit", params={"entity_type": "partner"})).text
    assert "partner.created" in html
    assert "offer.created" not in html


async def test_portal_dashboard_shows_only_the_partners_own_numbers(
    login: Login, world: WebWorld
) -> None:
    ann = await login(ANN)
    response = await ann.get("/portal")
    assert response.status_code == 200
    html = response.text
    assert '230.00<span class="unit"> EUR</span>' in html  # Ann's sales: 100 + 50 + 80
    assert "999.00" not in html  # Bob's sale
    assert "BOB10" not in html and "bob-shop" not in html
    assert '<dt>Pending</dt><dd><span class="value">23.00 EUR</span>' in html


async def test_portal_shows_link_and_coupon_stats_separately(login: Login, world: WebWorld) -> None:
    ann = await login(ANN)
    link = (await ann.get(f"/portal/links/{world.ann_link.id}")).text
    # Two conversions through the link's clicks: 150.00 EUR sales, 15.00 EUR earnings.
    assert "150.00 EUR" in link and "15.00 EUR" in link
    coupon = (await ann.get(f"/portal/coupons/{world.ann_coupon.id}")).text
    assert "80.00 EUR" in coupon and "8.00 EUR" in coupon
