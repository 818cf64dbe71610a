"""Streaming-aware upstream timeouts and upstream failures."""
import time

import pytest

from conftest import (SLACK, assert_error_body, assert_full_stream, chat, chat_body, closed_port, gateway_config,
                      start_gateway, stream_chat, metric_delta)

# Defaults: ttft 1s, idle 1s, total 30s.  fast: ttft 300ms.  short: total 1500ms.
MODELS = ('  - {name: fast, upstream: m, timeouts: {ttft: 300ms}}\n'
          '  - {name: short, upstream: m, timeouts: {total: 1500ms}}\n'
          '  - {name: "*", upstream: m}\n')


@pytest.fixture(scope="module")
def gw(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, models=MODELS))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


def test_ttft_timeout_non_streaming_is_504(gw):
    before = gw.metrics()
    t0 = time.monotonic()
    r = chat(gw.port, chat_body("fast"), {"x-mock-ttft-ms": "1500", "x-mock-tokens": "2"})
    took = time.monotonic() - t0
    assert_error_body(r, 504, "upstream_timeout")
    assert 0.28 <= took < 0.3 + 0.5 * SLACK, took
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_timeouts_total", kind="ttft") == 1
    assert metric_delta(before, after, "sluice_requests_total", model="fast", status="504") == 1


def test_ttft_timeout_streaming_is_504_before_any_byte(gw):
    t0 = time.monotonic()
    s = stream_chat(gw.port, chat_body("fast", stream=True), {"x-mock-ttft-ms": "1500"})
    took = time.monotonic() - t0
    assert s.status == 504 and not s.events
    assert __import__("json").loads(s.body)["error"]["code"] == "upstream_timeout"
    assert took < 0.3 + 0.5 * SLACK, took


def test_ttft_under_route_limit_succeeds(gw):
    s = stream_chat(gw.port, chat_body("fast", stream=True), {"x-mock-ttft-ms": "150", "x-mock-tokens": "3"})
    assert_full_stream(s, 3)
    # The default route allows 1 s.
    r = chat(gw.port, chat_body("other"), {"x-mock-ttft-ms": "600", "x-mock-tokens": "2"})
    assert r.status == 200, r.body


def test_ttft_applies_to_first_token_only(gw):
    # 300 ms per token is fine on "fast" (ttft 300ms) because idle is 1 s.
    s = stream_chat(gw.port, chat_body("fast", stream=True), {"x-mock-itl-ms": "400", "x-mock-tokens": "3"})
    assert_full_stream(s, 3)


def test_idle_timeout_mid_stream_ends_with_error_event(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body("idle-model", stream=True),
                    {"x-mock-stall-after": "2", "x-mock-tokens": "10", "x-mock-itl-ms": "10"})
    assert s.status == 200
    assert s.complete, "stream must end cleanly (terminal chunk), not by a cut connection"
    ce = s.content_events()
    assert len(ce) == 2
    assert not s.done
    err = s.events[-1].json()["error"]
    assert err["code"] == "upstream_timeout" and err["message"]
    gap = s.events[-1].t - ce[-1].t
    assert 0.95 <= gap <= 1.0 + 0.5 * SLACK, gap
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_timeouts_total", kind="idle") == 1
    # The stream was answered 200 and is logged as such.
    assert metric_delta(before, after, "sluice_requests_total", model="*", status="200") == 1


def test_total_timeout_cuts_long_stream(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body("short", stream=True), {"x-mock-itl-ms": "100", "x-mock-tokens": "50"})
    assert s.status == 200 and s.complete
    err = s.events[-1].json()["error"]
    assert err["code"] == "upstream_timeout"
    assert 1.45 <= s.events[-1].t <= 1.5 + 0.5 * SLACK, s.events[-1].t
    assert 8 <= len(s.content_events()) < 50
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_timeouts_total", kind="total") == 1


def test_upstream_error_status_passed_through(gw):
    for status in (400, 429, 500, 503):
        r = chat(gw.port, chat_body(), {"x-mock-status": str(status)})
        assert r.status == status, (status, r.body)
        assert r.json()["error"]["message"]
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-status": "429"})
    assert s.status == 429 and not s.events


def test_upstream_mid_stream_reset_counted(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-fail-after": "5", "x-mock-tokens": "9"})
    assert s.status == 200 and len(s.content_events()) == 5
    assert s.events[-1].json()["error"]["code"] == "upstream_reset"
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_upstream_errors_total", upstream="m", kind="reset") == 1


def test_gateway_still_serves_after_timeouts(gw):
    s = stream_chat(gw.port, chat_body(stream=True), {"x-mock-tokens": "8"})
    assert_full_stream(s, 8)


# ---- Unreachable upstreams ---------------------------------------------------------

def test_connect_refused_is_502(tmp_path):
    port = closed_port()
    g = start_gateway(tmp_path, gateway_config(endpoint=f"http://127.0.0.1:{port}"))
    try:
        for stream in (False, True):
            t0 = time.monotonic()
            r = chat(g.port, chat_body(stream=stream))
            assert time.monotonic() - t0 < 2.0 * SLACK
            err = assert_error_body(r, 502)
            assert err["code"] in ("upstream_unavailable", "upstream_connect_failed"), err
        m = g.metrics()
        # Two requests, one endpoint, one refused connect each.
        errs = m.sum("sluice_upstream_errors_total", upstream="m")
        series = {dict(k[1])["kind"]: v for k, v in m.items() if k[0] == "sluice_upstream_errors_total"}
        assert errs == 2, f"two refused connects counted as {errs} upstream errors: {series}"
        assert m.get1("sluice_requests_total", model="*", status="502") == 2
    finally:
        assert g.proc.stop() == 0


def _blackhole_listener():
    """A local listener whose accept queue is full, so further SYNs are dropped
    and connect() hangs. Returns (port, sockets to close) or None if the
    kernel answers anyway."""
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    held = [srv]
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        held.append(c)
    time.sleep(0.05)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        ok = False
    except socket.timeout:
        ok = True
    except OSError:
        ok = False
    probe.close()
    if not ok:
        for h in held:
            h.close()
        return None
    return port, held


def test_connect_timeout_is_504(tmp_path):
    bh = _blackhole_listener()
    if bh is None:
        pytest.skip("kernel does not drop SYNs on a full accept queue here")
    port, held = bh
    g = start_gateway(tmp_path, gateway_config(endpoint=f"http://127.0.0.1:{port}", timeouts={"connect": "300ms"}))
    try:
        before = g.metrics()
        t0 = time.monotonic()
        r = chat(g.port, chat_body())
        took = time.monotonic() - t0
        assert_error_body(r, 504, "upstream_timeout")
        assert 0.28 <= took < 0.3 + 1.0 * SLACK, took
        after = g.metrics()
        assert metric_delta(before, after, "sluice_timeouts_total", kind="connect") == 1
        # One failed connect is one upstream error, whatever its kind label.
        errs = (after.sum("sluice_upstream_errors_total", upstream="m")
                - before.sum("sluice_upstream_errors_total", upstream="m"))
        series = {dict(k[1])["kind"]: v for k, v in after.items() if k[0] == "sluice_upstream_errors_total"}
        assert errs == 1, f"one connect timeout counted as {errs} upstream errors: {series}"
    finally:
        assert g.proc.stop() == 0
        for h in held:
            h.close()
