"""SIGKILL under load loses no acknowledged click or conversion.

`partnerflow track` (the built-in server) runs as a subprocess on SQLite, and when
PARTNERFLOW_TEST_POSTGRES_URL is set also on PostgreSQL (with Redis counters when
PARTNERFLOW_TEST_REDIS_URL is set: a tracker node of a multi-node deployment); clicks and
postbacks are sent concurrently, every acknowledged one (302 / 200) is recorded, the whole
process group is killed with SIGKILL mid-stream, the tracker is restarted, and then every
acknowledged click id must be in the database and every acknowledged postback must answer
"duplicate": true.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.e2e.tracker_process import free_port, seeded_env, start_track

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.storage import tables as t

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return start_track(env, port, "--workers", "1")


@pytest.fixture
def tracker_env(tmp_path: Path, database_url: str) -> Iterator[tuple[dict[str, str], str]]:
    redis = os.environ.get("PARTNERFLOW_TEST_REDIS_URL") if "postgresql" in database_url else None
    env, _, world = seeded_env(tmp_path, "kill", database_url=database_url, redis_url=redis)
    yield env, world.program.postback_token


async def test_sigkill_loses_no_acknowledged_event(
    tracker_env: tuple[dict[str, str], str],
) -> None:
    env, token = tracker_env
    port = free_port()
    proc = start(env, port)
    clicks: list[str] = []
    orders: list[str] = []
    stop_at = time.monotonic() + 2.0
    limits = httpx.Limits(max_connections=32)

    async def clicker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at + 0.5:
            try:
                r = await client.get("/c/ann-shop")
            except httpx.HTTPError:
                return
            if r.status_code == 302:
                clicks.append(r.headers["location"].rsplit("click_id=", 1)[1])

    async def poster(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while time.monotonic() < stop_at + 0.5:
            i += 1
            order = f"k{n}-{i}"
            try:
                r = await client.get(
                    "/postback", params={"token": token, "order_id": order, "amount": "9.99"}
                )
            except httpx.HTTPError:
                return
            if r.status_code == 200:
                orders.append(order)

    async def killer() -> None:
        await asyncio.sleep(max(stop_at - time.monotonic(), 0))
        os.killpg(proc.pid, signal.SIGKILL)

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=5
    ) as client:
        await asyncio.gather(
            *(clicker(client) for _ in range(12)),
            *(poster(client, n) for n in range(6)),
            killer(),
        )
    proc.wait(timeout=10)
    assert len(clicks) > 50 and len(orders) > 20, (len(clicks), len(orders))

    restarted = start(env, port)
    try:
        services = build(Settings(database_url=env["PARTNERFLOW_DATABASE_URL"]))
        with services.engine.connect() as conn:
            stored = set(conn.execute(select(t.clicks.c.id)).scalars())
        services.close()
        assert set(clicks) <= stored
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answers = await asyncio.gather(
                *(
                    client.get(
                        "/postback", params={"token": token, "order_id": o, "amount": "9.99"}
                    )
                    for o in orders
                )
            )
        assert all(a.status_code == 200 and a.json()["duplicate"] is True for a in answers)
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(timeout=20)
