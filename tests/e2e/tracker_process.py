"""`partnerflow track` as a subprocess for the end-to-end tests: a seeded SQLite database,
the environment that points the tracker at it, and a start that waits for `/healthz`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.factories import World, make_world

from partnerflow.bootstrap import build
from partnerflow.config import Settings

PARTNERFLOW = str(Path(sys.executable).parent / "partnerflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seeded_env(tmp_path: Path, name: str) -> tuple[dict[str, str], str, World]:
    """A migrated SQLite database with `make_world` in it: the tracker's environment (no
    Redis), the database URL and the world."""
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
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
    env.pop("PARTNERFLOW_REDIS_URL", None)
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
