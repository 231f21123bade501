"""CPU per click of `partnerflow track` over HTTP, for A/B comparisons on a noisy machine.

    ./scripts/bench tracking_cpu [--rounds 3] [--connections 32] [--duration 6]
        [--variant NAME=PYTHONPATH[,ENV=VALUE...]] ...

Wall-clock throughput on a shared VM swings by ±30% between minutes; the CPU a click costs
swings far less. Each variant is started like `./scripts/bench tracking` starts the tracker
(one worker pinned to core 0, a fresh seeded SQLite database, wrk pinned to core 1), warmed
for 2 s, then measured over a wrk run: the worker's CPU time (every thread, user + system,
from /proc) divided by the 302s, the same per thread (event loop / writer / fsync thread,
largest first), the clicks per commit and the writer's scheduling fallbacks (from /healthz;
printed when there were any) and the context switches per click (every thread, /proc).
Variants run alternately, round by round, so a noisy minute hits all of them.

A variant is a name, the PYTHONPATH its tracker runs with (empty: this checkout; another
checkout's `src` to compare with older code), and optional environment settings:
`--variant before=/tmp/old/src --variant after= --variant nosync=,PARTNERFLOW_SQLITE_SYNC_THREAD=0`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import tracking as bench


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def _switches(pid: int) -> int:
    """Context switches (voluntary + involuntary) of every thread of `pid` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(p) for p in text.split()]
    return found


def _writer_counts(port: int) -> tuple[int, int, int]:
    """Batches, events and scheduling fallbacks (`storage.scheduling`) so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        writer = json.loads(response.read())["writer"]
    return int(writer["batches"]), int(writer["events"]), int(writer.get("scheduling_fallbacks", 0))


def measure(
    pythonpath: str, settings: dict[str, str], connections: int, duration: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pf-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        env = {
            **os.environ,
            "PARTNERFLOW_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "PARTNERFLOW_SPOOL_DIR": str(tmp / "spool"),
            "PARTNERFLOW_SECRET_KEY": "bench-secret-not-for-production",
            **settings,
        }
        env.pop("PARTNERFLOW_REDIS_URL", None)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        seeded = bench.seed(env)
        port = bench.free_port()
        proc = bench.start_tracker(env, port)
        url = f"http://127.0.0.1:{port}/c/{seeded['code']}?sub1=bench&sub2=wrk&utm_source=bench"
        try:
            bench.wrk(url, 2, connections, None, tmp)  # warm-up (and the threads exist)
            # taskset -> partnerflow (supervisor or worker) -> worker: the process with threads.
            family = [proc.pid]
            for _ in range(3):
                family += [c for p in family for c in _children(p) if c not in family]
            worker = max(family, key=lambda p: len(os.listdir(f"/proc/{p}/task")))
            batches0, events0, fallbacks0 = _writer_counts(port)
            cpu0, switches0 = _thread_cpu(worker), _switches(worker)
            run = bench.wrk(url, duration, connections, None, tmp)
            cpu1, switches1 = _thread_cpu(worker), _switches(worker)
            batches1, events1, fallbacks1 = _writer_counts(port)
        finally:
            bench.stop(proc)
    clicks = max(run["ok"], 1)
    threads = sorted(((cpu1[t] - cpu0.get(t, 0.0)) / clicks * 1e6 for t in cpu1), reverse=True)
    return {
        "rps": run["rps"],
        "cpu_us": sum(threads),
        "threads_us": threads[:3],
        "per_commit": (events1 - events0) / max(batches1 - batches0, 1),
        "switches": (switches1 - switches0) / clicks,
        "fallbacks": fallbacks1 - fallbacks0,
    }


def _variant(text: str) -> tuple[str, str, dict[str, str]]:
    name, _, rest = text.partition("=")
    path, *pairs = rest.split(",")
    if not name or any("=" not in pair for pair in pairs if pair):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=PYTHONPATH[,SETTING=VALUE...] (PYTHONPATH may be empty)"
        )
    settings = dict(pair.split("=", 1) for pair in pairs if pair)
    return name, path, settings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", type=_variant, default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=6)
    args = parser.parse_args()
    variants = args.variant or [("current", "", {})]
    bench.ensure_tools()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in variants}
    for round_number in range(1, args.rounds + 1):
        for name, path, settings in variants:
            r = measure(path, settings, args.connections, args.duration)
            results[name].append(r)
            threads = " / ".join(f"{x:.1f}" for x in r["threads_us"])
            print(f"round {round_number} {name:<12} {r['rps']:>8.0f} clicks/s  "
                  f"{r['cpu_us']:5.1f} µs CPU per click (threads {threads})  "
                  f"{r['per_commit']:5.1f} per commit  "
                  f"{r['switches']:4.2f} context switches per click"
                  + (f"  {r['fallbacks']} scheduling fallbacks" if r["fallbacks"] else ""),
                  flush=True)  # fmt: skip
            time.sleep(0.5)
    print("medians:")
    for name, rows in results.items():
        print(f"  {name:<12} {statistics.median(r['rps'] for r in rows):>8.0f} clicks/s  "
              f"{statistics.median(r['cpu_us'] for r in rows):5.1f} µs CPU per click")  # fmt: skip


if __name__ == "__main__":
    main()
