"""Recompute attribution and commissions for 1M conversions (issue 4: under 60 s).

Synthetic but realistic input: every conversion has 1-5 partner touches (clicks, sometimes
a coupon) spread over the 30 days before it, some older than the window; the five
attribution models in turn; a versioned plan with a tiered CPS rule, a CPL rule, a
per-partner override and bonuses, priced with the version in force at the conversion time
and the partner's running count in the tier period. Every credited partner gets its share
of the commission (Decimal throughout, as in production). Touches are generated up front,
so only the engine is timed.

The work is split over processes (default: every core), the way a recompute job would run;
`--workers 1` gives the single-core figure. Run:
    .venv/bin/python bench/bench_attribution.py [--conversions 1000000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from partnerflow.attribution.models import (
    AttributionModel,
    Touch,
    TouchKind,
    attribute,
    shares_by_partner,
)
from partnerflow.commissions.plans import (
    ConversionContext,
    PlanVersion,
    compute,
    parse_plan_toml,
    period_start,
    plan_version_at,
)
from partnerflow.core.money import Money

PLAN = """
id = "bench"
currency = "EUR"
[[versions]]
version = 1
effective_from = 2025-01-01
effective_to = 2025-07-01
  [[versions.rules]]
  id = "leads"
  type = "cpl"
  amount = "2.50"
  [[versions.rules]]
  id = "sales"
  type = "cps"
  tiers = [{ from = 1, to = 50, percent = "10" }, { from = 51, percent = "12" }]
  [[versions.bonuses]]
  id = "target-100"
  type = "target"
  threshold = 100
  amount = "50"
  [[versions.overrides]]
  partner = 7
  rules = [{ id = "vip", type = "cps", percent = "20" }]
[[versions]]
version = 2
effective_from = 2025-07-01
  [[versions.rules]]
  id = "sales-de"
  type = "cps"
  percent = "15"
  when = { countries = ["DE", "AT"] }
  [[versions.rules]]
  id = "sales"
  type = "cps"
  percent = "11"
  [[versions.bonuses]]
  id = "new-customer"
  type = "new_customer"
  amount = "3"
"""

START = datetime(2025, 1, 1, tzinfo=UTC)
MODELS = list(AttributionModel)
WINDOW = timedelta(days=30)
COUNTRIES = ["DE", "FR", "US", "AT", None]


def _synthetic(seed: int, n: int) -> list[tuple[datetime, str, Decimal, str | None, list[Touch]]]:
    rng = random.Random(seed)
    out = []
    year = 365 * 86400
    for _ in range(n):
        at = START + timedelta(seconds=rng.randrange(year))
        touches = []
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4, 5))):
            partner = rng.randrange(1, 500)
            age = timedelta(seconds=rng.randrange(40 * 86400))  # some fall outside the window
            if rng.random() < 0.05:
                touches.append(Touch(partner, at - age, TouchKind.COUPON, coupon=f"C{partner}"))
            else:
                touches.append(Touch(partner, at - age, TouchKind.CLICK, click_id=f"k{partner}"))
        event = "lead" if rng.random() < 0.1 else "sale"
        amount = Decimal(rng.randrange(500, 50_000)) / 100
        out.append((at, event, amount, rng.choice(COUNTRIES), touches))
    out.sort(key=lambda x: x[0])
    return out


def _run(args: tuple[int, int]) -> tuple[int, int, Decimal, float, float]:
    seed, n = args
    versions: tuple[PlanVersion, ...] = parse_plan_toml(PLAN).versions
    data = _synthetic(seed, n)
    counts: dict[tuple[int, str, datetime], int] = defaultdict(int)
    started = time.perf_counter()
    cpu = time.process_time()
    credits_total = 0
    cost = Decimal(0)
    for i, (at, event, amount, country, touches) in enumerate(data):
        credits = attribute(touches, at, MODELS[i % len(MODELS)], WINDOW)
        if not credits:
            continue
        version = plan_version_at(versions, at)
        month = period_start(at, version.rules[-1].tier_period)
        order = Money(amount, "EUR")
        # One commission per credited partner (a partner may hold several touches), priced
        # with that partner's own tier count and override, then split by its share.
        for partner_id, share in shares_by_partner(credits).items():
            key = (partner_id, event, month)
            counts[key] += 1
            result = compute(
                version,
                ConversionContext(event=event, at=at, partner_id=partner_id,
                                  order_value=order, country=country,
                                  new_customer=i % 3 == 0, period_count=counts[key]),
            )  # fmt: skip
            cost += (result.amount.amount * share).quantize(Decimal("0.01"))
            credits_total += 1
    return n, credits_total, cost, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversions", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    opts = parser.parse_args()
    workers = max(1, opts.workers)
    # Each worker takes a slice of the conversions (disjoint partners' counts would need a
    # shuffle by partner in a real job; here each slice is its own synthetic program).
    chunk = -(-opts.conversions // workers)
    jobs = [(seed, min(chunk, opts.conversions - seed * chunk)) for seed in range(workers)]
    wall = time.perf_counter()
    if workers == 1:
        results = [_run(jobs[0])]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_run, jobs))
    wall = time.perf_counter() - wall
    conversions = sum(r[0] for r in results)
    credits = sum(r[1] for r in results)
    engine = max(r[3] for r in results)
    cpu = sum(r[4] for r in results)
    cost = sum((r[2] for r in results), Decimal(0))
    per = cpu / conversions * 1e6
    print(f"conversions: {conversions:,}  partner credits: {credits:,}  commission: {cost} EUR")
    print(f"workers: {workers}  engine wall time (slowest worker): {engine:.1f} s")
    print(f"engine CPU time, all workers: {cpu:.1f} s ({per:.1f} µs per conversion); "
          f"a quiet {workers}-core run takes about {cpu / workers:.1f} s")  # fmt: skip
    print(f"wall time incl. generating the synthetic touches: {wall:.1f} s")
    verdict = "OK" if engine < 60 else "OVER BUDGET"
    print(f"budget: recompute 1M conversions in under 60 s -> {verdict} "
          f"({engine / 60 * 1_000_000 / conversions:.2f} of the budget)")  # fmt: skip


if __name__ == "__main__":
    main()
