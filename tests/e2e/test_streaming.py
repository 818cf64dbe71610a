"""Streaming (SSE) through the gateway: shape, usage accounting, no buffering,
upstream resets, client disconnects."""
import shutil
import subprocess
import threading
import time

import pytest

from conftest import (SLACK, Raw, assert_full_stream, chat, chat_body, established_to, gateway_config, raw_chat,
                      start_gateway, start_mock, stream_chat, wait_until)


@pytest.fixture(scope="module")
def gw(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


def test_stream_shape_without_usage(gw):
    s = stream_chat(gw.port, chat_body("s-model", stream=True), {"x-mock-tokens": "6"})
    assert_full_stream(s, 6, usage_chunk=False)
    assert s.headers.get("cache-control") == "no-cache"
    ch = s.chunks()
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "s-model" for c in ch)
    assert len({c["id"] for c in ch}) == 1
    # role, 6 tokens, finish, [DONE]
    assert len(s.events) == 9


def test_stream_with_include_usage_gets_usage_chunk(gw):
    s = stream_chat(gw.port, chat_body("s-model", stream=True, include_usage=True), {"x-mock-tokens": "5"})
    assert_full_stream(s, 5, usage_chunk=True)
    u = s.chunks()[-1]["usage"]
    assert u["completion_tokens"] == 5 and u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_stream_include_usage_false_gets_no_usage_chunk(gw):
    s = stream_chat(gw.port, chat_body("s-model", stream=True, include_usage=False), {"x-mock-tokens": "4"})
    assert_full_stream(s, 4, usage_chunk=False)


def test_stream_tokens_counted_without_client_asking_for_usage(gw):
    model = "*"  # the route's name labels the metrics, not the client's model
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body("count-model", stream=True), {"x-mock-tokens": "13"})
    assert_full_stream(s, 13, usage_chunk=False)
    after = gw.metrics()
    d_out = (after.get1("sluice_tokens_total", model=model, direction="output")
             - before.get1("sluice_tokens_total", model=model, direction="output"))
    d_in = (after.get1("sluice_tokens_total", model=model, direction="input")
            - before.get1("sluice_tokens_total", model=model, direction="input"))
    assert d_out == 13
    assert d_in > 0
    assert (after.get1("sluice_stream_usage_chunks_stripped_total")
            - before.get1("sluice_stream_usage_chunks_stripped_total")) == 1
    assert (after.get1("sluice_usage_source_total", source="upstream")
            - before.get1("sluice_usage_source_total", source="upstream")) == 1


def test_stream_with_usage_is_not_counted_as_stripped(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body("count2", stream=True, include_usage=True), {"x-mock-tokens": "3"})
    assert_full_stream(s, 3, usage_chunk=True)
    after = gw.metrics()
    assert (after.get1("sluice_stream_usage_chunks_stripped_total")
            == before.get1("sluice_stream_usage_chunks_stripped_total"))
    assert (after.get1("sluice_tokens_total", model="*", direction="output")
            - before.get1("sluice_tokens_total", model="*", direction="output")) == 3


def test_no_buffering_events_arrive_as_generated(gw):
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-itl-ms": "100", "x-mock-tokens": "10"})
    assert_full_stream(s, 10)
    ce = s.content_events()
    first, last = ce[0].t, ce[-1].t
    assert last >= 0.85, f"10 tokens 100 ms apart finished in {last:.3f}s"
    assert first < 0.4 * last, f"first token at {first:.3f}s, last at {last:.3f}s: buffered"
    # Each token arrives on its own, roughly 100 ms after the previous one.
    gaps = [b.t - a.t for a, b in zip(ce, ce[1:])]
    assert sum(1 for g in gaps if g > 0.05) >= 7, gaps


def test_ttft_of_first_token_not_delayed(gw):
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-ttft-ms": "300", "x-mock-itl-ms": "200",
                                                      "x-mock-tokens": "4"})
    assert_full_stream(s, 4)
    ce = s.content_events()
    assert 0.28 <= ce[0].t < 0.28 + 0.2 * SLACK + 0.1, ce[0].t
    # The role chunk may come with the first token, but never waits for a later one.
    assert s.events[0].t <= ce[0].t + 0.01


