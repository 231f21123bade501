from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.errors import InvalidInput
from partnerflow.programs.rules import (
    check_domain,
    check_http_url,
    check_slug,
    check_timezone,
    domain_allowed,
)

ALLOWED = ("shop.example.com", "*.brand.example")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("shop.example.com", True),
        ("SHOP.example.com.", True),
        ("brand.example", True),
        ("eu.brand.example", True),
        ("a.b.brand.example", True),
        ("example.com", False),
        ("evil-shop.example.com", False),
        ("shop.example.com.evil.test", False),
        ("notbrand.example", False),
        ("brand.example.evil.test", False),
    ],
)
def test_domain_allowed(host: str, expected: bool) -> None:
    assert domain_allowed(host, ALLOWED) is expected


@given(st.from_regex(r"\A[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}\Z"))
def test_an_allowed_host_is_the_domain_or_under_a_wildcard(host: str) -> None:
    if domain_allowed(host, ALLOWED):
        assert (
            host == "shop.example.com" or host == "brand.example" or host.endswith(".brand.example")
        )


@pytest.mark.parametrize("value", ["shop.example.com", "*.example.co.uk", "Example.COM."])
def test_check_domain_accepts_and_normalises(value: str) -> None:
    assert check_domain(value) == value.lower().rstrip(".")


@pytest.mark.parametrize(
    "value", ["", "localhost", "http://x.com", "a..b.com", "*.*.x.com", "x.com/path"]
)
def test_check_domain_refuses(value: str) -> None:
    with pytest.raises(InvalidInput):
        check_domain(value)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "//evil.test/x",
        "https://",
        "ftp://x.test/",
        "https://a.test/\nx",
        "https:\\\\evil.test",
    ],
)
def test_check_http_url_refuses(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_http_url(url, field="landing_url")


def test_check_http_url_accepts_absolute_urls() -> None:
    assert (
        check_http_url("https://shop.example.com/p?x=1", field="u")
        == "https://shop.example.com/p?x=1"
    )


@pytest.mark.parametrize("slug", ["-x", "x-", "UPPER", "with space", "", "a" * 65])
def test_check_slug_refuses(slug: str) -> None:
    with pytest.raises(InvalidInput):
        check_slug(slug)


def test_check_timezone() -> None:
    assert check_timezone("Europe/Warsaw") == "Europe/Warsaw"
    with pytest.raises(InvalidInput):
        check_timezone("Mars/Olympus")
    with pytest.raises(InvalidInput):
        check_timezone("../../etc/passwd")
