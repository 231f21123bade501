"""Webhook endpoints, partner postbacks, inbound order integrations and the delivery log.

Delivery is two steps so no transaction is held open while a receiver answers: `fan_out`
turns committed outbox events into one delivery row per matching target; `claim_due` leases
due rows (by moving `next_attempt_at` forward with a conditional UPDATE, so concurrent
runners never send the same attempt) and `record_attempt` stores the outcome.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select, update

from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.text import display_text
from partnerflow.messaging.delivery import RetryPolicy
from partnerflow.messaging.events import check_event_filter, matches
from partnerflow.messaging.postbacks import check_target_url, check_template, expand
from partnerflow.storage import tables as t

LEASE = timedelta(seconds=60)
PROVIDERS = frozenset({"shopify", "stripe"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    program_id: int
    url: str
    events: tuple[str, ...]
    description: str
    is_active: bool
    consecutive_failures: int
    disabled_reason: str | None
    created_at: datetime
    secret: str


def _endpoint(row: Row[Any]) -> Endpoint:
    return Endpoint(
        id=row.id,
        program_id=row.program_id,
        url=row.url,
        events=tuple(row.events),
        description=row.description,
        is_active=row.is_active,
        consecutive_failures=row.consecutive_failures,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        secret=row.secret,
    )


def create_endpoint(
    conn: Connection,
    *,
    program_id: int,
    url: str,
    events: list[str],
    now: datetime,
    description: str = "",
    allow_private: bool = False,
) -> Endpoint:
    check_target_url(url, allow_private=allow_private)
    filters = check_event_filter(events)
    description = display_text(description, field="description") if description.strip() else ""
    if conn.execute(select(t.programs.c.id).where(t.programs.c.id == program_id)).first() is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    new_id = conn.execute(
        t.webhook_endpoints.insert()
        .values(
            program_id=program_id,
            url=url,
            secret="whsec_" + secrets.token_urlsafe(32),
            events=filters,
            description=description,
            is_active=True,
            consecutive_failures=0,
            created_at=now,
        )
        .returning(t.webhook_endpoints.c.id)
    ).scalar_one()
    return get_endpoint(conn, new_id)


def get_endpoint(conn: Connection, endpoint_id: int) -> Endpoint:
    row = conn.execute(
        select(t.webhook_endpoints).where(t.webhook_endpoints.c.id == endpoint_id)
    ).first()
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", field="endpoint")
    return _endpoint(row)


def list_endpoints(conn: Connection, program_id: int | None = None) -> list[Endpoint]:
    query = select(t.webhook_endpoints).order_by(t.webhook_endpoints.c.id)
    if program_id is not None:
        query = query.where(t.webhook_endpoints.c.program_id == program_id)
    return [_endpoint(r) for r in conn.execute(query)]


def set_endpoint_active(conn: Connection, endpoint_id: int, active: bool, reason: str) -> Endpoint:
    get_endpoint(conn, endpoint_id)
    conn.execute(
        update(t.webhook_endpoints)
        .where(t.webhook_endpoints.c.id == endpoint_id)
        .values(
            is_active=active,
            consecutive_failures=0 if active else t.webhook_endpoints.c.consecutive_failures,
            disabled_reason=None if active else reason,
        )
    )
    return get_endpoint(conn, endpoint_id)


# --- partner postbacks -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Postback:
    id: int
    partner_id: int
    url_template: str
    is_active: bool
    created_at: datetime


def _postback(row: Row[Any]) -> Postback:
    return Postback(row.id, row.partner_id, row.url_template, row.is_active, row.created_at)


def create_postback(
    conn: Connection, *, partner_id: int, url_template: str, now: datetime, allow_private: bool
) -> Postback:
    check_template(url_template, allow_private=allow_private)
    count = conn.execute(
        select(func.count())
        .select_from(t.partner_postbacks)
        .where(t.partner_postbacks.c.partner_id == partner_id, t.partner_postbacks.c.is_active)
    ).scalar_one()
    if count >= 5:
        raise InvalidInput("at most 5 active postbacks per partner", field="url_template")
    new_id = conn.execute(
        t.partner_postbacks.insert()
        .values(
            partner_id=partner_id,
            url_template=url_template,
            is_active=True,
            consecutive_failures=0,
            created_at=now,
        )
        .returning(t.partner_postbacks.c.id)
    ).scalar_one()
    row = conn.execute(select(t.partner_postbacks).where(t.partner_postbacks.c.id == new_id)).one()
    return _postback(row)


def list_postbacks(conn: Connection, partner_id: int) -> list[Postback]:
    rows = conn.execute(
        select(t.partner_postbacks)
        .where(t.partner_postbacks.c.partner_id == partner_id, t.partner_postbacks.c.is_active)
        .order_by(t.partner_postbacks.c.id)
    )
    return [_postback(r) for r in rows]


def delete_postback(conn: Connection, partner_id: int, postback_id: int) -> None:
    done = conn.execute(
        update(t.partner_postbacks)
        .where(
            t.partner_postbacks.c.id == postback_id,
            t.partner_postbacks.c.partner_id == partner_id,
            t.partner_postbacks.c.is_active,
        )
        .values(is_active=False)
    )
    if done.rowcount != 1:
        raise NotFound(f"postback {postback_id} not found", field="postback")


# --- inbound integrations ----------------------------------------------------------------


def set_integration_secret(
    conn: Connection, program_id: int, provider: str, secret: str, now: datetime
) -> None:
    if provider not in PROVIDERS:
        raise InvalidInput(
            f"provider must be one of {', '.join(sorted(PROVIDERS))}", field="provider"
        )
    if not 8 <= len(secret) <= 500:
        raise InvalidInput("secret must be 8-500 characters", field="secret")
    table = t.order_integrations
    where = and_(table.c.program_id == program_id, table.c.provider == provider)
    if conn.execute(select(table.c.id).where(where)).first() is None:
        conn.execute(
            table.insert().values(
                program_id=program_id, provider=provider, secret=secret, created_at=now
            )
        )
    else:
        conn.execute(update(table).where(where).values(secret=secret))


def integration_secret(conn: Connection, program_id: int, provider: str) -> str | None:
    table = t.order_integrations
    row = conn.execute(
        select(table.c.secret).where(table.c.program_id == program_id, table.c.provider == provider)
    ).first()
    return None if row is None else str(row.secret)


# --- fan-out and delivery ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    event_type: str
    target: str
    endpoint_id: int | None
    postback_id: int | None
    url: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        target=row.target,
        endpoint_id=row.endpoint_id,
        postback_id=row.postback_id,
        url=row.url,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


def event_body(event: Row[Any]) -> str:
    """The JSON body POSTed to endpoints: stable keys, the event id for receiver dedupe."""
    document = {
        "id": event.event_id,
        "type": event.event_type,
        "created_at": event.created_at.isoformat(),
        "program_id": event.program_id,
        "data": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def _postback_values(payload: dict[str, Any]) -> dict[str, str | None]:
    conv = payload.get("conversion") or {}
    values: dict[str, str | None] = {
        "click_id": conv.get("click_id"),
        "order_id": conv.get("order_id"),
        "amount": conv.get("amount"),
        "currency": conv.get("currency"),
        "commission": conv.get("commission"),
        "event_type": conv.get("event_type"),
        "conversion_id": str(conv["id"]) if conv.get("id") is not None else None,
    }
    values.update((conv.get("sub_ids") or {}).items())
    return values


def fan_out(conn: Connection, now: datetime, batch: int = 500) -> int:
    """Create deliveries for undispatched events; returns how many were created."""
    e = t.outbox_events
    events = conn.execute(
        select(e).where(e.c.dispatched_at.is_(None)).order_by(e.c.id).limit(batch)
    ).all()
    created = 0
    endpoints_by_program: dict[int, list[Endpoint]] = {}
    for event in events:
        targets: list[tuple[str, int | None, int | None, str, str]] = []
        if event.program_id is not None:
            if event.program_id not in endpoints_by_program:
                endpoints_by_program[event.program_id] = [
                    ep for ep in list_endpoints(conn, event.program_id) if ep.is_active
                ]
            body = event_body(event)
            for ep in endpoints_by_program[event.program_id]:
                if matches(ep.events, event.event_type):
                    targets.append((f"endpoint:{ep.id}", ep.id, None, ep.url, body))
        if event.event_type == "conversion.created" and event.partner_id is not None:
            values = _postback_values(event.payload)
            for pb in list_postbacks(conn, event.partner_id):
                url = expand(pb.url_template, values)
                targets.append((f"postback:{pb.id}", None, pb.id, url, ""))
        for target, endpoint_id, postback_id, url, body in targets:
            conn.execute(
                t.webhook_deliveries.insert().values(
                    event_id=event.event_id,
                    event_type=event.event_type,
                    target=target,
                    endpoint_id=endpoint_id,
                    postback_id=postback_id,
                    url=url,
                    body=body,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            created += 1
        conn.execute(update(e).where(e.c.id == event.id).values(dispatched_at=now))
    return created


def claim_due(conn: Connection, now: datetime, limit: int = 50) -> list[Delivery]:
    d = t.webhook_deliveries
    rows = conn.execute(
        select(d)
        .where(d.c.status == "pending", d.c.next_attempt_at <= now)
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    ).all()
    claimed = []
    for row in rows:
        done = conn.execute(
            update(d)
            .where(d.c.id == row.id, d.c.next_attempt_at == row.next_attempt_at)
            .values(next_attempt_at=now + LEASE)
        )
        if done.rowcount == 1:
            claimed.append(_delivery(row))
    return claimed


def secret_for(conn: Connection, delivery: Delivery) -> str | None:
    if delivery.endpoint_id is None:
        return None
    return get_endpoint(conn, delivery.endpoint_id).secret


def record_attempt(
    conn: Connection,
    delivery: Delivery,
    *,
    now: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    policy: RetryPolicy,
) -> str:
    """Store one attempt's outcome; returns the delivery's new status."""
    d = t.webhook_deliveries
    conn.execute(
        t.delivery_attempts.insert().values(
            delivery_id=delivery.id,
            at=now,
            status_code=status_code,
            error=(error or "")[:1000] or None,
            duration_ms=duration_ms,
        )
    )
    attempts = delivery.attempts + 1
    ok = status_code is not None and 200 <= status_code < 300
    if ok:
        conn.execute(
            update(d)
            .where(d.c.id == delivery.id)
            .values(
                status="succeeded",
                attempts=attempts,
                last_status_code=status_code,
                last_error=None,
                delivered_at=now,
            )
        )
        _reset_failures(conn, delivery)
        return "succeeded"
    retry_at = policy.next_attempt(attempts, now)
    status = "pending" if retry_at is not None else "failed"
    conn.execute(
        update(d)
        .where(d.c.id == delivery.id)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=retry_at or now,
            last_status_code=status_code,
            last_error=(error or f"HTTP {status_code}")[:1000],
        )
    )
    _count_failure(conn, delivery, policy)
    return status


def _reset_failures(conn: Connection, delivery: Delivery) -> None:
    if delivery.endpoint_id is not None:
        table: Any = t.webhook_endpoints
        target_id: int | None = delivery.endpoint_id
    else:
        table, target_id = t.partner_postbacks, delivery.postback_id
    conn.execute(update(table).where(table.c.id == target_id).values(consecutive_failures=0))


def _count_failure(conn: Connection, delivery: Delivery, policy: RetryPolicy) -> None:
    if delivery.endpoint_id is not None:
        table: Any = t.webhook_endpoints
        target_id: int | None = delivery.endpoint_id
    else:
        table, target_id = t.partner_postbacks, delivery.postback_id
    conn.execute(
        update(table)
        .where(table.c.id == target_id)
        .values(consecutive_failures=table.c.consecutive_failures + 1)
    )
    failures = conn.execute(
        select(table.c.consecutive_failures).where(table.c.id == target_id)
    ).scalar_one()
    if failures >= policy.disable_after:
        values: dict[str, Any] = {"is_active": False}
        if delivery.endpoint_id is not None:
            values["disabled_reason"] = f"disabled after {failures} consecutive failed deliveries"
        conn.execute(update(table).where(table.c.id == target_id).values(**values))


def get_delivery(conn: Connection, delivery_id: int) -> Delivery:
    row = conn.execute(
        select(t.webhook_deliveries).where(t.webhook_deliveries.c.id == delivery_id)
    ).first()
    if row is None:
        raise NotFound(f"delivery {delivery_id} not found", field="delivery")
    return _delivery(row)


def list_deliveries(
    conn: Connection, *, endpoint_id: int | None = None, after_id: int = 0, limit: int = 50
) -> list[Delivery]:
    d = t.webhook_deliveries
    query = select(d).where(d.c.id > after_id).order_by(d.c.id).limit(limit)
    if endpoint_id is not None:
        query = query.where(d.c.endpoint_id == endpoint_id)
    return [_delivery(r) for r in conn.execute(query)]


def redeliver(conn: Connection, delivery_id: int, now: datetime) -> Delivery:
    """Manual redelivery: the same event body (same event id, so receivers can dedupe)
    goes out again at the next job run, whatever its previous outcome, with a fresh retry
    budget; earlier attempts stay in the attempt log."""
    get_delivery(conn, delivery_id)
    d = t.webhook_deliveries
    conn.execute(
        update(d)
        .where(d.c.id == delivery_id)
        .values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None)
    )
    return get_delivery(conn, delivery_id)
