"""The tracker on granian's RSGI interface (`partnerflow track --server granian`).

RSGI hands the application a scope object and a protocol whose `response_*` methods take
the whole response in one synchronous call, with text headers: no ASGI message dicts, no
two awaited `send()`s, no bytes encoding of every header. PRODUCT.md measured a raw RSGI
app 5-7% faster than the same app on ASGI; the handlers are `web.tracker`'s, shared with
the ASGI app, so both interfaces behave the same (tests run both).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from partnerflow.core.errors import BodyTooLarge, MethodNotAllowed, PartnerflowError
from partnerflow.web.tracker import (
    EVENT_METHODS,
    INTERNAL_ERROR,
    NOT_FOUND,
    Reply,
    Tracker,
    error_reply,
    guarded,
    wrong_method,
)

log = logging.getLogger("partnerflow.web")

MAX_BODY = 64 * 1024


def peer_ip(client: str | None) -> str | None:
    """The address from RSGI's `client` ("1.2.3.4:5678", "[::1]:5678" or "::1:5678")."""
    if not client:
        return None
    host, sep, port = client.rpartition(":")
    if not sep or not port.isdigit():
        return client
    if host.startswith("["):
        return host[1:-1]
    return host


class RsgiRequest:
    """`web.tracker.TrackRequest` over an RSGI scope and protocol."""

    __slots__ = ("_headers", "_protocol", "method", "query")

    def __init__(self, scope: Any, protocol: Any) -> None:
        self.method: str = scope.method
        self.query: bytes | str = scope.query_string
        self._headers = scope.headers
        self._protocol = protocol

    def header(self, name: str) -> str | None:
        value = self._headers.get(name)
        return str(value) if value is not None else None

    async def body(self) -> bytes:
        length = self._headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            raise BodyTooLarge(f"request body larger than {MAX_BODY} bytes")
        data: bytes = await self._protocol()
        if len(data) > MAX_BODY:
            raise BodyTooLarge(f"request body larger than {MAX_BODY} bytes")
        return data


class TrackerRSGI:
    """RSGI application: the tracking endpoints alone (a dedicated tracker node)."""

    def __init__(self, tracker: Tracker, *, freeze_heap: bool = False) -> None:
        self.tracker = tracker
        self.freeze_heap = freeze_heap  # see Tracker.start
        self._routes = tracker.routes()

    # granian calls these around serving, in the worker, on its event loop's thread.
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tracker.start(freeze_heap=self.freeze_heap)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tracker.stop()
        # granian calls this once its loop has stopped: what belongs to that loop (the
        # Redis counters' asyncio client) is closed on it, as the other servers do.
        if not loop.is_closed() and not loop.is_running():
            try:
                loop.run_until_complete(self.tracker.close_connections())
            except Exception:  # shutting down: a failed close must not hide the exit
                log.warning("closing the tracker's connections failed", exc_info=True)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        path: str = scope.path
        if path.startswith("/c/") and scope.method == "GET":
            headers = scope.headers
            # `guarded`'s handling inlined: one coroutine frame less on every click.
            try:
                reply = await self.tracker.click(
                    path[3:], scope.query_string, headers.get("user-agent"),
                    headers.get("referer"), headers.get("cookie"), headers.get("origin"),
                    peer_ip(scope.client), headers.get("x-forwarded-for"),
                )  # fmt: skip
            except PartnerflowError as exc:
                log.info("GET %s refused: %s", path[:80], exc.message)
                reply = error_reply(exc)
            except Exception:
                log.exception("bug on GET %s", path[:80])
                reply = INTERNAL_ERROR
        else:
            reply = await self._other(scope, protocol, path)
        status, response_headers, body = reply
        if body:
            protocol.response_bytes(status, response_headers, body)
        else:
            protocol.response_empty(status, response_headers)

    async def _other(self, scope: Any, protocol: Any, path: str) -> Reply:
        route = self._routes.get(path)
        if route is not None:
            return await guarded(route(RsgiRequest(scope, protocol)), scope.method, path)
        if path.startswith("/c/"):  # HEAD: where the link leads, no click recorded
            if scope.method != "HEAD":
                return wrong_method(scope.method, path)
            return await guarded(self.tracker.click_head(path[3:]), "HEAD", path)
        if path.startswith("/i/"):
            if scope.method not in EVENT_METHODS:
                return wrong_method(scope.method, path)
            headers = scope.headers
            call = self.tracker.impression(
                path[3:], headers.get("user-agent"), peer_ip(scope.client),
                headers.get("x-forwarded-for"), scope.query_string, head=scope.method == "HEAD",
            )  # fmt: skip
            return await guarded(call, scope.method, path)
        if path == "/pf.js":
            return self.tracker.script()
        if path == "/healthz":
            return self.tracker.health()
        if scope.method not in ("GET", "HEAD", "POST"):
            return await guarded(_refuse(), scope.method, path)
        return NOT_FOUND


async def _refuse() -> Reply:
    raise MethodNotAllowed("no such endpoint for this method")
