"""Benchmark: reports over the demo program from rollups vs a plain DuckDB query.

Seeds the demo (`seed_demo`, 10M clicks by default) into a SQLite file, folds the events
into the rollups, then times the dashboard / report queries from the rollups (target
< 300 ms each) against the same questions answered by DuckDB over the raw events (loaded
once into an in-memory DuckDB; the load time is printed apart). Prints a Markdown table
for docs/performance.md.

Usage: python bench/bench_reports.py [--clicks N] [--db PATH] [--reuse]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.demo.seed import DEMO_SLUG, seed_demo
from partnerflow.storage import tables as t
from partnerflow.storage.duckdb_events import DuckDBEvents
from partnerflow.storage.rollup_grain import Filters, ProgramFacts
from partnerflow.storage.rollups import fold_new_events, rollup_measures


def timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median wall time in ms over `repeat` runs (after one warm-up run)."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="DB already seeded and folded")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "bench.db"
    svc = build(Settings(database_url=f"sqlite:///{db}", spool_dir=db.parent / "spool"))
    svc.migrate()
    if not args.reuse:
        start = time.perf_counter()
        seeded = seed_demo(svc.engine, svc.clock, clicks=args.clicks, reset=True)
        print(
            f"seed: {seeded.clicks:,} clicks, {seeded.conversions:,} conversions "
            f"in {time.perf_counter() - start:.1f} s"
        )
        start = time.perf_counter()
        with svc.engine.connect() as conn:
            folded = fold_new_events(conn, now=svc.clock.now() + timedelta(minutes=1))
        print(
            f"fold (from scratch): {folded.clicks:,} clicks, {folded.impressions:,} "
            f"impressions, {folded.conversion_days} conversion days in "
            f"{time.perf_counter() - start:.1f} s"
        )
    start = time.perf_counter()
    with svc.engine.connect() as fold_conn:
        again = fold_new_events(fold_conn, now=svc.clock.now() + timedelta(minutes=1))
    print(
        f"incremental fold with nothing new: {(time.perf_counter() - start) * 1000:.1f} ms "
        f"({again.clicks} clicks)"
    )
    with svc.engine.connect() as conn:
        p = conn.execute(select(t.programs).where(t.programs.c.slug == DEMO_SLUG)).one()
        program = ProgramFacts(p.id, p.currency, p.timezone)
        rollup_rows = conn.execute(select(func.count()).select_from(t.rollup_traffic)).scalar()
        raw_clicks = conn.execute(select(func.count()).select_from(t.clicks)).scalar()
        today = svc.clock.now().astimezone(ZoneInfo(program.timezone)).date()
        first90, first30 = today - timedelta(days=89), today - timedelta(days=29)
        top = conn.execute(
            select(t.rollup_traffic.c.partner_id)
            .where(t.rollup_traffic.c.program_id == program.id)
            .group_by(t.rollup_traffic.c.partner_id)
            .order_by(func.sum(t.rollup_traffic.c.clicks).desc())
            .limit(1)
        ).scalar_one()
        questions: list[tuple[str, str, Any, Any, Filters, str]] = [
            (
                "by partner, 90 days",
                "partner",
                first90,
                today,
                Filters(),
                "SELECT partner_id, count(*) FILTER (WHERE NOT is_bot) FROM clicks GROUP BY 1",
            ),
            (
                "by day, 30 days",
                "day",
                first30,
                today,
                Filters(),
                "SELECT ts // 86400, count(*) FILTER (WHERE NOT is_bot) FROM clicks"
                " WHERE ts >= epoch(?::TIMESTAMP) GROUP BY 1",
            ),
            (
                "by country, 90 days",
                "country",
                first90,
                today,
                Filters(),
                "SELECT country, count(*) FILTER (WHERE NOT is_bot) FROM clicks GROUP BY 1",
            ),
            (
                "by channel, 90 days",
                "channel",
                first90,
                today,
                Filters(),
                "SELECT referrer, count(*) FILTER (WHERE NOT is_bot) FROM clicks GROUP BY 1",
            ),
            (
                "one partner by day, 90 days",
                "day",
                first90,
                today,
                Filters(partner_ids=(top,)),
                f"SELECT ts // 86400, count(*) FILTER (WHERE NOT is_bot) FROM clicks"
                f" WHERE partner_id = {int(top)} GROUP BY 1",
            ),
            (
                "PL mobile by offer, 90 days",
                "offer",
                first90,
                today,
                Filters(countries=("PL",), devices=("mobile",)),
                "SELECT offer_id, count(*) FILTER (WHERE NOT is_bot) FROM clicks"
                " WHERE country = 'PL' AND device = 'mobile' GROUP BY 1",
            ),
        ]
        start = time.perf_counter()
        with DuckDBEvents.load(conn, program.id, first90, today, program.timezone) as duck:
            load_s = time.perf_counter() - start
            print(
                f"\n{raw_clicks:,} raw clicks, {rollup_rows:,} traffic rollup rows; "
                f"DuckDB load of the raw events: {load_s:.1f} s\n"
            )
            print("| query | rollups (ms) | DuckDB raw clicks only (ms) | ratio rollup/DuckDB |")
            print("|---|---:|---:|---:|")
            for label, dim, first, last, filters, duck_sql in questions:
                ms, _ = timed(
                    lambda d=dim, f=first, la=last, fl=filters: rollup_measures(
                        conn, program, d, f, la, fl
                    )
                )
                params = [str(first30)] if "?" in duck_sql else []
                dms, _ = timed(lambda q=duck_sql, pa=params: duck.sql(q, pa))
                print(f"| {label} | {ms:.1f} | {dms:.1f} | {ms / dms:.2f} |")
            sub_ms, _ = timed(
                lambda: duck.sql(
                    "SELECT sub1, country, count(*) FILTER (WHERE NOT is_bot),"
                    " sum(CASE WHEN is_unique AND NOT is_bot THEN 1 ELSE 0 END)"
                    " FROM clicks GROUP BY ALL"
                )
            )
            print(
                f"| ad hoc: sub1 x country over raw clicks (DuckDB only) | - | {sub_ms:.1f} | - |"
            )


if __name__ == "__main__":
    main()
