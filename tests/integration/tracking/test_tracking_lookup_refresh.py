"""The tracker's catalogue snapshot refreshes incrementally: new links are read past the
highest id seen, links keep their objects unless their program, offer or partner changed,
a link committed out of id order is still served (by code, then by the next full read),
and an unknown code is remembered as missing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select
from tests.factories import make_link, make_partner, make_world

from partnerflow.bootstrap import Services
from partnerflow.partners.services import change_status
from partnerflow.storage import tables as t
from partnerflow.storage.tracking_lookup import TrackingLookup


@pytest.fixture
def lookup(services: Services) -> TrackingLookup:
    return TrackingLookup(services.engine, negative_ttl=0.0)


def test_new_links_are_added_and_unchanged_ones_keep_their_objects(
    services: Services, lookup: TrackingLookup
) -> None:
    world = make_world(services)
    assert lookup.refresh()
    ann = lookup.snapshot.links["ann-shop"]
    bob = make_partner(services, world.program, email="bob@blog.example")
    make_link(services, bob, world.offer, code="bob-shop")
    assert lookup.refresh()
    links = lookup.snapshot.links
    assert links["ann-shop"] is ann  # nothing it depends on changed: the same object
    assert (links["bob-shop"].partner_id, links["bob-shop"].partner_status) == (bob.id, "active")


def test_a_partner_status_change_rebuilds_that_partners_links_only(
    services: Services, lookup: TrackingLookup
) -> None:
    world = make_world(services)
    bob = make_partner(services, world.program, email="bob@blog.example")
    make_link(services, bob, world.offer, code="bob-shop")
    assert lookup.refresh()
    bob_before = lookup.snapshot.links["bob-shop"]
    change_status(services.uow(), world.partner.id, "suspended", actor="test")
    assert lookup.refresh()
    links = lookup.snapshot.links
    assert links["ann-shop"].partner_status == "suspended"
    assert not links["ann-shop"].redirects
    assert links["bob-shop"] is bob_before


def test_a_link_committed_out_of_id_order_is_served_by_code_then_by_the_full_read(
    services: Services, lookup: TrackingLookup
) -> None:
    world = make_world(services)
    make_link(services, world.partner, world.offer, code="later")
    assert lookup.refresh()
    with services.engine.begin() as conn:
        top = conn.execute(select(func.max(t.tracking_links.c.id))).scalar_one()

    def add_link(link_id: int, code: str) -> None:
        with services.engine.begin() as conn:
            conn.execute(
                insert(t.tracking_links).values(
                    id=link_id, code=code, program_id=world.program.id,
                    partner_id=world.partner.id, offer_id=world.offer.id, sub_ids={},
                    created_at=services.clock.now(),
                )
            )  # fmt: skip

    add_link(top + 10, "gap-filler")
    assert lookup.refresh()  # reads past `top`: sees the filler
    # A row below the highest id seen, as a slow transaction on PostgreSQL leaves one.
    add_link(top + 5, "straggler")
    assert lookup.refresh()
    assert "gap-filler" in lookup.snapshot.links
    assert "straggler" not in lookup.snapshot.links  # below the highest id already read
    found = lookup.load_link("straggler")  # a click on it: one query by code
    assert found is not None and found.link_id == top + 5 and found.redirects
    assert lookup.refresh(full=True)
    assert lookup.snapshot.links["straggler"].link_id == top + 5


def test_an_unknown_code_is_remembered_as_missing(
    services: Services, lookup: TrackingLookup
) -> None:
    make_world(services)
    lookup.negative_ttl = 60.0
    assert lookup.refresh()
    assert lookup.load_link("no-such-code") is None
    assert lookup.known_missing("l:no-such-code")
    assert lookup.load_link("ann-shop") is not None  # a real code is found by its query
