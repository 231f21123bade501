"""ASGI middleware that loads the session and enforces CSRF before any handler runs.

It sits in front of every UI route, so "every POST is CSRF-checked" holds by construction
rather than by each handler remembering to call a check. The request body of an unsafe
request is read here (up to `max_body` bytes, else 413), the token is compared in constant
time, and the body is replayed to the application unchanged.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from html import escape
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partnerflow.bootstrap import Services
from partnerflow.storage.sessions import SqlAuthStore, WebSession

SESSION_COOKIE = "pf_session"
ANON_COOKIE = "pf_anon"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# A session ends after this long without a request, and in any case after SESSION_MAX.
SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(days=7)
# Sliding expiry is written at most this often, not on every page view.
TOUCH_EVERY = timedelta(minutes=5)
MAX_BODY = 1_048_576
# Creative uploads may be up to 2 MiB (web.content.MAX_CREATIVE_BYTES) plus the form around
# them; only these paths get the larger limit.
UPLOAD_PATHS = ("/admin/creatives",)
MAX_UPLOAD_BODY = 2 * 1_048_576 + 65_536


def anonymous_csrf(secret: str, anon_token: str) -> str:
    """Before login the CSRF token is an HMAC of a random HttpOnly cookie (signed double
    submit): a cross-site page can neither read the cookie nor compute the token."""
    return hmac.new(secret.encode(), b"csrf:" + anon_token.encode(), "sha256").hexdigest()


def session_expiry(created_at: datetime, now: datetime) -> datetime:
    return min(created_at + SESSION_MAX, now + SESSION_IDLE)


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def _cookies(scope: Scope) -> dict[str, str]:
    raw = Headers(scope=scope).get("cookie", "")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header just means "no cookies"
        return {}
    return {k: m.value for k, m in jar.items()}


def _forbidden_page(message: str, status: int) -> HTMLResponse:
    # Plain markup: this answer is produced before the app (and its templates) ran.
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Refused</title>"
        "<link rel=stylesheet href=/static/app.css><main class=narrow><h1>Refused</h1>"
        f"<p>{message}</p><p><a href=/>Back to the start page</a></p></main></html>"
    )
    return HTMLResponse(body, status_code=status)


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        *,
        max_body: int = MAX_BODY,
        csrf_exempt_prefixes: tuple[str, ...] = ("/api/",),
    ) -> None:
        self.app = app
        self.services = services
        self.max_body = max_body
        self.exempt = csrf_exempt_prefixes
        self.secure = services.settings.public_base_url.startswith("https://")
        self.secret = services.settings.secret_key.get_secret_value()

    def _load(self, token: str) -> tuple[WebSession | None, bool]:
        """(session, expired). Expired or disabled sessions are deleted on sight."""
        now = self.services.clock.now()
        with self.services.engine.begin() as conn:
            store = SqlAuthStore(conn)
            session = store.session(token)
            if session is None:
                return None, False
            if session.expires_at <= now or not session.user.is_active:
                store.delete_session(session.token_hash)
                return None, True
            if now - session.last_seen_at >= TOUCH_EVERY:
                store.touch_session(
                    session.token_hash, now, session_expiry(session.created_at, now)
                )
        return session, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        token = cookies.get(SESSION_COOKIE, "")
        session, expired = None, False
        if 20 <= len(token) <= 128:
            session, expired = await run_in_threadpool(self._load, token)
        state["session"] = session
        state["user"] = session.user if session else None
        state["session_expired"] = expired
        new_anon: str | None = None
        if session is not None:
            state["csrf_token"] = session.csrf_token
        else:
            anon = cookies.get(ANON_COOKIE, "")
            if not 20 <= len(anon) <= 128:
                anon = new_anon = secrets.token_urlsafe(32)
            state["csrf_token"] = anonymous_csrf(self.secret, anon)

        if scope["method"] not in SAFE_METHODS and not scope["path"].startswith(self.exempt):
            limit = MAX_UPLOAD_BODY if scope["path"] in UPLOAD_PATHS else self.max_body
            body = await self._read_body(receive, max(limit, self.max_body))
            if body is None:
                await _forbidden_page("The request body is too large.", 413)(scope, receive, send)
                return
            try:
                submitted = await self._submitted_token(scope, body)
            except HTTPException as exc:  # a multipart body without a boundary, too many parts
                page = _forbidden_page(
                    f"The form could not be read ({escape(str(exc.detail))}); nothing was changed.",
                    400,
                )
                await page(scope, receive, send)
                return
            if not submitted or not hmac.compare_digest(
                submitted.encode(), str(state["csrf_token"]).encode()
            ):
                page = _forbidden_page(
                    "This form was forged or has expired (CSRF check failed); nothing was "
                    "changed. Reload the page and try again.",
                    403,
                )
                await page(scope, receive, send)
                return
            receive = _replay(body)

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if new_anon is not None:
                    headers.append(
                        "set-cookie", cookie_header(ANON_COOKIE, new_anon, secure=self.secure)
                    )
                if expired:
                    headers.append(
                        "set-cookie",
                        cookie_header(SESSION_COOKIE, "", secure=self.secure, max_age=0),
                    )
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    async def _read_body(self, receive: Receive, limit: int) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _submitted_token(self, scope: Scope, body: bytes) -> str | None:
        headers = Headers(scope=scope)
        if headers.get(CSRF_HEADER):
            return headers[CSRF_HEADER]
        ctype = headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            for key, value in parse_qsl(body.decode("utf-8", "replace")):
                if key == CSRF_FIELD:
                    return value
            return None
        if ctype.startswith("multipart/form-data"):
            request = Request(scope, _replay(body))
            async with request.form() as form:
                field = form.get(CSRF_FIELD)
            return field if isinstance(field, str) else None
        return None


def _replay(body: bytes) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
