"""Web UI fixtures: the app on the `services` fixture, an httpx client, logged-in clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette
from tests.integration.web.web_world import PASSWORD, WebWorld, csrf_of, make_web_world

from partnerflow.bootstrap import Services
from partnerflow.web.auth.mail import LogEmailSender
from partnerflow.web.ui import create_ui_app

Login = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def outbox() -> LogEmailSender:
    return LogEmailSender()


@pytest.fixture
def ui(services: Services, outbox: LogEmailSender) -> Starlette:
    return create_ui_app(services, email_sender=outbox)


@pytest.fixture
def world(services: Services) -> WebWorld:
    return make_web_world(services)


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
        base_url="http://testserver",
    )


@pytest.fixture
async def client(ui: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(ui) as c:
        yield c


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
    )


@pytest.fixture
async def login(ui: Starlette) -> AsyncIterator[Login]:
    """login(email) -> a fresh client signed in as that user."""
    opened: list[httpx.AsyncClient] = []

    async def make(email: str) -> httpx.AsyncClient:
        c = _client(ui)
        opened.append(c)
        response = await log_in(c, email)
        assert response.status_code == 303, response.text
        return c

    yield make
    for c in opened:
        await c.aclose()
