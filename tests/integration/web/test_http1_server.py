"""`web.http1` over a real socket: raw request bytes in, raw response bytes out, against the
real tracker, its writer and a real SQLite database (the framing does not depend on the
database, so these run on SQLite only).

Each test starts the server on an ephemeral port of the test's own event loop; the limits
that take seconds in production (`REQUEST_TIMEOUT`, `IDLE_TIMEOUT`, the sweep) are
monkeypatched small, before the server starts, where a test needs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, func, select, update
from tests.factories import World, make_world

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.storage import tables as t
from partnerflow.web import http1
from partnerflow.web.tracker import PF_JS, PIXEL_GIF, Tracker

pytestmark = pytest.mark.anyio

WAIT = 3.0  # the longest any single read may take before the test calls it a hang
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]+\r\n")


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite database for the module, copied for each test: migrating takes
    ~0.1 s, a copy a millisecond, and there are many small tests here."""
    path = tmp_path_factory.mktemp("http1") / "migrated.db"
    svc = build(Settings(database_url=f"sqlite:///{path}", spool_dir=path.parent / "spool"))
    try:
        svc.migrate()
    finally:
        svc.close()
    return path


@pytest.fixture
def database_url(sqlite_url: str, migrated_database: Path) -> str:
    """SQLite only (overrides the parametrised fixture of tests/conftest.py): a fresh copy
    of the migrated database per test (`services` finds it up to date)."""
    target = sqlite_url.removeprefix("sqlite:///")
    with (
        contextlib.closing(sqlite3.connect(migrated_database)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
    return sqlite_url


@pytest.fixture
def shop(services: Services) -> World:
    """Program, offer, partner and the link "ann-shop", created before the tracker starts."""
    return make_world(services)


@dataclass
class Running:
    server: http1.Server
    tracker: Tracker
    port: int
    clients: list[asyncio.StreamWriter] = field(default_factory=list, repr=False)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A client connection, closed by the fixture at the end of the test."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.clients.append(writer)
        return reader, writer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):  # reset by the server: closed all the same
        await writer.wait_closed()


StartServer = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_server(services: Services, shop: World) -> AsyncIterator[StartServer]:
    """start_server(use_tasks=None) -> a running server on 127.0.0.1 (stopped afterwards).
    A factory, so that a test can monkeypatch http1's timeouts before the server starts."""
    started: list[tuple[Running, asyncio.Server]] = []

    async def start(use_tasks: bool | None = None) -> Running:
        loop = asyncio.get_running_loop()
        tracker = Tracker(services)
        tracker.start()
        server = http1.Server(tracker, use_tasks=use_tasks)
        server.start(loop)
        listening = await loop.create_server(server.protocol, "127.0.0.1", 0)
        running = Running(server, tracker, listening.sockets[0].getsockname()[1])
        started.append((running, listening))
        return running

    try:
        yield start
    finally:
        for running, listening in started:
            for writer in running.clients:
                await close(writer)
            listening.close()
            await running.server.shutdown(grace=WAIT)
            await listening.wait_closed()
            await asyncio.to_thread(running.tracker.stop)


@pytest.fixture
async def running(start_server: StartServer) -> Running:
    return await start_server()


# -- a small HTTP/1.1 client on raw bytes -----------------------------------------------------
@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def json(self) -> Any:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Response:
    """One response: status line, headers, then content-length bytes of body (none for a
    HEAD request or an interim 1xx)."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    line, _, rest = raw[:-4].partition(b"\r\n")
    match = re.fullmatch(rb"HTTP/1\.1 (\d{3}) ([^\r\n]+)", line)
    assert match, f"malformed status line: {line!r}"
    status = int(match[1])
    headers = []
    for text in rest.decode("latin-1").split("\r\n") if rest else []:
        name, colon, value = text.partition(":")
        assert colon and name == name.strip().lower(), f"malformed header line: {text!r}"
        headers.append((name, value.strip()))
    response = Response(status, match[2].decode(), headers)
    if status >= 200 and not head:
        length = response.header("content-length")
        assert length is not None and length.isdigit()
        response.body = await asyncio.wait_for(reader.readexactly(int(length)), WAIT)
    return response


async def assert_closed(reader: asyncio.StreamReader) -> None:
    """The server closed the connection, and sent nothing more before closing."""
    assert await asyncio.wait_for(reader.read(), WAIT) == b""


async def assert_open(reader: asyncio.StreamReader, seconds: float) -> None:
    """Nothing arrives, and the connection stays open, for `seconds`."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), seconds)


async def request(running: Running, data: bytes, *, head: bool = False) -> Response:
    """`data` on a fresh connection; the first response to it."""
    reader, writer = await running.connect()
    try:
        writer.write(data)
        return await read_response(reader, head=head)
    finally:
        await close(writer)


async def health(running: Running) -> Response:
    response = await request(running, b"GET /healthz HTTP/1.1\r\nHost: track.test\r\n\r\n")
    assert response.status == 200
    assert response.json()["writer"]["running"] is True
    assert {"yielding", "scheduling_fallbacks"} <= set(response.json()["writer"])
    return response


def get(target: str, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"GET {target} HTTP/{version}", "Host: track.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def click_request(*headers: str) -> bytes:
    return get("/c/ann-shop?sub1=spring", f"User-Agent: {UA}", *headers)


def click_id_of(response: Response) -> str:
    location = response.header("location")
    assert location is not None
    return parse_qs(urlsplit(location).query)["click_id"][0]


def count(services: Services, table: Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@contextlib.contextmanager
def write_lock(services: Services) -> Iterator[None]:
    """Another connection holds SQLite's write lock: the writer's next batch waits for it
    (its busy timeout is 30 s), so a click or a postback stays in flight until released."""
    database = services.engine.url.database
    assert database is not None
    lock = sqlite3.connect(database, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        yield
        lock.execute("ROLLBACK")
    finally:
        lock.close()


def assert_refusal(response: Response, status: int, error: str) -> None:
    """A framing refusal: JSON like every refusal of the tracker, and the connection
    announced as closing."""
    assert response.status == status
    assert response.header("content-type") == "application/json"
    assert response.header("connection") == "close"
    assert response.json()["error"] == error


# -- keep-alive ---------------------------------------------------------------------------------
async def test_keep_alive_serves_several_requests_on_one_connection(
    services: Services, running: Running
) -> None:
    reader, writer = await running.connect()
    writer.write(get("/healthz"))
    first = await read_response(reader)
    writer.write(click_request())
    second = await read_response(reader)
    writer.write(get("/pf.js"))
    third = await read_response(reader)
    writer.write(get("/nope"))
    fourth = await read_response(reader)

    assert [r.status for r in (first, second, third, fourth)] == [200, 302, 200, 404]
    assert all(r.header("connection") is None for r in (first, second, third, fourth))
    assert first.json()["status"] == "ok"
    assert second.header("location") == (
        f"https://shop.example.com/landing?click_id={click_id_of(second)}"
    )
    assert second.body == b""
    assert (third.header("content-type"), third.body) == ("application/javascript", PF_JS)
    assert fourth.json() == {"error": "not_found", "reason": "no such endpoint"}
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks).where(t.clicks.c.id == click_id_of(second))).one()
    assert (row.sub1, row.ip, row.browser) == ("spring", "127.0.0.1", "Firefox")


@pytest.mark.parametrize(
    "data",
    [
        get("/healthz", version="1.0"),
        get("/healthz", "Connection: close"),
        get("/healthz", "Connection: Close"),
    ],
    ids=["http-1.0", "connection-close", "connection-close-any-case"],
)
async def test_connection_closes_after_the_answer_when_asked(running: Running, data: bytes) -> None:
    reader, writer = await running.connect()
    writer.write(data + get("/pf.js"))  # the second request is never answered
    response = await read_response(reader)
    assert response.status == 200
    assert response.header("connection") == "close"
    await assert_closed(reader)


async def test_http_1_0_keep_alive_is_honoured(running: Running) -> None:
    reader, writer = await running.connect()
    writer.write(get("/healthz", "Connection: keep-alive", version="1.0"))
    first = await read_response(reader)
    writer.write(get("/pf.js", version="1.0"))
    second = await read_response(reader)
    # An HTTP/1.0 client keeps the connection only when told so.
    assert (first.status, first.header("connection")) == (200, "keep-alive")
    assert (second.status, second.header("connection"), second.body) == (200, "close", PF_JS)
    await assert_closed(reader)


# -- pipelining and HEAD ------------------------------------------------------------------------
@pytest.mark.parametrize("use_tasks", [False, True], ids=["stepped", "tasks"])
async def test_pipelined_requests_are_answered_in_order(
    services: Services, start_server: StartServer, use_tasks: bool
) -> None:
    running = await start_server(use_tasks=use_tasks)
    reader, writer = await running.connect()
    # The click and the impression wait for their batch to be durable; the requests behind
    # them are answered at once by their handlers, but must still come after them.
    writer.write(
        get("/healthz") + click_request() + get("/pf.js") + get("/nope") + get("/i/ann-shop")
        + get("/healthz")
    )  # fmt: skip
    responses = [await read_response(reader) for _ in range(6)]
    assert [r.status for r in responses] == [200, 302, 200, 404, 200, 200]
    assert responses[0].json()["writer"]["events"] == 0
    location = responses[1].header("location")
    assert location is not None and location.startswith("https://shop.example.com/landing?")
    assert responses[2].body == PF_JS
    assert responses[3].json()["error"] == "not_found"
    assert (responses[4].header("content-type"), responses[4].body) == ("image/gif", PIXEL_GIF)
    assert responses[5].json()["writer"]["events"] == 2  # after the click's and the pixel's
    assert (count(services, t.clicks), count(services, t.impressions)) == (1, 1)


async def test_a_long_pipeline_past_the_queue_limit_is_answered_in_order(
    services: Services, running: Running
) -> None:
    kinds = [(click_request(), 302), (get("/pf.js"), 200), (get("/nope"), 404)]
    sequence = [kinds[i % 3] for i in range(3 * http1.MAX_PIPELINE)]
    reader, writer = await running.connect()
    writer.write(b"".join(data for data, _ in sequence))
    statuses = [(await read_response(reader)).status for _ in sequence]
    writer.write(get("/healthz"))  # reading resumed: the connection still takes requests
    last = await read_response(reader)
    assert statuses == [status for _, status in sequence]
    assert last.status == 200
    assert count(services, t.clicks) == http1.MAX_PIPELINE


async def test_a_client_that_never_reads_its_answers_stops_being_read(
    running: Running,
) -> None:
    """Pipelined requests with nobody reading the answers: once the answers pile up past
    the transport's high-water mark the server stops reading, so what it buffers stays
    bounded however much the client sends; reading the answers lets it resume."""
    reader, writer = await running.connect()
    request = get("/pf.js")  # ~1 KB answers
    writer.write(request * 5000)  # ~5 MB of answers if all were taken in
    await asyncio.sleep(0.5)
    (conn,) = running.server.connections
    assert conn.transport is not None
    buffered = conn.transport.get_write_buffer_size()
    assert conn.paused
    assert buffered < 1024 * 1024
    for _ in range(50):  # the client reads: the server goes on answering
        assert (await read_response(reader)).status == 200


async def test_a_bad_request_behind_good_ones_is_answered_last_and_closes(
    running: Running,
) -> None:
    reader, writer = await running.connect()
    writer.write(click_request() + get("/pf.js") + b"NOT HTTP AT ALL\r\n\r\n" + get("/healthz"))
    first, second, third = [await read_response(reader) for _ in range(3)]
    assert (first.status, second.status) == (302, 200)
    assert_refusal(third, 400, "bad_request")
    await assert_closed(reader)


async def test_head_of_a_click_is_a_302_with_headers_and_no_body(
    services: Services, running: Running
) -> None:
    reader, writer = await running.connect()
    head_click = click_request().replace(b"GET ", b"HEAD ", 1)
    head_script = get("/pf.js").replace(b"GET ", b"HEAD ", 1)
    writer.write(head_click + head_script + get("/healthz"))
    click = await read_response(reader, head=True)
    script = await read_response(reader, head=True)
    # The next bytes on the wire are the third response's: neither HEAD sent a body.
    after = await read_response(reader)
    assert click.status == 302
    # A HEAD (link checkers, chat previews) learns where the link leads, and is no click.
    assert click.header("location") == "https://shop.example.com/landing"
    assert click.all("set-cookie") == []
    assert click.header("content-length") == "0"
    assert count(services, t.clicks) == 0
    assert script.status == 200
    assert script.header("content-length") == str(len(PF_JS))
    assert after.status == 200 and after.json()["status"] == "ok"


# -- request bodies -----------------------------------------------------------------------------
def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def postback_form(shop: World, order_id: str) -> bytes:
    token = shop.program.postback_token
    return f"token={token}&order_id={order_id}&amount=120.00&currency=EUR".encode()


async def test_postback_with_a_chunked_body_records_the_conversion(
    services: Services, shop: World, running: Running
) -> None:
    body = postback_form(shop, "CH-1")
    head = (
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    reader, writer = await running.connect()
    writer.write(head)
    for piece in [chunked(body, 7)[i : i + 10] for i in range(0, len(chunked(body, 7)), 10)]:
        writer.write(piece)  # the chunks arrive split across reads
        await writer.drain()
    response = await read_response(reader)
    writer.write(get("/healthz"))  # the connection stays usable after a chunked body
    after = await read_response(reader)
    assert response.status == 200, response.body
    assert response.json()["duplicate"] is False
    assert after.status == 200
    with services.engine.connect() as conn:
        row = conn.execute(select(t.conversions)).one()
    assert (row.order_id, row.amount_micros) == ("CH-1", 120_000_000)


async def test_expect_100_continue_gets_the_interim_answer_before_the_body_is_sent(
    services: Services, shop: World, running: Running
) -> None:
    body = postback_form(shop, "EX-1")
    reader, writer = await running.connect()
    writer.write(
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    interim = await read_response(reader)  # nothing of the body has been sent yet
    writer.write(body)
    final = await read_response(reader)
    assert (interim.status, interim.reason, interim.headers) == (100, "Continue", [])
    assert final.status == 200
    assert final.json()["duplicate"] is False
    assert count(services, t.conversions) == 1


async def test_expect_100_continue_with_a_too_large_body_gets_413_and_no_interim(
    services: Services, running: Running
) -> None:
    response = await request(
        running,
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 70000\r\n\r\n",
    )
    assert_refusal(response, 413, "payload_too_large")
    assert count(services, t.conversions) == 0


# -- limits -------------------------------------------------------------------------------------
async def test_request_line_at_the_url_limit_is_served(running: Running) -> None:
    target = "/healthz?pad="
    response = await request(running, get(target + "x" * (http1.MAX_URL - len(target))))
    assert response.status == 200


async def test_a_9_kb_url_is_refused_with_414_and_closed(running: Running) -> None:
    reader, writer = await running.connect()
    target = "/c/ann-shop?sub1=" + "a" * 9 * 1024
    writer.write(get(target))
    response = await read_response(reader)
    assert_refusal(response, 414, "uri_too_long")
    await assert_closed(reader)
    await health(running)


async def test_a_url_refused_before_its_request_line_is_complete(running: Running) -> None:
    """The limit is checked as the URL arrives: no need to wait for the rest of the request."""
    reader, writer = await running.connect()
    writer.write(b"GET /" + b"a" * (http1.MAX_URL + 100))  # no version, no CRLF yet
    response = await read_response(reader)
    assert_refusal(response, 414, "uri_too_long")
    await assert_closed(reader)


def header_lines(count: int, value: str = "v") -> list[str]:
    return [f"X-H{i}: {value}" for i in range(count)]


async def test_exactly_max_headers_is_served(running: Running) -> None:
    # Host counts as one of them.
    response = await request(running, get("/healthz", *header_lines(http1.MAX_HEADERS - 1)))
    assert response.status == 200


@pytest.mark.parametrize(
    "headers",
    [
        header_lines(http1.MAX_HEADERS + 1),
        header_lines(1, "x" * (http1.MAX_HEADER_BYTES + 1)),
        header_lines(20, "y" * 1000),
    ],
    ids=["101-headers", "one-17kb-header", "20-headers-of-1kb"],
)
async def test_too_many_or_too_large_headers_are_refused_with_431(
    running: Running, headers: list[str]
) -> None:
    reader, writer = await running.connect()
    writer.write(get("/healthz", *headers))
    response = await read_response(reader)
    assert_refusal(response, 431, "headers_too_large")
    await assert_closed(reader)
    await health(running)


async def test_headers_at_the_byte_limit_are_served(running: Running) -> None:
    # name + value bytes, summed over headers: "Host" + "track.test" + "X-Pad" + the value.
    value = "z" * (http1.MAX_HEADER_BYTES - len("Hosttrack.testX-Pad"))
    response = await request(running, get("/healthz", f"X-Pad: {value}"))
    assert response.status == 200


@pytest.mark.parametrize("cache_room", [http1._HEADER_KEYS_MAX, 0], ids=["cached", "cache-full"])
async def test_header_names_are_read_in_any_case(
    running: Running, services: Services, monkeypatch: pytest.MonkeyPatch, cache_room: int
) -> None:
    # The name -> key cache is bounded (names are the client's): once full, names are
    # still recognised, just not remembered.
    monkeypatch.setattr(http1, "_HEADER_KEYS", {})
    monkeypatch.setattr(http1, "_HEADER_KEYS_MAX", cache_room)
    for spelling in ("User-Agent", "USER-AGENT", "uSeR-aGeNt"):
        response = await request(
            running,
            get(f"/c/ann-shop?sub1={spelling}", f"{spelling}: Agent/{spelling}",
                "REFERER: https://blog.example/a", "X-Unwanted: 1"),
        )  # fmt: skip
        assert response.status == 302
    # Host, REFERER, X-Unwanted and the three spellings of User-Agent.
    assert len(http1._HEADER_KEYS) == (6 if cache_room else 0)
    with services.engine.connect() as conn:
        rows = conn.execute(select(t.clicks.c.sub1, t.clicks.c.user_agent, t.clicks.c.referrer))
        stored = {sub1: (agent, referrer) for sub1, agent, referrer in rows}
    assert stored == {
        spelling: (f"Agent/{spelling}", "https://blog.example/a")
        for spelling in ("User-Agent", "USER-AGENT", "uSeR-aGeNt")
    }
    # A name longer than the cache keeps is read, not remembered.
    long_name = "X-" + "a" * http1._HEADER_KEY_MAX_LENGTH
    response = await request(running, click_request(f"{long_name}: 1"))
    assert response.status == 302
    assert long_name.encode() not in http1._HEADER_KEYS


async def test_content_length_over_the_limit_is_refused_before_the_body_is_read(
    services: Services, running: Running
) -> None:
    reader, writer = await running.connect()
    writer.write(
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 70000\r\n\r\n"
    )  # and not one byte of the body
    response = await read_response(reader)
    assert_refusal(response, 413, "payload_too_large")
    await assert_closed(reader)
    assert count(services, t.conversions) == 0


async def test_a_chunked_body_over_the_limit_is_refused_with_413(running: Running) -> None:
    reader, writer = await running.connect()
    body = chunked(b"a=" + b"b" * http1.MAX_BODY, 4096)
    # Up to the byte past the limit (the refusal comes as it arrives), no more: bytes the
    # server never reads would make its close a reset.
    writer.write(
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body[: body.rindex(b"\r\n0\r\n")]
    )
    response = await read_response(reader)
    assert_refusal(response, 413, "payload_too_large")
    await assert_closed(reader)


async def test_a_body_of_exactly_max_body_is_read_and_handled(running: Running) -> None:
    body = b"a=" + b"b" * (http1.MAX_BODY - 2)
    response = await request(
        running,
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    # Read whole and handed to the handler, which wants a token.
    assert response.status == 403
    assert response.json()["field"] == "token"


@pytest.mark.parametrize("length", [b"abc", b"-1", b"+5", b"5x", b"0x10", b"1e3"])
async def test_a_non_numeric_content_length_is_refused_with_400(
    running: Running, length: bytes
) -> None:
    reader, writer = await running.connect()
    writer.write(
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\nContent-Length: %s\r\n\r\n" % length
    )
    response = await read_response(reader)
    assert_refusal(response, 400, "bad_request")
    await assert_closed(reader)


@pytest.fixture
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "_SWEEP_EVERY", 0.02)
    monkeypatch.setattr(http1, "REQUEST_TIMEOUT", 0.3)
    monkeypatch.setattr(http1, "IDLE_TIMEOUT", 0.3)


async def test_a_request_that_stops_mid_headers_gets_408_after_the_request_timeout(
    quick_timeouts: None, start_server: StartServer
) -> None:
    running = await start_server()
    reader, writer = await running.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: track.test\r\nUser-Agent: half")
    await assert_open(reader, 0.15)  # well inside REQUEST_TIMEOUT: still waiting
    response = await read_response(reader)
    assert_refusal(response, 408, "request_timeout")
    await assert_closed(reader)


async def test_trickling_bytes_does_not_extend_the_request_timeout(
    quick_timeouts: None, start_server: StartServer
) -> None:
    """The request timeout runs from the request's first byte, not its latest one."""
    running = await start_server()
    reader, writer = await running.connect()
    loop = asyncio.get_running_loop()
    began = loop.time()
    writer.write(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    for _ in range(4):  # a byte every 50 ms, the last one 0.2 s in (REQUEST_TIMEOUT is 0.3)
        await asyncio.sleep(0.05)
        writer.write(b"x")
    response = await read_response(reader)
    # Counted from the last byte, the answer would come 0.5 s in at the earliest.
    assert loop.time() - began < 0.45
    assert_refusal(response, 408, "request_timeout")
    await assert_closed(reader)


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    quick_timeouts: None, start_server: StartServer
) -> None:
    running = await start_server()
    reader, writer = await running.connect()
    writer.write(get("/healthz"))
    assert (await read_response(reader)).status == 200
    loop = asyncio.get_running_loop()
    answered = loop.time()
    await assert_open(reader, 0.15)
    writer.write(get("/pf.js"))  # still open: a request resets the idle clock
    assert (await read_response(reader)).body == PF_JS
    await assert_closed(reader)  # closed without a word: nothing was asked
    assert loop.time() - answered >= 0.3
    await health(running)


async def test_a_slow_answer_is_not_cut_by_the_request_or_idle_timeout(
    services: Services, quick_timeouts: None, start_server: StartServer
) -> None:
    running = await start_server()
    reader, writer = await running.connect()
    with write_lock(services):  # the click waits twice REQUEST_TIMEOUT and IDLE_TIMEOUT
        writer.write(click_request())
        answer = asyncio.ensure_future(read_response(reader))
        await asyncio.sleep(0.6)
        assert not answer.done()
    response = await answer
    assert response.status == 302
    assert response.header("connection") is None
    assert count(services, t.clicks) == 1


# -- malformed input ----------------------------------------------------------------------------
# Request lines of another HTTP version than 1.1 and 1.0 (HTTP/0.9's has none): a 505.
_OTHER_VERSIONS = (b"GET /c/ann-shop HTTP/2.0\r\nHost: x\r\n\r\n", b"GET /c/ann-shop\r\n\r\n")


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1 extra\r\n\r\n",
        b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET /c/ann-shop?sub1=\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nCookie: pf_vid=\x01\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET /healthz HTTP/1.1\nHost: x\n\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /postback HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST /postback HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /postback HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"CONNECT tracker:443 HTTP/1.1\r\nHost: tracker:443\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"\x00" * 64,
        *_OTHER_VERSIONS,
    ],
    ids=lambda data: repr(data[:24]),
)
async def test_malformed_requests_get_400_json_and_close_and_the_server_goes_on(
    services: Services, running: Running, data: bytes
) -> None:
    reader, writer = await running.connect()
    writer.write(data)
    response = await read_response(reader)
    if data in _OTHER_VERSIONS:
        assert_refusal(response, 505, "http_version_not_supported")
    else:
        assert_refusal(response, 400, "bad_request")
    await assert_closed(reader)
    await health(running)
    assert count(services, t.clicks) == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (get("/c/ann-shop?sub1=%FF%FE"), 400),
        (get("/c/ann-shop?utm_source=%C3%28&sub2=%ED%A0%80"), 400),
        (get("/c/ann-shop?sub1=%00%01%1B%7F"), 302),
        (get("/c/ann-shop?url=https%3A%2F%2Fshop.example.com%2F%0D%0ASet-Cookie:x=1"), 400),
        (get("/c/%FF%00%0D%0A"), 404),
        (get("/c/ann-shop", "Cookie: pf_vid=\xff\xfe; pf_click=%00; =; ;;"), 302),
        (get("/c/ann-shop", "Cookie: pf_vid=%00%0D%0A", "Referer: \xc3\x28\x80"), 302),
        (get("/c/ann-shop?js=1", "Origin: https://shop.example.com/\xff"), 200),
        (get("/i/%FF%FE"), 404),
        (get("/i/ann-shop?cr=%FF"), 200),  # an unknown creative is dropped
        (get("/px?token=%FF&order_id=%00", "Cookie: pf_click=\xff\x80"), 400),
        (get("/postback?token=%C0%AF&order_id=x"), 400),
        (get("/postback?token=nope&order_id=%00%01"), 400),
        (get("/%FF%FE%00"), 404),
    ],
    ids=lambda value: repr(value[:48]) if isinstance(value, bytes) else str(value),
)
async def test_invalid_utf8_and_control_bytes_in_queries_and_cookies_never_give_500(
    running: Running, data: bytes, status: int
) -> None:
    reader, writer = await running.connect()
    writer.write(data)
    response = await read_response(reader)
    writer.write(get("/healthz"))  # a refusal by a handler keeps the connection
    after = await read_response(reader)
    assert response.status == status, response.body
    assert response.header("connection") is None
    if status >= 400:
        assert response.json()["error"] in {"invalid_input", "not_found", "forbidden"}
    elif data.startswith(b"GET /i/"):
        assert response.body == PIXEL_GIF
    assert after.status == 200


