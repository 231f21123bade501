"""Delivery policy for webhooks and postbacks: retries with exponential backoff, giving up,
and disabling an endpoint that keeps failing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    # 30 s, 1 min, 2 min, ... capped at 6 h: eight attempts span about 1 h 04 min, enough to
    # ride out a deploy or a short outage without hammering the receiver.
    base_seconds: int = 30
    cap_seconds: int = 6 * 3600
    max_attempts: int = 8
    # An endpoint failing this many deliveries in a row is disabled (manual re-enable).
    disable_after: int = 20
    timeout_seconds: float = 5.0

    def delay(self, attempts: int) -> timedelta:
        """Wait after the `attempts`-th failed attempt (1-based)."""
        seconds = self.base_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.cap_seconds))

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` failures, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        return now + self.delay(attempts)
