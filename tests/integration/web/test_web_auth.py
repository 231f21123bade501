"""Login, sessions, CSRF, roles, rate limiting, password reset over real SMTP, self-signup."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from starlette.applications import Starlette
from tests.integration.web.conftest import Login, log_in
from tests.integration.web.web_world import ADMIN, ANN, PASSWORD, WebWorld, csrf_of

from partnerflow.bootstrap import Services
from partnerflow.core.clock import FixedClock
from partnerflow.storage import tables as t
from partnerflow.web.auth.mail import SmtpEmailSender
from partnerflow.web.ui import create_ui_app

pytestmark = pytest.mark.anyio


def _count(services: Services, table: Any, *where: Any) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


async def test_login_sets_an_httponly_lax_session_cookie(
    client: httpx.AsyncClient, world: WebWorld
) -> None:
    response = await log_in(client, ADMIN)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("pf_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert (await client.get("/admin")).status_code == 200


async def test_session_token_is_stored_only_as_a_digest(
    client: httpx.AsyncClient, world: WebWorld, services: Services
) -> None:
    await log_in(client, ADMIN)
    token = client.cookies["pf_session"]
    with services.engine.connect() as conn:
        stored = conn.execute(select(t.web_sessions.c.token_hash)).scalars().all()
    assert len(stored) == 1 and stored[0] != token and len(stored[0]) == 64


async def test_wrong_password_is_refused_without_a_session(
    client: httpx.AsyncClient, world: WebWorld
) -> None:
    response = await log_in(client, ADMIN, "not the password")
    assert response.status_code == 400
    assert "E-mail or password is wrong." in response.text
    assert "pf_session" not in client.cookies
    assert (await client.get("/admin")).status_code == 303


async def test_anonymous_visitor_is_sent_to_login_with_next(
    client: httpx.AsyncClient, world: WebWorld
) -> None:
    response = await client.get("/admin/partners?status=active")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fadmin%2Fpartners%3Fstatus%3Dactive"


async def test_login_redirects_only_to_local_paths(
    client: httpx.AsyncClient, world: WebWorld
) -> None:
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "email": ADMIN,
            "password": PASSWORD,
            "next": "//evil.example/phish",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.headers["location"] == "/admin"


async def test_partner_cannot_open_admin_pages(login: Login, world: WebWorld) -> None:
    ann = await login(ANN)
    assert (await ann.get("/admin")).status_code == 403
    assert (await ann.get(f"/admin/partners/{world.ann.id}")).status_code == 403


async def test_staff_cannot_open_the_portal(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    assert (await admin.get("/portal")).status_code == 403


async def test_expired_session_redirects_to_login(
    login: Login, world: WebWorld, clock: FixedClock, services: Services
) -> None:
    admin = await login(ADMIN)
    clock.advance(timedelta(hours=8, seconds=1))
    response = await admin.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fadmin&expired=1")
    assert _count(services, t.web_sessions) == 0


async def test_activity_keeps_a_session_alive(
    login: Login, world: WebWorld, clock: FixedClock
) -> None:
    admin = await login(ADMIN)
    for _ in range(3):
        clock.advance(timedelta(hours=5))
        assert (await admin.get("/admin/audit")).status_code == 200


async def test_logout_ends_the_session_on_the_server(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    page = await admin.get("/admin")
    stolen = admin.cookies["pf_session"]
    response = await admin.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert _count(services, t.web_sessions) == 0
    admin.cookies.set("pf_session", stolen)
    assert (await admin.get("/admin")).status_code == 303


async def test_forged_csrf_is_refused_and_nothing_changes(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    for token in ("forged", ""):
        response = await admin.post(
            f"/admin/partners/{world.ann.id}/status",
            data={"status": "suspended", "reason": "x", "csrf_token": token},
        )
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert _count(services, t.partners, t.partners.c.status == "suspended") == 0


async def test_another_sessions_csrf_token_is_refused(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    other = await login(ADMIN)
    foreign = csrf_of((await other.get("/admin")).text)
    response = await admin.post(
        f"/admin/partners/{world.ann.id}/status",
        data={"status": "suspended", "csrf_token": foreign},
    )
    assert response.status_code == 403


async def test_every_post_route_checks_csrf(ui: Starlette, login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    posts = [
        r.path.replace("{partner_id:int}", str(world.ann.id)).replace("{slug}", "acme")
        for r in ui.routes
        if "POST" in (getattr(r, "methods", None) or ())
    ]
    assert len(posts) >= 6
    for path in posts:
        response = await admin.post(path, data={"csrf_token": "nope"})
        assert response.status_code == 403, path


async def test_login_form_needs_its_csrf_token(client: httpx.AsyncClient, world: WebWorld) -> None:
    response = await client.post("/login", data={"email": ADMIN, "password": PASSWORD})
    assert response.status_code == 403
    assert "pf_session" not in client.cookies


async def test_oversized_post_is_refused(client: httpx.AsyncClient, world: WebWorld) -> None:
    response = await client.post(
        "/login",
        content=b"x" * 2_000_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


async def test_unreadable_multipart_posts_are_refused_with_400_not_500(
    client: httpx.AsyncClient, world: WebWorld
) -> None:
    # The CSRF check reads the token from the form before any handler runs; a multipart body
    # it could not parse escaped it as an exception (500 and a traceback).
    many = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(1001)
    )
    for content_type, body in (
        ("multipart/form-data", b"garbage"),
        ("multipart/form-data; boundary=b", many + b"--b--\r\n"),
    ):
        response = await client.post("/login", content=body, headers={"content-type": content_type})
        assert response.status_code == 400, response.text
        assert "nothing was changed" in response.text
    assert "pf_session" not in client.cookies


async def test_admin_changes_partner_status_with_audit(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    page = await admin.get(f"/admin/partners/{world.ann.id}")
    response = await admin.post(
        f"/admin/partners/{world.ann.id}/status",
        data={"status": "suspended", "reason": "spam", "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303
    assert _count(services, t.partners, t.partners.c.status == "suspended") == 1
    assert _count(services, t.audit_log, t.audit_log.c.actor == f"user:{ADMIN}") == 1


@pytest.mark.parametrize("path_id", ["0", "1000001", "99999999999999999999"])
async def test_an_id_out_of_range_names_no_partner_and_changes_nothing(
    login: Login, world: WebWorld, services: Services, path_id: str
) -> None:
    # The path id was clamped into 1..1,000,000: /admin/partners/0/status suspended
    # partner 1 (and a larger id partner 1,000,000), and review "-5" decided review 1.
    assert world.ann.id == 1
    admin = await login(ADMIN)
    page = await admin.get(f"/admin/partners/{world.ann.id}")
    token = csrf_of(page.text)
    response = await admin.post(
        f"/admin/partners/{path_id}/status",
        data={"status": "suspended", "reason": "spam", "csrf_token": token},
    )
    assert response.status_code == 404
    assert (await admin.get(f"/admin/partners/{path_id}")).status_code == 404
    replied = await admin.post(
        f"/admin/messages/{path_id}", data={"body": "hello", "csrf_token": token}
    )
    assert replied.status_code == 404
    assert (await admin.get(f"/admin/messages/{path_id}")).status_code == 404
    decided = await admin.post(
        f"/admin/applications/{path_id}", data={"decision": "reject", "csrf_token": token}
    )
    assert decided.status_code == 404
    fraud = await admin.post(
        "/admin/fraud/decide",
        data={"review": f"-{path_id}", "decision": "approve", "csrf_token": token},
    )
    assert fraud.status_code in (400, 404)
    assert _count(services, t.partners, t.partners.c.status == "suspended") == 0
    assert _count(services, t.partner_messages) == 0
    assert _count(services, t.audit_log, t.audit_log.c.actor == f"user:{ADMIN}") == 0


async def test_a_status_reason_with_a_bidi_control_changes_nothing(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    page = await admin.get(f"/admin/partners/{world.ann.id}")
    response = await admin.post(
        f"/admin/partners/{world.ann.id}/status",
        data={
            "status": "suspended",
            "reason": "spam \u202eelbisnopser ton\u202c",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 400
    assert "reason must not contain U+202E" in response.text
    assert _count(services, t.partners, t.partners.c.status == "suspended") == 0
    assert _count(services, t.audit_log, t.audit_log.c.actor == f"user:{ADMIN}") == 0


async def test_five_failures_lock_the_email_and_ip_pair(
    client: httpx.AsyncClient, world: WebWorld, clock: FixedClock, ui: Starlette
) -> None:
    for _ in range(5):
        assert (await log_in(client, ADMIN, "wrong password!")).status_code == 400
    # Even the right password is refused while locked.
    locked = await log_in(client, ADMIN)
    assert locked.status_code == 429
    assert "pf_session" not in client.cookies
    # Another IP is not locked out by someone else's failures.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ui, client=("198.51.100.9", 1)),
        base_url="http://testserver",
    ) as elsewhere:
        assert (await log_in(elsewhere, ADMIN)).status_code == 303
    clock.advance(timedelta(minutes=15, seconds=1))
    assert (await log_in(client, ADMIN)).status_code == 303


@pytest.mark.parametrize("address", [ADMIN + "\x00", "\x00", f"a\x00{ADMIN}"])
async def test_a_nul_in_the_email_is_a_wrong_login_and_no_reset_mail(
    client: httpx.AsyncClient, world: WebWorld, services: Services, address: str
) -> None:
    # PostgreSQL cannot compare or store a NUL: both public forms were a 500 there.
    refused = await log_in(client, address)
    assert refused.status_code == 400
    assert "pf_session" not in client.cookies
    page = await client.get("/password/forgot")
    sent = await client.post(
        "/password/forgot", data={"email": address, "csrf_token": csrf_of(page.text)}
    )
    assert sent.status_code == 200  # the same answer as for any address
    assert _count(services, t.password_reset_tokens) == 0
    assert _count(services, t.web_sessions) == 0


# Password reset over a real SMTP server -------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_password_reset_by_emailed_token(
    services: Services, world: WebWorld, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    app = create_ui_app(
        services, email_sender=SmtpEmailSender("127.0.0.1", port, "noreply@partnerflow.test")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        old_session = await httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ).__aenter__()
        await log_in(old_session, ANN)
        page = await client.get("/password/forgot")
        sent = await client.post(
            "/password/forgot", data={"email": ANN.upper(), "csrf_token": csrf_of(page.text)}
        )
        assert sent.status_code == 200 and "reset link is on its way" in sent.text
        assert len(inbox.messages) == 1
        message = inbox.messages[0]
        assert message["To"] == ANN
        body = message.get_payload(decode=True).decode()
        link = next(line for line in body.splitlines() if "/password/reset?token=" in line)
        token = link.split("token=")[1].strip()
        with services.engine.connect() as conn:
            stored = conn.execute(select(t.password_reset_tokens.c.token_hash)).scalar_one()
        assert stored != token

        form = await client.get("/password/reset", params={"token": token})
        assert form.status_code == 200
        new_password = "a brand new passphrase"
        done = await client.post(
            "/password/reset",
            data={
                "token": token,
                "password": new_password,
                "password_confirm": new_password,
                "csrf_token": csrf_of(form.text),
            },
        )
        assert done.status_code == 200 and "Your password was changed" in done.text
        # The old password and the old session are dead; the new password works.
        assert (await old_session.get("/portal")).status_code == 303
        await old_session.aclose()
        assert (await log_in(client, ANN)).status_code == 400
        assert (await log_in(client, ANN, new_password)).status_code == 303
        # The token works once.
        again = await client.get("/password/reset", params={"token": token})
        assert again.status_code == 400


async def test_reset_for_unknown_email_sends_nothing_and_says_the_same(
    services: Services, world: WebWorld, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    app = create_ui_app(services, email_sender=SmtpEmailSender("127.0.0.1", port, "n@p.test"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        page = await client.get("/password/forgot")
        sent = await client.post(
            "/password/forgot",
            data={"email": "nobody@nowhere.example", "csrf_token": csrf_of(page.text)},
        )
    assert sent.status_code == 200 and "reset link is on its way" in sent.text
    assert inbox.messages == []


async def test_expired_reset_token_is_refused(
    client: httpx.AsyncClient, world: WebWorld, outbox: Any, clock: FixedClock
) -> None:
    page = await client.get("/password/forgot")
    await client.post("/password/forgot", data={"email": ANN, "csrf_token": csrf_of(page.text)})
    token = outbox.sent[0].body.split("token=")[1].split()[0]
    clock.advance(timedelta(hours=1, seconds=1))
    assert (await client.get("/password/reset", params={"token": token})).status_code == 400


# Self-signup -------------------------------------------------------------------------------


async def test_partner_applies_through_the_public_form(
    client: httpx.AsyncClient, world: WebWorld, services: Services
) -> None:
    page = await client.get("/p/acme/apply")
    assert page.status_code == 200
    response = await client.post(
        "/p/acme/apply",
        data={
            "name": "Cara <b>Creator</b>",
            "email": "cara@tiktok.example",
            "password": "long enough password",
            "tiktok": "@cara",
            "accept_terms": "yes",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 201
    with services.engine.connect() as conn:
        partner = conn.execute(
            select(t.partners).where(t.partners.c.email == "cara@tiktok.example")
        ).one()
        user = conn.execute(select(t.users).where(t.users.c.partner_id == partner.id)).one()
    assert partner.status == "applied" and partner.social == {"tiktok": "@cara"}
    assert user.role == "partner"
    # The applicant can log in and sees the application status.
    portal = await log_in(client, "cara@tiktok.example", "long enough password")
    assert portal.headers["location"] == "/portal"
    html = (await client.get("/portal")).text
    assert "<strong>applied</strong>" in html
    assert "Cara &lt;b&gt;Creator&lt;/b&gt;" in html


async def test_signup_with_a_taken_email_changes_nothing(
    client: httpx.AsyncClient, world: WebWorld, services: Services
) -> None:
    before = _count(services, t.partners), _count(services, t.users)
    page = await client.get("/p/acme/apply")
    response = await client.post(
        "/p/acme/apply",
        data={
            "name": "Ann again",
            "email": ANN,
            "password": "long enough password",
            "accept_terms": "yes",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 409
    assert (_count(services, t.partners), _count(services, t.users)) == before


async def test_signup_with_bad_input_is_refused_clearly(
    client: httpx.AsyncClient, world: WebWorld, services: Services
) -> None:
    before = _count(services, t.partners)
    page = await client.get("/p/acme/apply")
    response = await client.post(
        "/p/acme/apply",
        data={
            "name": "Dan",
            "email": "dan@site.example",
            "password": "short",
            "accept_terms": "yes",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 400
    assert "password must be 10-1024 characters" in response.text
    assert _count(services, t.partners) == before


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("name", "Dan\u202egnp.exe", "name must not contain U+202E"),
        ("name", "Dan\u200b", "name must not contain U+200B"),
        ("tiktok", "@dan\u2066x", "tiktok handle must not contain U+2066"),
    ],
)
async def test_signup_refuses_bidi_and_invisible_characters_in_what_managers_see(
    client: httpx.AsyncClient, world: WebWorld, services: Services, field: str, value: str,
    said: str,
) -> None:  # fmt: skip
    """A name shown in the managers' lists cannot reorder or hide text there (Trojan
    Source): the public form refuses it, names the code point, and stores nothing."""
    before = _count(services, t.partners), _count(services, t.users)
    page = await client.get("/p/acme/apply")
    data = {
        "name": "Dan",
        "email": "dan@site.example",
        "password": "long enough password",
        "accept_terms": "yes",
        "csrf_token": csrf_of(page.text),
    }
    response = await client.post("/p/acme/apply", data={**data, field: value})
    assert response.status_code == 400
    assert said in response.text  # the form comes back filled in, to be corrected
    assert (_count(services, t.partners), _count(services, t.users)) == before


async def test_unknown_program_page_is_404(client: httpx.AsyncClient, world: WebWorld) -> None:
    assert (await client.get("/p/nope")).status_code == 404
    assert (await client.get("/p/nope/apply")).status_code == 404
