"""Real-browser tests: granian serves the whole app (tracker + UI) on a real SQLite file;
Playwright drives Debian's Chromium (never a downloaded browser).

Covers: log in as admin and as partner, the key pages (with the chart drawn), keyboard-only
login, and the full flow — a partner builds a link, a browser follows it to the shop's
landing page, the shop's server fires the postback, and the conversion shows up in the
admin dashboard and in the partner's portal. With PARTNERFLOW_SCREENSHOTS=1 one more test
seeds the demo program (`partnerflow demo seed --clicks 50000`, then `partnerflow report
refresh`), serves it with `partnerflow serve --demo`, and saves the main pages to
docs/screenshots/ (CI leaves them alone).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.factories import make_link, make_offer
from tests.integration.web.web_world import ADMIN, ANN, PASSWORD, WebWorld, make_web_world

from partnerflow.bootstrap import build
from partnerflow.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = os.environ.get("PARTNERFLOW_SCREENSHOTS") == "1"
SHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing: install Debian's chromium (apt-get install -y "
        "chromium; ./scripts/setup does it) to run the browser tests",
    ),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Shop(BaseHTTPRequestHandler):
    """The brand's landing page: it only has to exist and show the URL it was given."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>Acme shop</title><h1>Acme shop landing</h1>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Server:
    base: str
    shop: str
    world: WebWorld
    shop_link_code: str


def _wait_for(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/login", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = log_path.read_text(errors="replace")
            pytest.fail(f"server did not start:\n{out[-3000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    shop_port, port = _free_port(), _free_port()
    shop = ThreadingHTTPServer(("127.0.0.1", shop_port), _Shop)
    threading.Thread(target=shop.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PARTNERFLOW_DATABASE_URL": f"sqlite:///{tmp / 'e2e.db'}",
        "PARTNERFLOW_PUBLIC_BASE_URL": base,
        "PARTNERFLOW_SECRET_KEY": secrets.token_urlsafe(32),
        "PARTNERFLOW_SPOOL_DIR": str(tmp / "spool"),
    }
    settings = Settings(database_url=env["PARTNERFLOW_DATABASE_URL"], spool_dir=tmp / "spool")
    services = build(settings)
    services.migrate()
    world = make_web_world(services)
    # An offer whose landing page is the local shop, so the browser can really get there.
    local_offer = make_offer(
        services, world.program, name="Local shop", landing_url=f"http://localhost:{shop_port}/"
    )
    link = make_link(services, world.ann, local_offer, code="ann-local")
    services.close()
    log_path = tmp / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "partnerflow.web.server:app_factory",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = log_path.read_text(errors="replace")
                pytest.fail(f"server did not start:\n{out[-3000:]}")
            time.sleep(0.2)
        yield Server(base, f"http://localhost:{shop_port}", world, link.code)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shop.shutdown()
        shop.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    SHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOT_DIR / f"{name}.png"), full_page=True)


