"""Fixtures for the tracking endpoints: the real tracker over the real writer, no mocks.

`tracker_client` is parametrised over the two ways the tracker is served: "asgi" (the ASGI
app in process, through httpx's ASGITransport) and "http1" (the built-in HTTP/1.1 server,
`web.http1`, listening on a real 127.0.0.1 socket in the test's event loop). Every test
that takes it runs on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from partnerflow.bootstrap import Services
from partnerflow.web import http1
from partnerflow.web.app import create_app
from partnerflow.web.tracker import Tracker

# The visitor's address, the same on both variants. ASGITransport hands it over as the
# peer. A real socket's peer is 127.0.0.1: the http1 variant's tracker trusts that as a
# reverse proxy (as a deployment behind one does) and the client names the visitor in
# X-Forwarded-For, so the address reaches the tracker the way it does in production.
CLIENT_IP = "203.0.113.7"
LOOPBACK = "127.0.0.1"


@pytest.fixture(params=["asgi", "http1"])
async def tracker_client(
    request: pytest.FixtureRequest, services: Services
) -> AsyncIterator[httpx.AsyncClient]:
    serve = _asgi_client if request.param == "asgi" else _http1_client
    async with serve(services) as client:
        yield client


@asynccontextmanager
async def _asgi_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The lifespan (writer start/stop) is run by hand: ASGITransport does not run it."""
    app = create_app(services, tracking_only=True)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://track.test") as client:
            yield client
    finally:
        await app.shutdown()


@asynccontextmanager
async def _http1_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """`web.http1.Server` on an ephemeral port, started and stopped as a worker does
    (`http1._serve_socket`): tracker, server, listener; then listener, in-flight answers,
    writer flush."""
    # The same engine and clock as the test's services (what the test reads back), with
    # the loopback peer trusted as a proxy.
    behind_proxy = Services(
        settings=services.settings.model_copy(update={"trusted_proxies": (LOOPBACK,)}),
        engine=services.engine,
        clock=services.clock,
    )
    loop = asyncio.get_running_loop()
    tracker = Tracker(behind_proxy)
    await loop.run_in_executor(None, tracker.start)
    server = http1.Server(tracker)
    server.start(loop)
    listening = await loop.create_server(server.protocol, LOOPBACK, 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{LOOPBACK}:{port}", headers={"x-forwarded-for": CLIENT_IP}
        ) as client:
            yield client
    finally:
        listening.close()
        await server.shutdown()
        await listening.wait_closed()
        await loop.run_in_executor(None, tracker.stop)  # flushes the writer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
