"""The writer's cost per conversion alone: flagged, priced postbacks (CPS 10%, the harness's
scenario) written by `EventWriter._write` in batches of 32 on the calling thread, no event
loop traffic, no writer or lookup thread, a fixed clock and no cache reloads, so the work
does not depend on how fast the machine runs.

    .venv/bin/python bench/writer_conversions.py [--conversions 4000] [--repeat 5]

prints the thread CPU time per conversion (median of rounds). Under valgrind the same run is
load-independent: instructions per conversion are the difference of two runs
(`--conversions 576` and `--conversions 192`, `--repeat 1 --warm 128`, `PYTHONHASHSEED=0`)
divided by 384. An older checkout is measured with `PYTHONPATH=/tmp/old/src`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from tracking_profile import seed_program

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock
from partnerflow.tracking.postbacks import parse_postback
from partnerflow.web.app import create_app

BATCH = 32
UA = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0.0.0"


async def run(args: argparse.Namespace, tmp: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'w.db'}",
        spool_dir=tmp / "spool",
        secret_key="profile-secret",  # type: ignore[arg-type]
    )
    # Conversions 0 s after their click: flagged, like the harness's and the wrk bench's.
    svc = build(settings, clock=FixedClock(datetime(2026, 12, 7, 12, tzinfo=UTC)))
    svc.migrate()
    p = seed_program(svc)
    app = create_app(svc, tracking_only=True)
    await app.startup()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {
        "type": "http", "method": "GET", "path": "/c/lnk", "query_string": b"sub1=a",
        "client": ("198.51.100.4", 5555), "headers": [(b"host", b"t"), (b"user-agent", UA)],
    }  # fmt: skip
    await app(scope, receive, send)
    with svc.engine.connect() as conn:
        click_id = str(conn.execute(text("SELECT id FROM clicks LIMIT 1")).scalar())
    tracker = app.tracker
    program = await tracker._program(p.postback_token)
    writer = tracker.writer
    writer.stop()  # written on this thread from here on
    tracker.lookup.stop()
    writer.pricing.ttl = 1e12  # no reloads that depend on elapsed time
    orders = iter(range(10**9))

    def slots() -> list[list[Any]]:
        return [
            [parse_postback({"token": p.postback_token, "click_id": click_id, "amount": "49.90",
                             "currency": "EUR", "order_id": f"o-{next(orders)}"}),
             program, None, None]
            for _ in range(BATCH)
        ]  # fmt: skip

    def round_(n: int) -> float:
        cpu = 0.0
        for _ in range(n // BATCH):
            batch = slots()
            start = time.thread_time()
            writer._write([], [], batch, savepoints=False)
            cpu += time.thread_time() - start
            outcome, error = batch[-1][2], batch[-1][3]
            if error is not None or outcome is None or outcome.amount != "4.99":
                raise SystemExit(f"unexpected outcome: {outcome} {error}")
        return cpu / (n // BATCH * BATCH) * 1e6

    round_(args.warm)
    cpus = sorted(round_(args.conversions) for _ in range(args.repeat))
    print(
        f"writer CPU/conversion median {statistics.median(cpus):.1f} us"
        f" (rounds {', '.join(f'{c:.1f}' for c in cpus)})"
    )
    writer._disconnect()
    svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversions", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warm", type=int, default=1000)
    args = parser.parse_args()
    if min(args.conversions, args.warm) < BATCH or args.repeat < 1:
        parser.error(f"--conversions and --warm take at least {BATCH} (one batch), --repeat 1")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
