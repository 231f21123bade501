"""Raw ASGI primitives for the hot path: header lookup, body reading, responses.

A framework router and its Request/Response objects cost more per click than our whole
budget (see docs/performance.md), so the tracking endpoints speak ASGI directly. The
tracker's handlers return text headers (what RSGI takes); `send_reply` encodes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from partnerflow.core.errors import BodyTooLarge, MethodNotAllowed, PartnerflowError
from partnerflow.web.tracker import STATUS_BY_CODE, Reply

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 64 * 1024
JSON_TYPE = (b"content-type", b"application/json")
NO_STORE = (b"cache-control", b"no-store, max-age=0")
# Header names the tracker answers with, pre-encoded (saves an encode per header).
_NAMES = {
    name: name.encode()
    for name in (
        "location", "set-cookie", "cache-control", "content-type", "vary",
        "access-control-allow-origin", "access-control-allow-credentials",
    )
}  # fmt: skip

__all__ = [
    "MAX_BODY", "STATUS_BY_CODE", "ASGIApp", "AsgiRequest", "BodyTooLarge", "Message",
    "MethodNotAllowed", "Receive", "Scope", "Send", "header", "read_body", "respond",
    "respond_error", "respond_json", "send_reply",
]  # fmt: skip


def header(scope: Scope, name: bytes) -> str | None:
    """A request header (latin-1 decoded: never fails, whatever the bytes)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class AsgiRequest:
    """`web.tracker.TrackRequest` over an ASGI scope."""

    __slots__ = ("method", "query", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.query: bytes | str = scope["query_string"]

    def header(self, name: str) -> str | None:
        return header(self.scope, name.encode())

    async def body(self) -> bytes:
        return await read_body(self.receive)


async def send_reply(send: Send, reply: Reply) -> None:
    status, headers, body = reply
    raw = [
        (_NAMES.get(name) or name.encode(), value.encode("utf-8", "surrogateescape"))
        for name, value in headers
    ]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send, status: int, data: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    await respond(send, status, body, [JSON_TYPE, NO_STORE, *headers])


async def respond_error(send: Send, exc: PartnerflowError) -> None:
    await respond_json(send, STATUS_BY_CODE.get(exc.code, 400), exc.to_dict())
