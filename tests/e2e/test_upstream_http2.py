"""Upstreams over HTTP/2: h2c with prior knowledge (the mock) and h2 over TLS
(another sluice with a TLS listener, ALPN h2). One connection per endpoint
carries many requests; a slow client stalls only its own stream; PINGs find
a dead connection long before the request's own timeouts would."""
import json
import signal
import socket
import threading
import time

import pytest

from conftest import (SLACK, Target, assert_full_stream, chat, chat_body, established_to, gateway_config,
                      metric_delta, raw_chat, start_gateway, start_mock, stream_chat, tls_listener, wait_until)

H2 = "    protocol: h2\n"


def h2_upstream(http2: dict | None = None, tls: dict | None = None) -> str:
    s = H2
    if http2:
        s += "    http2: {" + ", ".join(f"{k}: {v}" for k, v in http2.items()) + "}\n"
    if tls:
        s += "    tls: {" + ", ".join(f"{k}: {v}" for k, v in tls.items()) + "}\n"
    return s


@pytest.fixture(scope="module")
def tls_upstream(module_dir, mock, server_pki):
    """A real h2-over-TLS upstream: a sluice whose TLS listener speaks h2 (by
    ALPN) and forwards to the mock. Its access log shows what reached it."""
    log = module_dir / "tls-upstream.log"
    g = start_gateway(module_dir, gateway_config(mock.port, server={"tls": tls_listener((server_pki.cert, server_pki.key))}),
                      access_log=log)
    g.log = log
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(scope="module", params=["h2c", "h2-tls"])
def gw(request, module_dir, mock, tls_upstream, server_pki):
    if request.param == "h2c":
        cfg = gateway_config(mock.port, upstream_extra=h2_upstream())
    else:
        cfg = gateway_config(endpoint=f"https://127.0.0.1:{tls_upstream.tls_port}",
                             upstream_extra=h2_upstream(tls={"ca_file": f'"{server_pki.ca}"', "sni": "localhost"}))
    g = start_gateway(module_dir, cfg)
    g.upstream_kind = request.param
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.mark.parametrize("downstream", ["h1", "h2c"])
def test_chat_through_h2_upstream(gw, downstream):
    t = Target(gw.port, downstream)
    r = chat(t, chat_body(), {"x-mock-tokens": "7"})
    assert r.status == 200, r.body[:300]
    assert r.json()["usage"]["completion_tokens"] == 7
    assert r.headers.get("x-request-id")
    s = stream_chat(t, chat_body(stream=True), {"x-mock-tokens": "9", "x-mock-itl-ms": "2"})
    assert_full_stream(s, 9)
    s = stream_chat(t, chat_body(stream=True, include_usage=True), {"x-mock-tokens": "4"})
    assert_full_stream(s, 4, usage_chunk=True)


def test_request_reaches_h2_upstream_intact(gw, tls_upstream):
    """Headers and body cross the HTTP/2 hop: the upstream sluice logs the
    request id the gateway sent and answers the model the body named."""
    if gw.upstream_kind != "h2-tls":
        pytest.skip("the TLS upstream is the one with an access log")
    r = chat(gw.port, chat_body(model="mock-relay"), {"x-mock-tokens": "3"})
    assert r.status == 200, r.body[:300]
    rid = r.headers["x-request-id"]
    assert r.json()["model"] == "mock-relay"
    wait_until(lambda: tls_upstream.log.exists() and rid in tls_upstream.log.read_text(), 5,
               what="the request id in the upstream's access log")
    line = next(ln for ln in tls_upstream.log.read_text().splitlines() if rid in ln)
    assert '"HTTP/2"' in line or "HTTP/2" in line, line


def test_upstream_errors_pass_through(gw):
    r = chat(gw.port, chat_body(), {"x-mock-status": "429"})
    assert r.status == 429, r.body[:300]
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-tokens": "50", "x-mock-itl-ms": "10", "x-mock-fail-after": "5"})
    assert s.status == 200
    chunks = s.chunks()
    assert any("error" in c for c in chunks), "a stream cut upstream must end with an error event"


