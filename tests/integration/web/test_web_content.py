"""Terms, creatives, resources, settings, messages and the new portal pages: the happy
paths with exact values, refusals that change nothing, escaping, and isolation (a partner
trying the other partner's or another program's ids gets the same 404 as a missing id)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.factories import make_program
from tests.integration.web.conftest import Login
from tests.integration.web.web_world import ADMIN, ANN, BOB, WebWorld, add_user, csrf_of

from partnerflow.bootstrap import Services
from partnerflow.core.errors import InvalidInput
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.storage import content
from partnerflow.storage import tables as t

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def _count(services: Services, table: t.Table) -> int:
    with services.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


async def _csrf(client: object, path: str) -> str:
    page = await client.get(path)  # type: ignore[attr-defined]
    return csrf_of(page.text)


async def test_terms_block_links_until_the_current_version_is_accepted(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    token = await _csrf(admin, "/admin/terms")
    form = {
        "csrf_token": token,
        "program": "acme",
        "kind": "terms",
        "title": "Rules v1",
        "body": "# Rules\n- no <b>brand bidding</b>",
    }
    assert (await admin.post("/admin/terms", data=form)).status_code == 303
    ann = await login(ANN)
    page = await ann.get("/portal")
    assert "read and accept them" in page.text
    token = csrf_of(page.text)
    refused = await ann.post(
        "/portal/links", data={"csrf_token": token, "offer_id": str(world.offer.id)}
    )
    assert refused.status_code == 400
    assert "accept the program" in refused.text
    terms = await ann.get("/portal/terms")
    assert "&lt;b&gt;brand bidding&lt;/b&gt;" in terms.text
    with services.read() as conn:
        doc = content.current_terms(conn, world.program.id)[0]
    accepted = await ann.post(f"/portal/terms/{doc.id}/accept", data={"csrf_token": token})
    assert accepted.status_code == 303
    assert "read and accept them" not in (await ann.get("/portal")).text
    overview = await admin.get("/admin/terms")
    assert "ann" in overview.text.lower()
    with services.read() as conn:
        rows = content.acceptances(conn, world.program.id)
    assert [(r.partner_id, r.kind, r.version) for r in rows] == [(world.ann.id, "terms", 1)]
    # A second version asks again; accepting the outdated one is refused.
    form["title"] = "Rules v2"
    assert (await admin.post("/admin/terms", data=form)).status_code == 303
    old = await ann.post(f"/portal/terms/{doc.id}/accept", data={"csrf_token": token})
    assert old.status_code == 400
    assert _count(services, t.terms_acceptances) == 1


async def test_terms_of_another_program_are_not_found(
    login: Login, world: WebWorld, services: Services
) -> None:
    other = make_program(services, "other")
    now = services.clock.now()
    with services.engine.begin() as conn:
        doc = content.publish_terms(conn, other.id, "terms", "Other", "text", "test", now)
    ann = await login(ANN)
    token = await _csrf(ann, "/portal/terms")
    missing = await ann.post("/portal/terms/999999/accept", data={"csrf_token": token})
    foreign = await ann.post(f"/portal/terms/{doc.id}/accept", data={"csrf_token": token})
    assert missing.status_code == foreign.status_code == 404
    assert _count(services, t.terms_acceptances) == 0


async def test_creative_upload_checks_type_by_magic_bytes_and_size(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    token = await _csrf(admin, "/admin/creatives")
    base = {"csrf_token": token, "program": "acme", "kind": "banner", "title": "Spring <i>"}

    async def upload(name: str, data: bytes, ctype: str) -> int:
        response = await admin.post(
            "/admin/creatives", data=base, files={"file": (name, data, ctype)}
        )
        return response.status_code

    assert await upload("evil.svg", SVG, "image/svg+xml") == 415
    assert await upload("fake.png", b"GIF89" + b"x" * 10, "image/png") == 415
    assert await upload("big.png", PNG + b"\x00" * (2 * 1024 * 1024), "image/png") == 413
    assert _count(services, t.creatives) == 0
    assert await upload("ok.png", PNG, "image/png") == 303
    with services.read() as conn:
        [stored] = content.creatives(conn, world.program.id, active_only=True)
    assert (stored.content_type, stored.size, stored.title) == ("image/png", len(PNG), "Spring <i>")
    ann = await login(ANN)
    page = await ann.get("/portal/creatives")
    assert "Spring &lt;i&gt;" in page.text
    image = await ann.get(f"/portal/creatives/{stored.id}/file")
    assert (image.status_code, image.content) == (200, PNG)
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"


async def test_a_banners_text_refuses_bidi_controls_like_a_social_posts(
    login: Login, world: WebWorld, services: Services
) -> None:
    """The dashboard checked a creative's text only for social posts; a banner's text is
    shown to partners too, so storage checks it whatever the kind."""
    admin = await login(ADMIN)
    token = await _csrf(admin, "/admin/creatives")
    form = {"csrf_token": token, "program": "acme", "kind": "banner", "title": "Spring",
            "text": "Use code \u202eRAPS\u202c"}  # fmt: skip
    response = await admin.post(
        "/admin/creatives", data=form, files={"file": ("ok.png", PNG, "image/png")}
    )
    assert response.status_code == 400
    assert "text must not contain U+202E" in response.text
    assert _count(services, t.creatives) == 0


def test_content_storage_refuses_what_display_text_refuses(services: Services) -> None:
    """Titles and texts are checked where they are stored, not only by the forms and the
    API's schemas: nothing is written, the message names the field and the code point."""
    program = make_program(services, "other")
    now = services.clock.now()
    calls = [
        ("title", lambda conn: content.publish_terms(
            conn, program.id, "terms", "Rules\u2066", "text", "t", now)),
        ("body", lambda conn: content.publish_terms(
            conn, program.id, "terms", "Rules", "a\u2028b", "t", now)),
        ("title", lambda conn: content.add_creative(
            conn, program.id, kind="social_post", title="Post\u200b", text="Hi",
            content_type=None, data=None, actor="t", now=now)),
        ("text", lambda conn: content.add_creative(
            conn, program.id, kind="social_post", title="Post", text="Hi\x07",
            content_type=None, data=None, actor="t", now=now)),
        ("title", lambda conn: content.add_resource(
            conn, program.id, kind="guide", title="\u202eGuide", body="x", actor="t", now=now)),
        ("body", lambda conn: content.add_resource(
            conn, program.id, kind="guide", title="Guide", body="x\ufeff", actor="t", now=now)),
    ]  # fmt: skip
    for field, call in calls:
        with services.engine.begin() as conn, pytest.raises(InvalidInput) as err:
            call(conn)
        assert err.value.field == field and f"{field} must not contain U+" in err.value.message
    assert [_count(services, x) for x in (t.terms_documents, t.creatives, t.resources)] == [0] * 3
    # Line breaks stay (CRLF stored as LF), as the forms' own check keeps them.
    with services.engine.begin() as conn:
        rid = content.add_resource(conn, program.id, kind="guide", title=" Guide ",
                                   body="one\r\ntwo", actor="t", now=now)  # fmt: skip
        stored = content.resource(conn, program.id, rid)
    assert stored is not None and (stored.title, stored.body) == ("Guide", "one\ntwo")