def test_concurrent_streams_each_intact(gw):
    results = {}

    def one(i):
        results[i] = stream_chat(gw.port, chat_body(f"par-{i}", stream=True),
                                 {"x-mock-tokens": str(10 + i), "x-mock-itl-ms": "15"})

    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    assert len(results) == 8
    for i, s in results.items():
        assert_full_stream(s, 10 + i)
        assert all(c["model"] == f"par-{i}" for c in s.chunks())


def test_completions_endpoint_streams(gw):
    body = b'{"model":"legacy","prompt":"Say hi","stream":true}'
    s = stream_chat(gw.port, body, {"x-mock-tokens": "3"}, path="/v1/completions")
    assert s.status == 200 and s.done and s.complete
    texts = [c["choices"][0].get("text") for c in s.chunks() if c.get("choices")]
    assert sum(1 for t in texts if t) == 3


def test_upstream_reset_mid_stream_ends_with_error_event(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-tokens": "20", "x-mock-fail-after": "3",
                                                      "x-mock-itl-ms": "10"})
    assert s.status == 200
    assert s.complete, "the gateway must end the stream cleanly, not cut the connection"
    assert len(s.content_events()) == 3
    assert not s.done, "[DONE] after a failed upstream would claim success"
    last = s.events[-1].json()
    assert last["error"]["code"] == "upstream_reset", last
    assert last["error"]["message"]
    after = gw.metrics()
    assert after.sum("sluice_upstream_errors_total", upstream="m") > before.sum("sluice_upstream_errors_total",
                                                                                 upstream="m")
    # And the gateway keeps serving.
    s2 = stream_chat(gw.port, chat_body(stream=True), {"x-mock-tokens": "4"})
    assert_full_stream(s2, 4)


def test_upstream_reset_before_first_token_is_502(gw):
    r = chat(gw.port, chat_body(stream=False), {"x-mock-fail-after": "0", "x-mock-tokens": "5"})
    # Non-streamed: the mock resets before answering; nothing reached the client yet.
    assert r.status == 502, (r.status, r.body)
    assert r.json()["error"]["code"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_streaming(gw):
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "10", f"http://127.0.0.1:{gw.port}/v1/chat/completions",
                          "-H", "content-type: application/json", "-H", "x-mock-tokens: 7", "-H",
                          "x-mock-itl-ms: 5", "-d", chat_body(stream=True).decode()], capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.decode().split("\n") if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) == 1 + 7 + 1 + 1


# ---- Client disconnects --------------------------------------------------------

@pytest.fixture()
def own_pair(tmp_path):
    m = start_mock(tmp_path)
    g = start_gateway(tmp_path, gateway_config(m.port, timeouts={"ttft": "5s"}))
    yield m, g
    assert g.proc.stop() == 0, g.proc.output()
    m.proc.stop()


def test_client_disconnect_mid_stream_releases_everything(own_pair):
    m, g = own_pair
    # Warm the pool: one idle upstream connection afterwards.
    assert chat(g.port, chat_body(), {"x-mock-tokens": "1"}).status == 200
    before = g.metrics()
    seen = []
    s = stream_chat(g.port, chat_body(stream=True), {"x-mock-itl-ms": "50", "x-mock-tokens": "1000"},
                    stop_after=4, on_event=lambda e: seen.append(established_to(m.port)))
    assert len(s.events) >= 4 and not s.done
    assert seen[-1] == 1, f"expected the stream's one upstream connection, saw {seen}"
    t_closed = time.monotonic()
    # Within ~1 s the gateway notices, stops the upstream and settles the request.
    wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="active_requests == 0")
    wait_until(lambda: g.metrics().get1("sluice_client_aborts_total")
               == before.get1("sluice_client_aborts_total") + 1, 1.0 * SLACK, what="client_aborts_total + 1")
    # The upstream connection carrying the abandoned stream is closed, not left generating.
    wait_until(lambda: established_to(m.port) == 0, 1.0 * SLACK, what="no connection to the mock")
    assert time.monotonic() - t_closed < 1.5 * SLACK
    # And the next request works.
    s2 = stream_chat(g.port, chat_body(stream=True), {"x-mock-tokens": "5"})
    assert_full_stream(s2, 5)


