"""The hot path's shortcuts give the same answers as the plain code they replaced."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.ids import click_id_time_ms, is_click_id, new_click_id
from partnerflow.fraud.identities import Identity, shared_identifiers
from partnerflow.storage.counters import MemoryCounters
from partnerflow.storage.event_writer import _PAYLOAD_JSON, _Sql, sqlite_timestamp
from partnerflow.storage.outbox import new_event_id, new_event_ids
from partnerflow.tracking.clicks import append_params, landing_parts
from partnerflow.web.rsgi import peer_ip
from partnerflow.web.tracker import TrustedProxies, json_reply


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(datetime(2000, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)),
    st.integers(-12, 12),
)
def test_sqlite_timestamp_is_the_strftime_text(moment: datetime, hours: int) -> None:
    local = moment.astimezone(timezone(timedelta(hours=hours)))
    assert sqlite_timestamp(local) == f"{moment:%Y-%m-%d %H:%M:%S.%f}"


@given(
    st.lists(
        st.datetimes(datetime(2000, 1, 1), datetime(2200, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])),
        min_size=1, max_size=6,
    )
)  # fmt: skip
def test_the_writers_timestamps_are_sqlite_timestamp_even_when_reused(
    moments: list[datetime],
) -> None:
    sql = _Sql("sqlite")
    for moment in [*moments, *moments[:2], *reversed(moments)]:
        assert sql.ts(moment) == sql.ts(moment) == sqlite_timestamp(moment)
    assert _Sql("postgresql").ts(moments[0]) is moments[0]


def test_click_ids_keep_their_format_time_and_uniqueness() -> None:
    ids = [new_click_id(1_700_000_000_123) for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(is_click_id(i) and click_id_time_ms(i) == 1_700_000_000_123 for i in ids)
    assert {i[:10] for i in ids} == {ids[0][:10]}


def test_event_ids_read_together_look_like_ids_read_one_by_one() -> None:
    together = [event_id for _ in range(1000) for event_id in new_event_ids(3)]
    ids = [*together, *(new_event_id() for _ in range(100))]
    assert len(set(ids)) == 3100
    assert all(re.fullmatch(r"evt_[0-9a-f]{24}", event_id) for event_id in ids)
    assert len(new_event_ids(1)) == 1 and new_event_ids(0) == []


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=24,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_the_shared_json_encoders_write_what_json_dumps_wrote(payload: Any) -> None:
    assert _PAYLOAD_JSON.encode(payload) == json.dumps(payload, separators=(",", ":"))
    assert (
        json_reply(200, payload)[2]
        == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    )


def _some(*values: str) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), max_size=2).map(tuple)


@given(
    st.builds(Identity, emails=_some("a@x.com", "A@x.com", " "), ips=_some("10.0.0.1", "")),
    st.builds(Identity, emails=_some("a@x.com"), ips=_some("10.0.0.1", "10.0.0.2")),
)
def test_shared_identifiers_of_a_blank_identity_are_none(first: Identity, second: Identity) -> None:
    assert shared_identifiers(first, Identity()) == shared_identifiers(Identity(), first) == ()
    reference = tuple(kind for kind, values in first.keys().items() if values & second.keys()[kind])
    assert shared_identifiers(first, second) == reference


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["https://s.example/l", "https://s.example/l?a=1", "https://s.example/?",
                     "https://s.example/l?a=1&", "https://s.example/l#frag", "https://s.example/l?x#f"]),
    st.text(max_size=12),
)  # fmt: skip
def test_precomputed_landing_parts_match_append_params(url: str, value: str) -> None:
    head, tail = landing_parts(url)
    from urllib.parse import quote

    expected = append_params(url, [("utm_source", value), ("click_id", "abc")])
    assert f"{head}utm_source={quote(value, safe='')}&click_id=abc{tail}" == expected


def test_check_click_equals_the_three_separate_calls() -> None:
    now = [100.0]
    combined = MemoryCounters(now=lambda: now[0])
    separate = MemoryCounters(now=lambda: now[0])
    keys = [("fp1", "v1", "ip1"), ("fp1", "v2", "ip1"), ("fp2", "v1", "ip2"), ("fp3", "v3", "ip1")]
    for step, (fp, vid, ip) in enumerate(keys * 3):
        now[0] += 10 if step % 4 == 0 else 0
        seen_fp = separate.seen_recently(fp, 30)
        seen_vid = separate.seen_recently(vid, 30)
        count = separate.incr(ip, 20)
        assert combined.check_click(fp, vid, 30, ip, 20) == (seen_fp or seen_vid, count)


def test_forwarded_for_is_read_only_from_trusted_proxies() -> None:
    none = TrustedProxies(())
    assert not none
    proxies = TrustedProxies(("10.0.0.0/8", "192.0.2.1"))
    assert proxies.client("10.1.2.3", "203.0.113.9") == "203.0.113.9"
    # The right-most untrusted hop is the client; what it forwarded is its own claim.
    assert proxies.client("10.1.2.3", "1.1.1.1, 203.0.113.9, 10.9.9.9") == "203.0.113.9"
    assert proxies.client("198.51.100.7", "203.0.113.9") == "198.51.100.7"  # untrusted peer
    assert proxies.client("10.1.2.3", "not-an-ip") == "10.1.2.3"
    assert proxies.client("10.1.2.3", "10.2.2.2") == "10.1.2.3"  # only proxies: the peer
    assert proxies.client("10.1.2.3", None) == "10.1.2.3"


def test_rsgi_client_addresses() -> None:
    assert peer_ip("203.0.113.7:5555") == "203.0.113.7"
    assert peer_ip("[2001:db8::1]:443") == "2001:db8::1"
    assert peer_ip("") is None
    assert peer_ip("203.0.113.7") == "203.0.113.7"


class _ReferenceCounters:
    """The counters' meaning, with no memory management at all."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}
        self.counts: dict[str, tuple[int, float]] = {}

    def seen(self, key: str, window: int, now: float) -> bool:
        if self.expiry.get(key, -1.0) > now:
            return True
        self.expiry[key] = now + window
        return False

    def incr(self, key: str, window: int, now: float) -> int:
        count, expiry = self.counts.get(key, (0, -1.0))
        if expiry <= now:
            count, expiry = 0, now + window
        self.counts[key] = (count + 1, expiry)
        return count + 1


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["seen", "incr"]),
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from([1, 5, 30]),
            st.floats(min_value=0, max_value=20, allow_nan=False),
        ),
        max_size=200,
    ),
    st.integers(min_value=1, max_value=8),
)
def test_memory_counters_answer_like_counters_that_never_forget(
    ops: list[tuple[str, str, int, float]], sweep_batch: int
) -> None:
    now = [0.0]
    counters = MemoryCounters(now=lambda: now[0], sweep_batch=sweep_batch)
    reference = _ReferenceCounters()
    for op, key, window, step in ops:
        now[0] += step
        if op == "seen":
            assert counters.seen_recently(key, window) == reference.seen(key, window, now[0])
        else:
            assert counters.incr(key, window) == reference.incr(key, window, now[0])


def test_memory_counters_forget_expired_keys_a_few_at_a_time() -> None:
    now = [0.0]
    counters = MemoryCounters(now=lambda: now[0])
    for i in range(10_000):  # one window's traffic: every key is held
        counters.seen_recently(f"visitor-{i}", 60)
        counters.incr(f"ip-{i % 100}", 60)
    assert len(counters) == 10_100
    now[0] = 61.0  # all expired; each later call drops a few from the front
    for i in range(3_000):
        counters.seen_recently(f"new-{i}", 60)
    assert len(counters) < 10_100 - 3_000 * 2
    for _ in range(10_000):
        counters.incr("steady", 60)
    assert len(counters) == 3_000 + 1  # the new visitors and the steady counter
