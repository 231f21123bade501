"""Consistent JSON errors `{"error": code, "reason": text, "field": name}` and the request
body size limit. Every refusal is a 4xx with this shape; nothing a client sends yields 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partnerflow.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PartnerflowError,
)
from partnerflow.core.text import unsafe_character
from partnerflow.messaging.imports import ImportRejected
from partnerflow.web.api.schemas import UNSAFE_TEXT

log = logging.getLogger("partnerflow.api")

MAX_BODY = 1024 * 1024
MAX_IMPORT_BODY = 20 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.field = status, code, reason, field


def error_body(code: str, reason: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"error": code, "reason": reason}
    if field:
        out["field"] = field
    out.update(extra)
    return out


def _status(exc: PartnerflowError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict | InvalidTransition):
        return 409
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, InvalidInput | ImportRejected):
        return 422
    return 400


async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(error_body(exc.code, exc.reason, exc.field), exc.status, headers=headers)


async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PartnerflowError)
    extra: dict[str, Any] = {}
    if isinstance(exc, ImportRejected):
        extra["rows"] = [e.to_dict() for e in exc.report.errors[:1000]]
    return JSONResponse(error_body(exc.code, exc.message, exc.field, **extra), _status(exc))


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in {"body", "query", "path", "header"}]
    # A dict key is part of the location: escaped when it holds what it was refused for,
    # so the answer does not do what the key would have done on a page.
    return ".".join(
        p.encode("unicode_escape").decode("ascii") if unsafe_character(p) else p for p in parts
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    content_type = request.headers.get("content-type", "")
    if (
        errors
        and tuple(errors[0].get("loc", ())) == ("body",)
        and content_type
        and not _is_json(content_type)
    ):
        # A form, multipart or text body where a JSON object is expected: FastAPI does not
        # read it as JSON, and "Input should be a valid dictionary" would not say why.
        shown = content_type.split(";", 1)[0].strip()[:80].encode("unicode_escape").decode()
        reason = f"send the body as application/json, not {shown}"
        return JSONResponse(error_body("unsupported_media_type", reason, "body"), 415)
    for e in errors:
        if e.get("type") == "json_invalid":  # why: json's message, or routing.loads_exact's
            why = str((e.get("ctx") or {}).get("error", ""))[:200]
            reason = (
                f"request body is not valid JSON: {why}"
                if why
                else "request body is not valid JSON"
            )
            return JSONResponse(error_body("malformed_json", reason), 400)
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _loc(tuple(first.get("loc", ())))
    kind = first.get("type", "")
    code = "unknown_field" if kind == "extra_forbidden" else "invalid_input"
    reason = str(first.get("msg", "invalid request"))
    if kind == "extra_forbidden":
        reason = f"unknown field {field!r}"
    elif kind == UNSAFE_TEXT:  # "customer_id must not contain U+202E (...)", as core.text says
        reason = f"{field or 'value'} {reason}"
    return JSONResponse(error_body(code, reason[:300], field or None), 422)


async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
    code = codes.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled API error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal error; it has been logged"), 500)


class BodyLimit:
    """Refuses bodies over the limit with 413 before the app parses them (Content-Length
    checked first; chunked bodies are counted as they arrive)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_IMPORT_BODY if "/imports/" in scope.get("path", "") else MAX_BODY
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        response = JSONResponse(
            error_body("body_too_large", f"request body is larger than {limit} bytes"), 413
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - a response never reads the body
    return {"type": "http.disconnect"}
