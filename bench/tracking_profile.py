"""In-process measurements of the tracking hot path: the app called directly (no HTTP server,
no sockets), `--concurrency` requests in flight at a time, on a seeded SQLite database
(WAL, synchronous=FULL) with the real group-commit writer thread.

    .venv/bin/python bench/tracking_profile.py [--endpoint click|postback]
        [--interface asgi|rsgi] [--mode cpu|profile] [--requests 20000] [--repeat 5]

`--mode cpu` (default) reports the **process CPU time per request** (all threads: event
loop and writer), median of `--repeat` rounds. CPU time is far less sensitive than wall
time to other processes sharing the machine, so it is what A/B comparisons use; wall
clock figures are printed too, for what they are worth on a busy machine.

`--mode profile` runs one round under cProfile (event-loop thread only).

The ASGI interface exists in every version of the app, so the same script measures an
older checkout too: `PYTHONPATH=/tmp/old/src .venv/bin/python bench/tracking_profile.py`.
Under valgrind, `--requests N` with two values of N gives instructions per request by
difference (`valgrind --tool=callgrind`), independent of machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.programs.model import Program
from partnerflow.programs.services import CreateOffer, CreateProgram, create_offer, create_program
from partnerflow.tracking.services import CreateLink, create_link
from partnerflow.web.app import create_app

UA = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/126.0.0.0 Safari/537.36"
)
CLICK_QUERY = "sub1=bench&sub2=wrk&utm_source=bench"


class _Headers:
    """The part of granian's RSGIHeaders the tracker uses."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._d = dict(items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._d.get(key, default)


class _RSGIScope:
    proto = "http"
    http_version = "1.1"
    scheme = "http"
    server = "127.0.0.1:8000"
    authority = None

    def __init__(self, method: str, path: str, query: str, headers: _Headers) -> None:
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = headers
        self.client = "198.51.100.4:5555"


class _RSGIProtocol:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses

    async def __call__(self) -> bytes:
        return b""

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.statuses.append(status)

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.statuses.append(status)

    def response_str(self, status: int, headers: list[tuple[str, str]], body: str) -> None:
        self.statuses.append(status)


def seed_program(svc: Services) -> Program:
    """A EUR program with a CPS 10% offer, an active partner and the link `lnk`, as
    bench/tracking_seed.py seeds it: the EUR postbacks are priced and booked in the ledger,
    not left unpriced for want of an exchange rate (also bench/writer_conversions.py's)."""
    p = create_program(
        svc.uow(), svc.clock, CreateProgram(slug="p", name="P", brand="P", currency="EUR"), "b"
    )
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
    return p


