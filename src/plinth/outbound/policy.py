"""Which URLs and addresses the server may fetch from (ADR 0080). Pure: no I/O.

A URL is judged in two steps. :func:`check_url` looks at the URL alone: http or https only,
no user information before the host, no percent-encoded or zoned host, not a cloud-metadata
host name. :meth:`OutboundPolicy.refusal` then judges each address the host means — an IP
literal in any form ``inet_aton`` accepts (``2130706433``, ``0x7f.1``, ``017700000001``,
``127.1``), an IPv6 literal, or what a name resolved to — after unwrapping the IPv4 address
an IPv6 one carries (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, NAT64 ``64:ff9b::/96``,
6to4 ``2002::/16``):

- link-local (169.254/16, fe80::/10) and cloud-metadata addresses are refused always, even
  when the allow-list names them;
- private, loopback, unspecified, carrier-grade NAT, multicast, broadcast, documentation and
  other reserved addresses are refused unless the allow-list names them (by CIDR, or by the
  host name that resolved to them);
- public addresses are allowed, unless ``outbound_public`` is off, then only the allow-list is.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from plinth.errors import ErrorCode, PlinthError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
MAX_URL_CHARS = 2048

#: Host names of cloud metadata services: refused before anything is resolved.
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in pairs)


#: Never fetched, whatever the allow-list says (most specific first).
ALWAYS_REFUSED = _nets(
    ("169.254.169.254/32", "link-local (cloud metadata)"),
    ("169.254.170.2/32", "link-local (cloud metadata: container credentials)"),
    ("169.254.0.0/16", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata (AWS IPv6)"),
    ("100.100.100.200/32", "cloud metadata (Alibaba Cloud)"),
    ("168.63.129.16/32", "a cloud platform endpoint (Azure WireServer)"),
    ("fe80::/10", "link-local"),
)

#: Refused unless the allow-list names them.
INTERNAL = _nets(
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "carrier-grade NAT (shared address space)"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "private (unique local)"),
    ("fec0::/10", "private (site-local)"),
    ("ff00::/8", "multicast"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("100::/64", "reserved (discard)"),
    ("2001::/32", "reserved (Teredo)"),
    ("64:ff9b:1::/48", "reserved (local NAT64)"),
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_IPV4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


class OutboundRefused(PlinthError):
    """A URL or address the outbound rules refuse. ``host`` and ``reason`` say which and why."""

    def __init__(self, message: str, *, host: str = "", reason: str = "", param: str | None = None) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message, param=param)
        self.host = host
        self.reason = reason


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``text`` means to ``inet_aton`` (and so to ``getaddrinfo``): one to
    four parts, each decimal, octal (leading 0) or hex (0x), the last filling the remaining
    bytes. None when ``text`` is not such a literal."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(p) for p in parts):
        return None
    values = []
    for p in parts:
        if p[:2].lower() == "0x":
            values.append(int(p[2:] or "0", 16))
        elif len(p) > 1 and p[0] == "0":
            values.append(int(p, 8))
        else:
            values.append(int(p))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP literal in any form (IPv6 with or without brackets, IPv4 as ``inet_aton`` reads
    it); None for a name."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            return None
    return parse_ipv4_loose(h)


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.compressed.split("%")[0])  # a scope id (fe80::1%eth0) changes nothing
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip in _SIXTOFOUR:
            return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return ip


def normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _classify(ip: IPAddress, table: Iterable[tuple[IPNetwork, str]]) -> str | None:
    for net, reason in table:
        if ip.version == net.version and ip in net:
            return reason
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """The outbound rules: what the allow-list names, whether public addresses are fetched."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: tuple[str, ...] = ()  # exact names and "*.suffix" patterns, lower case
    public: bool = True
    setting: str = field(default="PLINTH_OUTBOUND_ALLOW", compare=False)

    @classmethod
    def from_entries(cls, entries: Iterable[str], *, public: bool = True) -> OutboundPolicy:
        nets: list[IPNetwork] = []
        hosts: list[str] = []
        for raw in entries:
            entry = raw.strip().lower()
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.append(normal_host(entry))
        return cls(tuple(nets), tuple(hosts), public)

    def host_listed(self, host: str) -> bool:
        """Whether the allow-list names ``host`` (exactly, or by a ``*.suffix`` pattern)."""
        h = normal_host(host)
        for pattern in self.allow_hosts:
            if pattern.startswith("*.") and h.endswith(pattern[1:]) and len(h) > len(pattern) - 1:
                return True
            if h == pattern:
                return True
        return False

    def refusal(self, address: IPAddress, host: str) -> str | None:
        """Why ``address`` (one ``host`` resolved to) is not fetched, or None when it may be."""
        ip = unwrap(address)
        shown = f"address {ip}" + (f" of host {host}" if normal_host(host) not in (str(ip), str(address)) else "")
        if address != ip:
            shown += f" (written {address})"
        always = _classify(ip, ALWAYS_REFUSED)
        if always is not None:
            return f"{shown} is {always}, never fetched"
        listed = self.host_listed(host) or any(ip.version == n.version and ip in n for n in self.allow_networks)
        if listed:
            return None
        internal = _classify(ip, INTERNAL)
        if internal is None and not ip.is_global:
            internal = "reserved (not a public address)"
        if internal is not None:
            return f"{shown} is {internal}: refused unless {self.setting} lists it"
        if not self.public:
            return f"{shown} is not listed in {self.setting} (PLINTH_OUTBOUND_PUBLIC is off)"
        return None


