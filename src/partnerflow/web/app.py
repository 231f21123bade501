"""`create_app(services)`: the whole web application as one raw ASGI callable.

The tracking endpoints are dispatched by plain string comparisons on the path (no router,
no middleware); everything else goes to the web UI (`partnerflow.web.ui.create_ui_app`)
when it is installed, else to a minimal home page. The lifespan starts and stops the
tracker (its link cache and its group-commit writer) and forwards to the UI's lifespan.

Errors: our domain errors become JSON `{"error": code, "reason": ...}` with a 4xx; any
other exception is a bug, logged with its traceback and answered 500 JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import logging

from partnerflow.bootstrap import Services
from partnerflow.web.asgi import (
    ASGIApp,
    AsgiRequest,
    Message,
    Receive,
    Scope,
    Send,
    respond_json,
    send_reply,
)
from partnerflow.web.home import home_app
from partnerflow.web.tracker import EVENT_METHODS, Tracker, guarded, wrong_method

log = logging.getLogger("partnerflow.web")


def _ui_app(services: Services) -> ASGIApp:
    if importlib.util.find_spec("partnerflow.web.ui") is None:
        return home_app
    module = importlib.import_module("partnerflow.web.ui")
    app: ASGIApp = module.create_ui_app(services)
    return app


class PartnerflowApp:
    """The ASGI app. `tracking_only` serves the tracker alone (dedicated tracker nodes)."""

    def __init__(
        self, services: Services, *, tracking_only: bool = False, freeze_heap: bool = False
    ) -> None:
        self.services = services
        self.tracker = Tracker(services)
        self.freeze_heap = freeze_heap  # server processes: see Tracker.start
        self.ui: ASGIApp | None = None if tracking_only else _ui_app(services)
        self._ui_lifespan: _LifespanForwarder | None = None
        self._routes = self.tracker.routes()

    async def startup(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.tracker.start, freeze_heap=self.freeze_heap)
        )
        if self.ui is not None and self.ui is not home_app:
            self._ui_lifespan = _LifespanForwarder(self.ui)
            await self._ui_lifespan.startup()

    async def shutdown(self) -> None:
        if self._ui_lifespan is not None:
            await self._ui_lifespan.shutdown()
            self._ui_lifespan = None
        await asyncio.get_running_loop().run_in_executor(None, self.tracker.stop)
        await self.tracker.close_connections()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/c/"):
                await self._click(scope, send)
                return
            route = self._routes.get(path)
            if route is not None:
                await self._ensure_started()
                reply = await guarded(route(AsgiRequest(scope, receive)), scope["method"], path)
                await send_reply(send, reply)
                return
            if path.startswith("/i/"):
                await self._impression(scope, send)
                return
            if path == "/pf.js":
                await send_reply(send, self.tracker.script())
                return
            if path == "/healthz":
                await send_reply(send, self.tracker.health())
                return
        elif kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.ui is None:
            await respond_json(send, 404, {"error": "not_found", "reason": "no such endpoint"})
            return
        await self.ui(scope, receive, send)

    async def _ensure_started(self) -> None:
        if not self.tracker.started:
            # No lifespan (some test transports, some servers): start on first use.
            await self.startup()

    async def _click(self, scope: Scope, send: Send) -> None:
        await self._ensure_started()
        if scope["method"] == "HEAD":  # where the link leads, no click recorded
            call = self.tracker.click_head(scope["path"][3:])
            await send_reply(send, await guarded(call, "HEAD", scope["path"]))
            return
        if scope["method"] != "GET":
            await send_reply(send, wrong_method(scope["method"], scope["path"]))
            return
        ua = referrer = cookie = origin = forwarded = None
        # One pass over the headers for the five the click reads (latin-1 never fails).
        for key, raw in scope["headers"]:
            if key == b"user-agent":
                ua = raw.decode("latin-1")
            elif key == b"referer":
                referrer = raw.decode("latin-1")
            elif key == b"cookie":
                cookie = raw.decode("latin-1")
            elif key == b"origin":
                origin = raw.decode("latin-1")
            elif key == b"x-forwarded-for":
                forwarded = raw.decode("latin-1")
        client = scope.get("client")
        call = self.tracker.click(
            scope["path"][3:], scope["query_string"], ua, referrer, cookie, origin,
            client[0] if client else None, forwarded,
        )  # fmt: skip
        await send_reply(send, await guarded(call, "GET", scope["path"]))

    async def _impression(self, scope: Scope, send: Send) -> None:
        await self._ensure_started()
        if scope["method"] not in EVENT_METHODS:
            await send_reply(send, wrong_method(scope["method"], scope["path"]))
            return
        ua = forwarded = None
        for key, raw in scope["headers"]:
            if key == b"user-agent":
                ua = raw.decode("latin-1")
            elif key == b"x-forwarded-for":
                forwarded = raw.decode("latin-1")
        client = scope.get("client")
        call = self.tracker.impression(
            scope["path"][3:],
            ua,
            client[0] if client else None,
            forwarded,
            scope["query_string"],
            head=scope["method"] == "HEAD",
        )
        await send_reply(send, await guarded(call, scope["method"], scope["path"]))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


class _LifespanForwarder:
    """Runs a sub-application's lifespan protocol alongside ours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        if message["type"].startswith("lifespan.startup"):
            self._started.set()
        elif message["type"].startswith("lifespan.shutdown"):
            self._stopped.set()

    async def _run(self) -> None:
        try:
            await self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                self._receive,
                self._send,
            )
        except Exception:
            log.debug("the UI app does not support lifespan", exc_info=True)
        finally:
            self._started.set()
            self._stopped.set()

    async def startup(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._started.wait()

    async def shutdown(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=10)
        if self._task is not None:
            self._task.cancel()


def create_app(
    services: Services, *, tracking_only: bool = False, freeze_heap: bool = False
) -> PartnerflowApp:
    return PartnerflowApp(services, tracking_only=tracking_only, freeze_heap=freeze_heap)