async def run(args: argparse.Namespace, tmp: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'p.db'}",
        spool_dir=tmp / "spool",
        secret_key="profile-secret",  # type: ignore[arg-type]
    )
    svc = build(settings)
    svc.migrate()
    p = seed_program(svc)
    app = create_app(svc, tracking_only=True)
    await app.startup()
    statuses: list[int] = []
    errors: list[str] = []
    counter = iter(range(10**9))
    click_id = ""
    endpoint = ["click"]  # the warm-up round clicks, whatever is measured

    def target() -> tuple[str, str]:
        if endpoint[0] == "click":
            return "/c/lnk", CLICK_QUERY
        return "/postback", (
            f"token={p.postback_token}&click_id={click_id}&amount=49.90&currency=EUR"
            f"&order_id=o-{next(counter)}"
        )

    if args.interface == "rsgi":
        from partnerflow.web.rsgi import TrackerRSGI

        rsgi = TrackerRSGI(app.tracker)
        headers = _Headers([("host", "t"), ("user-agent", UA.decode()), ("accept", "*/*")])
        proto = _RSGIProtocol(statuses)

        async def one() -> None:
            path, query = target()
            await rsgi.__rsgi__(_RSGIScope("GET", path, query, headers), proto)  # type: ignore[arg-type]

    else:

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif statuses and statuses[-1] >= 400 and not errors:
                errors.append(message.get("body", b"").decode())

        async def one() -> None:
            path, query = target()
            scope = {
                "type": "http", "method": "GET", "path": path,
                "query_string": query.encode(), "client": ("198.51.100.4", 5555),
                "headers": [(b"host", b"t"), (b"user-agent", UA), (b"accept", b"*/*")],
            }  # fmt: skip
            await app(scope, receive, send)

    latencies: list[float] = []

    async def worker(n: int) -> None:
        clock = time.perf_counter
        for _ in range(n):
            start = clock()
            await one()
            latencies.append(clock() - start)

    async def round_(n: int) -> tuple[float, float]:
        statuses.clear()
        latencies.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        per = max(n // args.concurrency, 1)
        await asyncio.gather(*(worker(per) for _ in range(args.concurrency)))
        done = len(statuses)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        expected = 302 if endpoint[0] == "click" else 200
        bad = sum(1 for s in statuses if s != expected)
        if bad:
            raise SystemExit(f"{bad} unexpected statuses: {set(statuses)} {errors[:1]}")
        return cpu / done * 1e6, done / wall

    # A stored click for the postbacks to attribute to (and caches warmed for both).
    await round_(min(args.concurrency * 4, 2000))
    with svc.engine.connect() as conn:
        from sqlalchemy import text

        click_id = str(conn.execute(text("SELECT id FROM clicks LIMIT 1")).scalar())
    endpoint[0] = args.endpoint
    if args.endpoint == "postback":
        await round_(min(args.concurrency * 4, 2000))  # warm the plan cache
    # CPU time the writer thread spends in its batches (the rest is the event loop's).
    writer_cpu = [0.0]
    plain_flush = app.tracker.writer._flush

    def timed_flush(batches: Any) -> None:
        t0 = time.thread_time()
        try:
            plain_flush(batches)
        finally:
            writer_cpu[0] += time.thread_time() - t0

    app.tracker.writer._flush = timed_flush  # type: ignore[method-assign]
    if args.mode == "profile":
        # The writer thread's batches get their own profiler (cProfile is per thread).
        writer = app.tracker.writer
        writer_prof = cProfile.Profile()
        flush = writer._flush

        def profiled_flush(batches: Any) -> None:
            writer_prof.enable()
            try:
                flush(batches)
            finally:
                writer_prof.disable()

        writer._flush = profiled_flush  # type: ignore[method-assign]
        prof = cProfile.Profile()
        prof.enable()
        cpu_us, _rate = await round_(args.requests)
        prof.disable()
        print(f"{args.endpoint} {args.interface}: {cpu_us:.1f} us CPU/request under cProfile")
        print("== event loop thread")
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        print("== writer thread")
        pstats.Stats(writer_prof).sort_stats("tottime").print_stats(15)
    else:
        writer_cpu[0] = 0.0
        rounds = []
        tails: list[tuple[float, float, float]] = []
        for _ in range(args.repeat):
            rounds.append(await round_(args.requests))
            ordered = sorted(latencies)
            tails.append(
                tuple(  # type: ignore[arg-type]
                    ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1e3
                    for q in (0.5, 0.99, 1.0)
                )
            )
        writer_us = writer_cpu[0] / (args.requests * args.repeat) * 1e6
        cpus = sorted(r[0] for r in rounds)
        print(
            f"{args.endpoint} {args.interface}: CPU/request median "
            f"{statistics.median(cpus):.1f} us (rounds {', '.join(f'{c:.1f}' for c in cpus)});"
            f" wall {statistics.median(r[1] for r in rounds):.0f}/s; writer thread"
            f" {writer_us:.1f} us/request;"
            f" batches {app.tracker.writer.batches}, events {app.tracker.writer.events}"
        )
        # In-process latency (no HTTP), closed loop at --concurrency: the writer's commit
        # stalls (fsync, checkpoints, GIL hand-offs) show up here as p99 and max.
        print(
            "latency ms per round (p50 / p99 / max): "
            + "; ".join(f"{a:.2f} / {b:.2f} / {c:.2f}" for a, b, c in tails)
        )
    await app.shutdown()
    svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", choices=("click", "postback"), default="click")
    parser.add_argument("--interface", choices=("asgi", "rsgi"), default="asgi")
    parser.add_argument("--mode", choices=("cpu", "profile"), default="cpu")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
