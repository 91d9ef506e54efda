"""The one way the server makes HTTP requests to other hosts (ADR 0080).

Remote engines (``runtimes/openai_upstream.py``), the remote embedder
(``embeddings/remote.py``), remote models being registered (``catalog``) and URL ingestion
(knowledge bases and datasets) all go through :class:`Outbound`:

- every request, every redirect hop included, is checked by :func:`~plinth.outbound.policy.check_url`
  (http/https, no user information, no metadata host name);
- the host is resolved once per connection, by the fetcher, inside the connect call of the
  HTTP transport (:class:`PinnedBackend`): every address is judged by the
  :class:`~plinth.outbound.policy.OutboundPolicy`, and the socket is opened to the judged IP
  itself, so a name cannot resolve to a public address for the check and to an internal one
  for the connection (DNS rebinding). TLS still uses the host name for SNI and certificate
  verification, and the request keeps its ``Host`` header;
- no proxy from the environment and no ``.netrc`` (``trust_env`` off for requests);
- every answer is bounded in size (``Content-Length`` checked first, then the bytes counted)
  and in time (a deadline for the whole request, body included);
- redirects: :meth:`Outbound.fetch` follows at most ``outbound_max_redirects``, each one
  re-checked; the clients the remote engines use follow none.

Nothing an upstream sends is put into an error: errors name the URL (without user
information, query or fragment), the status and the rule.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from plinth.errors import ErrorCode, PlinthError
from plinth.outbound.policy import (
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
    check_url,
    normal_host,
    parse_ip_literal,
    shown_url,
    unwrap,
)
from plinth.outbound.secrets import SecretStore

#: host -> the IP addresses it resolves to (strings); the system resolver by default.
Resolver = Callable[[str], Sequence[str]]

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_DEADLINE = "plinth.deadline"  # request extension: the monotonic time the whole request must end by


def system_resolver(host: str) -> list[str]:
    """``getaddrinfo``'s addresses for ``host``, in its order, without duplicates."""
    seen: list[str] = []
    for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


class OutboundLimit(PlinthError):
    """An answer that passed the size limit or the time limit."""


@dataclass(frozen=True)
class Fetched:
    """What :meth:`Outbound.fetch` got: the URL asked for, the one that answered (after
    redirects), the answer's content type (without parameters), charset and bytes."""

    url: str
    final_url: str
    content_type: str | None
    charset: str | None
    data: bytes


