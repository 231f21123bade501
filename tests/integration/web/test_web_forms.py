"""Admin forms for caps, goals, partner targets, commission plans and ad spend: each saves
through its use case with an audit entry; bad input is shown next to the form (status 400,
values kept, HTML escaped) and nothing is written; a forged CSRF token changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.integration.web.conftest import Login
from tests.integration.web.web_world import ADMIN, ANN, MANAGER, WebWorld, csrf_of

from partnerflow.bootstrap import Services
from partnerflow.storage import tables as t

pytestmark = pytest.mark.anyio

PLAN = """
id = "standard"
currency = "EUR"
[[versions]]
version = 1
effective_from = 2026-01-01
  [[versions.rules]]
  id = "sales"
  type = "cps"
  percent = "15"
"""


def _count(services: Services, table: object, **where: object) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with services.read() as conn:
        return int(conn.execute(query).scalar_one())


async def _post(
    client: object, page: str, action: str, data: dict[str, str], **kw: object
) -> object:
    form = await client.get(page)  # type: ignore[attr-defined]
    assert form.status_code == 200, form.text[:300]
    return await client.post(  # type: ignore[attr-defined]
        action, data={"csrf_token": csrf_of(form.text), **data}, **kw
    )


async def test_cap_form_saves_a_cap_with_its_reason_and_audit(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(MANAGER)
    done = await _post(
        admin,
        "/admin/caps",
        "/admin/caps",
        {
            "metric": "clicks",
            "period": "day",
            "limit": "500",
            "mode": "hard",
            "partner_id": str(world.ann.id),
            "reason": "launch week",
        },
    )
    assert done.status_code == 303  # type: ignore[attr-defined]
    with services.read() as conn:
        [cap] = conn.execute(select(t.caps)).all()
    assert (cap.metric, cap.period, cap.partner_id, cap.mode) == (
        "clicks",
        "day",
        world.ann.id,
        "hard",
    )
    assert _count(services, t.audit_log, action="cap.created", actor=f"user:{MANAGER}") == 1
    page = await admin.get("/admin/caps")
    assert "launch week" in page.text


async def test_cap_form_refuses_bad_input_shows_why_and_writes_nothing(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    audit_before = _count(services, t.audit_log)
    refused = await _post(
        admin,
        "/admin/caps",
        "/admin/caps",
        {"metric": "clicks", "period": "day", "limit": "lots", "reason": "<b>x</b>"},
    )
    assert refused.status_code == 400  # type: ignore[attr-defined]
    text = refused.text  # type: ignore[attr-defined]
    assert "Not saved" in text and "limit" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text  # kept, escaped
    no_reason = await _post(
        admin, "/admin/caps", "/admin/caps", {"metric": "clicks", "period": "day", "limit": "5"}
    )
    assert no_reason.status_code == 400  # type: ignore[attr-defined]
    assert _count(services, t.caps) == 0
    assert _count(services, t.audit_log) == audit_before


async def test_forms_refuse_a_forged_csrf_token_and_partners(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    await admin.get("/admin/caps")
    forged = await admin.post(
        "/admin/caps",
        data={"csrf_token": "forged", "metric": "clicks", "period": "day", "limit": "5",
              "reason": "x"},
    )  # fmt: skip
    assert forged.status_code == 403
    partner = await login(ANN)
    page = await partner.get("/portal")
    refused = await partner.post(
        "/admin/goals/goal",
        data={"csrf_token": csrf_of(page.text), "metric": "sales", "period": "month",
              "target": "10"},
    )  # fmt: skip
    assert refused.status_code in (303, 403)
    assert _count(services, t.caps) == 0
    assert _count(services, t.goals) == 0


async def test_goal_and_target_forms_save_and_refuse(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    ok = await _post(
        admin, "/admin/goals", "/admin/goals/goal",
        {"metric": "revenue", "period": "month", "target": "5000"},
    )  # fmt: skip
    assert ok.status_code == 303  # type: ignore[attr-defined]
    bad = await _post(
        admin, "/admin/goals", "/admin/goals/goal",
        {"metric": "happiness", "period": "month", "target": "5"},
    )  # fmt: skip
    assert bad.status_code == 400  # type: ignore[attr-defined]
    assert "Not saved" in bad.text  # type: ignore[attr-defined]
    assert _count(services, t.goals) == 1
    target = await _post(
        admin, "/admin/goals", "/admin/goals/target",
        {"partner_id": str(world.bob.id), "metric": "sales", "period": "month",
         "kind": "growth", "target": "20"},
    )  # fmt: skip
    assert target.status_code == 303  # type: ignore[attr-defined]
    no_partner = await _post(
        admin, "/admin/goals", "/admin/goals/target",
        {"partner_id": "", "metric": "sales", "period": "month", "kind": "absolute",
         "target": "20"},
    )  # fmt: skip
    assert no_partner.status_code == 400  # type: ignore[attr-defined]
    assert "choose a partner" in no_partner.text  # type: ignore[attr-defined]
    assert _count(services, t.partner_targets) == 1
    assert _count(services, t.audit_log, action="target.set") == 1


async def test_plan_form_stores_a_revision_and_shows_the_engines_field_path(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    ok = await _post(admin, "/admin/plans", "/admin/plans", {"format": "toml", "document": PLAN})
    assert ok.status_code == 303  # type: ignore[attr-defined]
    assert _count(services, t.commission_plans) == 1
    assert _count(services, t.audit_log, action="commission_plan.set") == 1
    audit_before = _count(services, t.audit_log)
    broken = PLAN.replace('percent = "15"', 'percent = "abc"')
    bad = await _post(admin, "/admin/plans", "/admin/plans", {"format": "toml", "document": broken})
    assert bad.status_code == 400  # type: ignore[attr-defined]
    text = bad.text  # type: ignore[attr-defined]
    assert "versions[0].rules[0]" in text or "percent" in text
    assert "percent = &#34;abc&#34;" in text or "percent = &quot;abc&quot;" in text  # kept
    past = PLAN + (
        "[[versions]]\nversion = 2\neffective_from = 2026-02-01\n"
        '  [[versions.rules]]\n  id = "sales"\n  type = "cps"\n  percent = "20"\n'
    )
    in_the_past = await _post(
        admin, "/admin/plans", "/admin/plans", {"format": "toml", "document": past}
    )
    assert in_the_past.status_code == 400  # type: ignore[attr-defined]
    # The engine's own reason, with the field path it names.
    assert "<code>versions</code>" in in_the_past.text  # type: ignore[attr-defined]
    assert "overlaps standard v2" in in_the_past.text  # type: ignore[attr-defined]
    assert _count(services, t.commission_plans) == 1
    assert _count(services, t.audit_log) == audit_before


async def test_spend_forms_record_rows_import_csv_and_refuse_whole_bad_files(
    login: Login, world: WebWorld, services: Services
) -> None:
    admin = await login(ADMIN)
    one = await _post(
        admin, "/admin/spend", "/admin/spend",
        {"day": "2026-03-01", "channel": "tiktok", "campaign": "spring", "amount": "120.50",
         "partner": str(world.ann.id)},
    )  # fmt: skip
    assert one.status_code == 303  # type: ignore[attr-defined]
    assert _count(services, t.ad_spend) == 1
    assert _count(services, t.audit_log, action="spend.imported") == 1
    bad_row = await _post(
        admin, "/admin/spend", "/admin/spend",
        {"day": "2030-01-01", "channel": "tiktok", "campaign": "x", "amount": "-3"},
    )  # fmt: skip
    assert bad_row.status_code == 400  # type: ignore[attr-defined]
    assert "in the future" in bad_row.text  # type: ignore[attr-defined]
    csv_text = (
        "day,channel,campaign,partner,amount\n"
        "2026-02-27,google,brand,,40\n"
        f"2026-02-28,meta,retarget,{world.bob.email},60.25\n"
    )
    imported = await _post(admin, "/admin/spend", "/admin/spend/import", {"csv": csv_text})
    assert imported.status_code == 303  # type: ignore[attr-defined]
    assert _count(services, t.ad_spend) == 3
    broken = csv_text + "2026-02-28,meta,x,nobody@nowhere.example,abc\n"
    refused = await _post(
        admin, "/admin/spend", "/admin/spend/import", {"csv": ""},
        files={"file": ("spend.csv", broken.encode(), "text/csv")},
    )  # fmt: skip
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert "nothing imported" in refused.text  # type: ignore[attr-defined]
    assert _count(services, t.ad_spend) == 3
    page = await admin.get("/admin/spend")
    assert "tiktok" in page.text and "120.50 EUR" in page.text


@pytest.mark.parametrize("bad_id", ["\u00b2", "\u0663", str(10**19), "2147483648"])
async def test_id_fields_refuse_non_ascii_digits_and_ids_past_the_integer_columns(
    login: Login, world: WebWorld, services: Services, bad_id: str
) -> None:
    # "²" passed `str.isdigit` and then failed `int()`: a 500; 10**19 reached the database
    # and overflowed its integer column: a 500 (2147483648 does on PostgreSQL).
    admin = await login(MANAGER)
    audit_before = _count(services, t.audit_log)
    cap = {"metric": "clicks", "period": "day", "limit": "5", "partner_id": str(world.ann.id),
           "reason": "launch"}  # fmt: skip
    for field in ("partner_id", "offer_id", "cap_id"):
        refused = await _post(admin, "/admin/caps", "/admin/caps", {**cap, field: bad_id})
        assert refused.status_code in (400, 404), (field, refused.status_code)  # type: ignore[attr-defined]
    target = await _post(
        admin, "/admin/goals", "/admin/goals/target",
        {"partner_id": bad_id, "metric": "sales", "period": "month", "kind": "absolute",
         "target": "20"},
    )  # fmt: skip
    assert target.status_code in (400, 404)  # type: ignore[attr-defined]
    plan = await _post(
        admin, "/admin/plans", "/admin/plans", {"document": PLAN, "offer_id": bad_id}
    )
    assert plan.status_code in (400, 404)  # type: ignore[attr-defined]
    assert _count(services, t.caps) == _count(services, t.partner_targets) == 0
    assert _count(services, t.commission_plans) == 0
    assert _count(services, t.audit_log) == audit_before


async def test_spend_forms_refuse_days_before_2000_like_the_api(
    login: Login, world: WebWorld, services: Services
) -> None:
    # The REST API takes spend days in 2000-2200; the form and the CSV import stored
    # 0001-01-01 (only future days were refused).
    admin = await login(ADMIN)
    audit_before = _count(services, t.audit_log)
    row = await _post(
        admin, "/admin/spend", "/admin/spend",
        {"day": "0001-01-01", "channel": "tiktok", "campaign": "x", "amount": "3"},
    )  # fmt: skip
    assert row.status_code == 400  # type: ignore[attr-defined]
    assert "2000" in row.text  # type: ignore[attr-defined]
    csv_text = "day,channel,campaign,amount\n1999-12-31,google,brand,40\n"
    imported = await _post(admin, "/admin/spend", "/admin/spend/import", {"csv": csv_text})
    assert imported.status_code == 400  # type: ignore[attr-defined]
    assert _count(services, t.ad_spend) == 0
    assert _count(services, t.audit_log) == audit_before
