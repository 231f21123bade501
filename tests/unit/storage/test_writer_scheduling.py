"""The writer thread's scheduling rule (`storage.scheduling`): it yields the core to the
event loop, goes back to normal scheduling when batches keep waiting for a neighbour's time
slice, and tries yielding again after a back-off."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.storage.scheduling import YieldingScheduler

FAST, SLOW = 0.0002, 0.004


class _Policy:
    """Records what the scheduler asked for; `accept` is what the OS would answer."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.calls: list[bool] = []

    def __call__(self, yielding: bool) -> bool:
        self.calls.append(yielding)
        return self.accept


def _scheduler(policy: _Policy, enabled: bool = True) -> YieldingScheduler:
    return YieldingScheduler(
        enabled, set_policy=policy, window=100, slow_limit=3, backoff_s=2.0, slow_wait_s=0.001
    )


def test_disabled_never_touches_the_policy() -> None:
    policy = _Policy()
    s = _scheduler(policy, enabled=False)
    s.start()
    for i in range(50):
        s.waited(SLOW, float(i))
    assert policy.calls == []
    assert not s.yielding and s.fallbacks == 0


def test_a_refused_policy_is_not_retried() -> None:
    policy = _Policy(accept=False)
    s = _scheduler(policy)
    s.start()
    for i in range(50):
        s.waited(SLOW, float(i) * 10)
    assert policy.calls == [True]
    assert not s.yielding and s.fallbacks == 0


def test_slow_waits_send_it_back_to_normal_scheduling_until_the_back_off_ends() -> None:
    policy = _Policy()
    s = _scheduler(policy)
    s.start()
    assert s.yielding and policy.calls == [True]
    s.waited(SLOW, 0.0)
    s.waited(FAST, 0.1)
    s.waited(SLOW, 0.2)
    assert s.yielding  # two slow waits: the loop's own pass can explain them
    s.waited(SLOW, 0.3)
    assert not s.yielding and s.fallbacks == 1 and policy.calls == [True, False]
    s.waited(FAST, 2.29)  # still backing off
    assert not s.yielding and policy.calls == [True, False]
    s.waited(FAST, 2.31)
    assert s.yielding and policy.calls == [True, False, True]
    # A fresh count after the retry: one slow wait alone changes nothing.
    s.waited(SLOW, 2.4)
    assert s.yielding


def test_slow_waits_spread_over_windows_never_trigger_a_fallback() -> None:
    policy = _Policy()
    s = _scheduler(policy)
    s.start()
    for i in range(10_000):
        s.waited(SLOW if i % 100 in (0, 1) else FAST, i * 0.001)  # 2 per window of 100
    assert s.yielding and s.fallbacks == 0 and policy.calls == [True]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=3.0)),
        max_size=400,
    )
)
def test_fallbacks_and_retries_follow_the_rule(steps: list[tuple[bool, float]]) -> None:
    """While yielding, it falls back exactly when `slow_limit` of the last `window` batches
    (counted since it started yielding) were slow; it yields again only after the back-off."""
    policy = _Policy()
    s = _scheduler(policy)
    s.start()
    now = 0.0
    since_yielding: list[bool] = []  # slow or not, per batch since it last started yielding
    fell_back_at: float | None = None
    for slow, gap in steps:
        now += gap
        was_yielding = s.yielding
        s.waited(SLOW if slow else FAST, now)
        if was_yielding:
            since_yielding.append(slow)
            recent = since_yielding[-s.window :]
            expected_fallback = slow and sum(recent) >= s.slow_limit
            assert s.yielding is not expected_fallback
            if expected_fallback:
                fell_back_at = now
        elif s.yielding:
            assert fell_back_at is not None and now >= fell_back_at + s.backoff_s
            since_yielding = []
        else:
            assert fell_back_at is not None and now < fell_back_at + s.backoff_s
    assert policy.calls[0] is True
    assert policy.calls.count(False) == s.fallbacks
    # The policy calls alternate: yield, fall back, yield again, ...
    assert all(a != b for a, b in zip(policy.calls, policy.calls[1:], strict=False))


def test_consecutive_slow_waits_always_end_yielding() -> None:
    policy = _Policy()
    s = _scheduler(policy)
    s.start()
    for i in range(99):  # most of a window of fast batches first
        s.waited(FAST, i * 0.001)
    for i in range(s.slow_limit):
        assert s.yielding
        s.waited(SLOW, 1.0 + i * 0.001)
    assert not s.yielding and s.fallbacks == 1
