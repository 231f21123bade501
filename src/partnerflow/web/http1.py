"""The tracker's own HTTP/1.1 server: what `partnerflow track` serves by default.

Why hand-written (the rule is a library unless measured speed demands otherwise): every
click must wait until its batch is durable before it is answered, and granian's path for a
request that waits costs more CPU than the whole click: a Python task per request, a Rust
runtime thread parsing and writing, and a cross-thread wake-up for each answer. Measured
on one core at 32 connections (docs/performance.md): 73-84 µs of CPU per click under
granian against 64-68 µs here, 13-28% more clicks/s in the same benchmark runs. This module
does only the framing: requests are parsed by httptools (llhttp, Node.js's parser),
handlers are `web.tracker`'s (the same code granian's RSGI and ASGI interfaces run), the
common click runs without a coroutine (`Tracker.click_now`, answered from its batch's
done-callback), and other requests' coroutines are stepped by hand from the loop's
callbacks instead of being wrapped in a task (see `_Connection._step`).

What it enforces, per connection: answers in request order (pipelined requests queue;
reading pauses past `MAX_PIPELINE`), a request line of at most `MAX_URL` bytes (414),
at most `MAX_HEADERS` headers and `MAX_HEADER_BYTES` of them (431), bodies of at most
`MAX_BODY` (413, checked against Content-Length before reading), a request must arrive
whole within `REQUEST_TIMEOUT` (408) and an idle keep-alive connection is closed after
`IDLE_TIMEOUT`; anything the parser refuses gets a 400. Errors are JSON, like every other
refusal of the tracker, and close the connection.

Workers: `serve()` binds the socket once and forks `workers` processes that accept on it,
each with its own tracker (caches, counters, writer); the parent restarts a worker that
dies and forwards SIGTERM/SIGINT. On SIGTERM a worker stops accepting, answers what it has
in flight (acknowledged means durable, so the writer is flushed before it exits) and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import httptools

from partnerflow.core.errors import DatabaseUnavailable, MethodNotAllowed
from partnerflow.web.tracker import (
    EVENT_METHODS,
    INTERNAL_ERROR,
    NOT_FOUND,
    Reply,
    Tracker,
    failure_reply,
    json_reply,
    wrong_method,
)

log = logging.getLogger("partnerflow.web")

MAX_URL = 8 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY = 64 * 1024
MAX_PIPELINE = 16
REQUEST_TIMEOUT = 30.0
IDLE_TIMEOUT = 75.0
SHUTDOWN_GRACE = 10.0
_SWEEP_EVERY = 1.0

REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}  # fmt: skip
_STATUS_LINES = {code: f"HTTP/1.1 {code} {reason}\r\n" for code, reason in REASONS.items()}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_END_KEEP = "\r\n\r\n"
_END_CLOSE = "\r\nconnection: close\r\n\r\n"
_END_KEEP_10 = "\r\nconnection: keep-alive\r\n\r\n"
# The headers the handlers read (the rest are skipped while parsing).
_WANTED = frozenset(
    {
        "user-agent", "referer", "cookie", "origin", "x-forwarded-for", "content-type",
        "content-length", "authorization", "x-partnerflow-token", "expect",
    }
)  # fmt: skip
# Header names as clients spell them -> the wanted name in lower case, or "" (skipped):
# browsers send a dozen headers per click, and one dict lookup per header replaces a
# decode, a lower() and a set lookup. Bounded in entries and name length (names are the
# client's: at most 4,096 x 64 bytes are ever kept).
_HEADER_KEYS: dict[bytes, str] = {}
_HEADER_KEYS_MAX = 4096
_HEADER_KEY_MAX_LENGTH = 64


def _header_key(name: bytes) -> str:
    key = name.decode("latin-1").lower()
    if key not in _WANTED:
        key = ""
    if len(name) <= _HEADER_KEY_MAX_LENGTH and len(_HEADER_KEYS) < _HEADER_KEYS_MAX:
        _HEADER_KEYS[name] = key
    return key


class _Refused(Exception):
    """Raised from a parser callback: the request is answered with `reply` and the
    connection closed."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _refusal(status: int, code: str, reason: str) -> Reply:
    return json_reply(status, {"error": code, "reason": reason})


