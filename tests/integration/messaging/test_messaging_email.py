"""Announcements, notices and the shout-out through a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import date
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from tests.factories import World, make_coupon, make_partner, make_world

from partnerflow.bootstrap import Services
from partnerflow.core.errors import InvalidInput
from partnerflow.jobs.outbox import SmtpConfig, send_due
from partnerflow.messaging.audiences import Segment
from partnerflow.messaging.shoutouts import commission_change_notice
from partnerflow.storage import messages as msg
from partnerflow.storage import tables as t
from partnerflow.storage.outbox import record_conversion_published
from partnerflow.tracking.services import RecordConversion

SECRET = "test-secret"
BASE = "http://pf.test"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, SmtpConfig]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port: take a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpConfig(host="127.0.0.1", port=port, sender="news@acme.test")
    finally:
        controller.stop()


@pytest.fixture
def world(services: Services) -> World:
    w = make_world(services)
    make_partner(services, w.program, email="bob@site.example", status="active")
    make_partner(services, w.program, email="cy@site.example", status="applied")
    return w


def announce(
    services: Services, world: World, body: str, segment: Segment | None = None
) -> msg.Announcement:
    with services.engine.begin() as conn:
        return msg.queue_announcement(
            conn,
            program_id=world.program.id,
            kind="newsletter",
            subject="March news",
            body=body,
            segment=segment or Segment(),
            author="manager@acme",
            now=services.clock.now(),
            secret=SECRET,
            base_url=BASE,
        )


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


def test_announcement_reaches_segment_by_smtp_once(
    services: Services, world: World, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, config = smtp
    ann = announce(services, world, "Hi {{ partner.name }}, <b>new</b> offer!")
    assert (ann.recipients, ann.emails_queued) == (2, 2)  # the 'applied' partner is not in it
    assert send_due(services, config).sent == 2
    assert send_due(services, config).sent == 0  # never sent twice
    assert sorted(m["To"] for m in inbox.messages) == ["ann@blog.example", "bob@site.example"]
    ann_mail = next(m for m in inbox.messages if m["To"] == "ann@blog.example")
    assert ann_mail["Subject"] == "March news"
    assert text_of(ann_mail).startswith("Hi Ann, <b>new</b> offer!")
    assert ann_mail["List-Unsubscribe"].strip().startswith(f"<{BASE}/api/v1/unsubscribe?token=")
    with services.engine.connect() as conn:
        [item] = msg.inbox(conn, world.partner.id)
        assert msg.inbox_unread(conn, world.partner.id) == 1
    assert item.body_html == "<p>Hi Ann, &lt;b&gt;new&lt;/b&gt; offer!</p>"


def test_unsubscribe_is_honoured(
    services: Services, world: World, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, config = smtp
    token = msg.unsubscribe_url(BASE, SECRET, world.program.id, world.partner.id).split("token=")[1]
    announce(services, world, "first")
    with services.engine.begin() as conn:
        msg.unsubscribe(conn, SECRET, token, services.clock.now())
        msg.unsubscribe(conn, SECRET, token, services.clock.now())  # idempotent
    announce(services, world, "second")
    send_due(services, config)
    assert [m["To"] for m in inbox.messages] == ["bob@site.example", "bob@site.example"]
    with services.engine.connect() as conn:
        assert len(msg.inbox(conn, world.partner.id)) == 2  # the portal still shows both
        # the queued first one was skipped; the second was never queued for Ann
        assert msg.email_counts(conn) == {"sent": 2, "skipped": 1}


def test_forged_unsubscribe_token_is_refused(services: Services, world: World) -> None:
    token = msg.unsubscribe_url(BASE, SECRET, world.program.id, world.partner.id).split("token=")[1]
    forged = token.replace(f".{world.partner.id}.", ".2.", 1)
    with services.engine.begin() as conn, pytest.raises(InvalidInput, match="does not verify"):
        msg.unsubscribe(conn, SECRET, forged, services.clock.now())


def test_template_errors_queue_nothing(services: Services, world: World) -> None:
    with pytest.raises(InvalidInput, match="template error"):
        announce(services, world, "Hi {{ partner.nickname }}")
    with pytest.raises(InvalidInput, match="template error"):
        announce(services, world, "{{ ''.__class__.__mro__ }}")
    with services.engine.connect() as conn:
        assert conn.execute(select(t.email_outbox.c.id)).all() == []


def test_smtp_failure_is_retried_later(services: Services, world: World) -> None:
    announce(services, world, "hello", Segment(partner_ids=(world.partner.id,)))
    dead = SmtpConfig(host="127.0.0.1", port=1, timeout=1)
    run = send_due(services, dead)
    assert (run.sent, run.failed) == (0, 1)
    with services.engine.connect() as conn:
        row = conn.execute(select(t.email_outbox)).one()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("ConnectionRefusedError")


def test_commission_notice_goes_to_partners_of_the_offer(
    services: Services, world: World, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, config = smtp
    notice = commission_change_notice(world.offer.name, "10% of sale", "12% of sale {{ x }}")
    with services.engine.begin() as conn:
        ann = msg.send_notice(
            conn,
            notice,
            program_id=world.program.id,
            now=services.clock.now(),
            secret=SECRET,
            base_url=BASE,
            offer_id=world.offer.id,
        )
    assert ann.recipients == 1  # only Ann has a link on the offer
    send_due(services, config)
    [mail] = inbox.messages
    assert "changes from 10% of sale to 12% of sale {{ x }}." in text_of(mail)


def test_monthly_shoutout_names_top_performers(
    services: Services, world: World, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, config = smtp
    make_coupon(services, world.partner, world.offer, code="ANN10")
    for i, amount in enumerate(["100.00", "50.00"]):
        cmd = RecordConversion(
            token=world.program.postback_token, order_id=f"o{i}", amount=amount, coupon="ANN10"
        )
        record_conversion_published(services.uow(), services.clock, cmd)
    with services.engine.begin() as conn:
        ann = msg.queue_shoutout(
            conn,
            program_id=world.program.id,
            month=date(2026, 3, 1),
            now=services.clock.now(),
            secret=SECRET,
            base_url=BASE,
        )
        again = msg.queue_shoutout(
            conn,
            program_id=world.program.id,
            month=date(2026, 3, 1),
            now=services.clock.now(),
            secret=SECRET,
            base_url=BASE,
        )
    assert again.id == ann.id
    send_due(services, config)
    assert len(inbox.messages) == 2
    body = text_of(inbox.messages[0])
    assert "1. Ann — 2 conversions, 150.00 EUR in sales" in body
    assert inbox.messages[0]["Subject"] == "Top partners of March 2026 at acme program"


def test_messages_have_unread_counts(services: Services, world: World) -> None:
    pid = world.partner.id
    now = services.clock.now()
    with services.engine.begin() as conn:
        msg.post_message(
            conn,
            partner_id=pid,
            sender="partner",
            author="ann",
            body="Can I get a higher rate?",
            now=now,
        )
        msg.post_message(
            conn, partner_id=pid, sender="partner", author="ann", body="Please?", now=now
        )
        assert msg.unread_for_managers(conn, world.program.id) == {pid: 2}
        assert msg.mark_thread_read(conn, pid, "manager", now) == 2
        msg.post_message(
            conn, partner_id=pid, sender="manager", author="m", body="Yes, from April.", now=now
        )
        assert msg.unread_for_managers(conn, world.program.id) == {}
        assert msg.unread_for_partner(conn, pid) == 1
        assert [m.body for m in msg.thread(conn, pid)] == [
            "Can I get a higher rate?",
            "Please?",
            "Yes, from April.",
        ]
