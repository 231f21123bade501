"""The demo's creatives: a small library, a realistic share of clicks through them (every
banner impression included), and only creatives of the demo program."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from partnerflow.bootstrap import Services
from partnerflow.core.clock import FixedClock
from partnerflow.demo.seed import seed_demo
from partnerflow.storage import tables as t

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_demo_clicks_and_impressions_carry_creatives_of_the_program(services: Services) -> None:
    services.clock = FixedClock(NOW)
    result = seed_demo(services.engine, services.clock, seed=7, clicks=5000)
    c, i, cr = t.clicks.c, t.impressions.c, t.creatives.c
    with services.engine.connect() as conn:
        library = dict(
            conn.execute(select(cr.id, cr.kind).where(cr.program_id == result.program_id)).all()
        )
        images = conn.execute(
            select(cr.content_type, cr.size, cr.data).where(cr.data.is_not(None))
        ).all()
        through = conn.execute(select(func.count()).where(c.creative_id.is_not(None))).scalar_one()
        used = set(conn.execute(select(c.creative_id).distinct()).scalars()) - {None}
        impressions = conn.execute(
            select(func.count(), func.count(i.creative_id), func.count(i.creative_id.distinct()))
        ).one()
        banners_seen = set(conn.execute(select(i.creative_id).distinct()).scalars())
    assert sorted(library.values()) == [
        "banner", "banner", "product_image", "social_post", "social_post"
    ]  # fmt: skip
    assert all(
        ctype == "image/png" and bytes(data).startswith(b"\x89PNG") and size == len(data)
        for ctype, size, data in images
    )
    assert 0.05 * result.clicks <= through <= 0.6 * result.clicks
    assert used <= set(library) and len(used) >= 3
    total, with_creative, distinct = impressions
    assert total == result.impressions > 0 and with_creative == total and distinct >= 1
    assert {library[b] for b in banners_seen} == {"banner"}