TOO_LONG_URL = _refusal(414, "uri_too_long", f"request line longer than {MAX_URL} bytes")
TOO_MANY_HEADERS = _refusal(
    431, "headers_too_large", f"more than {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes"
)
TOO_LARGE_BODY = _refusal(413, "payload_too_large", f"request body larger than {MAX_BODY} bytes")
BAD_REQUEST = _refusal(400, "bad_request", "malformed HTTP request")
TIMED_OUT = _refusal(408, "request_timeout", f"request not received within {REQUEST_TIMEOUT} s")
UNAVAILABLE = _refusal(503, "shutting_down", "this tracker is shutting down; retry")
WRONG_VERSION = _refusal(505, "http_version_not_supported", "this server speaks HTTP/1.1 and 1.0")


Batch = asyncio.Future[BaseException | None]  # an event writer batch: None once durable


class Request:
    """One parsed request; `web.tracker.TrackRequest` for the handlers that take one."""

    __slots__ = ("_body", "headers", "http10", "keep_alive", "method", "path", "query")

    def __init__(self, method: str, path: str, query: bytes, headers: dict[str, str],
                 body: bytes, keep_alive: bool, http10: bool = False) -> None:  # fmt: skip
        self.method = method
        self.path = path
        self.query: bytes | str = query
        self.headers = headers
        self._body = body
        self.keep_alive = keep_alive
        self.http10 = http10  # an HTTP/1.0 client keeps the connection only if told so

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    async def body(self) -> bytes:
        return self._body


class Dispatcher:
    """Routes a request to the tracker's handlers; the same endpoints as `web.rsgi` and
    `web.app` serve."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.routes = tracker.routes()

    def click_now(
        self, req: Request, peer: str | None
    ) -> tuple[Reply, asyncio.Future[BaseException | None] | None] | None:
        """`Tracker.click_now` for a `/c/` request: the common click without a coroutine."""
        headers = req.headers
        return self.tracker.click_now(
            req.path[3:], req.query, headers.get("user-agent"), headers.get("referer"),
            headers.get("cookie"), headers.get("origin"), peer, headers.get("x-forwarded-for"),
        )  # fmt: skip

    def handle(self, req: Request, peer: str | None) -> Coroutine[Any, Any, Reply]:
        """The handler's coroutine; the caller turns its errors into replies with
        `web.tracker.failure_reply` (no `guarded` frame around it: one less per request)."""
        path = req.path
        tracker = self.tracker
        headers = req.headers
        if path.startswith("/c/"):
            if req.method == "HEAD":
                return tracker.click_head(path[3:])
            if req.method != "GET":
                return _ready(wrong_method(req.method, path))
            return tracker.click(
                path[3:], req.query, headers.get("user-agent"), headers.get("referer"),
                headers.get("cookie"), headers.get("origin"), peer,
                headers.get("x-forwarded-for"),
            )  # fmt: skip
        route = self.routes.get(path)
        if route is not None:
            return route(req)
        if path.startswith("/i/"):
            if req.method not in EVENT_METHODS:
                return _ready(wrong_method(req.method, path))
            return tracker.impression(
                path[3:], headers.get("user-agent"), peer, headers.get("x-forwarded-for"),
                req.query, head=req.method == "HEAD",
            )  # fmt: skip
        if path == "/pf.js":
            return _ready(tracker.script())
        if path == "/healthz":
            return _ready(tracker.health())
        if req.method not in ("GET", "HEAD", "POST"):
            return _refuse()
        return _ready(NOT_FOUND)


async def _ready(reply: Reply) -> Reply:
    return reply


async def _refuse() -> Reply:
    raise MethodNotAllowed("no such endpoint for this method")


class _Clock:
    """Coarse time for timeouts and the Date header, updated once a second by the sweep
    (a clock read per request would cost more than the header itself)."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.date = f"date: {formatdate(usegmt=True)}\r\n"

    def tick(self) -> None:
        self.now = time.monotonic()
        self.date = f"date: {formatdate(usegmt=True)}\r\n"


