"""`Counters` adapters: in-process (one tracker process) and Redis (several processes or
nodes share dedupe and velocity counts). Pick one with `make_counters(redis_url)`.

Besides the `Counters` port (`seen_recently`, `incr`), both offer `check_click`, the three
operations of one click (two dedupe keys and the IP velocity counter) in one call, and
`check_click_many` (the same with the IP, visitor and partner velocity counters the fraud
score uses): in memory one lock and one sweep tick instead of three; in Redis one pipelined
round trip instead of three, on an asyncio client so the tracker's event loop never blocks on Redis.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from partnerflow.tracking.ports import Counters


class MemoryCounters:
    """Counters in dicts, with their expiry times also queued in the order they were set.

    Each call drops a few expired keys from the front of the queues (a key renewed since is
    recognised by its newer expiry and kept), so memory is bounded by one window's traffic
    and no call ever scans every key. (The first version rebuilt both dicts every 10,000
    calls: at a day's dedupe window that is one entry per visitor, and at 260k keys the
    rebuild took ~130 ms on the event loop — a stall every second under load, and ~13 µs
    per click amortised, growing with the dict.)"""

    is_async = False

    def __init__(self, *, sweep_batch: int = 4, now: Any = time.monotonic) -> None:
        self._expiry: dict[str, float] = {}
        self._counts: dict[str, list[Any]] = {}  # key -> [count, expiry]
        self._expiry_order: deque[tuple[float, str]] = deque()
        self._count_order: deque[tuple[float, str]] = deque()
        # Each call sets at most ~5 keys, so dropping a few more than that keeps up.
        self._sweep_batch = max(sweep_batch, 1)
        self._now = now
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Keys held (dedupe and velocity), for tests and health figures."""
        return len(self._expiry) + len(self._counts)

    def seen_recently(self, key: str, window_s: int) -> bool:
        now = self._now()
        with self._lock:
            self._tick(now)
            return self._seen(key, window_s, now)

    def _seen(self, key: str, window_s: int, now: float) -> bool:
        expiry = self._expiry.get(key)
        if expiry is not None and expiry > now:
            return True
        expiry = now + window_s
        self._expiry[key] = expiry
        self._expiry_order.append((expiry, key))
        return False

    def incr(self, key: str, window_s: int) -> int:
        now = self._now()
        with self._lock:
            self._tick(now)
            return self._incr(key, window_s, now)

    def _incr(self, key: str, window_s: int, now: float) -> int:
        slot = self._counts.get(key)
        if slot is not None and slot[1] > now:
            slot[0] += 1
            return int(slot[0])
        expiry = now + window_s
        self._counts[key] = [1, expiry]
        self._count_order.append((expiry, key))
        return 1

    def check_click(
        self, first: str, second: str, window_s: int, velocity_key: str | None, velocity_s: int
    ) -> tuple[bool, int]:
        """(seen: either dedupe key seen within the window — both are marked seen —,
        velocity count, 0 without a key). Same results as the three separate calls."""
        now = self._now()
        with self._lock:
            self._tick(now)
            seen_first = self._seen(first, window_s, now)
            seen = self._seen(second, window_s, now) or seen_first
            count = self._incr(velocity_key, velocity_s, now) if velocity_key else 0
        return seen, count

    def check_click_many(
        self, first: str, second: str, window_s: int, ip_key: str, partner_key: str,
        visitor_key: str | None, velocity_s: int,
    ) -> tuple[bool, int, int, int]:  # fmt: skip
        """`check_click` with the three velocity counters of the fraud score (IP, partner,
        and visitor — None for a new visitor, whose count is 1 by definition), still under
        one lock: (seen, IP count, partner count, visitor count)."""
        now = self._now()
        with self._lock:
            self._tick(now)
            seen_first = self._seen(first, window_s, now)
            seen = self._seen(second, window_s, now) or seen_first
            by_ip = self._incr(ip_key, velocity_s, now)
            by_partner = self._incr(partner_key, velocity_s, now)
            by_visitor = self._incr(visitor_key, velocity_s, now) if visitor_key else 1
        return seen, by_ip, by_partner, by_visitor

    def _tick(self, now: float) -> None:
        """Drop up to `sweep_batch` expired keys from the front of each queue."""
        order, expiry = self._expiry_order, self._expiry
        for _ in range(self._sweep_batch):
            if not order or order[0][0] > now:
                break
            at, key = order.popleft()
            if expiry.get(key) == at:  # not renewed since
                del expiry[key]
        order, counts = self._count_order, self._counts
        for _ in range(self._sweep_batch):
            if not order or order[0][0] > now:
                break
            at, key = order.popleft()
            slot = counts.get(key)
            if slot is not None and slot[1] == at:
                del counts[key]


