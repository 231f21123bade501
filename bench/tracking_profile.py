"""In-process profile of the click hot path: the ASGI app called directly (no HTTP server),
64 concurrent clicks at a time on a seeded SQLite database, under cProfile.

    .venv/bin/python bench/tracking_profile.py [--clicks 20000] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.programs.services import CreateOffer, CreateProgram, create_offer, create_program
from partnerflow.tracking.services import CreateLink, create_link
from partnerflow.web.app import create_app

UA = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/126.0.0.0 Safari/537.36"
)


async def run(clicks: int, tmp: Path, profile: bool) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'p.db'}",
        spool_dir=tmp / "spool",
        secret_key="profile-secret",  # type: ignore[arg-type]
    )
    svc = build(settings)
    svc.migrate()
    p = create_program(svc.uow(), svc.clock, CreateProgram(slug="p", name="P", brand="P"), "b")
    o = create_offer(
        svc.uow(), svc.clock,
        CreateOffer(program_id=p.id, name="S", landing_url="https://shop.example.com/l",
                    commission_plan={"type": "cps", "percent": "10"}), "b",
    )  # fmt: skip
    pa = create_partner(
        svc.uow(), svc.clock,
        CreatePartner(program_id=p.id, name="A", email="a@example.com", status="active"), "b",
    )  # fmt: skip
    create_link(svc.uow(), svc.clock, CreateLink(partner_id=pa.id, offer_id=o.id, code="lnk"), "b")
    app = create_app(svc, tracking_only=True)
    await app.startup()
    scope: dict[str, Any] = {
        "type": "http", "method": "GET", "path": "/c/lnk",
        "query_string": b"sub1=a&sub2=b&utm_source=x", "client": ("198.51.100.4", 5555),
        "headers": [(b"host", b"t"), (b"user-agent", UA), (b"accept", b"*/*")],
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def worker(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    prof = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if prof:
        prof.enable()
    await asyncio.gather(*(worker(clicks // 64) for _ in range(64)))
    if prof:
        prof.disable()
    elapsed = time.perf_counter() - start
    await app.shutdown()
    print(f"{len(statuses)} clicks in {elapsed:.2f}s = {len(statuses) / elapsed:.0f}/s in-process"
          f" (statuses {set(statuses)}, batches {app.tracker.writer.batches})")  # fmt: skip
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.clicks, Path(tmp), not args.no_profile))


if __name__ == "__main__":
    main()
