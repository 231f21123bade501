"""The tracker writer's thread yields the core to the event loop — unless a neighbour holds it.

The writer thread and the event loop that answers requests share a core. By default Linux
lets a thread that wakes up preempt the running one: the event loop hands a batch over at
the end of a pass, the writer preempts it in the middle of the next pass and then waits for
the GIL the loop holds, and the two ping-pong (~0.7 context switches per click at 32
connections) while each group commit carries about half the connections (~16 clicks).

Marked `SCHED_BATCH` (same nice level, same share of the CPU, but no preemption on wake-up),
the writer runs when the loop has nothing ready: every click that arrived is in the batch
(~32 per commit at 32 connections), ~0.17 context switches per click, 15-20% less CPU per
click and 5-13% more clicks/s on one core (docs/performance.md, 2026-12-07 afternoon).

The same flag costs throughput when *another* process keeps the core busy: the woken writer
then waits for that neighbour's time slice (milliseconds) while every request of its batch
waits too — 23% fewer clicks/s beside a CPU-bound process in the same measurement. So the
writer watches how long each batch waited between its hand-over and its write: on its own
core that is the rest of the loop's pass (p99 ~0.3 ms); several waits over a millisecond
within a few hundred batches mean a neighbour, and the writer goes back to normal
scheduling for a while before it tries yielding again (`YieldingScheduler`).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from typing import Final

SLOW_WAIT_S: Final = 0.001  # a batch that waited longer waited for someone else's slice
WINDOW: Final = 256  # batches over which slow waits are counted
SLOW_LIMIT: Final = 5  # slow waits within a window that mean a busy neighbour
BACKOFF_S: Final = 2.0  # normal scheduling this long before yielding is tried again


def set_yielding(yielding: bool) -> bool:
    """Mark the calling thread SCHED_BATCH (`yielding`) or SCHED_OTHER; False where the
    policy does not exist (not Linux) or is refused, and then nothing changed."""
    batch = getattr(os, "SCHED_BATCH", None)
    other = getattr(os, "SCHED_OTHER", None)
    if batch is None or other is None or not hasattr(os, "sched_setscheduler"):
        return False
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, batch if yielding else other, os.sched_param(0))
        return True
    return False


class YieldingScheduler:
    """The writer thread's scheduling policy, adapted to how long its batches waited.

    While yielding, it falls back to normal scheduling as soon as `slow_limit` of the last
    `window` batches waited longer than `slow_wait_s`, and yields again `backoff_s` later.
    `start()` and `waited()` are called on the writer thread (the policy is per thread);
    `set_policy` is `set_yielding` except in tests."""

    def __init__(
        self,
        enabled: bool,
        *,
        set_policy: Callable[[bool], bool] = set_yielding,
        slow_wait_s: float = SLOW_WAIT_S,
        window: int = WINDOW,
        slow_limit: int = SLOW_LIMIT,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.enabled = enabled
        self._set_policy = set_policy
        self.slow_wait_s = slow_wait_s
        self.window = window
        self.slow_limit = slow_limit
        self.backoff_s = backoff_s
        self.yielding = False  # whether the thread is SCHED_BATCH now
        self.fallbacks = 0  # times a busy neighbour sent it back to normal scheduling
        self._seen = 0  # batches since it last started yielding
        self._slow: deque[int] = deque(maxlen=slow_limit)  # when the last slow ones came
        self._retry_at = 0.0

    def start(self) -> None:
        if self.enabled:
            self.yielding = self._set_policy(True)

    def waited(self, seconds: float, now: float) -> None:
        """The batch about to be written waited `seconds` since its hand-over; `now` is
        the same monotonic clock's time."""
        if not self.enabled:
            return
        if not self.yielding:
            if self.fallbacks and now >= self._retry_at:
                self._seen = 0
                self._slow.clear()
                self.yielding = self._set_policy(True)
            return
        self._seen += 1
        if seconds <= self.slow_wait_s:
            return
        slow = self._slow
        slow.append(self._seen)
        if len(slow) == self.slow_limit and self._seen - slow[0] < self.window:
            self._set_policy(False)
            self.yielding = False
            self.fallbacks += 1
            self._retry_at = now + self.backoff_s
