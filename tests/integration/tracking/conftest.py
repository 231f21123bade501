"""Fixtures for the tracking endpoints: the real app over the real writer, no mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from partnerflow.bootstrap import Services
from partnerflow.web.app import PartnerflowApp, create_app


class Running:
    def __init__(self, app: PartnerflowApp, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client


@pytest.fixture
async def tracker_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the tracking app; the lifespan (writer start/stop) is run by
    hand because ASGITransport does not run it."""
    app = create_app(services, tracking_only=True)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://track.test") as client:
            yield client
    finally:
        await app.shutdown()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
