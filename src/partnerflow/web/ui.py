"""The web UI application: dashboard, partner portal, login, public program pages.

`create_ui_app(services)` returns a Starlette app. The tracking app (`web.app`) serves the
hot-path endpoints itself and hands every other path to this one.

While it serves, the app folds new events into the report rollups every `fold_interval`
seconds (`RollupFolder`), so pages read a few thousand rollup rows plus a short tail of
raw events instead of every click of the period. The fold runs in its own thread: a
request never waits for it (pages stay exact without it, only slower: they read whatever
is past the fold's mark from the raw tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partnerflow.bootstrap import Services
from partnerflow.core.errors import Conflict
from partnerflow.storage.catalog import SqlPrograms
from partnerflow.storage.rollups import FoldResult, fold_new_events
from partnerflow.web.auth import routes as auth_routes
from partnerflow.web.auth import signup
from partnerflow.web.auth.access import current_user, home_for
from partnerflow.web.auth.mail import EmailSender, LogEmailSender, SmtpEmailSender
from partnerflow.web.auth.middleware import MAX_BODY, AuthMiddleware
from partnerflow.web.dashboard import forms as form_routes
from partnerflow.web.dashboard import manage as manage_routes
from partnerflow.web.dashboard import routes as dashboard_routes
from partnerflow.web.portal import program as portal_program_routes
from partnerflow.web.portal import routes as portal_routes
from partnerflow.web.rendering import STATIC_DIR, load, make_templates, render

log = logging.getLogger("partnerflow.web")
FOLD_INTERVAL_SECONDS = 30.0

# Pages use only our own files: no inline script, no third-party origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if scope["path"].startswith(("/admin", "/portal", "/login", "/password")):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def default_email_sender(services: Services) -> EmailSender:
    """SMTP when configured (settings `smtp_host` etc., once they exist), else in memory."""
    settings: Any = services.settings
    host = getattr(settings, "smtp_host", None)
    if not host:
        return LogEmailSender()
    secret = getattr(settings, "smtp_password", None)
    password = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return SmtpEmailSender(
        host=str(host),
        port=int(getattr(settings, "smtp_port", 25)),
        sender=str(getattr(settings, "smtp_from", "partnerflow@localhost")),
        username=getattr(settings, "smtp_username", None),
        password=password,
        starttls=bool(getattr(settings, "smtp_starttls", False)),
    )


def _public_programs(conn: Any) -> list[Any]:
    return SqlPrograms(conn).list()


async def home(request: Request) -> Response:
    user = current_user(request)
    if user is not None:
        return RedirectResponse(home_for(user), status_code=303)
    programs = await load(request, _public_programs)
    return render(request, "public/home.html", {"programs": programs})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return Response("Method not allowed", status_code=405)
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found"}
    return render(
        request,
        "error.html",
        {"title": titles.get(exc.status_code, "Error"), "message": exc.detail},
        status_code=exc.status_code,
    )


class RollupFolder:
    """Folds new events into the rollups every `interval` seconds, first right after
    start-up. Folds run one at a time on a dedicated thread (not the request thread pool,
    so a slow fold never takes a worker from a page). Several processes may fold at once:
    `fold_new_events` claims its mark, and the loser of a race (Conflict) just waits for
    the next round. Any other error is logged and the loop goes on."""

    def __init__(self, services: Services, interval: float) -> None:
        self.services = services
        self.interval = interval
        self.folds = 0
        self.last: FoldResult | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def fold_once(self) -> FoldResult | None:
        try:
            with self.services.engine.connect() as conn:
                result = fold_new_events(conn, now=self.services.clock.now())
        except Conflict:
            log.debug("another process is folding the rollups; next round")
            return None
        self.folds += 1
        self.last = result
        return result

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                await loop.run_in_executor(self._executor, self.fold_once)
            except Exception:
                log.exception("folding the rollups failed; retrying in %s s", self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    def start(self) -> None:
        self._stop.clear()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-fold")
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop after the fold in progress, if any (a fold is one transaction per chunk;
        cutting it off would only roll it back, so it is let finish)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def create_ui_app(
    services: Services,
    *,
    email_sender: EmailSender | None = None,
    max_body: int = MAX_BODY,
    mount_api: bool = True,
    fold_interval: float | None = FOLD_INTERVAL_SECONDS,
) -> Starlette:
    """The UI app. `fold_interval=None` turns the background rollup fold off (for a
    deployment where `partnerflow jobs run` or cron folds instead, and for tests)."""
    folder = None if fold_interval is None else RollupFolder(services, fold_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if folder is not None:
            folder.start()
        try:
            yield
        finally:
            if folder is not None:
                await folder.stop()

    routes = [
        Route("/", home, methods=["GET"]),
        *auth_routes.routes(),
        *signup.routes(),
        *dashboard_routes.routes(),
        *manage_routes.routes(),
        *form_routes.routes(),
        *portal_routes.routes(),
        *portal_program_routes.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    if mount_api:
        # The REST API authenticates with bearer keys, not cookies: AuthMiddleware leaves
        # /api/ out of its CSRF check (and the tracker answers POST /api/v1/orders itself).
        from partnerflow.web.api import create_api_app

        routes.append(Mount("/api/v1", app=create_api_app(services)))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(AuthMiddleware, services=services, max_body=max_body),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.rollup_folder = folder
    app.state.templates = make_templates()
    app.state.email_sender = email_sender or default_email_sender(services)
    return app
