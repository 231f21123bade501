"""Role checks for handlers: who may see a page, and where to send everyone else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from partnerflow.storage.sessions import User

Handler = Callable[[Request], Awaitable[Response]]
STAFF_ROLES = ("admin", "manager")
ROLES = ("admin", "manager", "partner")


def current_user(request: Request) -> User | None:
    user: User | None = request.state.user
    return user


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    suffix = "&expired=1" if request.state.session_expired else ""
    return RedirectResponse(f"/login?next={quote(target, safe='')}{suffix}", status_code=303)


def require(*roles: str) -> Callable[[Handler], Handler]:
    """Anonymous visitors (and expired sessions) go to the login page; signed-in users
    without one of `roles` get 403. A partner user must be bound to a partner."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: Request) -> Response:
            user = current_user(request)
            if user is None:
                return login_redirect(request)
            if user.role not in roles or (user.role == "partner" and user.partner_id is None):
                raise HTTPException(403, "Your account may not open this page.")
            return await handler(request)

        return guarded

    return decorate


def home_for(user: User) -> str:
    return "/portal" if user.role == "partner" else "/admin"


def safe_next(target: str | None, fallback: str) -> str:
    """Only local paths are accepted as a post-login destination (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    return target