class RedisCounters:
    """Counters in Redis: `SET NX EX` for dedupe and `INCR` + `EXPIRE NX` for velocity,
    atomic across every tracker process. `prefix` namespaces one deployment (or one test).

    The `Counters` methods use a synchronous client (for use cases off the event loop);
    the tracker's `check_click_async` uses an asyncio client, so a slow Redis delays only
    the clicks waiting on it, never the event loop that serves the others."""

    is_async = True

    def __init__(self, url: str, *, prefix: str = "pf:") -> None:
        import redis

        self._url = url
        self._client: Any = redis.Redis.from_url(url, socket_timeout=0.5)
        self._prefix = prefix
        self._aclient: Any = None
        self._aloop: asyncio.AbstractEventLoop | None = None

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

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            import redis.asyncio

            # One client per event loop: asyncio connections belong to the loop that made them.
            self._aclient = redis.asyncio.Redis.from_url(
                self._url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._aloop = loop
        return self._aclient

    async def check_click_async(
        self, first: str, second: str, window_s: int, velocity_key: str | None, velocity_s: int
    ) -> tuple[bool, int]:
        """`MemoryCounters.check_click` in one pipelined round trip."""
        p = self._prefix
        pipe = self._async_client().pipeline(transaction=False)
        pipe.set(p + "s:" + first, b"1", nx=True, ex=window_s)
        pipe.set(p + "s:" + second, b"1", nx=True, ex=window_s)
        if velocity_key:
            pipe.incr(p + "n:" + velocity_key)
            pipe.expire(p + "n:" + velocity_key, velocity_s, nx=True)
        results = await pipe.execute()
        seen = not (results[0] and results[1])
        return seen, int(results[2]) if velocity_key else 0

    async def check_click_many_async(
        self, first: str, second: str, window_s: int, ip_key: str, partner_key: str,
        visitor_key: str | None, velocity_s: int,
    ) -> tuple[bool, int, int, int]:  # fmt: skip
        """`MemoryCounters.check_click_many` in one pipelined round trip."""
        p = self._prefix
        pipe = self._async_client().pipeline(transaction=False)
        pipe.set(p + "s:" + first, b"1", nx=True, ex=window_s)
        pipe.set(p + "s:" + second, b"1", nx=True, ex=window_s)
        keys = (ip_key, partner_key, visitor_key) if visitor_key else (ip_key, partner_key)
        for key in keys:
            pipe.incr(p + "n:" + key)
            pipe.expire(p + "n:" + key, velocity_s, nx=True)
        r = await pipe.execute()
        seen = not (r[0] and r[1])
        return seen, int(r[2]), int(r[4]), int(r[6]) if visitor_key else 1

    async def aclose(self) -> None:
        if self._aclient is not None:
            client, self._aclient = self._aclient, None
            await client.aclose()

    def close(self) -> None:
        self._client.close()


def make_counters(redis_url: str | None, *, prefix: str = "pf:") -> Counters:
    """Redis when a URL is configured, else in-process counters."""
    if redis_url:
        return RedisCounters(redis_url, prefix=prefix)
    return MemoryCounters()