async def test_creatives_and_resources_of_another_program_are_404(
    login: Login, world: WebWorld, services: Services
) -> None:
    other = make_program(services, "other")
    now = services.clock.now()
    with services.engine.begin() as conn:
        cid = content.add_creative(
            conn,
            other.id,
            kind="banner",
            title="Secret banner",
            text=None,
            content_type="image/png",
            data=PNG,
            actor="t",
            now=now,
        )
        rid = content.add_resource(
            conn, other.id, kind="guide", title="Secret guide", body="x", actor="t", now=now
        )
    ann = await login(ANN)
    for path in (f"/portal/creatives/{cid}/file", f"/portal/resources/{rid}"):
        foreign = await ann.get(path)
        missing = await ann.get(path.replace(str(cid if "creat" in path else rid), "999999"))
        assert foreign.status_code == 404
        assert (foreign.status_code, foreign.text) == (missing.status_code, missing.text)
        assert "Secret" not in foreign.text
    assert "Secret" not in (await ann.get("/portal/creatives")).text
    assert "Secret" not in (await ann.get("/portal/resources")).text


async def test_resource_text_is_rendered_safely(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    token = await _csrf(admin, "/admin/resources")
    body = "## Tips\n- use **sub-IDs**\n<script>alert(1)</script>\n[x](javascript:alert(1))"
    response = await admin.post(
        "/admin/resources",
        data={
            "csrf_token": token,
            "program": "acme",
            "kind": "guide",
            "title": "How <to>",
            "body": body,
        },
    )
    assert response.status_code == 303
    with services.read() as conn:
        [res] = content.resources(conn, world.program.id)
    ann = await login(ANN)
    page = await ann.get(f"/portal/resources/{res.id}")
    assert "<strong>sub-IDs</strong>" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert 'href="javascript' not in page.text
    assert "How &lt;to&gt;" in page.text


async def test_settings_update_is_audited_and_bad_values_change_nothing(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    token = await _csrf(admin, "/admin/settings")
    form = {
        "csrf_token": token,
        "program": "acme",
        "cookie_window_days": "45",
        "lock_period_days": "14",
        "attribution_model": "first_click",
        "fallback_url": "https://shop.example.com/sold-out",
    }
    bad = await admin.post("/admin/settings", data={**form, "cookie_window_days": "-3"})
    assert bad.status_code == 400
    bad = await admin.post("/admin/settings", data={**form, "fallback_url": "javascript:x"})
    assert bad.status_code == 400
    # int() reads "1_0" as 10 and Arabic-Indic or full-width digits: not what was typed.
    for odd in ("1_0", "\u0664\u0665", "\uff14\uff15", " 4 5 "):
        bad = await admin.post("/admin/settings", data={**form, "cookie_window_days": odd})
        assert bad.status_code == 400, odd
        assert "whole number" in bad.text
    with services.read() as conn:
        row = conn.execute(select(t.programs).where(t.programs.c.id == world.program.id)).one()
    assert (row.cookie_window_days, row.attribution_model) == (30, "last_click")
    assert (await admin.post("/admin/settings", data=form)).status_code == 303
    with services.read() as conn:
        row = conn.execute(select(t.programs).where(t.programs.c.id == world.program.id)).one()
        audit = conn.execute(
            select(t.audit_log.c.detail).where(t.audit_log.c.action == "program.settings_changed")
        ).scalar_one()
    assert (row.cookie_window_days, row.lock_period_days, row.attribution_model) == (
        45,
        14,
        "first_click",
    )
    assert audit["cookie_window_days"] == {"from": "30", "to": "45"}


async def test_messages_are_two_way_with_unread_counts(
    login: Login, world: WebWorld, services: Services
) -> None:
    ann = await login(ANN)
    token = await _csrf(ann, "/portal/messages")
    sent = await ann.post("/portal/messages", data={"csrf_token": token, "body": "Hi <b>team"})
    assert sent.status_code == 303
    admin = await login(ADMIN)
    inbox = await admin.get("/admin/messages")
    assert 'class="count">1<' in inbox.text
    thread = await admin.get(f"/admin/messages/{world.ann.id}")
    assert "Hi &lt;b&gt;team" in thread.text
    reply = await admin.post(
        f"/admin/messages/{world.ann.id}",
        data={"csrf_token": csrf_of(thread.text), "body": "Welcome"},
    )
    assert reply.status_code == 303
    assert 'aria-label="1 unread"' in (await ann.get("/portal")).text
    assert "Welcome" in (await ann.get("/portal/messages")).text
    assert 'aria-label="1 unread"' not in (await ann.get("/portal")).text
    bob = await login(BOB)
    assert "Hi &lt;b&gt;team" not in (await bob.get("/portal/messages")).text
    assert "Welcome" not in (await bob.get("/portal/messages")).text


@pytest.mark.parametrize(
    "path",
    [
        "/portal/targets",
        "/portal/caps",
        "/portal/payouts",
        "/portal/messages",
        "/portal/terms",
        "/portal/creatives",
        "/portal/resources",
    ],
)
async def test_new_portal_pages_render_and_admin_pages_refuse_partners(
    login: Login, world: WebWorld, path: str
) -> None:
    ann = await login(ANN)
    response = await ann.get(path)
    assert response.status_code == 200
    assert "Bob" not in response.text
    admin_path = path.replace("/portal", "/admin")
    if admin_path in ("/admin/targets",):
        admin_path = "/admin/goals"
    assert (await ann.get(admin_path)).status_code == 403


async def test_other_partners_payout_statement_is_404(
    login: Login, world: WebWorld, services: Services
) -> None:
    ann = await login(ANN)
    missing = await ann.get("/portal/payouts/no-such-batch")
    assert missing.status_code == 404


async def test_a_payout_batch_id_with_a_nul_is_not_found(
    login: Login, world: WebWorld, services: Services
) -> None:
    # PostgreSQL cannot compare a NUL: the export and a confirmed "paid" were 500s there.
    admin = await login(ADMIN)
    audit_before = _count(services, t.audit_log)
    token = await _csrf(admin, "/admin/payouts")
    paid = await admin.post("/admin/payouts/po%00/paid", data={"csrf_token": token,
                                                               "confirm": "po\x00"})  # fmt: skip
    assert paid.status_code == 404
    assert (await admin.get("/admin/payouts/po%00/export.csv")).status_code == 404
    assert (await admin.get("/admin/payouts/po%00")).status_code == 404
    assert _count(services, t.audit_log) == audit_before


async def test_another_program_partner_cannot_be_messaged_by_id_of_missing_partner(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    token = await _csrf(admin, "/admin/messages")
    response = await admin.post("/admin/messages/999999", data={"csrf_token": token, "body": "x"})
    assert response.status_code == 404
    assert _count(services, t.partner_messages) == 0


async def test_applications_show_screening_and_decisions_are_audited(
    login: Login, world: WebWorld, services: Services
) -> None:
    applicant = create_partner(
        services.uow(),
        services.clock,
        CreatePartner(
            program_id=world.program.id,
            name="New <script>",
            email="new@blog.example",
            status="applied",
        ),
        actor="test",
    )
    admin = await login(ADMIN)
    page = await admin.get("/admin/applications")
    assert "New &lt;script&gt;" in page.text
    assert f"/admin/applications/{applicant.id}" in page.text
    token = csrf_of(page.text)
    bad = await admin.post(
        f"/admin/applications/{applicant.id}", data={"csrf_token": token, "decision": "maybe"}
    )
    assert bad.status_code == 400
    ok = await admin.post(
        f"/admin/applications/{applicant.id}",
        data={"csrf_token": token, "decision": "approve", "note": "fits"},
    )
    assert ok.status_code == 303
    with services.read() as conn:
        status = conn.execute(
            select(t.partners.c.status).where(t.partners.c.id == applicant.id)
        ).scalar_one()
    assert status == "approved"
    again = await admin.post(
        f"/admin/applications/{applicant.id}", data={"csrf_token": token, "decision": "reject"}
    )
    assert again.status_code == 400


async def test_report_builder_exports_csv(login: Login, world: WebWorld) -> None:
    admin = await login(ADMIN)
    page = await admin.get("/admin/reports?dimension=partner")
    assert page.status_code == 200
    csv_response = await admin.get("/admin/reports?dimension=partner&format=csv")
    assert csv_response.headers["content-type"].startswith("text/csv")
    lines = csv_response.text.strip().split("\n")
    assert lines[0].startswith("key,label,clicks")
    assert len(lines) == 3  # Ann and Bob
    bad = await admin.get("/admin/reports?from=2020-01-01&to=2019-01-01")
    assert bad.status_code == 400
    # The last local day + 1 (9999-12-31) or the default first day, 29 days before
    # (0001-01-01), overflowed: a 500.
    for period in ("to=9999-12-31", "from=9999-12-01&to=9999-12-31", "to=0001-01-01"):
        bad = await admin.get(f"/admin/reports?{period}")
        assert bad.status_code == 400 and "dates must be in 2000-2200" in bad.text
        bad = await admin.get(f"/admin/reports?{period}&format=csv")
        assert bad.status_code == 400


async def test_api_is_mounted_and_exempt_from_csrf(client: object, world: WebWorld) -> None:
    response = await client.get("/api/v1/openapi.json")  # type: ignore[attr-defined]
    assert response.status_code == 200
    refused = await client.post("/api/v1/partners", json={})  # type: ignore[attr-defined]
    assert refused.status_code == 401  # the API's own bearer check, not the UI's CSRF 403


async def test_partner_without_login_is_sent_to_login(client: object, world: WebWorld) -> None:
    response = await client.get("/portal/terms")  # type: ignore[attr-defined]
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_add_user_helper_is_shared(services: Services) -> None:
    # Keeps the import used by the isolation helpers below honest.
    assert add_user.__name__ == "add_user"


async def test_portal_ids_past_the_integer_columns_are_not_found(
    login: Login, world: WebWorld, services: Services
) -> None:
    # The path's {id:int} reached the database unbounded: OverflowError on SQLite past
    # 2**63, "integer out of range" on PostgreSQL from 2147483648 — a 500, not a 404.
    ann = await login(ANN)
    token = await _csrf(ann, "/portal/terms")
    for big in ("2147483648", str(10**19)):
        accept = await ann.post(f"/portal/terms/{big}/accept", data={"csrf_token": token})
        assert accept.status_code == 404, big
        for page in ("links", "coupons", "resources"):
            assert (await ann.get(f"/portal/{page}/{big}")).status_code == 404, (page, big)
        assert (await ann.get(f"/portal/creatives/{big}/file")).status_code == 404, big
    assert _count(services, t.terms_acceptances) == 0
