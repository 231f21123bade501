"""GET /reports?group_by=creative: clicks by their creative, conversions by their click's,
labelled with the creative's title ("(none)" without one)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from partnerflow.core.ids import new_click_id
from partnerflow.storage import content
from partnerflow.storage import tables as t

from .conftest import Api

V1 = "/api/v1"


def add_click(api: Api, creative_id: int | None) -> str:
    world, now = api.world, api.services.clock.now() - timedelta(hours=1)
    click_id = new_click_id(int(now.timestamp() * 1000))
    with api.services.engine.begin() as conn:
        conn.execute(
            insert(t.clicks).values(
                id=click_id, created_at=now, program_id=world.program.id,
                offer_id=world.offer.id, partner_id=world.partner.id, link_id=world.link.id,
                is_unique=True, is_bot=False, creative_id=creative_id,
            )
        )  # fmt: skip
    return click_id


def test_report_by_creative_has_titles_and_the_clicks_creative_for_conversions(api: Api) -> None:
    with api.services.engine.begin() as conn:
        banner = content.add_creative(
            conn, api.world.program.id, kind="social_post", title="Spring post", text="Hi",
            content_type=None, data=None, actor="test", now=api.services.clock.now(),
        )  # fmt: skip
    through_banner = add_click(api, banner)
    add_click(api, banner)
    add_click(api, None)
    for order, click_id, amount in (("o-1", through_banner, "80.00"), ("o-2", None, "20.00")):
        body = {"program_id": api.world.program.id, "order_id": order, "amount": amount}
        if click_id:
            body["click_id"] = click_id
        assert api.client.post(f"{V1}/conversions", json=body, headers=api.admin).is_success
    report = api.client.get(
        f"{V1}/reports",
        params={"program_id": api.world.program.id, "group_by": "creative"},
        headers=api.reader,
    )
    assert report.status_code == 200
    assert report.json()["group_by"] == "creative"
    rows = [
        (r["key"], r["label"], r["clicks"], r["conversions"], r["revenue"])
        for r in report.json()["rows"]
    ]
    # The unattributed order (no click, no coupon) counts nowhere, as in every report.
    assert rows == [("0", "(none)", 1, 0, "0"), (str(banner), "Spring post", 2, 1, "80")]
    refused = api.client.get(
        f"{V1}/reports",
        params={"program_id": api.world.program.id, "group_by": "campaign"},
        headers=api.reader,
    )
    assert refused.status_code == 422
