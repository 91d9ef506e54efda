"""The outbound fetcher against real local HTTP servers: internal targets refused in every
spelling, names resolving inward refused, redirects re-checked, the resolved address pinned
for the connection (one lookup, no rebinding), TLS verified against the name, size and time
limits, no proxy from the environment."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plinth.errors import ErrorCode
from plinth.outbound import Outbound, OutboundLimit, OutboundPolicy, OutboundRefused
from tests.support.http_targets import Answer, Seen, Target, redirect, serve, text


@pytest.fixture
def target() -> Iterator[Target]:
    with serve({"/": text("hello"), "*": text("hello")}) as t:
        yield t


def closed() -> Outbound:
    return Outbound(OutboundPolicy())


def allowing(*entries: str, **kwargs: object) -> Outbound:
    return Outbound(OutboundPolicy.from_entries(entries), **kwargs)  # type: ignore[arg-type]


def forms(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://017700000001:{port}/",
        f"http://127.1:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://localhost:{port}/",
        f"http://LOCALHOST.:{port}/",
    ]


def test_loopback_in_every_spelling_is_refused_and_nothing_is_sent(target: Target) -> None:
    ob = closed()
    for url in forms(target.port):
        with pytest.raises(OutboundRefused) as e:
            ob.fetch(url, max_bytes=1000)
        assert "127.0.0.1" in e.value.message and "loopback" in e.value.message, url
        assert e.value.http_status == 400
    assert target.seen == []


def test_the_same_spellings_reach_the_server_when_loopback_is_allowed(target: Target) -> None:
    ob = allowing("127.0.0.1")
    for url in forms(target.port):
        assert ob.fetch(url, max_bytes=1000).data == b"hello", url
    assert len(target.seen) == len(forms(target.port))
    assert all(host == "127.0.0.1" for _name, host in ob.recent)


def test_ipv6_loopback_and_unspecified_are_refused() -> None:
    with serve({"*": text("six")}, host="::1") as six:
        with pytest.raises(OutboundRefused, match=r"address ::1 is loopback"):
            closed().fetch(six.url(), max_bytes=100)
        assert allowing("::1").fetch(six.url(), max_bytes=100).data == b"six"
        with pytest.raises(OutboundRefused, match="loopback"):
            allowing("127.0.0.1").fetch(six.url(), max_bytes=100)  # allowing 127.0.0.1 does not allow ::1
    for url in ("http://0.0.0.0:9/", "http://[::]:9/", "http://0:9/"):
        with pytest.raises(OutboundRefused, match="unspecified"):
            closed().fetch(url, max_bytes=100)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://3232235777/", "address 192.168.1.1 of host 3232235777 is private"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is link-local (cloud metadata), never fetched"),
        ("http://2852039166/", "address 169.254.169.254 of host 2852039166 is link-local (cloud metadata), never fetched"),
        ("http://[fd00:ec2::254]/", "cloud metadata (AWS IPv6), never fetched"),
        ("http://[fe80::1]/", "link-local, never fetched"),
        ("http://metadata.google.internal/", "cloud metadata service, never fetched"),
    ],
)
def test_internal_ranges_are_refused_before_connecting(url: str, words: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(OutboundRefused) as e:
        closed().fetch(url, max_bytes=100)
    assert words in e.value.message
    assert time.monotonic() - t0 < 2  # refused, not tried


def test_metadata_is_refused_even_when_everything_is_allowed() -> None:
    ob = allowing("0.0.0.0/0", "::/0", "169.254.169.254", "metadata.google.internal")
    for url in ("http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://metadata.google.internal/"):
        with pytest.raises(OutboundRefused, match="never fetched"):
            ob.fetch(url, max_bytes=100)


def test_user_information_tricks_are_refused(target: Target) -> None:
    ob = allowing("127.0.0.1")
    for url in (f"http://allowed@127.0.0.1:{target.port}/", f"http://a:b@127.0.0.1:{target.port}/", f"http://@127.0.0.1:{target.port}/"):
        with pytest.raises(OutboundRefused, match="user information"):
            ob.fetch(url, max_bytes=100)
    assert target.seen == []


def test_a_name_resolving_inward_is_refused(target: Target) -> None:
    calls: list[str] = []

    def resolver(host: str) -> list[str]:
        calls.append(host)
        return {"docs.example.com": ["127.0.0.1"], "mixed.example.com": ["93.184.216.34", "10.0.0.1"]}[host]

    ob = Outbound(OutboundPolicy(), resolver=resolver)
    with pytest.raises(OutboundRefused, match=r"address 127\.0\.0\.1 of host docs\.example\.com is loopback"):
        ob.fetch(f"http://docs.example.com:{target.port}/", max_bytes=100)
    with pytest.raises(OutboundRefused, match=r"address 10\.0\.0\.1 of host mixed\.example\.com is private"):
        ob.fetch("http://mixed.example.com/", max_bytes=100)  # one bad address among good ones is enough
    with pytest.raises(OutboundRefused, match="loopback"):
        ob.check_url(f"http://docs.example.com:{target.port}/")
    assert target.seen == []
    with pytest.raises(OutboundRefused, match="does not resolve"):
        closed().fetch("http://no-such-host.invalid/", max_bytes=100)


def test_a_name_in_the_allow_list_is_fetched_on_the_address_it_resolved_to(target: Target) -> None:
    calls: list[str] = []

    def resolver(host: str) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    ob = Outbound(OutboundPolicy.from_entries(["engine.test"]), resolver=resolver)
    got = ob.fetch(f"http://engine.test:{target.port}/", max_bytes=100)
    assert got.data == b"hello"
    assert calls == ["engine.test"]  # resolved once, by the fetcher
    assert target.seen[-1].headers["host"] == f"engine.test:{target.port}"  # the original Host header
    assert ob.recent[-1] == ("engine.test", "127.0.0.1")


def test_the_connection_goes_to_the_address_that_was_judged() -> None:
    """DNS rebinding: the first lookup gives an allowed address, any later one an internal
    address. The fetcher looks up once, judges that answer and connects to it: the server on
    the second address never hears from it."""
    with serve({"*": text("allowed")}, host="127.0.0.2") as allowed, serve({"*": text("internal")}, host="127.0.0.1", port=allowed.port):
        answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])
        calls: list[str] = []

        def resolver(host: str) -> list[str]:
            calls.append(host)
            return next(answers)

        ob = Outbound(OutboundPolicy.from_entries(["127.0.0.2"]), resolver=resolver)
        got = ob.fetch(f"http://rebind.test:{allowed.port}/", max_bytes=100)
        assert got.data == b"allowed" and calls == ["rebind.test"]
        assert ob.recent == [("rebind.test", "127.0.0.2")]
        # the next connection looks up again and is judged again: now refused
        with pytest.raises(OutboundRefused, match=r"address 127\.0\.0\.1 of host rebind\.test is loopback"):
            ob.fetch(f"http://rebind.test:{allowed.port}/", max_bytes=100)


def test_redirects_are_checked_like_the_first_url() -> None:
    with serve({"*": text("secret inside")}, host="127.0.0.2") as inner:
        with serve(
            {
                "/to-inner": redirect(inner.url("/admin")),
                "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/iam/"),
                "/to-userinfo": redirect("http://x@127.0.0.1/"),
                "/to-file": redirect("file:///etc/passwd"),
                "/relative": redirect("/final"),
                "/final": text("final"),
                "/loop": redirect("/loop"),
            }
        ) as outer:
            ob = allowing("127.0.0.1")  # the public-looking first hop is allowed; 127.0.0.2 is not
            with pytest.raises(OutboundRefused) as e:
                ob.fetch(outer.url("/to-inner"), max_bytes=100)
            assert f"redirected to {inner.url('/admin')}" in e.value.message and "address 127.0.0.2 is loopback" in e.value.message
            with pytest.raises(OutboundRefused, match="link-local"):
                ob.fetch(outer.url("/to-metadata"), max_bytes=100)
            with pytest.raises(OutboundRefused, match="user information"):
                ob.fetch(outer.url("/to-userinfo"), max_bytes=100)
            with pytest.raises(OutboundRefused, match="scheme 'file'"):
                ob.fetch(outer.url("/to-file"), max_bytes=100)
            got = ob.fetch(outer.url("/relative"), max_bytes=100)
            assert got.data == b"final" and got.final_url == outer.url("/final") and got.url == outer.url("/relative")
            with pytest.raises(Exception, match="more than 5 redirects"):
                ob.fetch(outer.url("/loop"), max_bytes=100)
        assert inner.seen == []


def test_the_engine_clients_follow_no_redirect(target: Target) -> None:
    target.routes["/moved"] = redirect("http://127.0.0.2:1/")
    with allowing("127.0.0.1").client(target.origin) as client:
        r = client.get("/moved")
    assert r.status_code == 302  # seen by the caller, who decides (remote engines: 502)


def test_size_limits_declared_and_counted() -> None:
    big = b"x" * 5000
    with serve(
        {
            "/declared": lambda _s: Answer(body=big),
            "/chunked": lambda _s: Answer(chunks=[b"x" * 1000] * 5),
            "/unknown": lambda _s: Answer(body=big, send_length=False),
        }
    ) as t:
        ob = allowing("127.0.0.1")
        for path in ("/declared", "/chunked", "/unknown"):
            with pytest.raises(OutboundLimit) as e:
                ob.fetch(t.url(path), max_bytes=4096, limit_setting="PLINTH_KB_MAX_FILE_BYTES")
            assert e.value.code is ErrorCode.PAYLOAD_TOO_LARGE and "limit of 4096 bytes" in e.value.message, path
            assert "PLINTH_KB_MAX_FILE_BYTES" in e.value.message
        assert ob.fetch(t.url("/chunked"), max_bytes=5000).data == b"x" * 5000


def test_time_limits_cover_the_whole_answer() -> None:
    with serve(
        {
            "/silent": lambda _s: Answer(delay=5, body=b"late"),
            "/trickle": lambda _s: Answer(chunks=[b"."] * 50, pause=0.1),
        }
    ) as t:
        ob = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]), timeout_s=1.0)
        for path in ("/silent", "/trickle"):
            t0 = time.monotonic()
            with pytest.raises(OutboundLimit) as e:
                ob.fetch(t.url(path), max_bytes=10_000)
            assert e.value.code is ErrorCode.UPSTREAM_ERROR and "time limit" in e.value.message, path
            assert time.monotonic() - t0 < 2.5, path  # a trickle does not extend the deadline


def test_errors_name_the_status_never_the_body() -> None:
    with serve({"*": text("internal stack trace at /srv/app", status=500)}) as t, pytest.raises(Exception) as e:
        allowing("127.0.0.1").fetch(t.url("/doc?token=abc"), max_bytes=1000)
    message = str(e.value)
    assert "answered 500" in message and "stack trace" not in message and "token=abc" not in message


def test_no_proxy_and_no_netrc_from_the_environment(target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A proxy would make the connection somewhere the rules never judged."""
    with serve({"*": lambda _s: Answer(200, b"from the proxy")}) as proxy:
        (tmp_path / ".netrc").write_text("machine 127.0.0.1 login user password netrc-secret\n")
        monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(var, proxy.origin)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        got = allowing("127.0.0.1").fetch(target.url(), max_bytes=100)
    assert got.data == b"hello" and proxy.seen == []
    assert "authorization" not in target.seen[-1].headers


