"""Pages cost a fixed number of SQL queries however many partners they show (no N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from tests.factories import make_link, make_partner
from tests.integration.web.conftest import Login
from tests.integration.web.web_world import ADMIN, ANN, WebWorld, add_clicks, convert

from partnerflow.bootstrap import Services

pytestmark = pytest.mark.anyio


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args: Any) -> None:
        self.count += 1


@pytest.fixture
def queries(services: Services) -> Iterator[QueryCounter]:
    counter = QueryCounter()
    event.listen(services.engine, "before_cursor_execute", counter)
    yield counter
    event.remove(services.engine, "before_cursor_execute", counter)


def _grow(services: Services, world: WebWorld, n: int) -> None:
    for i in range(n):
        partner = make_partner(services, world.program, f"p{i}@many.example")
        link = make_link(services, partner, world.offer, code=f"many-{i}")
        clicks = add_clicks(services, link, 2)
        convert(services, world.program, f"M-{i}", "10.00", click_id=clicks[0])


async def _count(login: Login, queries: QueryCounter, email: str, path: str) -> int:
    client = await login(email)
    await client.get(path)  # warm up: session touch, first-use caches
    queries.count = 0
    response = await client.get(path)
    assert response.status_code == 200
    return queries.count


@pytest.mark.parametrize(
    ("email", "path"),
    [
        (ADMIN, "/admin"),
        (ADMIN, "/admin/partners"),
        (ADMIN, "/admin/conversions"),
        (ANN, "/portal"),
        (ADMIN, "/admin/reports"),
        (ADMIN, "/admin/terms"),
        (ADMIN, "/admin/payouts"),
        (ANN, "/portal/creatives"),
        (ANN, "/portal/terms"),
        (ANN, "/portal/messages"),
    ],
)
async def test_page_query_count_does_not_grow_with_rows(
    login: Login,
    world: WebWorld,
    services: Services,
    queries: QueryCounter,
    email: str,
    path: str,
) -> None:
    few = await _count(login, queries, email, path)
    _grow(services, world, 12)
    many = await _count(login, queries, email, path)
    assert many == few
    # A dashboard reads traffic from the rollups, the partial days at the period's edges and
    # the unfolded tail (three statements per traffic figure, whatever the period): the
    # bound is about that fixed cost, the equality above about N+1.
    assert few <= 30