def _login(browser: Any, server: Server, email: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{server.base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_admin_pages_in_a_browser(browser: Any, server: Server) -> None:
    page = _login(browser, server, ADMIN)
    assert page.url == f"{server.base}/admin"
    assert page.locator("h1").first.inner_text().startswith("acme program")
    # The vendored uPlot drew the chart (no CDN: the page only loads our own files).
    page.wait_for_selector("#chart .uplot canvas")
    page.click("text=Partners")
    page.wait_for_selector("table")
    assert page.locator("td a", has_text="Ann").count() == 1
    page.click("td a:text('Ann')")
    page.wait_for_selector("text=Earnings balance")
    page.goto(f"{server.base}/admin/offers")
    assert "/postback?token=" in page.inner_text("pre")
    page.goto(f"{server.base}/admin/conversions")
    page.context.close()


def test_login_works_with_the_keyboard_only(browser: Any, server: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.base}/login")
    # The e-mail field has the focus on arrival; the first Tab from the top of the page
    # reaches the skip link.
    # (Waited for: under a loaded machine autofocus can land just after the load event.)
    page.wait_for_function("document.activeElement && document.activeElement.id === 'email'")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(ANN)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.base}/portal")
    context.close()


def test_link_to_conversion_flow_shows_in_both_dashboards(browser: Any, server: Server) -> None:
    partner = _login(browser, server, ANN)
    assert partner.url == f"{server.base}/portal"
    partner.wait_for_selector("#chart .uplot canvas")
    partner.goto(f"{server.base}/portal/links")
    partner.get_by_role("link", name=server.shop_link_code).click()
    partner.fill("#sub1", "e2e-video")
    partner.click("text=Build link")
    generated = partner.input_value("#generated")
    assert generated == f"{server.base}/c/{server.shop_link_code}?sub1=e2e-video"

    visitor = browser.new_context().new_page()
    visitor.goto(generated)
    assert visitor.url.startswith(f"{server.shop}/?click_id=")
    assert visitor.inner_text("h1") == "Acme shop landing"
    click_id = visitor.url.split("click_id=")[1].split("&")[0]
    visitor.context.close()

    # The shop's server confirms the order (server-to-server postback).
    postback = httpx.get(
        f"{server.base}/postback",
        params={
            "token": server.world.program.postback_token,
            "click_id": click_id,
            "order_id": "E2E-1",
            "amount": "120.00",
            "currency": "EUR",
        },
        timeout=10,
    )
    assert postback.status_code == 200, postback.text

    partner.goto(f"{server.base}/portal/conversions")
    row = partner.locator("tr", has_text="120.00 EUR")
    assert row.count() == 1
    assert "12.00 EUR" in row.inner_text()
    partner.goto(f"{server.base}/portal")
    link_row = partner.locator("tr", has_text=server.shop_link_code)
    assert "120.00 EUR" in link_row.inner_text()
    partner.context.close()

    admin = _login(browser, server, ADMIN)
    admin.goto(f"{server.base}/admin/conversions")
    assert admin.locator("tr", has_text="E2E-1").count() == 1
    admin.context.close()


def test_new_admin_and_portal_pages_in_a_browser(browser: Any, server: Server) -> None:
    admin = _login(browser, server, ADMIN)
    for path, heading in [
        ("/admin/applications", "Applications"),
        ("/admin/fraud", "Fraud review queue"),
        ("/admin/payouts", "Payouts"),
        ("/admin/reports", "Report builder"),
        ("/admin/terms", "Terms and guidelines"),
        ("/admin/creatives", "Creatives"),
        ("/admin/settings", "Program settings"),
    ]:
        admin.goto(f"{server.base}{path}")
        assert admin.locator("h1").first.inner_text().startswith(heading), path
    admin.goto(f"{server.base}/admin/terms")
    admin.fill("#title", "Program terms")
    admin.fill("#body", "# Terms\n- no brand bidding")
    admin.click("button:text-is('Publish')")
    admin.wait_for_selector("text=Done: published")
    admin.context.close()
    partner = _login(browser, server, ANN)
    assert "read and accept them" in partner.inner_text("main")
    partner.click("text=read and accept them")
    partner.click("text=I accept version 1")
    partner.wait_for_selector("text=Done: accepted")
    for path in ["/portal/targets", "/portal/payouts", "/portal/messages", "/portal/creatives"]:
        partner.goto(f"{server.base}{path}")
        assert partner.locator("h1").count() == 1
    partner.context.close()


ADMIN_SHOTS = [
    ("/admin", "admin-overview", "#chart .uplot canvas"),
    ("/admin/partners", "admin-partners", "table"),
    ("/admin/applications", "admin-applications", "h1"),
    ("/admin/conversions", "admin-conversions", "table"),
    ("/admin/fraud", "admin-fraud", "h1"),
    ("/admin/payouts", "admin-payouts", "h1"),
    ("/admin/reports", "admin-reports", "table"),
    ("/admin/caps", "admin-caps", "h1"),
    ("/admin/goals", "admin-goals", "h1"),
    ("/admin/plans", "admin-plans", "h1"),
    ("/admin/spend", "admin-spend", "h1"),
    ("/admin/offers", "admin-offers", "h1"),
    ("/admin/terms", "admin-terms", "h1"),
    ("/admin/creatives", "admin-creatives", "h1"),
    ("/admin/settings", "admin-settings", "h1"),
]
PORTAL_SHOTS = [
    ("/portal", "portal-dashboard", "#chart .uplot canvas"),
    ("/portal/links", "portal-links", "table"),
    ("/portal/payouts", "portal-payouts", "h1"),
    ("/portal/messages", "portal-messages", "h1"),
    ("/portal/targets", "portal-targets", "h1"),
    ("/portal/creatives", "portal-creatives", "h1"),
]


@pytest.mark.skipif(not SCREENSHOTS, reason="set PARTNERFLOW_SCREENSHOTS=1 to retake them")
def test_screenshots_of_the_demo(browser: Any, tmp_path: Path) -> None:
    """The README's screenshots, taken from the demo program the way an operator sees it."""
    from partnerflow.demo.seed import DEMO_LOGINS

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PARTNERFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "PARTNERFLOW_PUBLIC_BASE_URL": base,
        "PARTNERFLOW_SPOOL_DIR": str(tmp_path / "spool"),
        "PARTNERFLOW_DEMO": "1",
    }
    cli = [sys.executable, "-m", "partnerflow"]
    for args in (["db", "upgrade"], ["demo", "seed", "--clicks", "50000"], ["report", "refresh"]):
        done = subprocess.run([*cli, *args], env=env, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--demo"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(base, proc, log_path)
            logins = {login.role: login for login in DEMO_LOGINS}
            for role, shots in (("admin", ADMIN_SHOTS), ("partner", PORTAL_SHOTS)):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(f"{base}/login")
                if role == "admin":
                    _shot(page, "login")
                page.fill("#email", logins[role].email)
                page.fill("#password", logins[role].password)
                page.click("button[type=submit]")
                page.wait_for_load_state()
                for path, name, ready in shots:
                    page.goto(f"{base}{path}")
                    page.wait_for_selector(ready)
                    if name == "admin-caps":
                        # Through the form, as a manager would: a daily click cap.
                        page.select_option("#cap_offer", index=1)
                        page.select_option("#cap_metric", "clicks")
                        page.fill("#cap_limit", "5000")
                        page.fill("#cap_reason", "launch week: keep traffic within budget")
                        page.click("text=Save cap")
                        page.wait_for_load_state()
                        shown = page.inner_text("main")
                        assert "Done: cap saved" in shown, shown[:800]
                    _shot(page, name)
                    if name == "admin-partners":
                        page.locator("td a").first.click()
                        page.wait_for_selector("#chart .uplot canvas")
                        _shot(page, "admin-partner-detail")
                    if name == "admin-conversions":
                        explained = page.locator("a[href^='/admin/conversions/']").first
                        if explained.count():
                            explained.click()
                            page.wait_for_load_state()
                            _shot(page, "admin-conversion-explanation")
                    if name == "portal-links":
                        page.locator("a[href^='/portal/links/']").first.click()
                        page.fill("#sub1", "tiktok-video-42")
                        page.click("text=Build link")
                        page.wait_for_selector("#generated")
                        _shot(page, "portal-link-generator")
                context.close()
        finally:
            _stop(proc)
