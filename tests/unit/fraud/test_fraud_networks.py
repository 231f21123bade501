import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.fraud.networks import IpVerdict, classify_ip


@pytest.mark.parametrize(
    ("ip", "verdict"),
    [
        ("52.95.110.1", IpVerdict("datacenter", "Amazon AWS")),
        ("104.131.1.1", IpVerdict("datacenter", "DigitalOcean")),
        ("5.9.1.1", IpVerdict("datacenter", "Hetzner")),
        ("2600:1f18::1", IpVerdict("datacenter", "Amazon AWS")),
        ("[2600:1f18::1]", IpVerdict("datacenter", "Amazon AWS")),
        ("::ffff:52.95.110.1", IpVerdict("datacenter", "Amazon AWS")),
        ("  52.95.110.1\n", IpVerdict("datacenter", "Amazon AWS")),
        ("185.220.101.1", IpVerdict("tor", "Tor")),
        ("81.2.69.1", IpVerdict("residential", None)),
        ("10.1.2.3", IpVerdict("private", None)),
        ("192.168.0.10", IpVerdict("private", None)),
        ("127.0.0.1", IpVerdict("private", None)),
        ("100.64.0.1", IpVerdict("private", None)),
        ("::1", IpVerdict("private", None)),
        ("fe80::1%eth0", IpVerdict("private", None)),
        ("2001:db8::1", IpVerdict("private", None)),
    ],
)
def test_addresses_are_classified(ip: str, verdict: IpVerdict) -> None:
    assert classify_ip(ip) == verdict


@pytest.mark.parametrize(
    "ip", ["", None, "garbage", "1.2.3", "999.1.1.1", "1.2.3.4:80", "::g", "1" * 10_000, "\x00"]
)
def test_malformed_addresses_are_invalid(ip: str | None) -> None:
    assert classify_ip(ip) == IpVerdict("invalid", None)


def test_datacenter_property_covers_vpn_and_tor_but_not_homes() -> None:
    assert classify_ip("52.95.110.1").datacenter is True
    assert classify_ip("185.220.101.1").datacenter is True
    assert classify_ip("81.2.69.1").datacenter is False
    assert classify_ip("10.0.0.1").datacenter is False


def test_description_names_the_provider() -> None:
    assert classify_ip("52.95.110.1").description == "datacenter (Amazon AWS)"
    assert classify_ip("81.2.69.1").description == "residential"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.none()))
def test_never_raises_on_arbitrary_text(ip: str | None) -> None:
    assert isinstance(classify_ip(ip), IpVerdict)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_every_real_address_gets_a_verdict_other_than_invalid(address: object) -> None:
    assert classify_ip(str(address)).kind != "invalid"
