"""The API mounted at /api/v1 the way the web app mounts it, on a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from tests.factories import World, make_world

from partnerflow.bootstrap import Services
from partnerflow.storage.api_keys import create_key
from partnerflow.web.api import create_api_app


@dataclass
class Api:
    client: TestClient
    services: Services
    world: World
    admin: dict[str, str]
    reader: dict[str, str]
    partner: dict[str, str]
    admin_prefix: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(services: Services) -> Iterator[Api]:
    world = make_world(services)
    now = services.clock.now()
    with services.engine.begin() as conn:
        admin_key, admin = create_key(
            conn, name="admin", scopes=["admin:read", "admin:write"], now=now
        )
        _, reader = create_key(conn, name="reader", scopes=["admin:read"], now=now)
        _, partner = create_key(
            conn, name="ann", scopes=["partner"], now=now, partner_id=world.partner.id
        )
    app = Starlette(
        routes=[Mount("/api/v1", app=create_api_app(services, allow_private_targets=True))]
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(
            client,
            services,
            world,
            bearer(admin),
            bearer(reader),
            bearer(partner),
            admin_key.prefix,
        )