class Server:
    """The per-process server: the dispatcher, the open connections and their timeouts."""

    def __init__(self, tracker: Tracker, *, use_tasks: bool | None = None) -> None:
        self.dispatcher = Dispatcher(tracker)
        self.clock = _Clock()
        self.connections: set[_Connection] = set()
        self.closing = False
        # Handlers that use `asyncio.timeout` (redis-py's asyncio client: the Redis counters)
        # need a real task; otherwise coroutines are stepped by hand (cheaper).
        self.use_tasks = bool(tracker.counters.is_async) if use_tasks is None else use_tasks
        self._sweeper: asyncio.TimerHandle | None = None
        # Clicks waiting for their batch to be durable, per batch (`answer_when_durable`).
        self._waiting: dict[Batch, list[tuple[_Connection, Request, Reply]]] = {}

    def protocol(self) -> _Connection:
        return _Connection(self)

    def answer_when_durable(
        self, batch: Batch, conn: _Connection, req: Request, reply: Reply
    ) -> None:
        """Answer `req` once its click's batch is durable. One done-callback per batch
        answers all of its clicks, in the order they came: a callback per click cost a
        partial, a loop handle and a `Context.run` each (a few % of a click's CPU in
        perf)."""
        waiting = self._waiting.get(batch)
        if waiting is None:
            waiting = self._waiting[batch] = []
            batch.add_done_callback(self._durable)
        waiting.append((conn, req, reply))

    def _durable(self, batch: Batch) -> None:
        waiting = self._waiting.pop(batch, [])
        if batch.cancelled():  # the loop is closing: nobody to answer
            return
        error = batch.result()
        for conn, req, reply in waiting:
            try:
                if error is not None:
                    reply = failure_reply(DatabaseUnavailable(str(error)), req.method, req.path)
                conn._answer(req, reply)
            except Exception:  # one connection's failure must not leave the others hanging
                log.exception("answering a click failed")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = loop.call_later(_SWEEP_EVERY, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.clock.tick()
        now = self.clock.now
        for conn in list(self.connections):
            conn.check_timeouts(now)
        self._sweeper = loop.call_later(_SWEEP_EVERY, self._sweep, loop)

    def in_flight(self) -> int:
        return sum(1 for c in self.connections if c.busy or c.queue)

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Answer what is in flight (up to `grace` seconds), then close every connection."""
        self.closing = True
        for conn in list(self.connections):
            conn.close_when_idle()
        deadline = time.monotonic() + grace
        while self.in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer: str | None = None
        self.queue: deque[Request | Reply] = deque()
        self.busy = False
        self.paused = False
        self.failed = False
        self.close_after = False
        self._draining = False
        self._continue = False  # a `100 Continue` owed once the answers ahead are out
        self._eof = False  # the client will send nothing more
        self._write_paused = False  # our answers are piling up unread: read nothing more
        # The request being parsed.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_count = 0
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._started: float | None = None  # when the request being parsed began
        self._seen = server.clock.now

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else None
        self.server.connections.add(self)
        if self.server.closing:
            self.close_after = True

    def eof_received(self) -> bool:
        """The client half-closed: answer what it asked (keeping our side open), then
        close."""
        self._eof = True
        return self.busy or bool(self.queue)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        if self.failed:
            return
        self._seen = self.server.clock.now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An upgrade (websocket, h2c) we do not speak: the request was answered as a
            # plain one; nothing after it on this connection is HTTP/1.1.
            self.close_after = True
            self.failed = True
            self._pause()
            if not self.busy and not self.queue and self.transport is not None:
                self.transport.close()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause.reply if isinstance(cause, _Refused) else BAD_REQUEST)
        except _Refused as exc:
            self._fail(exc.reply)
        except httptools.HttpParserError:
            self._fail(BAD_REQUEST)

    def pause_writing(self) -> None:  # the client is not reading its answers
        self._write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self.failed and len(self.queue) < MAX_PIPELINE:
            self._resume()

    # -- httptools callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_count = 0
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._started = self.server.clock.now

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            raise _Refused(TOO_LONG_URL)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > MAX_HEADERS or self._header_bytes > MAX_HEADER_BYTES:
            raise _Refused(TOO_MANY_HEADERS)
        key = _HEADER_KEYS.get(name)
        if key is None:
            key = _header_key(name)
        if key:
            # latin-1 never fails (what ASGI servers hand over too); repeated headers are
            # joined as RFC 9110 allows (cookies with "; ").
            text = value.decode("latin-1")
            old = self._headers.get(key)
            if old is not None:
                text = f"{old}{'; ' if key == 'cookie' else ', '}{text}"
            self._headers[key] = text

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise _Refused(TOO_LARGE_BODY if length.isdigit() else BAD_REQUEST)
        if self._headers.get("expect", "").lower() == "100-continue":
            # The interim answer waits its turn: answers go out in request order.
            self._continue = True
            self._send_continue()

    def on_body(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size > MAX_BODY:
            raise _Refused(TOO_LARGE_BODY)
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        self._started = None
        self._continue = False  # the body came anyway
        url = self._url
        # The request target: origin-form ("/c/x?a=b"); absolute-form ("http://h/c/x") too.
        if url[:1] != b"/":
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise _Refused(BAD_REQUEST) from None
            raw_path, query = parsed.path or b"/", parsed.query or b""
        else:
            raw_path, _, query = url.partition(b"?")
            raw_path = raw_path.partition(b"#")[0]
            query = query.partition(b"#")[0]
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path, errors="replace")
        body = b"".join(self._body) if self._body else b""
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":  # "2.0" over HTTP/1 framing; 0.9's bare line
            raise _Refused(WRONG_VERSION)
        method = parser.get_method().decode("latin-1")
        req = Request(
            method, path, query, self._headers, body, parser.should_keep_alive(),
            version == "1.0",
        )  # fmt: skip
        self.queue.append(req)
        if len(self.queue) >= MAX_PIPELINE:
            self._pause()
        if not self.busy:
            self._next()

    # -- answering ------------------------------------------------------------------------
    def _next(self) -> None:
        """Start the next queued request. A handler that answers at once (an error, the
        health check) comes back here through `_answer`: the loop below carries on instead
        of recursing, so a chunk of many pipelined requests cannot exhaust the stack."""
        if self._draining:
            return
        self._draining = True
        try:
            while self.queue and not self.busy and self.transport is not None:
                item = self.queue.popleft()
                if not isinstance(item, Request):  # a refusal from the parser: the last
                    self._write(item, keep_alive=False, head=False)  # answer here
                    break
                self.busy = True
                quick = (
                    item.path.startswith("/c/")
                    and item.method == "GET"
                    and not self.server.use_tasks
                )
                if quick and self._click_now(item):
                    continue
                coro = self.server.dispatcher.handle(item, self.peer)
                if self.server.use_tasks:
                    task = asyncio.get_running_loop().create_task(coro)
                    task.add_done_callback(functools.partial(self._task_done, item))
                else:
                    self._step(coro, item)
        finally:
            self._draining = False
        if not self.queue and not self.busy:
            if self._continue:
                self._send_continue()
            if self.paused and not self.failed:
                self._resume()

    def _send_continue(self) -> None:
        if self._continue and not self.busy and not self.queue and self.transport is not None:
            self._continue = False
            self.transport.write(_CONTINUE)

    def _click_now(self, req: Request) -> bool:
        """Serve a click without a coroutine (`Tracker.click_now`): answered at once, or
        from its batch's done-callback once durable. False: it needs the coroutine."""
        try:
            quick = self.server.dispatcher.click_now(req, self.peer)
        except Exception as exc:
            self._answer(req, failure_reply(exc, req.method, req.path))
            return True
        if quick is None:
            return False
        reply, durable = quick
        if durable is None:
            self._answer(req, reply)
        else:
            self.server.answer_when_durable(durable, self, req, reply)
        return True

    def _step(self, coro: Coroutine[Any, Any, Reply], req: Request, _: Any = None) -> None:
        """Advance a handler's coroutine, as an asyncio task would (without a task: no
        task object, context copy or extra callback per request): run it until it awaits
        a future, resume it from that future's done-callback, answer when it returns."""
        try:
            waited = coro.send(None)
        except StopIteration as done:
            self._answer(req, done.value)
            return
        except Exception as exc:
            self._answer(req, failure_reply(exc, req.method, req.path))
            return
        if waited is None:  # a bare yield (asyncio.sleep(0)): resume on the next pass
            asyncio.get_running_loop().call_soon(self._step, coro, req)
            return
        if getattr(waited, "_asyncio_future_blocking", None) is None:  # not a future
            coro.close()
            log.error("handler for %s awaited %r, not a future", req.path[:80], waited)
            self._answer(req, INTERNAL_ERROR)
            return
        waited._asyncio_future_blocking = False
        waited.add_done_callback(functools.partial(self._step, coro, req))

    def _task_done(self, req: Request, task: asyncio.Task[Reply]) -> None:
        try:
            reply = task.result()
        except asyncio.CancelledError:
            return
        except Exception as exc:
            reply = failure_reply(exc, req.method, req.path)
        self._answer(req, reply)

    def _answer(self, req: Request, reply: Reply) -> None:
        self.busy = False
        self._seen = self.server.clock.now
        if self.transport is None:  # the client left; the event was still recorded
            return
        keep = (
            req.keep_alive
            and not self.close_after
            and not self.server.closing
            and not (self._eof and not self.queue)
        )
        if not self._write(reply, keep_alive=keep, head=req.method == "HEAD", http10=req.http10):
            return
        if keep:
            self._next()

    def _write(self, reply: Reply, *, keep_alive: bool, head: bool, http10: bool = False) -> bool:
        """Send one response; False when the connection was closed after it."""
        status, headers, body = reply
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers])
        if fields.count("\n") != len(headers) or fields.count("\r") != len(headers):
            # A value (or name) with a line break would split the response: never sent.
            log.error("refusing a reply whose headers hold a line break: %r", headers)
            return self._write(INTERNAL_ERROR, keep_alive=False, head=head)
        line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status\r\n"
        end = (_END_KEEP_10 if http10 else _END_KEEP) if keep_alive else _END_CLOSE
        data = f"{line}{fields}{self.server.clock.date}content-length: {len(body)}{end}".encode()
        transport = self.transport
        if transport is None:
            return False
        transport.write(data + body if body and not head else data)
        if not keep_alive:
            self.failed = True
            self.queue.clear()
            transport.close()
            return False
        return True

    # -- flow, timeouts, shutdown ---------------------------------------------------------
    def _fail(self, reply: Reply) -> None:
        """The parser refused what came in: answer what is queued, then `reply`, close."""
        self.failed = True
        self._pause()
        self.queue.append(reply)
        if not self.busy:
            self._next()

    def _pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()

    def _resume(self) -> None:
        if self.paused and not self._write_paused and self.transport is not None:
            self.paused = False
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def check_timeouts(self, now: float) -> None:
        if self.transport is None or self.busy or self.queue:
            return
        if self._started is not None:
            if now - self._started > REQUEST_TIMEOUT:
                self._fail(TIMED_OUT)
        elif now - self._seen > IDLE_TIMEOUT:
            self.transport.close()

    def close_when_idle(self) -> None:
        self.close_after = True
        if self.transport is not None and not self.busy and not self.queue:
            if self._started is not None:
                self._fail(UNAVAILABLE)
            else:
                self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# -- processes ---------------------------------------------------------------------------