async def test_control_bytes_in_a_sub_id_are_dropped_not_stored(
    services: Services, running: Running
) -> None:
    response = await request(running, get("/c/ann-shop?sub1=%00%01ab&sub2=ok"))
    assert response.status == 302
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks)).one()
    assert (row.sub1, row.sub2) == (None, "ok")
    assert row.flags is not None and row.flags.startswith("sub1:")


@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r"])
async def test_a_reply_whose_header_holds_a_line_break_is_never_sent(
    services: Services, shop: World, start_server: StartServer, line_break: str
) -> None:
    """A landing URL corrupted in the database (validation refuses it on the way in) must
    not split the response, whichever line break it holds (a lone CR or LF ends a header
    line for some clients): a 500 goes out instead, and the connection is closed."""
    corrupted = f"https://shop.example.com/x{line_break}set-cookie: admin=1{line_break}X"
    with services.engine.begin() as conn:
        conn.execute(
            update(t.offers).where(t.offers.c.id == shop.offer.id).values(landing_url=corrupted)
        )
    running = await start_server()
    reader, writer = await running.connect()
    writer.write(click_request() + get("/healthz"))
    response = await read_response(reader)
    rest = await asyncio.wait_for(reader.read(), WAIT)
    assert response.status == 500
    assert response.header("connection") == "close"
    assert response.json()["error"] == "internal"
    assert response.header("location") is None and response.header("set-cookie") is None
    assert rest == b""  # closed: the pipelined /healthz is not answered


