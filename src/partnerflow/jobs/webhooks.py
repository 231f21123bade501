"""The webhook and postback delivery job: fan committed outbox events out to their targets,
then send what is due. Safe to run concurrently and to re-run (leases and conditional
updates); never runs inside a request, so nothing on the tracking path waits for it.

Run it from cron or a loop (`partnerflow webhooks deliver`, `partnerflow jobs run`); each
call does one pass.

Partner postbacks: `storage.webhooks.fan_out` calls them for `conversion.created`; the other
`messaging.postbacks.POSTBACK_EVENTS` (`conversion.reversed`) are fanned out to postbacks
here, in the same transaction and before it, so each (event, postback) gets one delivery.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, select

from partnerflow.bootstrap import Services
from partnerflow.messaging.delivery import RetryPolicy
from partnerflow.messaging.postbacks import POSTBACK_EVENTS, all_public, expand, postback_values
from partnerflow.messaging.signatures import SIGNATURE_HEADER, sign
from partnerflow.storage import tables as t
from partnerflow.storage import webhooks as wh

USER_AGENT = "partnerflow-webhooks/1"


@dataclass(frozen=True)
class DeliveryRun:
    fanned_out: int
    attempted: int
    succeeded: int
    failed: int


def fan_out_postbacks(conn: Connection, now: datetime, batch: int = 500) -> int:
    """Postback deliveries for undispatched events of `POSTBACK_EVENTS` that
    `storage.webhooks.fan_out` does not handle itself; idempotent (an existing delivery of
    the same event and target is left alone)."""
    extra = sorted(POSTBACK_EVENTS - {"conversion.created"})
    e = t.outbox_events
    events = conn.execute(
        select(e)
        .where(e.c.dispatched_at.is_(None), e.c.event_type.in_(extra), e.c.partner_id.is_not(None))
        .order_by(e.c.id)
        .limit(batch)
    ).all()
    created = 0
    d = t.webhook_deliveries
    for event in events:
        values = postback_values(event.event_type, event.payload)
        for pb in wh.list_postbacks(conn, event.partner_id):
            target = f"postback:{pb.id}"
            exists = conn.execute(
                select(d.c.id).where(d.c.event_id == event.event_id, d.c.target == target)
            ).first()
            if exists is not None:
                continue
            conn.execute(
                d.insert().values(
                    event_id=event.event_id,
                    event_type=event.event_type,
                    target=target,
                    endpoint_id=None,
                    postback_id=pb.id,
                    url=expand(pb.url_template, values),
                    body="",
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            created += 1
    return created


def resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def target_refusal(url: str, allow_private: bool) -> str | None:
    """Why `url` must not be called now, or None. Checked at send time, after DNS, so a
    name that resolves to an internal address is refused (SSRF)."""
    host = urlsplit(url).hostname
    if not host:
        return "URL has no host"
    if allow_private:
        return None
    if not all_public(resolve(host)):
        return f"{host} does not resolve to public addresses only"
    return None


def send_one(
    client: httpx.Client, delivery: wh.Delivery, secret: str | None, now_ts: int
) -> tuple[int | None, str | None]:
    try:
        if delivery.endpoint_id is not None and secret is not None:
            body = delivery.body.encode()
            response = client.post(
                delivery.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    SIGNATURE_HEADER: sign(secret, body, now_ts),
                    "Partnerflow-Event-Id": delivery.event_id,
                    "Partnerflow-Event-Type": delivery.event_type,
                },
            )
        else:
            response = client.get(delivery.url, headers={"User-Agent": USER_AGENT})
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None


def deliver(
    services: Services,
    *,
    policy: RetryPolicy | None = None,
    allow_private: bool | None = None,
    client: httpx.Client | None = None,
    limit: int = 100,
) -> DeliveryRun:
    """One pass: fan out, then attempt every due delivery once."""
    policy = policy or RetryPolicy()
    if allow_private is None:
        allow_private = bool(getattr(services.settings, "allow_private_webhook_targets", False))
    clock = services.clock
    with services.engine.begin() as conn:
        fanned = fan_out_postbacks(conn, clock.now())
        fanned += wh.fan_out(conn, clock.now())
    with services.engine.begin() as conn:
        due = wh.claim_due(conn, clock.now(), limit)
        secrets_by_id = {d.id: wh.secret_for(conn, d) for d in due}
    own_client = client is None
    # No redirects: a receiver could otherwise bounce us to an internal address.
    http = client or httpx.Client(timeout=policy.timeout_seconds, follow_redirects=False)
    succeeded = failed = 0
    try:
        for delivery in due:
            started = time.monotonic()
            refusal = target_refusal(delivery.url, allow_private)
            status_code: int | None
            error: str | None
            if refusal is not None:
                status_code, error = None, f"refused: {refusal}"
            else:
                status_code, error = send_one(
                    http, delivery, secrets_by_id[delivery.id], int(clock.now().timestamp())
                )
            duration = int((time.monotonic() - started) * 1000)
            with services.engine.begin() as conn:
                outcome = wh.record_attempt(
                    conn,
                    delivery,
                    now=clock.now(),
                    status_code=status_code,
                    error=error,
                    duration_ms=duration,
                    policy=policy,
                )
            if outcome == "succeeded":
                succeeded += 1
            else:
                failed += 1
    finally:
        if own_client:
            http.close()
    return DeliveryRun(fanned, len(due), succeeded, failed)
