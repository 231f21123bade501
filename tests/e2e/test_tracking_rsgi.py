"""`partnerflow track --server granian` serves the tracker over granian's RSGI interface
(granian's default there; the built-in server is tested in test_tracking_http1.py): the
same handlers as the ASGI app: a click redirects with its cookie and its row is stored, a
postback is recorded and answered, junk is refused with JSON, never a 500."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.tracker_process import (
    assert_click_redirects_and_is_stored,
    free_port,
    seeded_env,
    start_track,
)
from tests.factories import World

pytestmark = [pytest.mark.slow]

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[tuple[str, str, World]]:
    env, url, world = seeded_env(tmp_path, "rsgi")
    port = free_port()
    proc = start_track(env, port, "--server", "granian", "--interface", "rsgi", capture=True)
    try:
        yield f"http://127.0.0.1:{port}", url, world
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=20)[0].decode(errors="replace")
        assert "RSGI" in out, out


def test_rsgi_click_redirects_and_stores_its_row(tracker: tuple[str, str, World]) -> None:
    base, url, world = tracker
    click_id = assert_click_redirects_and_is_stored(base, url, world, UA)
    head = httpx.head(base + "/c/ann-shop", headers={"user-agent": UA})
    assert (head.status_code, head.headers["location"]) == (302, "https://shop.example.com/landing")
    assert "set-cookie" not in head.headers  # a HEAD is no click

    pb = httpx.post(
        base + "/postback",
        data={"order_id": "R-1", "amount": "100", "click_id": click_id},
        headers={"x-partnerflow-token": world.program.postback_token},
    )
    assert pb.status_code == 200
    body = pb.json()
    assert (body["duplicate"], body["attributed_by"], body["partner_id"]) == (
        False, "click_id", world.partner.id,
    )  # fmt: skip
    again = httpx.get(
        base + "/postback",
        params={"token": world.program.postback_token, "order_id": "R-1", "amount": "100"},
    )
    assert again.json()["duplicate"] is True


def test_rsgi_refusals_are_json(tracker: tuple[str, str, World]) -> None:
    base, _, _ = tracker
    unknown = httpx.get(base + "/c/no-such-link")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    bad = httpx.get(base + "/c/ann-shop?sub1=%ff")
    assert (bad.status_code, bad.json()["field"]) == (400, "query")
    token = httpx.get(base + "/postback", params={"token": "nope", "order_id": "x"})
    assert token.status_code == 403
    assert httpx.get(base + "/nothing").status_code == 404
    pixel = httpx.get(base + "/i/ann-shop")
    assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif")