def test_ttft_timeout_resets_only_that_stream(gw):
    """The TTFT deadline resets the stream, not the shared connection: a
    healthy stream on the same upstream connection finishes intact."""
    box = {}
    th = threading.Thread(target=lambda: box.setdefault(
        "s", stream_chat(gw.port, chat_body(stream=True), {"x-mock-tokens": "40", "x-mock-itl-ms": "25"})))
    th.start()
    time.sleep(0.1)
    r = chat(gw.port, chat_body(), {"x-mock-ttft-ms": "3000"})
    assert r.status == 504, r.body[:300]
    th.join(15)
    assert_full_stream(box["s"], 40)


# ---- Multiplexing and flow control (each with a mock of its own) -------------

def _concurrent_streams(port, n, headers):
    results = [None] * n

    def one(i):
        results[i] = stream_chat(port, chat_body(stream=True), headers, timeout=20)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    return threads, results


@pytest.mark.parametrize("max_streams, expected", [(100, 1), (8, 3)])
def test_requests_share_connections(module_dir, max_streams, expected):
    m = start_mock(module_dir)
    g = start_gateway(module_dir, gateway_config(
        m.port, upstream_extra=h2_upstream({"max_streams_per_connection": max_streams}),
        timeouts={"ttft": "10s", "idle": "10s"}))
    try:
        threads, results = _concurrent_streams(g.port, 20, {"x-mock-tokens": "30", "x-mock-itl-ms": "50"})
        wait_until(lambda: g.metrics(settled=False).get1("sluice_active_requests") >= 20, 10 * SLACK,
                   what="20 requests in flight")
        assert established_to(m.port) == expected
        for th in threads:
            th.join(30)
        for s in results:
            assert_full_stream(s, 30)
        assert established_to(m.port) == expected  # kept for the next requests
        assert g.metrics().get1("sluice_upstream_connections_total", upstream="m", protocol="HTTP/2") == expected
    finally:
        g.proc.stop()
        m.proc.stop()


def test_slow_client_stalls_only_its_own_upstream_stream(module_dir):
    """A client that stops reading a fast, long stream fills its own HTTP/2
    stream window; the other requests on the same upstream connection go on."""
    m = start_mock(module_dir, "--max-tokens-cap", "200000")
    g = start_gateway(module_dir, gateway_config(
        m.port, upstream_extra=h2_upstream(),
        # Scaled like client_stall: under ASan with 24 stalled streams one of
        # the ten once waited past a flat 5 s for its head. client_stall is
        # the longer, so the ten finish before any stall is cut (asserted).
        timeouts={"client_stall": f"{int(8 * SLACK)}s", "ttft": f"{int(5 * SLACK)}s", "idle": f"{int(5 * SLACK)}s"}))
    slow = []
    try:
        # Enough stalled streams that their windows together exceed the
        # connection window: the connection must still serve the others.
        for _ in range(24):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.connect(("127.0.0.1", g.port))
            c.sendall(raw_chat(chat_body(stream=True), [("x-mock-tokens", "200000")]))
            slow.append(c)
        time.sleep(0.8)  # the slow streams are stalled now, their upstream windows full
        t0 = time.monotonic()
        threads, results = _concurrent_streams(g.port, 10, {"x-mock-tokens": "20", "x-mock-itl-ms": "5"})
        for th in threads:
            th.join(20)
        for s in results:
            assert_full_stream(s, 20)
        # They finished while every stalled stream was still held, not because
        # the stalls were cut (client_stall) and freed the connection.
        assert g.metrics(settled=False).get1("sluice_timeouts_total", kind="client_stall") == 0
        assert time.monotonic() - t0 < 6.0 * SLACK  # (on this VM they once took 4.5 s in a full run)
        assert established_to(m.port) == 1, "all of it on one upstream connection"
        wait_until(lambda: g.metrics(settled=False).get1("sluice_timeouts_total", kind="client_stall") >= 24,
                   15 * SLACK, what="the stalled clients cut")
        s = stream_chat(g.port, chat_body(stream=True), {"x-mock-tokens": "5"})
        assert_full_stream(s, 5)
        assert established_to(m.port) == 1, "the stalls reset streams, not the connection"
    finally:
        for c in slow:
            c.close()
        g.proc.stop()
        m.proc.stop()


