"""Clicks and impressions through a creative (`cr=`), end to end on SQLite and PostgreSQL:
the stored creative_id, the flags of a dropped `cr`, the redirect, and spool records
written before the column existed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from tests.factories import World, make_program, make_world

from partnerflow.bootstrap import Services
from partnerflow.core.ids import new_click_id
from partnerflow.storage import content
from partnerflow.storage import tables as t
from partnerflow.storage.event_writer import EventWriter, sqlite_timestamp
from partnerflow.storage.spool import encode
from partnerflow.storage.tracking_lookup import TrackingLookup
from partnerflow.web.tracker import PF_JS

pytestmark = pytest.mark.anyio

UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


@dataclass
class Creatives:
    banner: int  # active, of the link's program
    withdrawn: int  # of the link's program, withdrawn
    foreign: int  # another program's, active


def _add(services: Services, program_id: int, title: str) -> int:
    with services.engine.begin() as conn:
        return content.add_creative(
            conn, program_id, kind="social_post", title=title, text="Go!", content_type=None,
            data=None, actor="test", now=services.clock.now(),
        )  # fmt: skip


@pytest.fixture
def world(services: Services) -> World:
    return make_world(services)


@pytest.fixture
def creatives(services: Services, world: World) -> Creatives:
    """Created before the tracker starts, so its first snapshot has them."""
    banner = _add(services, world.program.id, "Spring banner")
    withdrawn = _add(services, world.program.id, "Old banner")
    with services.engine.begin() as conn:
        content.set_creative_active(
            conn, world.program.id, withdrawn, False, "test", services.clock.now()
        )
    other = make_program(services, slug="other")
    return Creatives(banner, withdrawn, _add(services, other.id, "Their banner"))


async def click(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/c/ann-shop", params=params, headers={"user-agent": UA})


def stored_click(services: Services, response: httpx.Response) -> Any:
    click_id = response.cookies["pf_click"]
    with services.engine.connect() as conn:
        return conn.execute(select(t.clicks).where(t.clicks.c.id == click_id)).one()


def flag_set(flags: str | None) -> set[str]:
    return set((flags or "").split(";")) - {""}


async def test_a_click_through_an_active_creative_stores_it_and_does_not_pass_cr_on(
    services: Services, creatives: Creatives, tracker_client: httpx.AsyncClient
) -> None:
    response = await click(tracker_client, cr=str(creatives.banner), sub1="x", utm_source="ig")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert set(query) == {"utm_source", "click_id"}
    row = stored_click(services, response)
    assert (row.creative_id, row.sub1) == (creatives.banner, "x")
    assert not {f for f in flag_set(row.flags) if f.startswith("cr:")}


@pytest.mark.parametrize(
    ("which", "flag"),
    [
        ("abc", "cr:invalid"),
        ("12345678901", "cr:invalid"),
        ("0", "cr:invalid"),
        ("withdrawn", "cr:unknown"),
        ("foreign", "cr:unknown"),
        ("99999", "cr:unknown"),
    ],
)
async def test_a_bad_creative_is_dropped_and_flagged_but_the_visitor_is_redirected(
    services: Services,
    creatives: Creatives,
    tracker_client: httpx.AsyncClient,
    which: str,
    flag: str,
) -> None:
    value = str(getattr(creatives, which)) if hasattr(creatives, which) else which
    response = await click(tracker_client, cr=value, sub2="kept")
    assert response.status_code == 302
    assert urlsplit(response.headers["location"]).netloc == "shop.example.com"
    row = stored_click(services, response)
    assert (row.creative_id, row.sub2) == (None, "kept")
    assert flag in flag_set(row.flags)


async def test_pf_js_forwards_cr_and_the_js_click_stores_it(
    services: Services, creatives: Creatives, tracker_client: httpx.AsyncClient
) -> None:
    assert b"'cr']" in PF_JS
    response = await click(tracker_client, js="1", cr=str(creatives.banner))
    assert response.status_code == 200
    with services.engine.connect() as conn:
        stored = conn.execute(
            select(t.clicks.c.creative_id).where(t.clicks.c.id == response.json()["click_id"])
        ).scalar_one()
    assert stored == creatives.banner


async def test_impressions_store_an_active_creative_of_the_program_only(
    services: Services, creatives: Creatives, tracker_client: httpx.AsyncClient
) -> None:
    for value in (str(creatives.banner), str(creatives.foreign), "abc", ""):
        response = await tracker_client.get(f"/i/ann-shop?cr={value}")
        assert response.status_code == 200
        assert response.content.startswith(b"GIF89a")
    bad_query = await tracker_client.get("/i/ann-shop?cr=%ff")
    assert bad_query.status_code == 200
    with services.engine.connect() as conn:
        stored = sorted(
            (r[0] or 0 for r in conn.execute(select(t.impressions.c.creative_id))), reverse=True
        )
    assert stored == [creatives.banner, 0, 0, 0, 0]


def test_spool_records_from_before_the_creative_column_are_drained(
    services: Services, world: World, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "old-spool"
    spool_dir.mkdir()
    created = sqlite_timestamp(services.clock.now())
    ids = world.program.id, world.offer.id, world.partner.id, world.link.id
    old_click: list[Any] = [new_click_id(), created, *ids, "198.51.100.1", "ua", None]
    old_click += [None] * 5 + ["PL", "mobile", "iOS", "Safari", True, False, False, 0, None]
    new_click = [new_click_id(), *old_click[1:], 7]
    old_impression = [new_click_id(), created, *ids, "198.51.100.1", "ua", False]
    records: list[dict[str, Any]] = [
        {"t": "clicks", "r": old_click},
        {"t": "clicks", "r": new_click},
        {"t": "impressions", "r": old_impression},
        {"t": "clicks", "r": old_click[:-1]},  # neither shape: skipped
    ]
    (spool_dir / "events-999999.spool").write_bytes(b"".join(encode(r) for r in records))
    writer = EventWriter(
        services.engine, TrackingLookup(services.engine), services.clock, spool_dir
    )
    writer.start()
    writer.stop()
    with services.engine.connect() as conn:
        clicks = dict(conn.execute(select(t.clicks.c.id, t.clicks.c.creative_id)).all())
        impressions = conn.execute(select(t.impressions.c.id, t.impressions.c.creative_id)).all()
    assert clicks == {old_click[0]: None, new_click[0]: 7}
    assert [tuple(r) for r in impressions] == [(old_impression[0], None)]
    assert not (spool_dir / "events-999999.spool").exists()