def shown_url(url: httpx.URL | str) -> str:
    """A URL as errors and logs show it: without user information, query or fragment."""
    try:
        u = url if isinstance(url, httpx.URL) else httpx.URL(url)
        return str(u.copy_with(userinfo=b"", query=None, fragment=None))
    except Exception:  # an unparseable URL is shown cut, never echoed whole
        return re.sub(r"//[^/@]*@", "//", str(url)[:80].split("?")[0])


def check_url(url: Any, *, what: str = "URL", param: str | None = None) -> httpx.URL:
    """The URL parsed, when its form is allowed (scheme, no user information, a plain host
    that is not a metadata name); the addresses are judged when it is resolved."""
    text = str(url) if url is not None else ""
    if not text or len(text) > MAX_URL_CHARS:
        raise OutboundRefused(f"{what} must be an http(s) URL of at most {MAX_URL_CHARS} characters", param=param)
    try:
        u = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise OutboundRefused(f"{what} {shown_url(text)!r} is not a valid URL", param=param) from None
    if u.scheme not in SCHEMES:
        raise OutboundRefused(
            f"{what} {shown_url(u)!r}: scheme {u.scheme or 'none'!r} is not fetched; only http and https are",
            host=u.host,
            reason="scheme",
            param=param,
        )
    authority = re.split(r"[/?#]", text.split("//", 1)[-1], maxsplit=1)[0]
    if u.userinfo or "@" in authority:
        raise OutboundRefused(
            f"{what} {shown_url(u)!r} has user information before the host ('...@'): refused; "
            "credentials go in named secrets, never in URLs",
            host=u.host,
            reason="userinfo",
            param=param,
        )
    host = normal_host(u.host)
    if not host:
        raise OutboundRefused(f"{what} {shown_url(u)!r} has no host", param=param)
    if "%" in host or any(ch.isspace() for ch in host):
        raise OutboundRefused(f"{what} {shown_url(u)!r}: a percent-encoded or zoned host is refused", host=host, reason="host", param=param)
    if host in METADATA_HOSTS:
        raise OutboundRefused(
            f"{what} {shown_url(u)!r}: host {host} is a cloud metadata service, never fetched",
            host=host,
            reason="metadata",
            param=param,
        )
    return u
