"""Benchmark: RFM summary + BG/NBD + Gamma-Gamma (+ MBG/NBD, Pareto/NBD, and the per-cohort
prediction of `partnerflow clv predict`) on 100k customers / ~1M rows.

Data are simulated from the BG/NBD process itself (Fader, Hardie & Lee 2005), so the fitted
parameters should land near the true ones.
Usage: python bench/bench_clv.py [customers] [--pareto]
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from partnerflow.analytics import clv, cohorts

TRUE = {"r": 0.8, "alpha": 20.0, "a": 0.6, "b": 4.0}  # time in days


def simulate(customers: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, dt.date]:
    rng = np.random.default_rng(seed)
    horizon = 540  # calibration length in days
    start = np.datetime64("2024-01-01")
    lam = rng.gamma(TRUE["r"], 1.0 / TRUE["alpha"], customers)
    p = rng.beta(TRUE["a"], TRUE["b"], customers)
    first = rng.integers(0, horizon // 2, customers).astype(np.float64)
    cust_parts, day_parts = [np.arange(customers)], [first]
    now, alive = first.copy(), np.ones(customers, dtype=bool)
    while alive.any():
        now = now + rng.exponential(1.0, customers) / np.maximum(lam, 1e-12)
        alive &= now < horizon
        cust_parts.append(np.flatnonzero(alive))
        day_parts.append(now[alive])
        # After each *repeat* purchase the customer drops out with probability p: the BG/NBD
        # likelihood has no drop-out right after the first purchase.
        alive &= rng.random(customers) >= p
    cust = np.concatenate(cust_parts)
    days = np.floor(np.concatenate(day_parts)).astype(np.int64)
    ids = np.char.add("c", cust.astype(str))
    dates = start + days.astype("timedelta64[D]")
    # Gamma-Gamma spend: z ~ Gamma(p=6, rate ν_i), ν_i ~ Gamma(q=4, rate v=15).
    nu = rng.gamma(4.0, 1.0 / 15.0, customers)
    amounts = np.round(rng.gamma(6.0, 1.0, cust.size) / nu[cust], 2)
    end = (start + np.timedelta64(horizon - 1, "D")).astype(dt.date)
    return ids, dates, amounts, end


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    customers = int(args[0]) if args else 100_000
    ids, dates, amounts, end = simulate(customers)
    print(f"{customers} customers, {ids.size} transactions")
    t0 = time.perf_counter()
    summary = clv.summarize_transactions(ids, dates, amounts, calibration_end=end, time_unit="day")
    t1 = time.perf_counter()
    bg = clv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
    t2 = time.perf_counter()
    gg = clv.fit_gamma_gamma(summary.frequency, summary.monetary_value)
    t3 = time.perf_counter()
    print(f"summary      {t1 - t0:6.2f} s")
    bg_params = f"r={bg.r:.3f} alpha={bg.alpha:.2f} a={bg.a:.3f} b={bg.b:.3f}"
    print(f"BG/NBD       {t2 - t1:6.2f} s  {bg_params}")
    print(f"Gamma-Gamma  {t3 - t2:6.2f} s  p={gg.p:.3f} q={gg.q:.3f} v={gg.v:.3f}")
    print(f"total (summary + BG/NBD + Gamma-Gamma) {t3 - t0:6.2f} s  (true {TRUE})")
    mbg = clv.fit_mbgnbd(summary.frequency, summary.recency, summary.T)
    t4 = time.perf_counter()
    mbg_params = f"r={mbg.r:.3f} alpha={mbg.alpha:.2f} a={mbg.a:.3f} b={mbg.b:.3f}"
    print(
        f"MBG/NBD      {t4 - t3:6.2f} s  {mbg_params}  (LL {mbg.log_likelihood:.1f} vs "
        f"BG/NBD {bg.log_likelihood:.1f})"
    )
    sales = _sales(ids, dates, amounts)
    t5 = time.perf_counter()
    forecast = cohorts.predict_clv(sales, calibration_end=end, timezone="UTC", time_unit="week")
    rows = cohorts.by_cohort(forecast.customers)
    t6 = time.perf_counter()
    total = sum((r.clv_total for r in rows), Decimal(0))
    print(
        f"clv predict  {t6 - t5:6.2f} s  (Decimal sales -> summary, BG/NBD, Gamma-Gamma, 12-month "
        f"CLV, {len(rows)} cohorts; total CLV {total:.2f})"
    )
    if "--pareto" in sys.argv:
        pn = clv.fit_pareto_nbd(summary.frequency, summary.recency, summary.T)
        t7 = time.perf_counter()
        pn_params = f"r={pn.r:.3f} alpha={pn.alpha:.2f} s={pn.s:.3f} beta={pn.beta:.2f}"
        print(f"Pareto/NBD   {t7 - t6:6.2f} s  {pn_params}")


@dataclass(frozen=True, slots=True)
class _Sale:
    customer_id: str
    partner_id: int | None
    at: dt.datetime
    amount: Decimal | None


def _sales(ids: np.ndarray, dates: np.ndarray, amounts: np.ndarray) -> list[_Sale]:
    """The rows `storage.clv_queries.program_sales` would return (10 partners + unattributed)."""
    noon = dt.time(12, tzinfo=dt.UTC)
    out = []
    for cid, day, amount in zip(
        ids.tolist(), dates.astype(dt.date).tolist(), amounts.tolist(), strict=True
    ):
        n = int(cid[1:])
        out.append(
            _Sale(
                cid,
                None if n % 11 == 10 else n % 11,
                dt.datetime.combine(day, noon),
                Decimal(str(amount)),
            )
        )
    return out


if __name__ == "__main__":
    main()