def test_client_disconnect_while_waiting_for_first_token(own_pair):
    m, g = own_pair
    before = g.metrics()
    with Raw(g.port) as c:
        c.send(raw_chat(chat_body(stream=True), [("x-mock-ttft-ms", "3000"), ("x-mock-tokens", "3")]))
        wait_until(lambda: g.metrics(settled=False).get1("sluice_active_requests") == 1, 1.0 * SLACK, what="request active")
    wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="active_requests == 0")
    wait_until(lambda: g.metrics().get1("sluice_client_aborts_total") > before.get1("sluice_client_aborts_total"),
               1.0 * SLACK, what="client abort counted")
    assert chat(g.port, chat_body(), {"x-mock-tokens": "2"}).status == 200


def test_client_that_stops_reading_is_dropped_after_client_stall(tmp_path):
    import socket
    # A stream far larger than the socket buffers, read by nobody.
    m = start_mock(tmp_path, "--max-tokens-cap", "200000")
    g = start_gateway(tmp_path, gateway_config(m.port))  # client_stall: 2s
    try:
        before = g.metrics()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", g.port))
        try:
            s.sendall(raw_chat(chat_body(stream=True), [("x-mock-tokens", "200000")]))
            t0 = time.monotonic()
            wait_until(lambda: g.metrics().get1("sluice_timeouts_total", kind="client_stall")
                       > before.get1("sluice_timeouts_total", kind="client_stall"), 6.0 * SLACK,
                       interval=0.1, what="client_stall timeout")
            took = time.monotonic() - t0
            assert 1.9 <= took <= 4.0 * SLACK, took
            after = g.metrics()
            assert after.get1("sluice_client_aborts_total") == before.get1("sluice_client_aborts_total") + 1
            wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="request settled")
            wait_until(lambda: established_to(m.port) == 0, 1.0 * SLACK, what="upstream connection released")
        finally:
            s.close()
        assert chat(g.port, chat_body(), {"x-mock-tokens": "2"}).status == 200
    finally:
        assert g.proc.stop() == 0
        m.proc.stop()


def test_mixed_load_with_aborts_and_failures_settles(own_pair):
    m, g = own_pair
    results = {}

    def one(i):
        kind = i % 4
        hdrs = {"x-mock-itl-ms": "10", "x-mock-tokens": "30"}
        stop = None
        if kind == 1:
            stop = 5
        elif kind == 2:
            hdrs["x-mock-fail-after"] = "7"
        elif kind == 3:
            hdrs["x-mock-tokens"] = "3"
        try:
            results[i] = (kind, stream_chat(g.port, chat_body(f"mix-{i}", stream=True), hdrs, stop_after=stop))
        except Exception as e:  # noqa: BLE001
            results[i] = (kind, e)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert len(results) == 40
    for i, (kind, s) in results.items():
        assert not isinstance(s, Exception), (i, s)
        if kind == 0:
            assert_full_stream(s, 30)
        elif kind == 2:
            assert len(s.content_events()) == 7 and s.events[-1].json()["error"]["code"] == "upstream_reset"
        elif kind == 3:
            assert_full_stream(s, 3)
    wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 2.0 * SLACK, what="all requests settled")
    wait_until(lambda: g.metrics().get1("sluice_active_connections") == 0, 2.0 * SLACK, what="all connections closed")
    m2 = g.metrics()
    assert m2.get1("sluice_client_aborts_total") == 10
    assert chat(g.port, chat_body(), {"x-mock-tokens": "2"}).status == 200
