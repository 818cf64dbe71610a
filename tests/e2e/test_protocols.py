"""The same API behaviour over every client protocol the gateway speaks:
HTTP/1.1 and HTTP/2, cleartext (h2c by prior knowledge on the plain port) and
TLS (ALPN on the TLS port). Each case is one test body run over the four
protocols of conftest.PROTOCOLS."""
import re
import signal
import threading
import time

import pytest

from conftest import (PROTOCOLS, SLACK, BackgroundStream, H2Client, Session, assert_error_body, assert_full_stream,
                      chat, chat_body, closed_port, gateway_target, request, start_tls_gateway, stream_chat,
                      wait_until, metric_delta)

MODELS = ('  - {name: gpt-x, upstream: m}\n'
          '  - {name: fast, upstream: m, timeouts: {ttft: 300ms}}\n'
          '  - {name: dead-model, upstream: dead}\n'
          '  - {name: "*", upstream: m}\n')

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def gw(module_dir, mock, server_pki):
    dead = f'  - name: dead\n    endpoints: ["http://127.0.0.1:{closed_port()}"]\n'
    g = start_tls_gateway(module_dir, mock.port, server_pki, models=MODELS, upstream_extra=dead)
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(params=PROTOCOLS)
def target(request, gw, server_pki):
    return gateway_target(gw, request.param, server_pki)


@pytest.fixture(params=["h2c", "h2-tls"])
def h2_target(request, gw, server_pki):
    return gateway_target(gw, request.param, server_pki)


def _healthy(target, session=None):
    """A healthy request works right after: on the same session (which for
    HTTP/2 is the same connection) and on a new connection."""
    if session is not None:
        r = session.chat(chat_body(), {"x-mock-tokens": "2"})
        assert r.status == 200, (target, r.status, r.body[:300])
        assert r.json()["usage"]["completion_tokens"] == 2
    s = stream_chat(target, chat_body(stream=True), {"x-mock-tokens": "3"})
    assert_full_stream(s, 3)


def _still_same_h2_connection(session):
    if session.h2 is not None:
        assert not session.h2.closed and session.h2.goaway is None, \
            f"HTTP/2 connection ended: goaway={session.h2.goaway}"


# ---- The API -------------------------------------------------------------------

def test_chat_non_streaming(target):
    r = chat(target, chat_body("gpt-x"), {"x-mock-tokens": "7"})
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["object"] == "chat.completion" and doc["model"] == "gpt-x"
    msg = doc["choices"][0]["message"]
    assert msg["role"] == "assistant" and len(msg["content"].split()) == 7
    assert doc["usage"]["completion_tokens"] == 7 and doc["usage"]["prompt_tokens"] > 0
    assert doc["usage"]["total_tokens"] == doc["usage"]["prompt_tokens"] + 7
    assert int(r.headers["content-length"]) == len(r.body)


@pytest.mark.parametrize("include_usage", [False, True], ids=["plain", "include_usage"])
def test_chat_streaming(target, include_usage):
    s = stream_chat(target, chat_body("s-model", stream=True, include_usage=include_usage or None),
                    {"x-mock-tokens": "6", "x-mock-itl-ms": "5"})
    assert_full_stream(s, 6, usage_chunk=include_usage)
    assert s.headers.get("cache-control") == "no-cache"
    ch = s.chunks()
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "s-model" for c in ch)
    assert len({c["id"] for c in ch}) == 1
    if include_usage:
        u = ch[-1]["usage"]
        assert u["completion_tokens"] == 6 and u["total_tokens"] == u["prompt_tokens"] + 6


def test_streaming_is_not_buffered(target):
    s = stream_chat(target, chat_body(stream=True), {"x-mock-itl-ms": "60", "x-mock-tokens": "6"})
    assert_full_stream(s, 6)
    ce = s.content_events()
    assert ce[-1].t >= 0.25, f"6 tokens 60 ms apart finished in {ce[-1].t:.3f}s"
    assert ce[0].t < 0.5 * ce[-1].t, f"first token at {ce[0].t:.3f}s, last at {ce[-1].t:.3f}s: buffered"
    gaps = [b.t - a.t for a, b in zip(ce, ce[1:])]
    assert sum(1 for g in gaps if g > 0.03) >= 3, gaps


def test_models(target):
    r = request(target, "GET", "/v1/models")
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["object"] == "list"
    assert sorted(m["id"] for m in doc["data"]) == ["dead-model", "fast", "gpt-x"]
    assert all(m["object"] == "model" for m in doc["data"])


