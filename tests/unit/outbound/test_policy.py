"""The outbound rules on their own: URL forms, address forms, ranges, the allow-list."""

from __future__ import annotations

import ipaddress

import pytest

from plinth.outbound import OutboundPolicy, OutboundRefused, check_url, parse_ip_literal, parse_ipv4_loose
from plinth.outbound.policy import unwrap


@pytest.mark.parametrize(
    ("text", "means"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("10.0x10.0.1", "10.16.0.1"),
        ("3232235777", "192.168.1.1"),
        ("2852039166", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ],
)
def test_ipv4_literals_read_as_inet_aton_reads_them(text: str, means: str) -> None:
    assert parse_ipv4_loose(text) == ipaddress.IPv4Address(means)


@pytest.mark.parametrize("text", ["example.com", "1.2.3.4.5", "256.0.0.1", "08.0.0.1", "4294967296", "", "1..2", "0x7g"])
def test_names_and_impossible_numbers_are_not_ipv4_literals(text: str) -> None:
    assert parse_ipv4_loose(text) is None  # a name: resolved, and what it resolves to is judged


@pytest.mark.parametrize(
    ("text", "means"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
        ("::ffff:a9fe:a9fe", "169.254.169.254"),
        ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible
        ("64:ff9b::a00:1", "10.0.0.1"),  # NAT64
        ("2002:c0a8:101::1", "192.168.1.1"),  # 6to4
        ("::1", "::1"),
        ("2606:4700::1111", "2606:4700::1111"),
    ],
)
def test_ipv6_addresses_are_judged_by_the_ipv4_address_they_carry(text: str, means: str) -> None:
    ip = parse_ip_literal(f"[{text}]")
    assert ip is not None and unwrap(ip) == ipaddress.ip_address(means)


CLOSED = OutboundPolicy()


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.0.1", "private"),
        ("fc00::1", "private (unique local)"),
        ("fd12:3456::1", "private (unique local)"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_internal_addresses_are_refused_unless_allowed(address: str, words: str) -> None:
    why = CLOSED.refusal(ipaddress.ip_address(address), address)
    assert why is not None and words in why and "refused unless PLINTH_OUTBOUND_ALLOW lists it" in why
    allowed = OutboundPolicy.from_entries([str(unwrap(ipaddress.ip_address(address)))])
    assert allowed.refusal(ipaddress.ip_address(address), address) is None


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("169.254.169.254", "link-local (cloud metadata), never fetched"),
        ("169.254.1.1", "link-local, never fetched"),
        ("fe80::1", "link-local, never fetched"),
        ("fd00:ec2::254", "cloud metadata (AWS IPv6), never fetched"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata), never fetched"),
        ("100.100.100.200", "cloud metadata (Alibaba Cloud), never fetched"),
    ],
)
def test_link_local_and_metadata_are_refused_even_when_allowed(address: str, words: str) -> None:
    everything = OutboundPolicy.from_entries(["0.0.0.0/0", "::/0", "169.254.169.254", "fd00:ec2::254", "metadata.example"])
    for policy in (CLOSED, everything):
        why = policy.refusal(ipaddress.ip_address(address), "metadata.example")
        assert why is not None and words in why


def test_public_addresses_are_fetched_unless_public_is_off() -> None:
    public = ipaddress.ip_address("93.184.216.34")
    assert CLOSED.refusal(public, "example.com") is None
    only_listed = OutboundPolicy.from_entries(["example.com"], public=False)
    assert only_listed.refusal(public, "example.com") is None
    why = only_listed.refusal(public, "other.example")
    assert why is not None and "not listed in PLINTH_OUTBOUND_ALLOW" in why


def test_host_names_in_the_allow_list_allow_what_they_resolve_to() -> None:
    policy = OutboundPolicy.from_entries(["vllm.internal", "*.svc.cluster.local"])
    ip = ipaddress.ip_address("10.0.0.5")
    assert policy.refusal(ip, "vllm.internal") is None
    assert policy.refusal(ip, "VLLM.internal.") is None
    assert policy.refusal(ip, "engine.ml.svc.cluster.local") is None
    assert policy.refusal(ip, "svc.cluster.local") is not None  # the pattern needs a label before it
    assert policy.refusal(ip, "evil-vllm.internal") is not None
    why = policy.refusal(ip, "other.internal")
    assert why is not None and "address 10.0.0.5 of host other.internal is private" in why


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/x", "scheme 'ftp' is not fetched"),
        ("file:///etc/passwd", "scheme 'file' is not fetched"),
        ("gopher://127.0.0.1:25/", "scheme 'gopher'"),
        ("http://allowed@127.0.0.1/", "has user information before the host"),
        ("http://user:pw@example.com/", "has user information before the host"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service, never fetched"),
        ("http://METADATA.google.internal./", "cloud metadata service"),
        ("http://%31%32%37.0.0.1/", "percent-encoded or zoned host"),
        ("http:///path", "has no host"),
        ("not a url", "is not fetched"),
        ("http://" + "a" * 3000 + ".com/", "at most 2048 characters"),
    ],
)
def test_url_forms_refused_before_any_lookup(url: str, words: str) -> None:
    with pytest.raises(OutboundRefused) as e:
        check_url(url, what="base_url", param="base_url")
    assert words in e.value.message and e.value.param == "base_url" and e.value.http_status == 400
    assert "pw" not in e.value.message and "allowed@" not in e.value.message  # credentials never echoed


def test_a_plain_url_passes_the_form_check() -> None:
    assert check_url("https://api.example.com:8443/v1?x=1").host == "api.example.com"
