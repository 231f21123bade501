"""Deep links: nothing outside the offer's allowed domains is ever redirected to."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.programs.rules import domain_allowed
from partnerflow.tracking.clicks import append_params, safe_deep_link

ALLOWED = ("shop.example.com", "*.brand.example")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/p?x=1",
        "http://shop.example.com",
        "https://brand.example/",
        "https://eu.brand.example:8443/path#frag",
    ],
)
def test_allowed_deep_links_pass_unchanged(url: str) -> None:
    assert safe_deep_link(url, ALLOWED) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/",
        "//evil.com/",
        "/\\evil.com",
        "https:evil.com",
        "https:/evil.com",
        "https:///evil.com",
        "https://shop.example.com@evil.com/",
        "https://shop.example.com:443@evil.com/",
        "https://evil.com#@shop.example.com",
        "https://evil.com?@shop.example.com",
        "https://shop.example.com\\@evil.com",
        "https://shop.example.com.evil.com/",
        "https://evilbrand.example/",
        "https://shop.example.com%2eevil.com/",
        "https://%73hop.example.com/",
        "https://shоp.example.com/",  # Cyrillic 'о'
        "https://xn--shp-qla.example.com/",
        "https://SHOP.EXAMPLE.COM/",
        " https://shop.example.com/",
        "https://shop.example.com/\r\nLocation: https://evil.com",
        "https://sh\top.example.com/",
        "javascript://shop.example.com/%0aalert(1)",
        "ftp://shop.example.com/",
        "https://127.0.0.1/",
        "https://0x7f.1/",
        "https://shop.example.com:99999999/",
        "https://shop.example.com:99999/",  # five digits, but past 65535
        "https://shop.example.com:0/",
        "https://[::1]/",
        "",
        "https://" + "a" * 3000 + ".shop.example.com/",
    ],
)
def test_open_redirect_attempts_raise(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        safe_deep_link(url, ALLOWED)
    assert caught.value.field == "url"


def _browser_host(url: str) -> str | None:
    """The host per two independent parsers (stdlib and httpx's WHATWG-leaning one)."""
    std = urlsplit(url).hostname
    other = httpx.URL(url).host
    assert std == other, (std, other)
    return std


URL_ALPHABET = st.sampled_from(
    [
        *"abcdefghijklmnopqrstuvwxyz0123456789",
        *".-_~:/?#[]@!$&'()*+,;=%\\ \t\r\nAEZ",
        "shop.example.com",
        "evil.com",
        "brand.example",
        "https://",
        "http://",
        "//",
        "xn--",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(URL_ALPHABET, max_size=20).map("".join))
def test_no_generated_url_outside_allowed_domains_is_accepted(url: str) -> None:
    try:
        accepted = safe_deep_link(url, ALLOWED)
    except InvalidInput:
        return
    host = _browser_host(accepted)
    assert host is not None
    assert domain_allowed(host, ALLOWED)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["https://shop.example.com/", "https://eu.brand.example/a?b=1"]),
    st.text(max_size=30),
)
def test_appending_our_params_never_changes_the_host(base: str, value: str) -> None:
    out = append_params(base, [("utm_source", value), ("click_id", "x")])
    assert urlsplit(out).hostname == urlsplit(base).hostname
    assert httpx.URL(out).params["click_id"] == "x"
