"""`partnerflow track` serves the tracker on its built-in HTTP/1.1 server (`web.http1`, the
default) with a supervisor and two forked workers: a click redirects with its cookie and its
row is stored, a keep-alive connection serves several requests, a worker killed with SIGKILL
is restarted while the other keeps answering, and SIGTERM stops everything with exit code 0
and every answered click stored. An unknown `--server` is refused."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.e2e.tracker_process import (
    PARTNERFLOW,
    assert_click_redirects_and_is_stored,
    free_port,
    seeded_env,
    start_track,
)
from tests.factories import World

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.storage import tables as t

pytestmark = [pytest.mark.slow]


UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def _state(pid: int | str) -> tuple[str, int] | None:
    """A process's state letter and parent pid, from /proc/<pid>/stat; None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    state, ppid = stat.rpartition(")")[2].split()[:2]
    return state, int(ppid)


def children(pid: int) -> set[int]:
    """The live (not zombie) child processes of `pid`, read from /proc (no psutil)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _state(entry.name)
            if info is not None and info[1] == pid and info[0] != "Z":
                found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class RunningTracker:
    proc: subprocess.Popen[bytes]
    base: str
    port: int
    url: str
    world: World

    def click(self, sub1: str) -> str:
        """A click; its id once answered with a redirect."""
        r = httpx.get(
            self.base + "/c/ann-shop",
            params={"sub1": sub1},
            headers={"user-agent": UA},
            timeout=5,
        )
        assert r.status_code == 302, r.text
        return r.cookies["pf_click"]

    def stored_clicks(self) -> dict[str, str]:
        """Every stored click: its id and sub1."""
        services = build(Settings(database_url=self.url))
        try:
            with services.engine.connect() as conn:
                return dict(conn.execute(select(t.clicks.c.id, t.clicks.c.sub1)).all())
        finally:
            services.close()


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[RunningTracker]:
    env, url, world = seeded_env(tmp_path, "http1")
    port = free_port()
    proc = start_track(env, port, "--workers", "2", capture=True)
    try:
        yield RunningTracker(proc, f"http://127.0.0.1:{port}", port, url, world)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate(timeout=20)[0].decode(errors="replace")
        assert "built-in HTTP/1.1 server" in out, out


def test_click_redirects_stores_its_row_and_keep_alive_serves_several_requests(
    tracker: RunningTracker,
) -> None:
    assert_click_redirects_and_is_stored(tracker.base, tracker.url, tracker.world, UA)

    # One connection, several requests: http.client reconnects only when the server closed.
    client = http.client.HTTPConnection("127.0.0.1", tracker.port, timeout=5)
    client.connect()
    sock = client.sock
    answers = []
    for path in ("/healthz", "/c/ann-shop?sub1=kept-alive", "/nothing", "/pf.js", "/healthz"):
        client.request("GET", path, headers={"user-agent": UA})
        response = client.getresponse()
        response.read()
        assert response.getheader("connection") is None  # not "close"
        answers.append(response.status)
        assert client.sock is sock
    client.close()
    assert answers == [200, 302, 404, 200, 200]
    assert sorted(tracker.stored_clicks().values()) == ["kept-alive", "spring"]


def test_a_killed_worker_is_restarted_and_sigterm_stores_every_answered_click(
    tracker: RunningTracker,
) -> None:
    supervisor = tracker.proc.pid
    wait_for(lambda: len(children(supervisor)) == 2, "two workers")
    first, second = sorted(children(supervisor))
    answered = [tracker.click(f"before-{i}") for i in range(10)]

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: first not in children(supervisor), "the killed worker to be reaped")
    # The other worker answers while the supervisor starts a replacement.
    while len(children(supervisor) - {second}) == 0:
        assert httpx.get(tracker.base + "/healthz", timeout=5).status_code == 200
        answered.append(tracker.click("during-restart"))
    (replacement,) = children(supervisor) - {second}
    assert replacement != first

    # With the surviving original worker stopped, only the replacement can accept: it
    # serves (the request waits in the listen backlog until the replacement is up).
    os.kill(second, signal.SIGSTOP)
    try:
        wait_for(lambda: (_state(second) or ("?",))[0] == "T", "the other worker to stop")
        assert httpx.get(tracker.base + "/healthz", timeout=15).status_code == 200
        answered.append(tracker.click("by-replacement"))
    finally:
        os.kill(second, signal.SIGCONT)
    answered += [tracker.click(f"after-{i}") for i in range(10)]
    assert children(supervisor) == {second, replacement}

    tracker.proc.send_signal(signal.SIGTERM)  # the supervisor alone: it forwards
    assert tracker.proc.wait(timeout=20) == 0
    # The supervisor waited for its workers: none is left running (or unreaped).
    assert not [pid for pid in (second, replacement) if Path(f"/proc/{pid}").exists()]
    stored = tracker.stored_clicks()
    assert set(answered) <= set(stored)
    assert stored[answered[-1]] == "after-9"


def test_an_unknown_server_is_refused() -> None:
    result = subprocess.run(
        [PARTNERFLOW, "track", "--server", "nope"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--server must be builtin or granian" in result.stderr
