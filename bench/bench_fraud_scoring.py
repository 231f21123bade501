"""Cost of fraud scoring on the click hot path, in µs per click.

Measures classify_user_agent + classify_ip + score_click together, as tracking calls them:
- cached: the same few user agents and IPs over and over (the usual hot-path case);
- uncached: every click has a user agent and an IP never seen before (worst case: the
  crawler patterns and the range table actually run).
Budget: ≤ 100 µs per click (issue 5). Run: .venv/bin/python bench/bench_fraud_scoring.py
"""

from __future__ import annotations

import random
import time

from partnerflow.fraud import bots, networks
from partnerflow.fraud.bots import classify_user_agent
from partnerflow.fraud.networks import classify_ip
from partnerflow.fraud.scoring import score_click
from partnerflow.fraud.signals import ClickFacts

BASE_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S9{v}B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (compatible; Googlebot/2.{v}; +http://www.google.com/bot.html)",
    "python-requests/2.{v}.0",
]


def one_click(user_agent: str, ip: str) -> int:
    facts = ClickFacts(
        user_agent=classify_user_agent(user_agent),
        ip=classify_ip(ip),
        referrer_present=True,
        clicks_last_minute_ip=3,
        clicks_last_minute_visitor=1,
        clicks_last_minute_partner=40,
        duplicate=False,
        seconds_since_previous_click=12.5,
    )
    return score_click(facts).score


def run(label: str, clicks: list[tuple[str, str]]) -> float:
    start = time.perf_counter()
    for user_agent, ip in clicks:
        one_click(user_agent, ip)
    micros = (time.perf_counter() - start) / len(clicks) * 1e6
    print(f"{label:<40} {micros:8.2f} µs/click  ({len(clicks)} clicks)")
    return micros


def main() -> None:
    rng = random.Random(5)
    bots.warm_up()
    networks.warm_up()
    hot_agents = [base.format(v=v) for base in BASE_AGENTS for v in range(5)]
    hot_ips = [f"81.2.69.{i}" for i in range(20)] + ["52.95.110.1", "2600:1f18::1"]
    hot = [(rng.choice(hot_agents), rng.choice(hot_ips)) for _ in range(200_000)]
    for pair in hot:  # fill the caches first
        one_click(*pair)
    cold = [
        (
            rng.choice(BASE_AGENTS).format(v=1000 + n),
            f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{n % 250 + 1}",
        )
        for n in range(5_000)
    ]
    cached = run("cached user agents and IPs", hot)
    uncached = run("uncached (new UA and IP every click)", cold)
    budget = 100.0
    print(
        f"budget {budget:.0f} µs: cached {cached / budget:.2f}x, uncached {uncached / budget:.2f}x"
    )
    print("user-agent cache:", bots.cache_info())
    print("ip cache:", networks.cache_info())


if __name__ == "__main__":
    main()
