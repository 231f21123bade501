"""`Counters` adapters: in-process (one tracker process) and Redis (several processes or
nodes share dedupe and velocity counts). Pick one with `make_counters(redis_url)`."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from partnerflow.tracking.ports import Counters


class MemoryCounters:
    """Counters in a dict; expired keys are swept every `sweep_every` operations, so memory
    is bounded by the traffic of one window."""

    def __init__(self, *, sweep_every: int = 10_000, now: Any = time.monotonic) -> None:
        self._expiry: dict[str, float] = {}
        self._counts: dict[str, tuple[int, float]] = {}
        self._ops = 0
        self._sweep_every = sweep_every
        self._now = now
        self._lock = threading.Lock()

    def seen_recently(self, key: str, window_s: int) -> bool:
        now = self._now()
        with self._lock:
            self._tick(now)
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                return True
            self._expiry[key] = now + window_s
            return False

    def incr(self, key: str, window_s: int) -> int:
        now = self._now()
        with self._lock:
            self._tick(now)
            count, expiry = self._counts.get(key, (0, 0.0))
            if expiry <= now:
                count, expiry = 0, now + window_s
            count += 1
            self._counts[key] = (count, expiry)
            return count

    def _tick(self, now: float) -> None:
        self._ops += 1
        if self._ops % self._sweep_every:
            return
        self._expiry = {k: v for k, v in self._expiry.items() if v > now}
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}


class RedisCounters:
    """Counters in Redis: `SET NX EX` for dedupe and `INCR` + `EXPIRE NX` for velocity,
    atomic across every tracker process. `prefix` namespaces one deployment (or one test)."""

    def __init__(self, url: str, *, prefix: str = "pf:") -> None:
        import redis

        self._client: Any = redis.Redis.from_url(url, socket_timeout=0.5)
        self._prefix = prefix

    def seen_recently(self, key: str, window_s: int) -> bool:
        created = self._client.set(self._prefix + "s:" + key, b"1", nx=True, ex=window_s)
        return not created

    def incr(self, key: str, window_s: int) -> int:
        name = self._prefix + "n:" + key
        pipe = self._client.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, window_s, nx=True)
        count, _ = pipe.execute()
        return int(count)

    def close(self) -> None:
        self._client.close()


def make_counters(redis_url: str | None, *, prefix: str = "pf:") -> Counters:
    """Redis when a URL is configured, else in-process counters."""
    if redis_url:
        return RedisCounters(redis_url, prefix=prefix)
    return MemoryCounters()
