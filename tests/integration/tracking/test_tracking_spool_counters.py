"""The spool survives torn writes; counters dedupe in memory and in Redis."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from partnerflow.storage.counters import MemoryCounters, RedisCounters
from partnerflow.storage.spool import Spool, encode, take_orphan


def test_spool_round_trips_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path, name="a.spool")
    spool.append([{"t": "clicks", "r": [1]}, {"t": "clicks", "r": [2]}])
    spool.close()
    with (tmp_path / "a.spool").open("ab") as f:
        f.write(encode({"t": "clicks", "r": [3]})[:-7])  # killed mid-write
    assert Spool(tmp_path, name="a.spool").read() == [
        {"t": "clicks", "r": [1]},
        {"t": "clicks", "r": [2]},
    ]


def test_a_spool_reopened_after_a_torn_write_keeps_every_later_record(tmp_path: Path) -> None:
    # A tracker killed mid-append leaves a torn line in events-<pid>.spool; a restarted
    # container's tracker gets the same pid, so the same file is its own spool. Appending
    # straight after the torn bytes glued the next acknowledged record to them, and the
    # reader skipped that whole line: an acknowledged click lost.
    spool = Spool(tmp_path, name="events-7.spool")
    spool.append([{"t": "clicks", "r": [1]}])
    spool.close()
    with (tmp_path / "events-7.spool").open("ab") as f:
        f.write(encode({"t": "clicks", "r": [2]})[:-7])  # killed mid-write, never acknowledged
    restarted = Spool(tmp_path, name="events-7.spool")
    restarted.append([{"t": "clicks", "r": [3]}, {"t": "clicks", "r": [4]}])
    restarted.append([{"t": "clicks", "r": [5]}])
    assert restarted.read() == [{"t": "clicks", "r": [n]} for n in (1, 3, 4, 5)]


def test_a_failed_append_is_not_acknowledged_and_does_not_swallow_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fills half-way through a record: that batch is refused (503), and the next
    # one, acknowledged once the disk has room again, must read back whole.
    spool = Spool(tmp_path, name="d.spool")
    spool.append([{"t": "clicks", "r": [1]}])
    real_write = os.write
    calls = []

    def half_then_full(fd: int, data: Any) -> int:
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:20])  # part of the first record

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        spool.append([{"t": "clicks", "r": [2]}, {"t": "clicks", "r": [3]}])
    monkeypatch.undo()
    spool.append([{"t": "clicks", "r": [4]}])
    assert spool.read() == [{"t": "clicks", "r": [1]}, {"t": "clicks", "r": [4]}]


def test_spool_skips_a_line_with_a_bad_checksum(tmp_path: Path) -> None:
    good = encode({"t": "clicks", "r": [1]})
    bad = encode({"t": "clicks", "r": [2]}).replace(b"[2]", b"[9]")
    (tmp_path / "b.spool").write_bytes(bad + good)
    assert Spool(tmp_path, name="b.spool").read() == [{"t": "clicks", "r": [1]}]


def test_a_locked_spool_is_not_taken_by_another_drainer(tmp_path: Path) -> None:
    owner = Spool(tmp_path, name="c.spool")
    owner.append([{"t": "clicks", "r": [1]}])
    assert take_orphan(tmp_path / "c.spool") is None
    owner.close()
    taken = take_orphan(tmp_path / "c.spool")
    assert taken is not None
    assert taken[1] == [{"t": "clicks", "r": [1]}]


def test_memory_counters_dedupe_within_the_window() -> None:
    now = [100.0]
    counters = MemoryCounters(now=lambda: now[0], sweep_batch=2)
    assert counters.seen_recently("k", 10) is False
    assert counters.seen_recently("k", 10) is True
    now[0] = 111.0
    assert counters.seen_recently("k", 10) is False
    assert [counters.incr("v", 5) for _ in range(3)] == [1, 2, 3]
    now[0] = 117.0
    assert counters.incr("v", 5) == 1


@pytest.mark.redis
def test_redis_counters_are_shared_between_clients(redis_url: str) -> None:
    prefix = f"pf-test-{secrets.token_hex(4)}:"
    first, second = RedisCounters(redis_url, prefix=prefix), RedisCounters(redis_url, prefix=prefix)
    try:
        assert first.seen_recently("u:1:v", 60) is False
        assert second.seen_recently("u:1:v", 60) is True
        assert [first.incr("ip", 60), second.incr("ip", 60)] == [1, 2]
    finally:
        first._client.delete(prefix + "s:u:1:v", prefix + "n:ip")
        first.close()
        second.close()


@pytest.mark.redis
def test_redis_check_click_is_one_async_round_trip_with_the_same_answers(redis_url: str) -> None:
    import asyncio

    prefix = f"pf-test-{secrets.token_hex(4)}:"
    counters = RedisCounters(redis_url, prefix=prefix)

    async def clicks() -> list[tuple[bool, int]]:
        try:
            return [
                await counters.check_click_async("fp1", "v1", 60, "ip", 60),
                await counters.check_click_async("fp2", "v1", 60, "ip", 60),  # same visitor
                await counters.check_click_async("fp3", "v3", 60, None, 60),
            ]
        finally:
            await counters.aclose()

    try:
        assert asyncio.run(clicks()) == [(False, 1), (True, 2), (False, 0)]
        assert counters.seen_recently("fp2", 60) is True  # marked even when not unique
    finally:
        counters._client.delete(*(prefix + k for k in ("s:fp1", "s:fp2", "s:fp3", "s:v1",
                                                        "s:v3", "n:ip")))  # fmt: skip
        counters.close()
