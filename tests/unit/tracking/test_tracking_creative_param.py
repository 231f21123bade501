"""The `cr=<creative id>` click parameter: kept only when it names one of the program's
active creatives, otherwise dropped with a reason; never passed on to the landing page."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.tracking.clicks import (
    LinkTarget,
    click_params,
    creative_param,
    landing_url,
    parse_query,
    query_creative,
)

ACTIVE = frozenset({12, 40})
TARGET = LinkTarget(
    link_id=1, code="abc", program_id=1, offer_id=1, partner_id=1,
    landing_url="https://shop.example.com/l?ref=pf", allowed_domains=("shop.example.com",),
    offer_status="active", partner_status="active", cookie_window_days=30,
    creative_ids=ACTIVE,
)  # fmt: skip


def test_an_active_creative_is_kept_and_not_passed_to_the_landing_page() -> None:
    params = click_params(parse_query(b"cr=12&sub1=x&utm_source=blog"), None, ACTIVE)
    assert params.creative_id == 12
    assert params.sub_ids == {"sub1": "x"}
    assert params.dropped == ()
    assert landing_url(TARGET, params, "cid") == (
        "https://shop.example.com/l?ref=pf&utm_source=blog&click_id=cid"
    )
    deep = click_params(parse_query(b"cr=40&url=https%3A%2F%2Fshop.example.com%2Fp"), None, ACTIVE)
    assert deep.creative_id == 40
    assert landing_url(TARGET, deep, "cid") == "https://shop.example.com/p?click_id=cid"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"cr=abc", "cr:invalid"),
        (b"cr=-12", "cr:invalid"),
        (b"cr=%2B12", "cr:invalid"),
        (b"cr=012", "cr:invalid"),
        (b"cr=0", "cr:invalid"),
        (b"cr=1.5", "cr:invalid"),
        (b"cr=%EF%BC%91%EF%BC%92", "cr:invalid"),  # full-width digits
        (b"cr=12345678901", "cr:invalid"),
        (b"cr=13", "cr:unknown"),  # inactive, another program's or made up
        (b"cr=4294967296", "cr:unknown"),
    ],
)
def test_anything_else_is_dropped_with_a_reason(raw: bytes, why: str) -> None:
    params = click_params(parse_query(raw + b"&sub2=ok"), None, ACTIVE)
    assert params.creative_id is None
    assert params.dropped == (why,)
    assert params.sub_ids == {"sub2": "ok"}


def test_an_empty_cr_is_ignored_like_an_empty_sub_id() -> None:
    params = click_params(parse_query(b"cr=&sub1="), None, ACTIVE)
    assert (params.creative_id, params.dropped) == (None, ())


def test_without_active_creatives_every_cr_is_unknown() -> None:
    assert click_params({"cr": "12"}).dropped == ("cr:unknown",)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=14), st.frozensets(st.integers(1, 2**31 - 1), max_size=5))
def test_a_kept_creative_is_always_one_of_the_active_ids(
    value: str, active: frozenset[int]
) -> None:
    kept, why = creative_param(value, active)
    if kept is not None:
        assert kept in active and why is None
        assert value == str(kept)  # only the canonical spelling is accepted
    elif value:
        assert why in ("cr:invalid", "cr:unknown")
    else:
        assert why is None


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(ACTIVE)) | st.integers(1, 10**10))
def test_every_canonical_id_is_kept_exactly_when_active(creative_id: int) -> None:
    kept, why = creative_param(str(creative_id), ACTIVE)
    if creative_id in ACTIVE:
        assert (kept, why) == (creative_id, None)
    else:
        assert kept is None
        assert why == ("cr:unknown" if creative_id < 10**10 else "cr:invalid")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_impression_query_never_raises_and_names_only_active_creatives(raw: bytes) -> None:
    found = query_creative(raw, ACTIVE)
    assert found is None or found in ACTIVE
    try:
        expected = click_params(parse_query(raw), None, ACTIVE).creative_id
    except InvalidInput:
        expected = None  # a query the click would refuse names no creative here
    assert found == expected


def test_impression_query_reads_cr() -> None:
    assert query_creative(b"cr=40", ACTIVE) == 40
    assert query_creative("cr=40&x=%ff", ACTIVE) is None  # not UTF-8
    assert query_creative(b"cr=41", ACTIVE) is None
    assert query_creative(b"cr=40", frozenset()) is None