# -- graceful shutdown --------------------------------------------------------------------------
async def test_shutdown_answers_a_click_in_flight_and_stores_it(
    services: Services, running: Running
) -> None:
    server = running.server
    idle_reader, idle_writer = await running.connect()  # a keep-alive connection, idle
    idle_writer.write(get("/healthz"))
    assert (await read_response(idle_reader)).status == 200
    half_reader, half_writer = await running.connect()  # a request half-sent
    half_writer.write(b"GET /healthz HTTP/1.1\r\nHost: tr")

    with write_lock(services):  # the click's batch cannot commit until the block ends
        reader, writer = await running.connect()
        writer.write(click_request())
        async with asyncio.timeout(WAIT):
            while server.in_flight() == 0:
                await asyncio.sleep(0.005)
        stopping = asyncio.ensure_future(server.shutdown(grace=WAIT))
        await assert_closed(idle_reader)  # idle: closed at once
        assert_refusal(await read_response(half_reader), 503, "shutting_down")
        await asyncio.sleep(0.1)
        assert not stopping.done()  # waiting for the click
    response = await read_response(reader)
    await assert_closed(reader)
    await asyncio.wait_for(stopping, WAIT)
    assert response.status == 302
    assert response.header("connection") == "close"
    with services.engine.connect() as conn:
        stored = conn.execute(select(t.clicks.c.id)).scalars().all()
    assert stored == [click_id_of(response)]