# ---- Liveness: PING finds a dead connection ----------------------------------

FAST_PING = {"ping_interval": "200ms", "ping_timeout": "300ms"}


def test_dead_connection_fails_over_fast(module_dir):
    """An endpoint that stops answering (its process frozen: TCP still
    accepts, nothing answers) is found dead by PING within the ping timeout;
    requests fail over to the other endpoint long before their 20 s TTFT."""
    a, b = start_mock(module_dir), start_mock(module_dir)
    cfg = gateway_config(a.port, upstream_extra=h2_upstream(FAST_PING),
                         timeouts={"ttft": "20s", "idle": "20s", "total": "60s"})
    cfg = cfg.replace(f'endpoints: ["http://127.0.0.1:{a.port}"]',
                      f'endpoints: ["http://127.0.0.1:{a.port}", "http://127.0.0.1:{b.port}"]')
    g = start_gateway(module_dir, cfg)
    try:
        for _ in range(6):
            assert chat(g.port, chat_body(), {"x-mock-tokens": "2"}).status == 200
        wait_until(lambda: established_to(a.port) == 1 and established_to(b.port) == 1, 5, what="both used")
        before = g.metrics()
        a.proc.signal(signal.SIGSTOP)
        time.sleep(0.4)  # both connections quiet for longer than the ping interval
        for _ in range(6):
            t0 = time.monotonic()
            r = chat(g.port, chat_body(), {"x-mock-tokens": "3"})
            assert r.status == 200, r.body[:300]
            assert r.json()["usage"]["completion_tokens"] == 3
            assert time.monotonic() - t0 < 2.0 * SLACK
        after = g.metrics()
        assert metric_delta(before, after, "sluice_upstream_errors_total", upstream="m", kind="dead_connection") >= 1
    finally:
        a.proc.signal(signal.SIGCONT)
        g.proc.stop()
        a.proc.stop()
        b.proc.stop()


def test_dead_connection_mid_stream_ends_fast(module_dir):
    """A stream whose upstream freezes ends with an error event within about
    ping interval + ping timeout, not the 20 s idle timeout."""
    m = start_mock(module_dir)
    g = start_gateway(module_dir, gateway_config(m.port, upstream_extra=h2_upstream(FAST_PING),
                                                 timeouts={"ttft": "20s", "idle": "20s", "total": "60s"}))
    try:
        frozen = {}

        def on_event(ev):
            if "t" not in frozen and len(ev.data) > 20:
                frozen["t"] = time.monotonic()
                m.proc.signal(signal.SIGSTOP)

        s = stream_chat(g.port, chat_body(stream=True), {"x-mock-tokens": "100", "x-mock-itl-ms": "50"},
                        on_event=on_event, timeout=25)
        elapsed = time.monotonic() - frozen["t"]
        assert s.status == 200
        errors = [c for c in s.chunks() if "error" in c]
        assert errors and errors[0]["error"]["code"] == "upstream_reset", s.chunks()[-2:]
        assert "PING" in errors[0]["error"]["message"]
        assert elapsed < 2.5 * SLACK, elapsed
    finally:
        m.proc.signal(signal.SIGCONT)
        g.proc.stop()
        m.proc.stop()


