"""Click query parsing: sub-ids, UTM passthrough, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import unsafe_character
from partnerflow.tracking.clicks import (
    LinkTarget,
    click_params,
    landing_url,
    parse_query,
    query_pairs,
    read_cookies,
)

TARGET = LinkTarget(
    link_id=1, code="abc", program_id=1, offer_id=1, partner_id=1,
    landing_url="https://shop.example.com/l?ref=pf", allowed_domains=(),
    offer_status="active", partner_status="active", cookie_window_days=30,
)  # fmt: skip


def test_sub_ids_and_utm_are_parsed_and_utm_passed_through() -> None:
    query = parse_query(b"sub1=a%20b&sub3=c&utm_source=blog&utm_medium=&other=x&qr=1")
    params = click_params(query, {"sub2": "default", "sub3": "overridden"})
    assert params.sub_ids == {"sub1": "a b", "sub2": "default", "sub3": "c"}
    assert params.utm == (("utm_source", "blog"),)
    assert params.qr is True
    assert landing_url(TARGET, params, "cid") == (
        "https://shop.example.com/l?ref=pf&utm_source=blog&click_id=cid"
    )


def test_malformed_sub_ids_are_dropped_with_a_reason() -> None:
    params = click_params(parse_query(b"sub1=" + b"x" * 300 + b"&sub2=a%01b&sub3=ok"))
    assert params.sub_ids == {"sub3": "ok"}
    assert params.dropped == ("sub1:too long", "sub2:control characters")


def test_sub_ids_with_bidi_or_invisible_characters_are_dropped_like_control_ones() -> None:
    """One rule (`core.text`) for every stored identifier: U+202E, U+2066-U+2069 and U+200B
    are dropped from a click's sub-ids and UTM values as C0/C1 controls are."""
    subs = b"sub1=a%E2%80%AEb&sub2=%E2%81%A6x%E2%81%A9&sub3=a%E2%80%8Bb&sub4=ok"
    params = click_params(parse_query(subs + b"&utm_source=x%E2%80%AE"))
    assert params.sub_ids == {"sub4": "ok"}
    assert params.utm == ()
    assert params.dropped == (
        "sub1:control characters", "sub2:control characters", "sub3:control characters",
        "utm_source:invalid",
    )  # fmt: skip


@pytest.mark.parametrize(
    "raw", [b"sub1=%ff%fe", b"sub1=\xff", b"x=" + b"a" * 5000, b"&".join([b"a=1"] * 100)]
)
def test_bad_query_strings_raise_invalid_input(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_query(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_query_parsing_never_fails_otherwise(raw: bytes) -> None:
    try:
        query = parse_query(raw)
    except InvalidInput:
        return
    params = click_params(query)
    for value in params.sub_ids.values():
        assert len(value) <= 255
        assert unsafe_character(value) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_cookie_header_parsing_never_raises(header: str) -> None:
    assert isinstance(read_cookies(header), dict)


def test_cookie_parsing_reads_first_value() -> None:
    assert read_cookies('a=1; pf_vid="x"; a=2; junk') == {"a": "1", "pf_vid": "x"}


def _reference_parse(raw: bytes) -> dict[str, str]:
    """The parser the fast one replaced (urllib's parse_qsl)."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(
        raw.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=64
    )
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


QUERY_PIECES = st.sampled_from(
    ["a", "sub1", "utm_source", "=", "&", "+", "%", "%2", "%20", "%C3%A9", "%ff", "%zz", "x"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(QUERY_PIECES, max_size=30).map("".join), st.booleans())
def test_fast_query_parser_matches_parse_qsl(text: str, as_text: bool) -> None:
    raw = text.encode()
    try:
        expected: dict[str, str] | None = _reference_parse(raw)
    except (UnicodeDecodeError, ValueError):
        expected = None
    try:
        got: dict[str, str] | None = parse_query(text if as_text else raw)
    except InvalidInput:
        got = None
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(st.lists(QUERY_PIECES, max_size=30).map("".join), st.booleans())
def test_query_pairs_are_parse_qsls_list(text: str, as_text: bool) -> None:
    """Every pair in order, repeated keys included, as urllib's parse_qsl lists them."""
    from urllib.parse import parse_qsl

    try:
        expected: list[tuple[str, str]] | None = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=64
        )
    except (UnicodeDecodeError, ValueError):
        expected = None
    try:
        got: list[tuple[str, str]] | None = query_pairs(text if as_text else text.encode())
    except InvalidInput:
        got = None
    assert got == expected


def test_query_with_65_fields_is_refused_and_64_accepted() -> None:
    assert len(parse_query("&".join(f"k{i}=v" for i in range(64)).encode())) == 64
    with pytest.raises(InvalidInput):
        parse_query("&".join(f"k{i}=v" for i in range(65)).encode())


def test_non_ascii_query_text_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_query("sub1=é")
