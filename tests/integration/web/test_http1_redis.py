"""The built-in server with Redis counters: redis-py's asyncio client needs a current task
for its timeouts, so each request runs as an asyncio task there (`Server.use_tasks`), and a
click's dedupe still works across the two requests."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select
from tests.factories import make_world

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.storage import tables as t
from partnerflow.web import http1
from partnerflow.web.tracker import Tracker

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_clicks_run_as_tasks_and_dedupe_in_redis(tmp_path: Path, redis_url: str) -> None:
    prefix = f"pft{secrets.token_hex(4)}:"  # this deployment's keys, apart from any other's
    services = build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'redis.db'}",
            spool_dir=tmp_path / "spool",
            redis_url=redis_url,
            redis_prefix=prefix,
        )
    )
    services.migrate()
    make_world(services)
    loop = asyncio.get_running_loop()
    tracker = Tracker(services)
    await loop.run_in_executor(None, tracker.start)
    server = http1.Server(tracker)
    assert server.use_tasks  # the Redis counters are asyncio: tasks, not hand-stepping
    server.start(loop)
    listening = await loop.create_server(server.protocol, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    ua = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.get("/c/ann-shop", headers={"user-agent": ua})
            visitor = first.cookies["pf_vid"]
            second = await client.get(
                "/c/ann-shop", headers={"user-agent": ua, "cookie": f"pf_vid={visitor}"}
            )
    finally:
        listening.close()
        await server.shutdown()
        await loop.run_in_executor(None, tracker.stop)
        await tracker.close_connections()
    assert (first.status_code, second.status_code) == (302, 302)
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(t.clicks.c.id, t.clicks.c.is_unique).order_by(t.clicks.c.created_at)
        ).all()
    services.close()
    assert [r.is_unique for r in rows] == [True, False]
    assert {r.id for r in rows} == {first.cookies["pf_click"], second.cookies["pf_click"]}
    # Every key the clicks made (dedupe, velocity) is under the configured prefix.
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        assert keys
        client.delete(*keys)
    finally:
        client.close()
