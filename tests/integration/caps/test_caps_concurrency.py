"""Zero overshoot under contention: several processes x threads hammer `reserve` on the SQL
store (SQLite and PostgreSQL) and on Redis. Half the requests charge caps A and B, half B
and C (A=30, B=50, C=30), so a partial reservation would show up as B != A + C."""

from __future__ import annotations

import multiprocessing
import secrets
import threading
from typing import Any

import pytest

from partnerflow.bootstrap import Services
from partnerflow.caps.model import Charge, Refused
from partnerflow.storage.cap_reservations import RedisCapCounter, SqlCapCounter
from partnerflow.storage.database import make_engine

LIMITS = {"A": 30, "B": 50, "C": 30}
PROCESSES = 4


def _charges(which: str) -> list[Charge]:
    names = ("A", "B") if which == "AB" else ("B", "C")
    return [
        Charge(key=f"cap:{i}:all", amount=1, limit=LIMITS[n], cap_id=i, ttl_seconds=600)
        for i, n in ((ord(n) - 64, n) for n in names)
    ]


def _hammer(backend: str, target: str, threads: int, attempts: int, queue: Any) -> None:
    if backend == "sql":
        engine = make_engine(target)
        counter: Any = SqlCapCounter(engine)
    else:
        url, prefix = target.split(" ", 1)
        counter = RedisCapCounter.from_url(url, prefix)
    granted: list[str] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        for i in range(attempts):
            outcome = counter.reserve(_charges("AB" if (n + i) % 2 else "BC"))
            if not isinstance(outcome, Refused):
                with lock:
                    granted.append(outcome.id)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put((len(granted), granted[:2]))


def _run(backend: str, target: str, threads: int, attempts: int) -> tuple[int, list[str]]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(backend, target, threads, attempts, queue))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return sum(g for g, _ in results), [rid for _, ids in results for rid in ids]


KEYS = ["cap:1:all", "cap:2:all", "cap:3:all"]


def _check(counter: Any, granted: int, to_release: list[str]) -> None:
    usage = counter.usage(KEYS)
    a, b, c = usage["cap:1:all"], usage["cap:2:all"], usage["cap:3:all"]
    assert a <= LIMITS["A"] and b <= LIMITS["B"] and c <= LIMITS["C"]
    assert b == a + c  # all-or-nothing: B moved exactly when A or C did
    # Far more attempts than B's limit: B filled exactly, never past it.
    assert granted == LIMITS["B"] == b
    assert isinstance(counter.reserve(_charges("AB")), Refused)
    # Releases give capacity back exactly once.
    assert [counter.release(rid) for rid in to_release] == [True] * len(to_release)
    assert [counter.release(rid) for rid in to_release] == [False] * len(to_release)
    assert counter.usage(KEYS)["cap:2:all"] == LIMITS["B"] - len(to_release)


@pytest.mark.slow
def test_sql_reservations_never_overshoot_across_processes(services: Services) -> None:
    url = services.settings.database_url
    threads, attempts = (3, 8) if url.startswith("sqlite") else (4, 10)
    granted, ids = _run("sql", url, threads, attempts)
    _check(SqlCapCounter(services.engine), granted, ids)


@pytest.mark.redis
@pytest.mark.slow
def test_redis_reservations_never_overshoot_across_processes(redis_url: str) -> None:
    prefix = f"pftest:{secrets.token_hex(6)}:"
    granted, ids = _run("redis", f"{redis_url} {prefix}", 8, 25)
    counter = RedisCapCounter.from_url(redis_url, prefix)
    try:
        _check(counter, granted, ids)
    finally:
        keys = list(counter.client.scan_iter(match=prefix + "*"))
        if keys:
            counter.client.delete(*keys)
        counter.client.close()