def test_alpn_refusal_is_a_clear_502(module_dir, mock, server_pki):
    """An https upstream that does not speak h2 (ALPN says http/1.1 or
    nothing) fails with a 502 that says so."""
    up = start_gateway(module_dir, gateway_config(mock.port, server={
        "tls": tls_listener((server_pki.cert, server_pki.key)), "http2": {"enabled": False}}))
    g = start_gateway(module_dir, gateway_config(
        endpoint=f"https://127.0.0.1:{up.tls_port}",
        upstream_extra=h2_upstream(tls={"ca_file": f'"{server_pki.ca}"', "sni": "localhost"})))
    try:
        r = chat(g.port, chat_body())
        assert r.status == 502, r.body[:300]
        assert "ALPN" in r.json()["error"]["message"]
    finally:
        g.proc.stop()
        up.proc.stop()


def test_upstream_goaway_lets_the_stream_finish_and_new_requests_go_elsewhere(module_dir):
    """The upstream drains (GOAWAY: a shutdown notice, then the final one):
    the stream in flight on that connection finishes intact, and requests
    that arrive meanwhile do not go on the going-away connection: they go to
    the other endpoint and succeed."""
    m, b = start_mock(module_dir), start_mock(module_dir)
    up = start_gateway(module_dir, gateway_config(m.port, server={"drain_timeout": "10s"},
                                                  timeouts={"ttft": "5s", "idle": "5s"}))
    cfg = gateway_config(up.port, upstream_extra=h2_upstream(), timeouts={"ttft": "5s", "idle": "5s"})
    cfg = cfg.replace(f'endpoints: ["http://127.0.0.1:{up.port}"]',
                      f'endpoints: ["http://127.0.0.1:{up.port}", "http://127.0.0.1:{b.port}"]')
    g = start_gateway(module_dir, cfg)
    try:
        # A long stream that the balancer put on `up` (retried until it is).
        on_up = threading.Event()
        box = {}

        def long_stream():
            for _ in range(10):
                seen = {}

                def first(ev):
                    if not seen:
                        seen["up"] = up.metrics(settled=False).get1("sluice_active_requests") >= 1
                        if seen["up"]:
                            on_up.set()

                s = stream_chat(g.port, chat_body(stream=True), {"x-mock-tokens": "30", "x-mock-itl-ms": "60"},
                                on_event=first, timeout=20)
                if seen.get("up"):
                    box["s"] = s
                    return

        th = threading.Thread(target=long_stream)
        th.start()
        assert on_up.wait(30 * SLACK), "no stream landed on the draining upstream"
        before = g.metrics()
        up.proc.signal(signal.SIGTERM)
        time.sleep(0.3)
        for _ in range(6):
            r = chat(g.port, chat_body(), {"x-mock-tokens": "2"})
            assert r.status == 200, r.body[:300]
        th.join(20)
        assert_full_stream(box["s"], 30)
        after = g.metrics()
        assert metric_delta(before, after, "sluice_requests_total", model="*", status="200") == 7
        assert up.proc.wait(15 * SLACK) == 0, up.proc.output()
    finally:
        g.proc.stop()
        up.proc.stop()
        m.proc.stop()
        b.proc.stop()


# ---- A different HTTP/2 implementation upstream: the pure-Python `h2` --------

