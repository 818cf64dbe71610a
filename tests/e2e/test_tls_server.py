"""The gateway's TLS listener: ALPN, protocol versions, SNI, session
resumption, handshake failures and certificate reload (SIGHUP and file
change). Certificates come from a throw-away CA made with the openssl CLI."""
import os
import shutil
import socket
import ssl
import time

import pytest

from conftest import (SLACK, BackgroundStream, H2Client, Target, TestPki, chat, chat_body, h1_connection, request,
                      start_tls_gateway, tls_listener, wait_until, metric_delta)


@pytest.fixture(scope="module")
def gw(module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki)
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(scope="module")
def pki(module_dir) -> TestPki:
    """A CA of this module's own, for certificates with distinct names."""
    return TestPki(module_dir / "pki")


def _cn(cert: dict) -> str:
    return dict(x[0] for x in cert["subject"])["commonName"]


def _handshake(port: int, ctx: ssl.SSLContext, server_hostname: str | None = "localhost",
               session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
    except BaseException:
        raw.close()
        raise


def _h1_over(sock: ssl.SSLSocket, path: str = "/v1/chat/completions", body: bytes | None = None,
             headers: dict | None = None):
    """One HTTP/1.1 request on an already established TLS socket (keep-alive)."""
    import http.client
    body = chat_body() if body is None and path == "/v1/chat/completions" else body
    method = "POST" if body is not None else "GET"
    head = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
    r = http.client.HTTPResponse(sock)
    r.begin()
    data = r.read()
    return r.status, data


def _peer_cn(port: int, pki_ctx: ssl.SSLContext, name: str | None = "localhost") -> str:
    with _handshake(port, pki_ctx, name) as s:
        return _cn(s.getpeercert())


# ---- ALPN ------------------------------------------------------------------------

@pytest.mark.parametrize("offer,chosen", [
    (["h2", "http/1.1"], "h2"),
    (["http/1.1", "h2"], "h2"),
    (["h2"], "h2"),
    (["http/1.1"], "http/1.1"),
    (None, None),
    (["spdy/3", "acme-tls/1"], None),
], ids=["h2+h1", "h1+h2", "h2-only", "h1-only", "no-alpn", "unknown-only"])
def test_alpn_selection(gw, server_pki, offer, chosen):
    before = gw.metrics()
    ctx = server_pki.client_context(offer)
    with _handshake(gw.tls_port, ctx) as s:
        assert s.selected_alpn_protocol() == chosen
        if chosen != "h2":
            # Without ALPN h2 the connection speaks HTTP/1.1.
            status, data = _h1_over(s, headers={"x-mock-tokens": "2"})
            assert status == 200, data
    if chosen == "h2":
        with H2Client(Target(gw.tls_port, "h2-tls", ssl_context=ctx)) as c:
            r = c.chat(chat_body(), {"x-mock-tokens": "2"})
            assert r.status == 200, r.body
    after = gw.metrics()
    # The h2 case opened two connections (the bare handshake above, then the client).
    assert metric_delta(before, after, "sluice_connections_total",
                  protocol="HTTP/2" if chosen == "h2" else "HTTP/1.1") == (2 if chosen == "h2" else 1)
    assert metric_delta(before, after, "sluice_connections_total", protocol="HTTP/1.1" if chosen == "h2" else "HTTP/2") == 0


def test_alpn_without_http2_picks_http11(module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki, server={"http2": {"enabled": False}})
    try:
        with _handshake(g.tls_port, server_pki.client_context(["h2", "http/1.1"])) as s:
            assert s.selected_alpn_protocol() == "http/1.1"
            status, _ = _h1_over(s, headers={"x-mock-tokens": "1"})
            assert status == 200
        # An h2-only client gets no ALPN answer and cannot speak HTTP/2 here.
        with _handshake(g.tls_port, server_pki.client_context(["h2"])) as s:
            assert s.selected_alpn_protocol() is None
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- Versions ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_tls_versions_by_default(gw, server_pki, version):
    ctx = server_pki.client_context(["http/1.1"], minimum=version, maximum=version)
    name = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    with _handshake(gw.tls_port, ctx) as s:
        assert s.version() == name
        status, data = _h1_over(s, headers={"x-mock-tokens": "3"})
        assert status == 200, data
    # HTTP/2 too.
    h2ctx = server_pki.client_context(["h2"], minimum=version, maximum=version)
    with H2Client(Target(gw.tls_port, "h2-tls", ssl_context=h2ctx)) as c:
        assert c.sock.version() == name
        assert c.chat(chat_body(), {"x-mock-tokens": "1"}).status == 200


def test_min_version_13_refuses_tls12(module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki,
                          tls=tls_listener((server_pki.cert, server_pki.key), min_version="1.3"))
    try:
        before = g.metrics()
        ctx12 = server_pki.client_context(["http/1.1"], maximum=ssl.TLSVersion.TLSv1_2)
        with pytest.raises(ssl.SSLError):
            _handshake(g.tls_port, ctx12).close()
        wait_until(lambda: g.metrics().get1("sluice_tls_handshake_errors_total")
                   == before.get1("sluice_tls_handshake_errors_total") + 1, 1.0 * SLACK,
                   what="handshake error counted")
        ctx13 = server_pki.client_context(["http/1.1"])
        with _handshake(g.tls_port, ctx13) as s:
            assert s.version() == "TLSv1.3"
            assert _h1_over(s, headers={"x-mock-tokens": "1"})[0] == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- SNI -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sni_gw(module_dir, mock, pki):
    default = pki.issue("default.test", dns=("default.test",), ips=("127.0.0.1",))
    alt = pki.issue("alt.test", dns=("alt.test", "*.wild.test"))
    g = start_tls_gateway(module_dir, mock.port, pki, tls=tls_listener(default, alt))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.mark.parametrize("name,cn", [
    ("alt.test", "alt.test"),
    ("ALT.Test", "alt.test"),
    ("x.wild.test", "alt.test"),
    ("default.test", "default.test"),
    ("unknown.test", "default.test"),
    ("a.b.wild.test", "default.test"),   # a wildcard covers one label only
    (None, "default.test"),               # no SNI at all
], ids=["alt", "alt-case", "wildcard", "default-by-name", "unknown", "wildcard-two-labels", "no-sni"])
def test_sni_selects_certificate(sni_gw, pki, name, cn):
    # Verify the chain always; the name only where the certificate should match it.
    matching = name is not None and cn != "default.test" or name == "default.test"
    ctx = pki.client_context(["h2", "http/1.1"], check_hostname=matching)
    with _handshake(sni_gw.tls_port, ctx, name) as s:
        assert _cn(s.getpeercert()) == cn
    # And requests on it are served, over HTTP/2.
    with H2Client(Target(sni_gw.tls_port, "h2-tls", ssl_context=ctx, server_hostname=name)) as c:
        assert _cn(c.sock.getpeercert()) == cn
        assert c.chat(chat_body(), {"x-mock-tokens": "1"}).status == 200


# ---- Session resumption -------------------------------------------------------------------

def _session_after_request(port: int, ctx: ssl.SSLContext) -> ssl.SSLSession:
    with _handshake(port, ctx) as s:
        assert not s.session_reused
        # TLS 1.3 tickets arrive after the handshake: read a response first.
        assert _h1_over(s, headers={"x-mock-tokens": "1"})[0] == 200
        sess = s.session
    assert sess is not None
    return sess


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_session_resumption(gw, server_pki, version):
    ctx = server_pki.client_context(["http/1.1"], minimum=version, maximum=version)
    sess = _session_after_request(gw.tls_port, ctx)
    with _handshake(gw.tls_port, ctx, session=sess) as s:
        assert s.session_reused, "the server did not resume the session"
        assert _h1_over(s, headers={"x-mock-tokens": "1"})[0] == 200


def test_tls12_resumes_from_the_session_cache_without_tickets(module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki,
                          tls=tls_listener((server_pki.cert, server_pki.key), session_tickets=False))
    try:
        ctx = server_pki.client_context(["http/1.1"], maximum=ssl.TLSVersion.TLSv1_2)
        sess = _session_after_request(g.tls_port, ctx)
        assert not sess.has_ticket, "session_tickets: false, yet the server sent a ticket"
        with _handshake(g.tls_port, ctx, session=sess) as s:
            assert s.session_reused, "the server did not resume from its session cache"
            assert _h1_over(s, headers={"x-mock-tokens": "1"})[0] == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- Handshake failures ---------------------------------------------------------------------

def test_silent_tls_client_times_out_and_is_counted(module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki, server={"header_timeout": "500ms"})
    try:
        before = g.metrics()
        with socket.create_connection(("127.0.0.1", g.tls_port), timeout=5) as c:
            t0 = time.monotonic()
            try:
                data = c.recv(100)
            except ConnectionResetError:
                data = b""
            took = time.monotonic() - t0
        assert data == b"", data
        assert 0.4 <= took < 0.5 + 1.0 * SLACK, took
        wait_until(lambda: g.metrics().get1("sluice_tls_handshake_errors_total")
                   == before.get1("sluice_tls_handshake_errors_total") + 1, 1.0 * SLACK,
                   what="handshake timeout counted")
        ctx = server_pki.client_context(["http/1.1"])
        assert chat(Target(g.tls_port, "h1-tls", ssl_context=ctx), chat_body(), {"x-mock-tokens": "1"}).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


GARBAGE = {
    "plain-http": b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "h2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    "random": bytes(range(256)) * 8,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_non_tls_client_is_counted_and_harmless(gw, server_pki, kind):
    target = Target(gw.tls_port, "h1-tls", ssl_context=server_pki.client_context(["http/1.1"]))
    before = gw.metrics()
    with BackgroundStream(target, tokens=20, itl_ms=20):
        with socket.create_connection(("127.0.0.1", gw.tls_port), timeout=5) as c:
            c.sendall(GARBAGE[kind])
            # The gateway gives up on it (an alert at most), and closes.
            deadline = time.monotonic() + 3 * SLACK
            got = b""
            while time.monotonic() < deadline:
                try:
                    d = c.recv(4096)
                except (ConnectionResetError, socket.timeout):
                    break
                if not d:
                    break
                got += d
            else:
                pytest.fail("the gateway kept a non-TLS connection open")
            assert not got.startswith(b"HTTP/"), got[:100]
        wait_until(lambda: gw.metrics().get1("sluice_tls_handshake_errors_total")
                   == before.get1("sluice_tls_handshake_errors_total") + 1, 1.0 * SLACK,
                   what="handshake error counted")
    # Healthy requests on both listeners afterwards.
    assert chat(target, chat_body(), {"x-mock-tokens": "1"}).status == 200
    assert chat(gw.port, chat_body(), {"x-mock-tokens": "1"}).status == 200


# ---- Certificate reload ----------------------------------------------------------------------

class _Live:
    """cert/key files the gateway is configured with, replaced atomically."""

    def __init__(self, d, first):
        self.cert = d / "live.pem"
        self.key = d / "live.key"
        self.put(*first)

    def put(self, cert, key):
        for src, dst in ((cert, self.cert), (key, self.key)):
            tmp = dst.with_suffix(dst.suffix + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)

    def write_key(self, data: bytes):
        tmp = self.key.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.key)


@pytest.fixture()
def certs(pki):
    names = {}
    for cn in ("first.test", "second.test", "third.test"):
        names[cn] = pki.issue(cn, dns=(cn, "localhost"), ips=("127.0.0.1",))
    return names


def _reload_gateway(tmp_path, mock, pki, certs, **tls_opts):
    live = _Live(tmp_path, certs["first.test"])
    g = start_tls_gateway(tmp_path, mock.port, pki, tls=tls_listener((live.cert, live.key), **tls_opts))
    return g, live


def _log(g) -> str:
    """Everything the gateway wrote to stdout/stderr so far."""
    return g.proc.out_path.read_text(errors="replace")


def _wait_output(g, text: str, after: int, timeout: float):
    wait_until(lambda: text in _log(g)[after:], timeout, what=f"gateway output {text!r}")


def _output_len(g) -> int:
    return len(_log(g))


class _OldConnections:
    """Connections opened before a reload: a keep-alive HTTP/1.1 one and an HTTP/2 one."""

    def __init__(self, g, pki):
        self.h1 = h1_connection(Target(g.tls_port, "h1-tls", ssl_context=pki.client_context(["http/1.1"]),
                                       server_hostname="localhost"))
        r = request(None, "POST", "/v1/chat/completions", chat_body(), {"x-mock-tokens": "1"}, conn=self.h1)
        assert r.status == 200
        self.sock = self.h1.sock
        self.h1_cn = _cn(self.sock.getpeercert())
        self.h2 = H2Client(Target(g.tls_port, "h2-tls", ssl_context=pki.client_context(["h2"]),
                                  server_hostname="localhost"))
        assert self.h2.chat(chat_body(), {"x-mock-tokens": "1"}).status == 200
        self.h2_cn = _cn(self.h2.sock.getpeercert())

    def still_work(self):
        r = request(None, "POST", "/v1/chat/completions", chat_body(), {"x-mock-tokens": "2"}, conn=self.h1)
        assert r.status == 200, r.body
        assert self.h1.sock is self.sock, "the HTTP/1.1 connection was re-opened"
        r = self.h2.chat(chat_body(), {"x-mock-tokens": "2"})
        assert r.status == 200, r.body
        assert not self.h2.closed and self.h2.goaway is None

    def close(self):
        self.h1.close()
        self.h2.close()


def test_reload_on_sighup(tmp_path, mock, pki, certs):
    g, live = _reload_gateway(tmp_path, mock, pki, certs, reload_check="1h")
    ctx = pki.client_context(["http/1.1"])
    try:
        old = _OldConnections(g, pki)
        assert old.h1_cn == old.h2_cn == "first.test"
        live.put(*certs["second.test"])
        time.sleep(0.3)
        assert _peer_cn(g.tls_port, ctx) == "first.test", "reloaded without SIGHUP"
        mark = _output_len(g)
        g.proc.signal(1)  # SIGHUP
        _wait_output(g, "TLS certificates reloaded (SIGHUP)", mark, 2.0 * SLACK)
        assert _peer_cn(g.tls_port, ctx) == "second.test"
        with H2Client(Target(g.tls_port, "h2-tls", ssl_context=pki.client_context(["h2"]),
                             server_hostname="localhost")) as c:
            assert _cn(c.sock.getpeercert()) == "second.test"
            assert c.chat(chat_body(), {"x-mock-tokens": "1"}).status == 200
        # Connections from before keep their certificate and keep working.
        old.still_work()
        assert _cn(old.sock.getpeercert()) == "first.test"
        old.close()
        assert g.proc.alive()
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def test_reload_when_files_change(tmp_path, mock, pki, certs):
    g, live = _reload_gateway(tmp_path, mock, pki, certs, reload_check="200ms")
    ctx = pki.client_context(["http/1.1"])
    try:
        old = _OldConnections(g, pki)
        mark = _output_len(g)
        live.put(*certs["second.test"])
        wait_until(lambda: _peer_cn(g.tls_port, ctx) == "second.test", 2.0 * SLACK, interval=0.05,
                   what="new certificate served")
        _wait_output(g, "TLS certificates reloaded (files changed)", mark, 1.0 * SLACK)
        old.still_work()
        # And once more.
        live.put(*certs["third.test"])
        wait_until(lambda: _peer_cn(g.tls_port, ctx) == "third.test", 2.0 * SLACK, interval=0.05,
                   what="third certificate served")
        old.still_work()
        old.close()
    finally:
        assert g.proc.stop() == 0, g.proc.output()


@pytest.mark.parametrize("breakage", ["garbage-key", "mismatched-key", "missing-key"])
def test_reload_with_broken_key_keeps_old_certificate(tmp_path, mock, pki, certs, breakage):
    g, live = _reload_gateway(tmp_path, mock, pki, certs, reload_check="1h")
    ctx = pki.client_context(["http/1.1"])
    target = Target(g.tls_port, "h1-tls", ssl_context=ctx, server_hostname="localhost")
    try:
        old = _OldConnections(g, pki)
        live.put(*certs["second.test"])
        if breakage == "garbage-key":
            live.write_key(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        elif breakage == "mismatched-key":
            live.write_key(certs["third.test"][1].read_bytes())
        else:
            live.key.unlink()
        mark = _output_len(g)
        g.proc.signal(1)
        # SIGHUP reloads the whole configuration: a key file that is gone
        # already fails its validation (nothing changes); one that is there
        # but broken fails when the certificates load.
        _wait_output(g, "configuration reload (SIGHUP) rejected" if breakage == "missing-key"
                     else "TLS certificate reload failed (SIGHUP), keeping the old ones", mark, 2.0 * SLACK)
        assert g.proc.alive()
        assert _peer_cn(g.tls_port, ctx) == "first.test"
        assert chat(target, chat_body(), {"x-mock-tokens": "1"}).status == 200
        assert chat(g.port, chat_body(), {"x-mock-tokens": "1"}).status == 200
        old.still_work()
        # Fixed files load on the next SIGHUP.
        live.put(*certs["second.test"])
        mark = _output_len(g)
        g.proc.signal(1)
        _wait_output(g, "TLS certificates reloaded (SIGHUP)", mark, 2.0 * SLACK)
        assert _peer_cn(g.tls_port, ctx) == "second.test"
        assert chat(target, chat_body(), {"x-mock-tokens": "1"}).status == 200
        old.close()
    finally:
        assert g.proc.stop() == 0, g.proc.output()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_session_resumes_across_reload(tmp_path, mock, pki, certs, version):
    """Ticket keys carry over a reload: a session from before still resumes."""
    g, live = _reload_gateway(tmp_path, mock, pki, certs, reload_check="1h")
    ctx = pki.client_context(["http/1.1"], minimum=version, maximum=version)
    try:
        sess = _session_after_request(g.tls_port, ctx)
        mark = _output_len(g)
        g.proc.signal(1)
        _wait_output(g, "TLS certificates reloaded (SIGHUP)", mark, 2.0 * SLACK)
        with _handshake(g.tls_port, ctx, session=sess) as s:
            assert s.session_reused, "a session from before the reload did not resume"
            assert _h1_over(s, headers={"x-mock-tokens": "1"})[0] == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()