def test_connections_through_a_client_are_checked_per_request(target: Target) -> None:
    ob = allowing("127.0.0.1")
    with ob.client(target.origin) as client:
        assert client.get("/").text == "hello"
        with pytest.raises(OutboundRefused, match="link-local"):
            client.get("http://169.254.169.254/latest")  # an absolute URL through the same client
        with pytest.raises(OutboundRefused, match="user information"):
            client.get(f"http://u@127.0.0.1:{target.port}/")


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_is_pinned_and_verified_against_the_name(tmp_path: Path) -> None:
    """The socket goes to the judged IP, but TLS sends the name as SNI and verifies the
    certificate against it: a name the certificate does not hold fails verification."""
    cert, key = _self_signed(tmp_path, "engine.test")
    import http.server
    import threading

    seen_sni: list[str | None] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)  # type: ignore[assignment,misc]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = f"tls host={self.headers['host']}".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        resolver = {"engine.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}.__getitem__
        ob = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]), resolver=resolver, verify=trust)
        got = ob.fetch(f"https://engine.test:{port}/", max_bytes=1000)
        assert got.data == f"tls host=engine.test:{port}".encode()
        assert seen_sni[-1] == "engine.test" and ob.recent[-1] == ("engine.test", "127.0.0.1")
        with pytest.raises(Exception, match=r"could not be fetched \(ConnectError\)"):
            ob.fetch(f"https://other.test:{port}/", max_bytes=1000)  # same IP, wrong name: not verified
    finally:
        server.shutdown()
        server.server_close()


def test_a_refused_request_is_not_an_httpx_error() -> None:
    """Callers that catch httpx.HTTPError for "unreachable" must not mistake a refusal for it."""
    assert not issubclass(OutboundRefused, httpx.HTTPError) and not issubclass(OutboundLimit, httpx.HTTPError)


def test_seen_records_the_peer(target: Target) -> None:
    allowing("127.0.0.1").fetch(target.url(), max_bytes=100)
    assert isinstance(target.seen[-1], Seen) and target.seen[-1].peer == "127.0.0.1"
