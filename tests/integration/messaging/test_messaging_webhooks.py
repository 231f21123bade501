"""Outgoing webhooks and partner postbacks against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from tests.factories import World, make_coupon, make_world

from partnerflow.bootstrap import Services
from partnerflow.core.clock import FixedClock
from partnerflow.core.errors import Forbidden, InvalidInput
from partnerflow.jobs.webhooks import deliver
from partnerflow.messaging.delivery import RetryPolicy
from partnerflow.messaging.signatures import verify
from partnerflow.storage import tables as t
from partnerflow.storage import webhooks as wh
from partnerflow.storage.outbox import record_conversion_published
from partnerflow.tracking.services import RecordConversion


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self, body: bytes) -> None:
                receiver.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self._record(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def do_GET(self) -> None:
                self._record(b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def world(services: Services) -> World:
    w = make_world(services)
    make_coupon(services, w.partner, w.offer, code="ANN10")
    return w


def convert(services: Services, world: World, order_id: str = "o-1") -> None:
    cmd = RecordConversion(
        token=world.program.postback_token, order_id=order_id, amount="120.00", coupon="ANN10"
    )
    record_conversion_published(services.uow(), services.clock, cmd)


def endpoint(services: Services, world: World, url: str, events: list[str]) -> wh.Endpoint:
    with services.engine.begin() as conn:
        return wh.create_endpoint(
            conn,
            program_id=world.program.id,
            url=url,
            events=events,
            now=services.clock.now(),
            allow_private=True,
        )


def test_conversion_event_is_delivered_signed(
    services: Services, world: World, receiver: Receiver
) -> None:
    ep = endpoint(services, world, receiver.url + "/hook", ["conversion.*"])
    convert(services, world)
    run = deliver(services, allow_private=True)
    assert (run.fanned_out, run.attempted, run.succeeded, run.failed) == (1, 1, 1, 0)
    [request] = receiver.requests
    assert request["path"] == "/hook"
    header = request["headers"]["Partnerflow-Signature"]
    verify(ep.secret, request["body"], header, services.clock.now())
    event = json.loads(request["body"])
    assert event["type"] == "conversion.created"
    assert event["data"]["conversion"]["order_id"] == "o-1"
    assert event["data"]["conversion"]["amount"] == "120"
    assert event["data"]["conversion"]["commission"] == "12"
    assert request["headers"]["Partnerflow-Event-Id"] == event["id"]
    # A second pass sends nothing more.
    assert deliver(services, allow_private=True).attempted == 0


def test_unmatched_filters_and_duplicates_publish_nothing(
    services: Services, world: World, receiver: Receiver
) -> None:
    endpoint(services, world, receiver.url, ["partner.approved"])
    convert(services, world)
    convert(services, world)  # duplicate order id: no second event
    with services.engine.connect() as conn:
        types = select(t.outbox_events.c.event_type).order_by(t.outbox_events.c.id)
        assert conn.execute(types).scalars().all() == ["conversion.created", "commission.created"]
    assert deliver(services, allow_private=True).fanned_out == 0
    assert receiver.requests == []


def test_failures_retry_with_backoff_then_disable(
    services: Services, world: World, receiver: Receiver, clock: FixedClock
) -> None:
    # One event per conversion (its commission.created is not subscribed): one delivery.
    ep = endpoint(services, world, receiver.url, ["conversion.*"])
    receiver.status = 503
    convert(services, world, "o-1")
    policy = RetryPolicy(base_seconds=30, max_attempts=3, disable_after=3)
    assert deliver(services, allow_private=True, policy=policy).failed == 1
    with services.engine.connect() as conn:
        [d] = wh.list_deliveries(conn, endpoint_id=ep.id)
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 503)
    assert d.next_attempt_at == clock.now() + timedelta(seconds=30)
    assert deliver(services, allow_private=True, policy=policy).attempted == 0  # not due yet
    clock.advance(timedelta(seconds=30))
    deliver(services, allow_private=True, policy=policy)
    clock.advance(timedelta(seconds=60))
    deliver(services, allow_private=True, policy=policy)
    assert len(receiver.requests) == 3
    with services.engine.connect() as conn:
        [d] = wh.list_deliveries(conn, endpoint_id=ep.id)
        attempts = conn.execute(select(t.delivery_attempts.c.status_code)).scalars().all()
        disabled = wh.get_endpoint(conn, ep.id)
    assert (d.status, d.attempts) == ("failed", 3)
    assert attempts == [503, 503, 503]
    assert disabled.is_active is False
    assert disabled.disabled_reason == "disabled after 3 consecutive failed deliveries"
    convert(services, world, "o-2")  # a disabled endpoint gets no new deliveries
    assert deliver(services, allow_private=True, policy=policy).fanned_out == 0


def test_manual_redelivery_sends_the_same_event_again(
    services: Services, world: World, receiver: Receiver
) -> None:
    ep = endpoint(services, world, receiver.url, ["conversion.created"])
    convert(services, world)
    deliver(services, allow_private=True)
    with services.engine.begin() as conn:
        [d] = wh.list_deliveries(conn, endpoint_id=ep.id)
        wh.redeliver(conn, d.id, services.clock.now())
    assert deliver(services, allow_private=True).succeeded == 1
    first, second = receiver.requests
    assert first["body"] == second["body"]


def test_partner_postback_expands_macros(
    services: Services, world: World, receiver: Receiver
) -> None:
    with services.engine.begin() as conn:
        wh.create_postback(
            conn,
            partner_id=world.partner.id,
            url_template=receiver.url + "/pb?o={order_id}&a={amount}&c={commission}&s={sub1}",
            now=services.clock.now(),
            allow_private=True,
        )
    convert(services, world, "o&evil=1")
    assert deliver(services, allow_private=True).succeeded == 1
    [request] = receiver.requests
    assert request["method"] == "GET"
    query = parse_qs(urlsplit(request["path"]).query, keep_blank_values=True)
    assert query == {"o": ["o&evil=1"], "a": ["120"], "c": ["12"], "s": [""]}


def test_private_targets_are_refused_without_the_setting(
    services: Services, world: World, receiver: Receiver
) -> None:
    with services.engine.begin() as conn, pytest.raises(InvalidInput):
        wh.create_endpoint(
            conn,
            program_id=world.program.id,
            url=receiver.url,
            events=["*"],
            now=services.clock.now(),
        )
    endpoint(services, world, receiver.url, ["*"])
    convert(services, world)
    run = deliver(services, allow_private=False)
    assert (run.attempted, run.failed) == (2, 2)  # conversion.created, commission.created
    assert receiver.requests == []
    with services.engine.connect() as conn:
        errors = [d.last_error for d in wh.list_deliveries(conn)]
    assert errors == ["refused: 127.0.0.1 does not resolve to public addresses only"] * 2


def test_replayed_signature_is_refused(services: Services) -> None:
    from partnerflow.messaging.signatures import sign

    now = services.clock.now()
    header = sign("whsec_x", b"{}", int(now.timestamp()) - 301)
    with pytest.raises(Forbidden, match="replayed"):
        verify("whsec_x", b"{}", header, now)
