"""Benchmark: server-side render time of the dashboard and portal pages on demo data.

Seeds the demo (`partnerflow.demo.seed.seed_demo`, default 200,000 clicks over 90 days,
about 200 partners) into a fresh SQLite file, logs in as the demo admin and the demo
partner, and times each page through the ASGI app in-process (no network): median and p95
of N requests after a warm-up. The target is a median under 200 ms per page (issue 8).
As a reference measured in the same run, it also times a static file (/static/app.css)
through the same middleware stack, and reports each page as a ratio of that.

After seeding it folds the events into the daily rollups (what `partnerflow report
refresh` and the UI's background fold do), prints the machine's load average (the timings
mean little on a busy machine), and times each page.

Usage: python bench/bench_pages.py [--clicks 200000] [--runs 15] [--database-url URL]
                                   [--reuse] [--only /admin,/portal]
`--reuse` keeps an already seeded database (no reseed). Exit status 1 when a page's median
is over the budget.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.core.clock import SystemClock
from partnerflow.demo.seed import DEMO_LOGINS, seed_demo
from partnerflow.storage.rollups import fold_new_events
from partnerflow.web.ui import create_ui_app

BUDGET_MS = 200.0
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN_PAGES = [
    "/admin",
    "/admin/partners",
    "/admin/partners?status=active&q=a",
    "/admin/partners/{partner_id}",
    "/admin/offers",
    "/admin/conversions",
    "/admin/audit",
    "/admin/applications",
    "/admin/plans",
    "/admin/caps",
    "/admin/goals",
    "/admin/fraud",
    "/admin/payouts",
    "/admin/reports",
    "/admin/segments",
    "/admin/announcements",
    "/admin/messages",
    "/admin/terms",
    "/admin/creatives",
    "/admin/resources",
    "/admin/settings",
]
PARTNER_PAGES = [
    "/portal",
    "/portal/links",
    "/portal/coupons",
    "/portal/conversions",
    "/portal/targets",
    "/portal/caps",
    "/portal/payouts",
    "/portal/messages",
    "/portal/terms",
    "/portal/creatives",
    "/portal/resources",
]


async def _login(client: httpx.AsyncClient, email: str, password: str) -> None:
    page = await client.get("/login")
    token = CSRF_RE.search(page.text)
    assert token, "login page has no CSRF token"
    response = await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    assert response.status_code == 303, response.text[:500]


async def _time(client: httpx.AsyncClient, path: str, runs: int) -> tuple[float, float]:
    await client.get(path)  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return statistics.median(samples), p95


def _load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


async def run(
    database_url: str, clicks: int, runs: int, reuse: bool, only: list[str] | None
) -> int:
    services = build(Settings(database_url=database_url, sqlite_synchronous="NORMAL"))
    services.migrate()
    if not reuse:
        started = time.perf_counter()
        seed_demo(services.engine, SystemClock(), clicks=clicks, reset=True)
        print(f"seeded {clicks:,} clicks in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with services.engine.connect() as conn:
        folded = fold_new_events(conn, now=services.clock.now())
    print(f"folded {folded.clicks:,} clicks into rollups in {time.perf_counter() - started:.1f} s")
    with services.engine.connect() as conn:
        from sqlalchemy import select

        from partnerflow.storage import tables as t

        partner_id = conn.execute(
            select(t.users.c.partner_id).where(t.users.c.partner_id.is_not(None)).limit(1)
        ).scalar()
    print(_load_average())
    # The UI app's background fold is left off: the bench folded once, above.
    app = create_ui_app(services, fold_interval=None)
    logins = {login.role: login for login in DEMO_LOGINS}
    failures = 0
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench") as admin,
        httpx.AsyncClient(transport=transport, base_url="http://bench") as partner,
    ):
        await _login(admin, logins["admin"].email, logins["admin"].password)
        await _login(partner, logins["partner"].email, logins["partner"].password)
        ref, _ = await _time(admin, "/static/app.css", runs)
        print(f"reference /static/app.css: median {ref:.2f} ms\n")
        print(f"{'page':42} {'median ms':>10} {'p95 ms':>8} {'x ref':>7}  budget")
        for client, pages in ((admin, ADMIN_PAGES), (partner, PARTNER_PAGES)):
            for template in pages:
                path = template.format(partner_id=partner_id)
                if only and path.split("?")[0] not in only:
                    continue
                median, p95 = await _time(client, path, runs)
                ok = median <= BUDGET_MS
                failures += not ok
                verdict = "ok" if ok else "OVER"
                print(f"{path:42} {median:10.1f} {p95:8.1f} {median / ref:7.1f}  {verdict}")
    print(_load_average())
    services.close()
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--reuse", action="store_true", help="Do not reseed the database.")
    parser.add_argument("--only", default=None, help="Comma-separated paths to time.")
    args = parser.parse_args()
    only = [p.strip() for p in args.only.split(",")] if args.only else None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        sys.exit(asyncio.run(run(url, args.clicks, args.runs, args.reuse, only)))


if __name__ == "__main__":
    main()
