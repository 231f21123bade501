"""`partnerflow track` as a subprocess for the end-to-end tests: a seeded database,
the environment that points the tracker at it, and a start that waits for `/healthz`."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select
from tests.factories import World, make_world

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.storage import tables as t

PARTNERFLOW = str(Path(sys.executable).parent / "partnerflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seeded_env(
    tmp_path: Path, name: str, *, database_url: str | None = None, redis_url: str | None = None
) -> tuple[dict[str, str], str, World]:
    """A migrated database (a new SQLite file unless `database_url` names an empty one) with
    `make_world` in it: the tracker's environment (Redis counters only with `redis_url`),
    the database URL and the world."""
    url = database_url or f"sqlite:///{tmp_path / f'{name}.db'}"
    services = build(Settings(database_url=url, spool_dir=tmp_path / "spool"))
    services.migrate()
    world = make_world(services)
    services.close()
    env = {
        **os.environ,
        "PARTNERFLOW_DATABASE_URL": url,
        "PARTNERFLOW_SPOOL_DIR": str(tmp_path / "spool"),
        "PARTNERFLOW_SECRET_KEY": f"{name}-test-secret",
    }
    if redis_url is None:
        env.pop("PARTNERFLOW_REDIS_URL", None)
    else:  # keys of their own, apart from other tests sharing the Redis database
        env["PARTNERFLOW_REDIS_URL"] = redis_url
        env["PARTNERFLOW_REDIS_PREFIX"] = f"pft{secrets.token_hex(4)}:"
    return env, url, world


def start_track(
    env: dict[str, str], port: int, *args: str, capture: bool = False
) -> subprocess.Popen[bytes]:
    """`partnerflow track --port <port> <args>` in its own process group, once `/healthz`
    answers 200 (killed, and AssertionError, if it does not within 30 s). `capture` keeps
    its output (stderr merged) for the test to read."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen(
        [PARTNERFLOW, "track", "--port", str(port), *args],
        env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    output = proc.communicate(timeout=10)[0]
    raise AssertionError(f"tracker did not start: {output!r}")


def assert_click_redirects_and_is_stored(
    base: str, database_url: str, world: World, ua: str
) -> str:
    """A click with sub-ids, UTM and a spoofed X-Forwarded-For: a 302 to the landing page
    with its click id in the URL and the cookie, and its row stored with the peer address
    (no trusted proxy) and the parsed agent. Returns the click id."""
    r = httpx.get(
        base + "/c/ann-shop",
        params={"sub1": "spring", "utm_source": "blog"},
        headers={"user-agent": ua, "x-forwarded-for": "198.51.100.99"},
    )
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    query = parse_qs(location.query)
    click_id = query["click_id"][0]
    assert (location.netloc, location.path, query["utm_source"]) == (
        "shop.example.com", "/landing", ["blog"],
    )  # fmt: skip
    assert r.cookies["pf_click"] == click_id
    assert "pf_vid" in r.cookies
    services = build(Settings(database_url=database_url))
    with services.engine.connect() as conn:
        row = conn.execute(select(t.clicks).where(t.clicks.c.id == click_id)).one()
    services.close()
    assert (row.link_id, row.partner_id, row.sub1) == (world.link.id, world.partner.id, "spring")
    # No trusted proxy configured: X-Forwarded-For is ignored, the peer address is stored.
    assert row.ip == "127.0.0.1"
    assert (row.device, row.os, row.browser, row.is_unique) == (
        "desktop", "Windows", "Chrome", True,
    )  # fmt: skip
    return click_id