def test_embeddings(target):
    r = request(target, "POST", "/v1/embeddings",
                b'{"model":"emb-1","input":["one","two"],"dimensions":8}')
    assert r.status == 200, r.body
    doc = r.json()
    assert doc["object"] == "list"
    assert [d["index"] for d in doc["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in doc["data"])
    assert doc["data"][0]["embedding"] != doc["data"][1]["embedding"]


def test_completions(target):
    r = request(target, "POST", "/v1/completions", b'{"model":"legacy","prompt":"Say hi"}',
                {"x-mock-tokens": "4"})
    assert r.status == 200, r.body
    doc = r.json()
    assert doc["choices"][0]["text"] and doc["usage"]["completion_tokens"] == 4
    s = stream_chat(target, b'{"model":"legacy","prompt":"Say hi","stream":true}', {"x-mock-tokens": "3"},
                    path="/v1/completions")
    assert s.status == 200 and s.done and s.complete
    texts = [c["choices"][0].get("text") for c in s.chunks() if c.get("choices")]
    assert sum(1 for t in texts if t) == 3


def test_request_ids(target):
    rid = "proto-req_0123.ABC"
    r = chat(target, chat_body(), {"x-request-id": rid, "x-mock-tokens": "1"})
    assert r.status == 200 and r.headers["x-request-id"] == rid
    # Also on a locally generated error, and on a stream.
    r = chat(target, chat_body("dead-model"), {"x-request-id": rid})
    assert r.status == 502 and r.headers["x-request-id"] == rid
    s = stream_chat(target, chat_body(stream=True), {"x-request-id": rid, "x-mock-tokens": "2"})
    assert s.headers["x-request-id"] == rid
    assert_full_stream(s, 2)
    ids = set()
    for bad in (None, "has spaces"):
        r = chat(target, chat_body(), {"x-mock-tokens": "1", **({"x-request-id": bad} if bad else {})})
        assert r.status == 200 and HEX32.match(r.headers["x-request-id"]), r.headers
        ids.add(r.headers["x-request-id"])
    assert len(ids) == 2


# ---- Bad input: the JSON error shape, and the next request works ------------------

def test_invalid_json_is_400(target):
    with Session(target) as sess:
        r = sess.chat(b'{"model": "gpt-x", "messages": [')
        err = assert_error_body(r, 400, "invalid_request")
        assert err["type"] == "invalid_request_error"
        _still_same_h2_connection(sess)
        _healthy(target, sess)


def test_unknown_path_is_404(target):
    with Session(target) as sess:
        assert_error_body(sess.request("GET", "/nope"), 404, "unknown_url")
        assert_error_body(sess.request("POST", "/not/the/api", b"{}"), 404, "unknown_url")
        _still_same_h2_connection(sess)
        _healthy(target, sess)


def test_wrong_method_is_405(target):
    with Session(target) as sess:
        assert_error_body(sess.request("GET", "/v1/chat/completions"), 405, "method_not_allowed")
        assert_error_body(sess.request("POST", "/v1/models", b"{}"), 405, "method_not_allowed")
        _still_same_h2_connection(sess)
        _healthy(target, sess)


def test_body_too_large_is_413(target, gw):
    before = gw.metrics()
    body = chat_body(content="a" * (1024 * 1024 + 4096))  # max_body_bytes is 1 MiB
    with Session(target) as sess:
        r = sess.chat(body)
        assert_error_body(r, 413, "request_too_large")
        _still_same_h2_connection(sess)
        _healthy(target, sess)
    after = gw.metrics()
    assert after.sum("sluice_requests_total", status="413") - before.sum("sluice_requests_total", status="413") == 1


def test_body_too_large_without_content_length_is_413(h2_target):
    # No content-length: the limit is found while reading DATA frames.
    with H2Client(h2_target) as c:
        body = chat_body(content="b" * (1024 * 1024 + 4096))
        r = c.response(c.start("POST", "/v1/chat/completions", body, content_length=False))
        assert_error_body(r, 413, "request_too_large")
        assert not c.closed and c.goaway is None
        r = c.chat(chat_body(), {"x-mock-tokens": "2"})
        assert r.status == 200, r.body


def test_header_too_large_is_431(target, gw):
    before = gw.metrics()
    with Session(target) as sess:
        r = sess.chat(chat_body(), {"x-big": "h" * 10000})  # max_header_bytes is 8 KiB
        assert_error_body(r, 431, "request_header_fields_too_large")
        # On HTTP/2 that is an answer on its stream, not a connection error.
        _still_same_h2_connection(sess)
        _healthy(target, sess)
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_rejected_requests_total", reason="header_too_large") >= 1
    if target.is_h2:
        assert metric_delta(before, after, "sluice_protocol_limits_total", protocol="HTTP/2",
                      limit="header_list_size") == 1


# ---- Upstream failures -----------------------------------------------------------

def test_upstream_down_is_502(target):
    r = chat(target, chat_body("dead-model"))
    assert_error_body(r, 502, "upstream_unavailable")
    s = stream_chat(target, chat_body("dead-model", stream=True))
    assert s.status == 502 and not s.events
    assert s.headers["content-type"].startswith("application/json")
    assert b"upstream_unavailable" in s.body
    _healthy(target)


def test_upstream_ttft_timeout_is_504(target):
    t0 = time.monotonic()
    r = chat(target, chat_body("fast"), {"x-mock-ttft-ms": "1500", "x-mock-tokens": "2"})
    took = time.monotonic() - t0
    assert_error_body(r, 504, "upstream_timeout")
    assert 0.25 <= took < 0.3 + 0.7 * SLACK, took
    s = stream_chat(target, chat_body("fast", stream=True), {"x-mock-ttft-ms": "1500", "x-mock-tokens": "2"})
    assert s.status == 504 and not s.events
    assert b"upstream_timeout" in s.body
    _healthy(target)


def test_mid_stream_upstream_failure_ends_with_error_event(target, gw):
    before = gw.metrics()
    s = stream_chat(target, chat_body(stream=True), {"x-mock-tokens": "20", "x-mock-fail-after": "3",
                                                     "x-mock-itl-ms": "10"})
    assert s.status == 200
    assert s.complete, "the gateway must end the stream cleanly, not cut the connection or stream"
    assert len(s.content_events()) == 3
    assert not s.done, "[DONE] after a failed upstream would claim success"
    last = s.events[-1].json()
    assert last["error"]["code"] == "upstream_reset" and last["error"]["message"], last
    after = gw.metrics()
    assert after.sum("sluice_upstream_errors_total", upstream="m") > before.sum("sluice_upstream_errors_total",
                                                                                 upstream="m")
    _healthy(target)


# ---- Clients that go away ----------------------------------------------------------

def test_client_goes_away_mid_stream(target, gw):
    before = gw.metrics()
    s = stream_chat(target, chat_body(stream=True), {"x-mock-itl-ms": "50", "x-mock-tokens": "1000"},
                    stop_after=4)
    assert len(s.events) >= 4 and not s.done
    wait_until(lambda: gw.metrics().get1("sluice_client_aborts_total")
               == before.get1("sluice_client_aborts_total") + 1, 1.5 * SLACK, what="client_aborts_total + 1")
    wait_until(lambda: gw.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="active_requests == 0")
    _healthy(target)


def test_h2_stream_reset_cancels_only_that_stream(h2_target, gw):
    """RST_STREAM(CANCEL) on one stream: counted as a client abort, the upstream
    work stops, and the other stream on the same connection is untouched."""
    before = gw.metrics()
    with H2Client(h2_target) as c:
        keep = c.start("POST", "/v1/chat/completions", chat_body("keep", stream=True),
                       {"x-mock-tokens": "12", "x-mock-itl-ms": "25"})
        drop = c.start("POST", "/v1/chat/completions", chat_body("drop", stream=True),
                       {"x-mock-tokens": "1000", "x-mock-itl-ms": "25"}, stop_after=3)
        s_drop = c.stream(drop, abort="reset")
        assert len(s_drop.events) >= 3 and not s_drop.done and not s_drop.complete
        s_keep = c.collect([keep])[0]
        assert_full_stream(s_keep, 12)
        assert all(ch["model"] == "keep" for ch in s_keep.chunks())
        wait_until(lambda: gw.metrics().get1("sluice_client_aborts_total")
                   == before.get1("sluice_client_aborts_total") + 1, 1.5 * SLACK, what="client abort counted")
        wait_until(lambda: gw.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="settled")
        # The connection is still good.
        assert not c.closed and c.goaway is None
        r = c.chat(chat_body(), {"x-mock-tokens": "2"})
        assert r.status == 200, r.body
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_connections_total", protocol="HTTP/2") == 1


def test_h2_concurrent_streams_on_one_connection(h2_target, gw):
    before = gw.metrics()
    with H2Client(h2_target) as c:
        sids = [c.start("POST", "/v1/chat/completions", chat_body(f"par-{i}", stream=True),
                        {"x-mock-tokens": str(5 + i), "x-mock-itl-ms": "20"}) for i in range(10)]
        streams = c.collect(sids, timeout=10 * SLACK)
        for i, s in enumerate(streams):
            assert_full_stream(s, 5 + i)
            assert all(ch["model"] == f"par-{i}" for ch in s.chunks())
        # Multiplexed, not one after another: every stream had its first token
        # before any stream had its last.
        firsts = [s.content_events()[0].t for s in streams]
        lasts = [s.content_events()[-1].t for s in streams]
        assert max(firsts) < min(lasts), (firsts, lasts)
        # Non-streamed requests mixed in on the same connection.
        a = c.start("GET", "/v1/models")
        b = c.start("POST", "/v1/chat/completions", chat_body(), {"x-mock-tokens": "3"})
        assert c.response(a).status == 200
        assert c.response(b).json()["usage"]["completion_tokens"] == 3
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_connections_total", protocol="HTTP/2") == 1


# ---- Metrics ---------------------------------------------------------------------------

def test_connections_total_counts_the_protocol(target, gw):
    other = "HTTP/2" if target.label == "HTTP/1.1" else "HTTP/1.1"
    before = gw.metrics()
    for _ in range(3):
        assert chat(target, chat_body(), {"x-mock-tokens": "1"}).status == 200
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_connections_total", protocol=target.label) == 3
    assert metric_delta(before, after, "sluice_connections_total", protocol=other) == 0


@pytest.mark.parametrize("when", ["after-whole-body", "mid-body"])
def test_h2_cancel_with_body_keeps_connection(h2_target, gw, when):
    """A client cancels (RST_STREAM) a POST whose body the gateway has received
    but not yet read. Only that stream ends: the next request on the same
    connection is served."""
    before = gw.metrics()
    with H2Client(h2_target) as c:
        body = chat_body(content="x" * 5000)
        if when == "mid-body":
            # The first part is read by the handler, which then waits for the rest.
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "https" if h2_target.is_tls else "http"),
                                      (":authority", "localhost"), (":path", "/v1/chat/completions"),
                                      ("content-type", "application/json"), ("content-length", str(len(body)))])
            c.conn.send_data(sid, body[:3000])
            c.sock.sendall(c.conn.data_to_send())
            wait_until(lambda: gw.metrics(settled=False).get1("sluice_active_requests") == 1, 1.0 * SLACK,
                       what="request waiting for its body")
            # More body and the cancel arrive together.
            c.conn.send_data(sid, body[3000:4000])
            c.conn.reset_stream(sid, 0x8)
            c.sock.sendall(c.conn.data_to_send())
        else:
            with c.cork():
                sid = c.start("POST", "/v1/chat/completions", body, {"x-mock-tokens": "2"})
                c.reset(sid)
        wait_until(lambda: gw.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="settled")
        r = c.chat(chat_body(), {"x-mock-tokens": "2"})
        assert r.status == 200, r.body
        assert c.goaway is None and not c.closed
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_protocol_limits_total", protocol="HTTP/2", limit="connection_memory") == 0