class PinnedBackend(httpcore.SyncBackend):
    """Connects to the address the outbound rules judged, never to a second lookup's."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = self.outbound.addresses(host, timeout=timeout)
        last: Exception | None = None
        for ip in addresses:
            try:
                stream = super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:  # the next judged address, if any
                last = e
                continue
            self.outbound.connected(host, ip)
            return stream
        assert last is not None
        raise last


class _Bounded(httpx.SyncByteStream):
    """An answer's body, cut off past ``max_bytes`` or past the deadline."""

    def __init__(self, inner: httpx.SyncByteStream, *, max_bytes: int, deadline: float, url: httpx.URL, what: str, limit: str) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.url = url
        self.what = what
        self.limit = limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self.inner:
            seen += len(chunk)
            if seen > self.max_bytes:
                raise OutboundLimit(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"{self.what} {shown_url(self.url)}: the answer passed the limit of {self.max_bytes} bytes{self.limit}",
                )
            if time.monotonic() > self.deadline:
                raise OutboundLimit(
                    ErrorCode.UPSTREAM_ERROR, f"{self.what} {shown_url(self.url)}: the answer took longer than its time limit"
                )
            yield chunk

    def close(self) -> None:
        self.inner.close()


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool whose connections :class:`PinnedBackend` opens;
    each request checked, its answer bounded."""

    def __init__(self, outbound: Outbound, *, max_bytes: int, deadline_s: float, what: str, limit_setting: str | None = None) -> None:
        super().__init__(verify=outbound.verify, trust_env=True)
        # trust_env here: SSL_CERT_FILE / SSL_CERT_DIR for verification; proxies are the client's business (off)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=outbound.verify, trust_env=True),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(outbound),
        )
        self.outbound = outbound
        self.max_bytes = max_bytes
        self.deadline_s = deadline_s
        self.what = what
        self.limit = f" ({limit_setting})" if limit_setting else ""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url, what=self.what)  # every request, every redirect hop
        now = time.monotonic()
        deadline = float(request.extensions.get(_DEADLINE) or now + self.deadline_s)
        left = max(deadline - now, 0.001)
        timeouts = dict(request.extensions.get("timeout") or {})
        for key in ("connect", "read", "write", "pool"):
            given = timeouts.get(key)
            timeouts[key] = left if given is None else min(given, left)
        request.extensions["timeout"] = timeouts
        try:
            resp = super().handle_request(request)
        except OutboundRefused as e:
            raise OutboundRefused(f"{self.what} {shown_url(request.url)}: {e.reason}", host=e.host, reason=e.reason) from None
        except httpx.TimeoutException:
            if time.monotonic() >= deadline:
                raise OutboundLimit(
                    ErrorCode.UPSTREAM_ERROR, f"{self.what} {shown_url(request.url)}: no answer within its time limit"
                ) from None
            raise
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            resp.close()
            raise OutboundLimit(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"{self.what} {shown_url(request.url)}: the answer is {int(declared)} bytes, "
                f"over the limit of {self.max_bytes} bytes{self.limit}",
            )
        assert isinstance(resp.stream, httpx.SyncByteStream)
        stream = _Bounded(resp.stream, max_bytes=self.max_bytes, deadline=deadline, url=request.url, what=self.what, limit=self.limit)
        return httpx.Response(status_code=resp.status_code, headers=resp.headers, stream=stream, extensions=resp.extensions)


class Outbound:
    """The outbound fetcher: rules, resolver, secrets, limits. Built once per process from the
    settings (:meth:`from_settings`) and handed to whatever fetches."""

    def __init__(
        self,
        policy: OutboundPolicy | None = None,
        *,
        secrets: SecretStore | None = None,
        resolver: Resolver | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_redirects: int = 5,
        verify: Any = True,
    ) -> None:
        self.policy = policy or OutboundPolicy()
        self.secrets = secrets or SecretStore()
        self.resolver = resolver or system_resolver
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_redirects = max_redirects
        self.verify = verify
        self._lock = threading.Lock()
        #: (host, ip) of the latest connections, newest last (a few, for tests and debugging).
        self.recent: list[tuple[str, str]] = []

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> Outbound:
        policy = OutboundPolicy.from_entries(getattr(settings, "outbound_allow", ()), public=getattr(settings, "outbound_public", True))
        return cls(
            policy,
            secrets=SecretStore.from_settings(settings),
            timeout_s=float(getattr(settings, "outbound_timeout_s", 60.0)),
            max_redirects=int(getattr(settings, "outbound_max_redirects", 5)),
            **kwargs,
        )

    # -- the rules -------------------------------------------------------------------------
    def addresses(self, host: str, *, timeout: float | None = None) -> list[IPAddress]:
        """The addresses ``host`` means, each judged allowed (resolved once); else
        :class:`OutboundRefused` naming the address and the rule."""
        literal = parse_ip_literal(host)
        if literal is not None:
            found: list[IPAddress] = [literal]
        else:
            found = self._resolve(normal_host(host), timeout or self.connect_timeout_s)
        for ip in found:
            why = self.policy.refusal(ip, host)
            if why is not None:
                raise OutboundRefused(why, host=normal_host(host), reason=why)
        return [unwrap(ip) for ip in found]

    def _resolve(self, host: str, timeout: float) -> list[IPAddress]:
        out: list[Any] = []
        error: list[BaseException] = []

        def run() -> None:
            try:
                out.extend(self.resolver(host))
            except BaseException as e:  # handed to the caller's thread
                error.append(e)

        t = threading.Thread(target=run, name="plinth-resolve", daemon=True)
        t.start()
        t.join(timeout)
        name = normal_host(host)
        if t.is_alive():
            raise OutboundRefused(f"host {name} did not resolve within {timeout:g} s", host=name, reason=f"host {name} did not resolve")
        if error or not out:
            why = f"host {name} does not resolve"
            raise OutboundRefused(why, host=name, reason=why)
        addresses: list[IPAddress] = []
        for raw in out:
            ip = parse_ip_literal(str(raw).split("%")[0])  # a zoned IPv6 address is judged without its zone
            if ip is None:
                why = f"host {name} resolved to something that is not an IP address"
                raise OutboundRefused(why, host=name, reason=why)
            addresses.append(ip)
        return addresses

    def connected(self, host: str, ip: IPAddress) -> None:
        with self._lock:
            self.recent = [*self.recent[-31:], (normal_host(host), str(ip))]

    def check_url(self, url: Any, *, what: str = "URL", param: str | None = None) -> httpx.URL:
        """The URL, when its form is allowed and every address its host resolves to is: what
        registering a remote engine or accepting a URL to ingest checks before storing it.
        (Each connection checks again, on the addresses it connects to.)"""
        u = check_url(url, what=what, param=param)
        try:
            self.addresses(u.host)
        except OutboundRefused as e:
            raise OutboundRefused(f"{what} {shown_url(u)}: {e.reason}", host=e.host, reason=e.reason, param=param) from None
        return u

    # -- clients -----------------------------------------------------------------------------
    def client(
        self,
        base_url: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        deadline_s: float | None = None,
        what: str = "URL",
        limit_setting: str | None = None,
    ) -> httpx.Client:
        """An httpx client whose every request goes through the outbound rules, with answers
        bounded by ``max_bytes`` and ``deadline_s`` (default ``outbound_timeout_s``). It follows
        no redirect."""
        if base_url is not None:
            check_url(base_url, what=what)
        transport = PinnedTransport(
            self, max_bytes=max_bytes, deadline_s=deadline_s or self.timeout_s, what=what, limit_setting=limit_setting
        )
        return httpx.Client(
            base_url=base_url or "",
            headers=headers,
            timeout=timeout if timeout is not None else httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # no proxy and no .netrc from the environment
        )

    def fetch(self, url: str, *, max_bytes: int, what: str = "URL", param: str | None = None, limit_setting: str | None = None) -> Fetched:
        """GET ``url``: redirects followed (at most ``max_redirects``, each checked), the whole
        within ``timeout_s`` and ``max_bytes``. A status other than 2xx is 502 naming the URL
        and the status, never the body."""
        first = check_url(url, what=what, param=param)
        u = first
        deadline = time.monotonic() + self.timeout_s
        with self.client(max_bytes=max_bytes, deadline_s=self.timeout_s, what=what, limit_setting=limit_setting) as client:
            for _hop in range(self.max_redirects + 1):
                if time.monotonic() >= deadline:
                    raise OutboundLimit(ErrorCode.UPSTREAM_ERROR, f"{what} {shown_url(first)}: no answer within {self.timeout_s:g} s")
                try:
                    with client.stream("GET", u, extensions={_DEADLINE: deadline}, headers={"accept": "*/*"}) as resp:
                        if resp.is_redirect:
                            location = resp.headers.get("location", "")
                            try:
                                target = u.join(location)
                            except (httpx.InvalidURL, ValueError):
                                raise OutboundRefused(f"{what} {shown_url(u)}: redirected to an invalid URL", param=param) from None
                            u = check_url(target, what=f"{what} {shown_url(first)} redirected to", param=param)
                            continue
                        if not 200 <= resp.status_code < 300:
                            raise PlinthError(
                                ErrorCode.UPSTREAM_ERROR,
                                f"{what} {shown_url(u)} answered {resp.status_code} {resp.reason_phrase}".rstrip(),
                                param=param,
                            )
                        data = resp.read()
                        content_type = resp.headers.get("content-type", "")
                        media = content_type.split(";")[0].strip().lower() or None
                        return Fetched(str(first), str(u), media, resp.charset_encoding, data)
                except OutboundRefused as e:
                    if u != first and e.reason:
                        message = f"{what} {shown_url(first)} redirected to {shown_url(u)}: {e.reason}"
                        raise OutboundRefused(message, host=e.host, reason=e.reason, param=param) from None
                    if param is not None and e.param is None:
                        e.param = param
                    raise
                except httpx.HTTPError as e:
                    raise PlinthError(
                        ErrorCode.UPSTREAM_ERROR, f"{what} {shown_url(u)} could not be fetched ({type(e).__name__})", param=param
                    ) from None
        raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"{what} {shown_url(first)}: more than {self.max_redirects} redirects", param=param)
