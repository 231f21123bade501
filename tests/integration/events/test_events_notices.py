"""The notices job: queued cap, commission-plan and terms notices become portal inbox
messages and e-mails, once, honouring unsubscribes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from tests.integration.commissions.money_world import MoneyWorld, make_money_world

from partnerflow.bootstrap import Services
from partnerflow.commissions.services import set_plan
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.jobs import notices
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage.caps import SqlCapNotices

PLAN = """
id = "spring"
currency = "EUR"

[[versions]]
version = 1
effective_from = 2026-03-03
  [[versions.rules]]
  id = "flat"
  type = "cpa"
  amount = "30"
"""


@pytest.fixture
def world(services: Services) -> MoneyWorld:
    return make_money_world(services)


def rows(svc: Services, table: t.Table) -> list[Any]:
    with svc.engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)))


def queue_cap_notice(svc: Services, world: MoneyWorld, ref: str = "7") -> bool:
    with svc.engine.begin() as conn:
        return SqlCapNotices(conn).queue(
            program_id=ProgramId(world.program.id),
            partner_id=PartnerId(world.ann.id),
            kind="cap_changed",
            ref=ref,
            subject="Your conversions cap on offer 1 was raised",
            body="Your conversions cap per day on offer 1 is now 120 (was 100).\n"
            "Why: EPC {{ 7*7 }} <b>high</b>",
            at=svc.clock.now(),
        )


def test_a_cap_notice_reaches_the_inbox_and_email_once(
    services: Services, world: MoneyWorld
) -> None:
    assert queue_cap_notice(services, world)
    assert not queue_cap_notice(services, world)  # queued once per change and partner
    run = notices.run(services)
    assert (run.delivered, run.announcements) == (1, 1)
    assert notices.run(services) == notices.NoticeRun(0, 0, 0)
    [item] = rows(services, t.inbox_items)
    assert item.partner_id == world.ann.id
    assert item.subject == "Your conversions cap on offer 1 was raised"
    # The stored text is data, not a template, and is escaped in HTML.
    assert "EPC {{ 7*7 }} &lt;b&gt;high&lt;/b&gt;" in item.body_html
    [mail] = rows(services, t.email_outbox)
    assert (mail.to_address, mail.status) == ("ann@blog.example", "pending")
    assert mail.body_text.startswith("Hello Ann,\n\nYour conversions cap per day")
    [notice] = rows(services, t.cap_notices)
    assert (notice.status, notice.delivered_at) == ("delivered", services.clock.now())


def test_unsubscribed_partners_get_the_inbox_message_but_no_email(
    services: Services, world: MoneyWorld
) -> None:
    secret = services.settings.secret_key.get_secret_value()
    url = msg.unsubscribe_url("http://pf.test", secret, world.program.id, world.ann.id)
    token = parse_qs(urlsplit(url).query)["token"][0]
    with services.engine.begin() as conn:
        msg.unsubscribe(conn, secret, token, services.clock.now())
    queue_cap_notice(services, world)
    notices.run(services)
    assert [i.partner_id for i in rows(services, t.inbox_items)] == [world.ann.id]
    assert rows(services, t.email_outbox) == []


def test_a_plan_change_notifies_the_programs_partners_once(
    services: Services, world: MoneyWorld
) -> None:
    set_plan(world.uow(), services.clock, program_id=world.program.id, text=PLAN, author="kim")
    first = notices.run(services)
    assert (first.queued, first.delivered, first.announcements) == (2, 2, 1)
    assert notices.run(services) == notices.NoticeRun(0, 0, 0)
    inbox = rows(services, t.inbox_items)
    assert sorted(i.partner_id for i in inbox) == [world.ann.id, world.bob.id]
    assert inbox[0].subject == "Commission change for the program"
    assert "plan spring, revision 1" in inbox[0].body_html
    assert len(rows(services, t.email_outbox)) == 2


def test_terms_change_is_queued_once_per_version_and_delivered(
    services: Services, world: MoneyWorld
) -> None:
    with services.engine.begin() as conn:
        args = {"program_id": world.program.id, "version": "2026-04", "now": services.clock.now()}
        assert notices.queue_terms_change(conn, summary="New payout days.", **args) == 2
        assert notices.queue_terms_change(conn, summary="New payout days.", **args) == 0
    with services.engine.begin() as conn, pytest.raises(InvalidInput):
        notices.queue_terms_change(conn, summary=" ", **args)
    with services.engine.begin() as conn, pytest.raises(NotFound):
        notices.queue_terms_change(
            conn, program_id=999, version="1", summary="x", now=services.clock.now()
        )
    assert notices.run(services).delivered == 2
    [mail, _] = rows(services, t.email_outbox)
    assert mail.subject == "Updated program terms (version 2026-04)"
    assert "New payout days." in mail.body_text


def test_a_terms_notice_refuses_bidi_and_invisible_characters_and_queues_nothing(
    services: Services, world: MoneyWorld
) -> None:
    """The version is in the subject and the summary in the text partners get by e-mail
    and in their inbox: display text, with line breaks allowed in the summary only."""
    args = {"program_id": world.program.id, "now": services.clock.now()}
    for version, summary, said in [
        ("2026-04\u202e", "New payout days.", "version must not contain U+202E"),
        ("2026-04", "New\u200b payout days.", "summary must not contain U+200B"),
        ("2026\n04", "New payout days.", "version must not contain U+000A"),
    ]:
        with services.engine.begin() as conn, pytest.raises(InvalidInput) as err:
            notices.queue_terms_change(conn, version=version, summary=summary, **args)
        assert said in err.value.message
    assert rows(services, t.cap_notices) == []
    with services.engine.begin() as conn:
        summary = " Payouts move to the 5th.\r\nNothing else changes. "
        assert notices.queue_terms_change(conn, version="2026-04", summary=summary, **args) == 2
    assert {n.body for n in rows(services, t.cap_notices)} == {
        "We have updated the program terms to version 2026-04.\n\n"
        "Payouts move to the 5th.\nNothing else changes.\n\n"
        "Please review and accept them in the partner portal."
    }
