"""granian's RSGI shutdown hook (`TrackerRSGI.__rsgi_del__`): the writer is flushed and the
Redis counters' asyncio client — which belongs to granian's event loop — is closed on it."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
import redis
from tests.factories import make_world

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.storage.counters import RedisCounters
from partnerflow.web.rsgi import TrackerRSGI
from partnerflow.web.tracker import Tracker

pytestmark = pytest.mark.redis


def _client_names(url: str) -> set[str]:
    with redis.Redis.from_url(url) as client:
        return {entry["name"] for entry in client.client_list()}


def test_the_shutdown_hook_closes_the_redis_client_on_granians_loop(
    tmp_path: Path, redis_url: str
) -> None:
    services = build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'rsgi.db'}",
            spool_dir=tmp_path / "spool",
            redis_url=redis_url,
        )
    )
    services.migrate()
    make_world(services)
    app = TrackerRSGI(Tracker(services))
    counters = app.tracker.counters
    assert isinstance(counters, RedisCounters)
    loop = asyncio.new_event_loop()
    try:
        app.__rsgi_init__(loop)
        # What serving does: the asyncio client is made on (and belongs to) this loop.
        loop.run_until_complete(counters.check_click_async("rsgi-a", "rsgi-b", 5, None, 5))
        client = counters._aclient
        assert client is not None
        name = f"pf-rsgi-test-{secrets.token_hex(4)}"
        loop.run_until_complete(client.client_setname(name))
        assert name in _client_names(redis_url)
        app.__rsgi_del__(loop)  # granian calls it after its loop has stopped
        assert counters._aclient is None
        assert name not in _client_names(redis_url)  # disconnected, not left to the GC
        assert not app.tracker.writer.running
    finally:
        loop.close()
        services.close()
