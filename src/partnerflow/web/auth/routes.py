"""Login, logout and password reset pages."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from partnerflow.bootstrap import Services
from partnerflow.core.errors import InvalidInput
from partnerflow.storage.sessions import SqlAuthStore, User
from partnerflow.web.auth.access import current_user, home_for, safe_next
from partnerflow.web.auth.mail import EmailMessage, EmailSender
from partnerflow.web.auth.middleware import (
    SESSION_COOKIE,
    cookie_header,
    session_expiry,
)
from partnerflow.web.auth.passwords import (
    check_password_strength,
    hash_password,
    needs_rehash,
    verify_password,
)
from partnerflow.web.rendering import render

# Five failed logins for one e-mail from one IP within 15 minutes lock that pair out for
# the rest of the window (OWASP Authentication Cheat Sheet: throttle per account and
# source rather than locking the account for everyone).
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
RESET_TOKEN_TTL = timedelta(hours=1)
GENERIC_LOGIN_ERROR = "E-mail or password is wrong."


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class LoginOutcome:
    status: str  # "ok" | "wrong" | "throttled"
    user: User | None = None
    token: str | None = None


def attempt_login(
    services: Services, email: str, password: str, ip: str, user_agent: str | None
) -> LoginOutcome:
    now = services.clock.now()
    email = email.strip().lower()[:320]
    if "\x00" in email:
        # No account has one, and PostgreSQL can neither compare nor store it.
        verify_password(None, password)
        return LoginOutcome("wrong")
    with services.engine.begin() as conn:
        store = SqlAuthStore(conn)
        if store.failed_logins_since(email=email, ip=ip, since=now - FAILURE_WINDOW) >= (
            MAX_FAILURES
        ):
            return LoginOutcome("throttled")
        user = store.user_by_email(email) if email else None
    ok = verify_password(user.password_hash if user else None, password)
    with services.engine.begin() as conn:
        store = SqlAuthStore(conn)
        if not ok or user is None or not user.is_active:
            store.record_login_attempt(email=email, ip=ip, now=now, succeeded=False)
            return LoginOutcome("wrong")
        store.record_login_attempt(email=email, ip=ip, now=now, succeeded=True)
        if needs_rehash(user.password_hash):
            store.set_password_hash(user.id, hash_password(password))
        token = secrets.token_urlsafe(32)
        store.add_session(
            token=token,
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            now=now,
            expires_at=session_expiry(now, now),
            ip=ip,
            user_agent=user_agent,
        )
    return LoginOutcome("ok", user, token)


async def login_page(request: Request) -> Response:
    user = current_user(request)
    if user is not None:
        return RedirectResponse(home_for(user), status_code=303)
    return render(
        request,
        "auth/login.html",
        {
            "next": request.query_params.get("next", ""),
            "expired": request.query_params.get("expired") == "1",
            "email": "",
            "error": None,
        },
    )


async def login_submit(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))
    password = str(form.get("password", ""))
    target = str(form.get("next", ""))
    services = _services(request)
    outcome = await run_in_threadpool(
        attempt_login,
        services,
        email,
        password,
        client_ip(request),
        request.headers.get("user-agent"),
    )
    if outcome.status != "ok" or outcome.user is None or outcome.token is None:
        throttled = outcome.status == "throttled"
        return render(
            request,
            "auth/login.html",
            {
                "next": target,
                "expired": False,
                "email": email[:320],
                "error": "Too many failed attempts: try again in 15 minutes."
                if throttled
                else GENERIC_LOGIN_ERROR,
            },
            status_code=429 if throttled else 400,
        )
    # A fresh token on every login: a session id planted before login is worthless.
    response = RedirectResponse(safe_next(target, home_for(outcome.user)), status_code=303)
    secure = services.settings.public_base_url.startswith("https://")
    response.headers.append(
        "set-cookie", cookie_header(SESSION_COOKIE, outcome.token, secure=secure)
    )
    old = request.state.session
    if old is not None:
        await run_in_threadpool(_end_session, services, old.token_hash)
    return response


def _end_session(services: Services, token_hash: str) -> None:
    with services.engine.begin() as conn:
        SqlAuthStore(conn).delete_session(token_hash)


async def logout(request: Request) -> Response:
    session = request.state.session
    services = _services(request)
    if session is not None:
        await run_in_threadpool(_end_session, services, session.token_hash)
    response = RedirectResponse("/login", status_code=303)
    secure = services.settings.public_base_url.startswith("https://")
    response.headers.append(
        "set-cookie", cookie_header(SESSION_COOKIE, "", secure=secure, max_age=0)
    )
    return response


# Password reset ---------------------------------------------------------------------------


def issue_reset_token(services: Services, email: str) -> tuple[User, str] | None:
    now = services.clock.now()
    if "\x00" in email:  # no account has one (and PostgreSQL cannot compare it)
        return None
    with services.engine.begin() as conn:
        store = SqlAuthStore(conn)
        user = store.user_by_email(email)
        if user is None or not user.is_active:
            return None
        token = secrets.token_urlsafe(32)
        store.add_reset_token(
            token=token, user_id=user.id, now=now, expires_at=now + RESET_TOKEN_TTL
        )
    return user, token


async def forgot_page(request: Request) -> Response:
    return render(request, "auth/forgot.html", {"sent": False})


async def forgot_submit(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()[:320]
    services = _services(request)
    issued = await run_in_threadpool(issue_reset_token, services, email) if email else None
    if issued is not None:
        user, token = issued
        link = f"{services.settings.public_base_url}/password/reset?token={token}"
        sender: EmailSender = request.app.state.email_sender
        await sender.send(
            EmailMessage(
                to=user.email,
                subject="Reset your partnerflow password",
                body=(
                    "Someone (hopefully you) asked to reset the password of this account.\n\n"
                    f"Open this link within one hour to choose a new password:\n{link}\n\n"
                    "If it was not you, ignore this message: your password is unchanged.\n"
                ),
            )
        )
    # The same answer whether or not the address has an account (no user enumeration).
    return render(request, "auth/forgot.html", {"sent": True})


def reset_password(services: Services, token: str, password: str) -> bool:
    now = services.clock.now()
    new_hash = hash_password(password)
    with services.engine.begin() as conn:
        store = SqlAuthStore(conn)
        found = store.usable_reset_token(token, now)
        if found is None or not store.use_reset_token(found[0], now):
            return False
        store.set_password_hash(found[1], new_hash)
        # Whoever held the old password loses every open session.
        store.delete_user_sessions(found[1])
    return True


def _token_usable(services: Services, token: str) -> bool:
    with services.engine.begin() as conn:
        return SqlAuthStore(conn).usable_reset_token(token, services.clock.now()) is not None


async def reset_page(request: Request) -> Response:
    token = request.query_params.get("token", "")[:128]
    usable = bool(token) and await run_in_threadpool(_token_usable, _services(request), token)
    return render(
        request,
        "auth/reset.html",
        {"token": token, "usable": usable, "error": None, "done": False},
        status_code=200 if usable else 400,
    )


async def reset_submit(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token", ""))[:128]
    password = str(form.get("password", ""))
    confirm = str(form.get("password_confirm", ""))
    error = None
    if password != confirm:
        error = "The two passwords differ."
    else:
        try:
            check_password_strength(password)
        except InvalidInput as exc:
            error = exc.message
    if error is None:
        ok = await run_in_threadpool(reset_password, _services(request), token, password)
        if ok:
            return render(
                request,
                "auth/reset.html",
                {"token": "", "usable": False, "error": None, "done": True},
            )
        return render(
            request,
            "auth/reset.html",
            {"token": "", "usable": False, "error": None, "done": False},
            status_code=400,
        )
    return render(
        request,
        "auth/reset.html",
        {"token": token, "usable": True, "error": error, "done": False},
        status_code=400,
    )


def routes() -> list[Route]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/password/forgot", forgot_page, methods=["GET"]),
        Route("/password/forgot", forgot_submit, methods=["POST"]),
        Route("/password/reset", reset_page, methods=["GET"]),
        Route("/password/reset", reset_submit, methods=["POST"]),
    ]