# -- upgrades -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "status"), [("/healthz", 200), ("/c/ann-shop", 302)], ids=["at-once", "waits"]
)
async def test_an_upgrade_request_is_answered_as_a_plain_one_and_the_connection_closed(
    running: Running, target: str, status: int
) -> None:
    """We speak no websocket or h2c: the request is answered, nothing after it is read."""
    reader, writer = await running.connect()
    writer.write(get(target, "Connection: Upgrade", "Upgrade: websocket") + b"\x81\x85junk")
    response = await read_response(reader)
    await assert_closed(reader)
    assert response.status == status


async def test_a_pipelined_100_continue_comes_after_the_answer_ahead_of_it(
    services: Services, shop: World, running: Running
) -> None:
    body = postback_form(shop, "EX-2")
    reader, writer = await running.connect()
    with write_lock(services):  # the click cannot be answered before the block ends
        writer.write(
            click_request()
            + b"POST /postback HTTP/1.1\r\nHost: track.test\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        first = asyncio.ensure_future(read_response(reader))
        await asyncio.sleep(0.1)
    assert (await first).status == 302  # the click's answer comes first...
    interim = await read_response(reader)  # ...then the postback's interim answer
    writer.write(body)
    final = await read_response(reader)
    assert (interim.status, final.status) == (100, 200)


async def test_a_client_that_half_closes_gets_every_answer_then_the_close(
    services: Services, shop: World, running: Running
) -> None:
    """`nc -N` style: requests, then EOF on the client's side; each is still answered."""
    reader, writer = await running.connect()
    writer.write(click_request() + b"GET /healthz HTTP/1.1\r\nHost: track.test\r\n\r\n")
    writer.write_eof()
    click = await read_response(reader)
    health = await read_response(reader)
    await assert_closed(reader)
    assert (click.status, health.status) == (302, 200)


# -- fuzzing ------------------------------------------------------------------------------------
def templates(token: str) -> list[bytes]:
    """Valid requests (some pipelined) that the mutations start from."""
    form = f"token={token}&order_id=F-1&amount=10.00&currency=EUR".encode()
    order = b'{"order_id":"F-2","amount":"5","currency":"EUR"}'
    return [
        b"GET /c/ann-shop?sub1=spring&utm_source=blog&cr=1 HTTP/1.1\r\nHost: track.test\r\n"
        b"User-Agent: Mozilla/5.0\r\nCookie: pf_vid=01m961tb8hxb8kfdwxww1ajx; theme=dark\r\n"
        b"Referer: https://blog.example/post\r\n\r\n",
        b"POST /postback HTTP/1.1\r\nHost: track.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(form), form),
        b"POST /api/v1/orders HTTP/1.1\r\nHost: track.test\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%s"
        % (token.encode(), chunked(order, 16)),
        b"GET /healthz HTTP/1.1\r\nHost: track.test\r\n\r\nHEAD /pf.js HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /i/ann-shop?cr=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        f"GET /px?token={token}&order_id=F-3&amount=3 HTTP/1.1\r\nHost: track.test\r\n"
        "Cookie: pf_click=01m961tb8h55zg2dcb0ja2wd\r\nExpect: 100-continue\r\n\r\n".encode(),
    ]


TEMPLATE_COUNT = len(templates("token"))
SNIPPETS = [
    b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"\x00", b"\xff", b":", b" ", b"\t", b"%", b"%ff",
    b"%00", b"?", b"#", b"/", b"chunked", b"0\r\n\r\n", b"ffffffff\r\n", b"HTTP/1.0",
    b"Content-Length: 99999\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n", b"Connection: close\r\n", b"Upgrade: websocket\r\n",
    b"GET /healthz HTTP/1.1\r\n\r\n", b"POST /postback HTTP/1.1\r\n",
]  # fmt: skip

Mutation = tuple[str, int, Any]
mutations = st.one_of(
    st.tuples(
        st.just("insert"),
        st.integers(0, 4096),
        st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=24)),
    ),
    st.tuples(st.just("delete"), st.integers(0, 4096), st.integers(1, 24)),
    st.tuples(st.just("flip"), st.integers(0, 4096), st.integers(1, 255)),
    st.tuples(st.just("repeat"), st.integers(0, 4096), st.integers(1, 64)),
    st.tuples(st.just("cut"), st.integers(0, 4096), st.none()),  # an unfinished request
)
# (template, its mutations, garbage): the last index stands for the garbage instead.
cases = st.tuples(
    st.integers(0, TEMPLATE_COUNT),
    st.lists(mutations, max_size=4),
    st.binary(max_size=512),
)


