"""Creatives in the web UI: the admin report builder groups by creative (titles as labels,
"(none)" for clicks without one), and a partner's creatives page gives each creative their
own tracking link with `cr=<id>`."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import update
from tests.integration.web.conftest import Login
from tests.integration.web.web_world import ADMIN, ANN, BOB, WebWorld, add_clicks

from partnerflow.bootstrap import Services
from partnerflow.storage import content
from partnerflow.storage import tables as t

pytestmark = pytest.mark.anyio


def add_creative(services: Services, world: WebWorld, title: str, active: bool = True) -> int:
    now = services.clock.now()
    with services.engine.begin() as conn:
        creative_id = content.add_creative(
            conn, world.program.id, kind="social_post", title=title, text="Hi",
            content_type=None, data=None, actor="test", now=now,
        )  # fmt: skip
        if not active:
            content.set_creative_active(conn, world.program.id, creative_id, False, "test", now)
    return creative_id


async def test_report_builder_groups_by_creative_with_titles(
    login: Login, world: WebWorld, services: Services
) -> None:
    post = add_creative(services, world, "Spring post")
    through_post = add_clicks(services, world.ann_link, 3, days_ago=2)
    with services.engine.begin() as conn:
        conn.execute(
            update(t.clicks).where(t.clicks.c.id.in_(through_post)).values(creative_id=post)
        )
    admin = await login(ADMIN)
    page = await admin.get("/admin/reports?dimension=creative")
    assert page.status_code == 200
    assert "<option selected>creative</option>" in page.text
    assert "Spring post" in page.text
    exported = await admin.get("/admin/reports?dimension=creative&format=csv")
    rows = {r["label"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert set(rows) == {"(none)", "Spring post"}
    assert (rows["Spring post"]["key"], rows["Spring post"]["clicks"]) == (str(post), "3")
    assert rows["(none)"]["clicks"] == "14"  # the world's 10 + 4 clicks carry no creative


async def test_partners_see_each_creative_with_their_own_cr_link(
    login: Login, world: WebWorld, services: Services
) -> None:
    post = add_creative(services, world, "Spring post")
    withdrawn = add_creative(services, world, "Old post", active=False)
    base = services.settings.public_base_url
    ann = await (await login(ANN)).get("/portal/creatives")
    assert ann.status_code == 200
    assert f'value="{base}/c/ann-shop?cr={post}"' in ann.text
    assert "bob-shop" not in ann.text
    assert f"cr={withdrawn}" not in ann.text and "Old post" not in ann.text
    bob = await (await login(BOB)).get("/portal/creatives")
    assert f'value="{base}/c/bob-shop?cr={post}"' in bob.text
    assert "ann-shop" not in bob.text