def _flood_rapid_reset(c):
    for _ in range(600):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "https" if c.target.is_tls else "http"),
                                  (":authority", "localhost"), (":path", "/v1/models")])
        c.conn.reset_stream(sid, 0x8)


def _flood_pings(c):
    for i in range(700):
        c.conn.ping(i.to_bytes(8, "big"))


@pytest.mark.parametrize("attack,limit", [(_flood_rapid_reset, "rapid_reset"),
                                          (_flood_pings, "control_frame_flood")], ids=["rapid-reset", "ping-flood"])
def test_h2_floods_end_only_that_connection(h2_target, gw, attack, limit):
    before = gw.metrics()
    with BackgroundStream(h2_target, tokens=20, itl_ms=20):
        c = H2Client(h2_target)
        try:
            with c.cork():
                attack(c)
            c._wait(lambda: c.goaway is not None, 3.0 * SLACK)
            assert c.goaway is not None, "no GOAWAY after the flood"
            assert int(c.goaway.error_code) == 0xb, c.goaway  # ENHANCE_YOUR_CALM
            assert c.closed_by_peer_within(2.0 * SLACK), "the connection stayed open after GOAWAY"
        finally:
            c.abort()
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_protocol_limits_total", protocol="HTTP/2", limit=limit) == 1
    _healthy(h2_target)


# ---- Graceful shutdown -------------------------------------------------------------------

def test_sigterm_lets_in_flight_stream_finish(target, module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki)
    try:
        t = gateway_target(g, target.proto, server_pki)
        first = threading.Event()
        out = {}

        def run():
            try:
                out["s"] = stream_chat(t, chat_body(stream=True), {"x-mock-itl-ms": "40", "x-mock-tokens": "20"},
                                       on_event=lambda e: first.set())
            except BaseException as e:  # noqa: BLE001 - reported below
                out["e"] = e
            finally:
                first.set()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        assert first.wait(5 * SLACK)
        g.proc.signal(signal.SIGTERM)
        th.join(10 * SLACK)
        assert not th.is_alive()
        assert "e" not in out, out.get("e")
        assert_full_stream(out["s"], 20)
        assert g.proc.wait(5 * SLACK) == 0, g.proc.output()
    finally:
        g.proc.stop()
