"""Raw ASGI primitives for the hot path: header lookup, body reading, responses.

A framework router and its Request/Response objects cost more per click than our whole
budget (see docs/performance.md), so the tracking endpoints speak ASGI directly. Response
headers are pre-encoded bytes; nothing here allocates more than it must.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from partnerflow.core.errors import PartnerflowError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 64 * 1024
JSON_TYPE = (b"content-type", b"application/json")
NO_STORE = (b"cache-control", b"no-store, max-age=0")

STATUS_BY_CODE = {
    "invalid_input": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "invalid_transition": 409,
    "payload_too_large": 413,
    "method_not_allowed": 405,
    "database_unavailable": 503,
}


class BodyTooLarge(PartnerflowError):
    code = "payload_too_large"


class MethodNotAllowed(PartnerflowError):
    code = "method_not_allowed"


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
