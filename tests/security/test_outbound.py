"""core.outbound: which addresses a configured URL may reach, and the one-place rule."""

import ipaddress
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.outbound import OutboundRefused, address_is_public, outbound_target

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.8.8",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.251",
        "239.1.1.1",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "ff0e::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_not_public(address):
    assert not address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_public(address):
    assert address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/",
        "file:///etc/passwd",
        "http:///x",
        "http://user:pw@93.184.216.34/",
        "gopher://93.184.216.34/",
        "http://[::1/",
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(OutboundRefused):
        outbound_target(url)


def test_the_allow_list_admits_only_its_networks(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert outbound_target("http://127.0.0.1:9/").addresses == ("127.0.0.1",)
    with pytest.raises(OutboundRefused):
        outbound_target("http://10.0.0.1/")


def test_every_outbound_http_request_in_the_code_goes_through_core_outbound():
    """The class, not the case: a new urllib/requests/httpx/http.client call in product code
    must use core.outbound (bench/devtools talk to our own local services)."""
    pattern = re.compile(
        r"^\s*(import|from)\s+(urllib\.request|requests|httpx|http\.client|"
        r"aiohttp|urllib3)\b",
        re.M,
    )
    allowed = {ROOT / "core" / "outbound.py"}
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if (
            rel.parts[0] in {".venv", "node_modules", "tests", "bench", "devtools"}
            or path in allowed
        ):
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            offenders.append(str(rel))
    assert offenders == []


_NON_PUBLIC = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
]


@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_any_address_in_a_non_public_network_and_its_ipv6_wrappings_is_refused(data):
    network = data.draw(st.sampled_from(_NON_PUBLIC))
    ip = data.draw(st.ip_addresses(network=network))
    assert not address_is_public(ip)
    if ip.version == 4:
        for wrapped in (f"::ffff:{ip}", f"64:ff9b::{ip}", f"::{ip}"):
            assert not address_is_public(ipaddress.ip_address(wrapped)), wrapped
        sixtofour = ipaddress.ip_address((0x2002 << 112) | (int(ip) << 80) | 1)
        assert not address_is_public(sixtofour)