class PyH2Upstream:
    """An h2c upstream written with the pure-Python `h2` library (not
    nghttp2), answering chat completions, streaming or not, and recording
    each request's header list and body. `window` is its INITIAL_WINDOW_SIZE:
    small values make the gateway send request bodies under flow control."""

    def __init__(self, window: int = 65535):
        self.window = window
        self.requests: list = []
        self.connections = 0
        self._lsock = socket.socket()
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._conns: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        import h2.config
        import h2.connection
        import h2.events
        import h2.settings
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        # In force once the client acknowledges it (until then the client may
        # use the default 64 KiB window, as RFC 9113 allows).
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.window})
        c.sendall(conn.data_to_send())
        pending = {}
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        pending[ev.stream_id] = {"headers": list(ev.headers), "body": b""}
                    elif isinstance(ev, h2.events.DataReceived):
                        pending[ev.stream_id]["body"] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self._answer(conn, ev.stream_id, pending.pop(ev.stream_id))
                c.sendall(conn.data_to_send())
        except OSError:
            return
        finally:
            c.close()

    def _answer(self, conn, sid, req):
        self.requests.append(req)
        body = json.loads(req["body"])
        usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        if not body.get("stream"):
            out = json.dumps({"object": "chat.completion", "model": body["model"], "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "a b c"}, "finish_reason": "stop"}]})
            conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json")])
            conn.send_data(sid, out.encode(), end_stream=True)
            return
        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        chunks += [{"choices": [{"index": 0, "delta": {"content": w + " "}}]} for w in ("a", "b", "c")]
        chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks += [{"choices": [], "usage": usage}]
        for ch in chunks:
            conn.send_data(sid, f"data: {json.dumps(ch)}\n\n".encode())
        conn.send_data(sid, b"data: [DONE]\n\n", end_stream=True)

    def close(self):
        self._lsock.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


def test_python_h2_upstream_interoperates(module_dir):
    """Against an HTTP/2 stack other than nghttp2: the request goes out with
    valid pseudo-headers, lowercase names and the gateway's own fields; the
    answers (JSON and SSE) come back with usage accounted."""
    up = PyH2Upstream()
    g = start_gateway(module_dir, gateway_config(
        endpoint=f"http://127.0.0.1:{up.port}/prefix",
        upstream_extra='    api_key: "sk-upstream"\n    headers: {X-Team: infra}\n' + H2))
    try:
        r = chat(g.port, chat_body(), {"X-Custom-Thing": "kept", "Connection": "keep-alive"})
        assert r.status == 200, r.body[:300]
        assert r.json()["usage"]["total_tokens"] == 14
        h = up.requests[-1]["headers"]
        names = [k for k, _ in h]
        d = dict(h)
        assert names[:4] == [":method", ":scheme", ":authority", ":path"], names
        assert d[":method"] == "POST" and d[":scheme"] == "http"
        assert d[":authority"] == f"127.0.0.1:{up.port}"
        assert d[":path"] == "/prefix/v1/chat/completions"
        assert all(k == k.lower() for k in names), names
        assert d["x-custom-thing"] == "kept" and d["x-team"] == "infra"
        assert d["authorization"] == "Bearer sk-upstream"
        assert d["x-request-id"] == r.headers["x-request-id"]
        assert "connection" not in d and "host" not in d
        assert json.loads(up.requests[-1]["body"])["model"] == "gpt-x"

        before = g.metrics()
        s = stream_chat(g.port, chat_body(stream=True))
        assert_full_stream(s, 3)  # the usage chunk the gateway asked for is withheld
        sent = json.loads(up.requests[-1]["body"])
        assert sent["stream_options"]["include_usage"] is True
        after = g.metrics()
        assert metric_delta(before, after, "sluice_tokens_total", model="*", direction="output") == 3
        assert up.connections == 1, "both requests on one connection"
    finally:
        g.proc.stop()
        up.close()


def test_request_body_larger_than_the_upstream_window(module_dir):
    """An upstream that advertises a 16 KiB stream window: a 300 kB request
    body crosses in window-sized pieces as the upstream acknowledges them."""
    up = PyH2Upstream(window=16 * 1024)
    g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{up.port}", upstream_extra=H2,
                                                 timeouts={"ttft": "5s"}))
    try:
        # The connection is up and the 16 KiB window in force before the big body.
        assert chat(g.port, chat_body()).status == 200
        content = "".join(f"word{i} " for i in range(40000))
        body = chat_body(content=content)
        assert len(body) > 300_000
        r = chat(g.port, body)
        assert r.status == 200, r.body[:300]
        assert up.requests[-1]["body"] == body
        assert up.connections == 1
    finally:
        g.proc.stop()
        up.close()