def mutate(data: bytes, ops: list[Mutation]) -> bytes:
    buf = bytearray(data)
    for kind, position, arg in ops:
        at = position % (len(buf) + 1)
        if kind == "insert":
            buf[at:at] = arg
        elif kind == "delete":
            del buf[at : at + arg]
        elif kind == "flip" and at < len(buf):
            buf[at] ^= arg
        elif kind == "repeat":
            buf[at:at] = buf[at : at + arg]
        elif kind == "cut":
            del buf[at:]
    return bytes(buf)


class Collect(asyncio.Protocol):
    """Everything the server sends until it closes. (Not a StreamReader: once the server
    resets the connection, a StreamReader raises without handing over what it had already
    received, and a reset is what closing with unread request bytes sends.)"""

    def __init__(self) -> None:
        self.received = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def exchange(running: Running, data: bytes) -> bytes:
    """Send `data`, read until the server closes (every exchange ends: an answered
    connection is closed after the idle timeout, an unfinished request after the request
    timeout, both monkeypatched small)."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(Collect, "127.0.0.1", running.port)
    try:
        transport.write(data)
        await asyncio.wait_for(asyncio.shield(client.closed), WAIT)
    finally:
        transport.close()
    return bytes(client.received)


@pytest.fixture
async def fuzzed(monkeypatch: pytest.MonkeyPatch, start_server: StartServer) -> Running:
    # Small, so that every exchange ends soon; the idle timeout not too small, or a stall
    # of the loop between accepting the /healthz check and reading it would close it.
    monkeypatch.setattr(http1, "_SWEEP_EVERY", 0.01)
    monkeypatch.setattr(http1, "REQUEST_TIMEOUT", 0.05)
    monkeypatch.setattr(http1, "IDLE_TIMEOUT", 0.1)
    return await start_server()


# One server for all examples (the function-scoped fixtures are set up once per test, on
# purpose): each example uses its own connection, so nothing carries over between them.
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=cases)
async def test_mutated_and_garbage_requests_never_get_a_500_or_hang(
    shop: World, fuzzed: Running, case: tuple[int, list[Mutation], bytes]
) -> None:
    template, ops, garbage = case
    if template == TEMPLATE_COUNT:
        data = garbage
    else:
        data = mutate(templates(shop.program.postback_token)[template], ops)
    received = await exchange(fuzzed, data)
    if not received and data.strip(b"\r\n"):
        # Closed unanswered: with the idle timeout at 0.1 s, a stall of this process longer
        # than that (the suite runs on two workers) between the connect and the read lets
        # the sweep's timer run first and close the connection as idle (libuv runs due
        # timers before I/O). Once more: a request the server never answers fails twice.
        received = await exchange(fuzzed, data)
    if received:
        assert STATUS_LINE.match(received), received[:200]
        statuses = [int(m) for m in STATUS_LINE.findall(received)]
        assert all(s == 100 or s in http1.REASONS for s in statuses), statuses
        assert 500 not in statuses, received
        event(f"statuses {sorted(set(statuses))}")
    else:
        # Only a connection on which no request began (blank lines at most) goes unanswered.
        assert not data.strip(b"\r\n"), data
        event("nothing sent, closed when idle")
    try:
        after = await health(fuzzed)
    except (ConnectionResetError, asyncio.IncompleteReadError):
        # Reset as idle: the same stall as above, between the accept of the health check and
        # its read (seen once on a busy two-worker run). Once more: a server that does not
        # answer its health check fails twice.
        after = await health(fuzzed)
    assert after.json()["status"] == "ok"


@pytest.mark.parametrize("supervisor_alive", [True, False], ids=["alive", "died-before-prctl"])
def test_a_worker_stops_when_its_supervisor_died_before_it_armed_the_death_signal(
    supervisor_alive: bool,
) -> None:
    """PR_SET_PDEATHSIG only covers a parent that dies after the call: a worker whose
    supervisor died between the fork and the call (it is re-parented already) stops too."""
    with warnings.catch_warnings():  # 3.12+ warns of fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the "worker": its real parent is this test's process
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            parent = os.getppid() if supervisor_alive else os.getppid() + 1_000_000
            http1._die_with_parent(parent)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if supervisor_alive:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    else:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