TrackerFactory = Callable[[], Tracker]


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


async def _serve_socket(sock: socket.socket, make_tracker: TrackerFactory) -> None:
    """One worker: a tracker, the server on `sock`, until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    tracker = make_tracker()
    tracker.start(freeze_heap=True)
    server = Server(tracker)
    server.start(loop)
    listening = await loop.create_server(server.protocol, sock=sock, backlog=2048)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        listening.close()
        await server.shutdown()
        await loop.run_in_executor(None, tracker.stop)  # flushes the writer
        await tracker.close_connections()


def _run_worker(sock: socket.socket, make_tracker: TrackerFactory) -> None:
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop
        asyncio.run(_serve_socket(sock, make_tracker))
    else:
        uvloop.run(_serve_socket(sock, make_tracker))


def serve(host: str, port: int, workers: int, make_tracker: TrackerFactory) -> None:
    """Serve the tracker on host:port with `workers` processes (1: in this process)."""
    sock = bind(host, port)
    if workers <= 1:
        _run_worker(sock, make_tracker)
        return
    _supervise(sock, workers, make_tracker)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when the supervisor (`parent`) dies (even by SIGKILL), so
    no orphan keeps the port; elsewhere a no-op. A parent that died between the fork and the
    prctl sent no signal: then the worker has been re-parented already, and stops itself."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _supervise(sock: socket.socket, workers: int, make_tracker: TrackerFactory) -> None:
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    stop_signals = {signal.SIGTERM, signal.SIGINT}

    def spawn(number: int) -> None:
        # Signals are blocked across the fork so a worker never runs the parent's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _die_with_parent(parent)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                _run_worker(sock, make_tracker)
            except BaseException:
                log.exception("tracker worker %d failed", number)
                code = 1
            finally:
                os._exit(code)
        children[pid] = number
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for number in range(workers):
        spawn(number)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        number = children.pop(pid)
        if not stopping:
            log.error("tracker worker %d (pid %d) exited with %s; restarting", number, pid,
                      os.waitstatus_to_exitcode(status))  # fmt: skip
            time.sleep(0.5)  # a worker that dies at start-up must not spin the CPU
            if not stopping:
                spawn(number)
    sock.close()
