"""HTTP/2 (h2c, prior knowledge) on the gateway's cleartext port: stream
interleaving and per-stream backpressure, the attack defences (rapid reset,
oversized header lists, CONTINUATION / PING / SETTINGS / empty-frame floods,
the concurrency limit), the idle timeout, graceful drain and request bodies.

The clients (H2Client with steerable flow control, RawH2 frame by frame)
are in helpers/h2raw.py.
"""
from __future__ import annotations

import json
import signal
import struct
import threading
import time
from pathlib import Path

import pytest

from helpers.h2raw import (ACK, CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY,
                           HEADERS, NO_ERROR, PING, PROTOCOL_ERROR, REFUSED_STREAM, S_INITIAL_WINDOW_SIZE,
                           S_MAX_CONCURRENT_STREAMS, SETTINGS, H2Client, H2Resp, RawH2, frame, ping_frame,
                           request_fields, rst_frame, settings_frame)
from conftest import (IO_TIMEOUT, SLACK, RecordingUpstream, assert_full_stream, chat, chat_body, established_to,
                      gateway_config, metric_delta, start_gateway, start_mock, wait_until)

def assert_json_error(r: H2Resp, status: int, code: str | None = None) -> dict:
    assert r.ended and r.reset is None, (r.status, r.reset)
    assert r.status == status, (r.status, bytes(r.data[:300]))
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if code is not None:
        assert err["code"] == code, err
    return err


# --------------------------------------------------------------------------
# Gateways, metrics, memory
# --------------------------------------------------------------------------

def h2_config(mock_port: int, http2: dict | None = None, server: dict | None = None, timeouts: dict | None = None):
    srv = dict(server or {})
    if http2:
        srv["http2"] = http2  # gateway_config writes nested mappings as YAML flow
    return gateway_config(mock_port, server=srv, timeouts=timeouts)


@pytest.fixture()
def gateways(tmp_path):
    """start(mock_port, http2=..., server=..., timeouts=...) -> a Gateway,
    stopped (and checked to exit cleanly) at the end of the test."""
    started = []

    def start(mock_port: int, **kw):
        g = start_gateway(tmp_path, h2_config(mock_port, **kw))
        started.append(g)
        return g

    yield start
    for g in started:
        rc = g.proc.stop()
        assert rc == 0, f"gateway exited with {rc}:\n{g.proc.output()}"


def limit_count(m, limit: str) -> float:
    return m.get1("sluice_protocol_limits_total", protocol="HTTP/2", limit=limit)


def rss_bytes(pid: int) -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            return int(ln.split()[1]) * 1024
    raise AssertionError("no VmRSS")


MEMORY_BOUND = 64 << 20


class Healthy:
    """A well-behaved streaming request on its own h2c connection, in a thread,
    running while a test attacks the gateway on another connection."""

    def __init__(self, port: int, tokens: int = 60, itl_ms: int = 25):
        self.port = port
        self.tokens = tokens
        self.itl_ms = itl_ms
        self.started = threading.Event()
        self.result: H2Resp | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with H2Client(self.port) as c:
                sid = c.chat(chat_body("healthy", stream=True),
                             {"x-mock-tokens": str(self.tokens), "x-mock-itl-ms": str(self.itl_ms)}, stream=True)
                c.wait(lambda: len(c.streams[sid].data) > 0, IO_TIMEOUT * SLACK, "first bytes")
                self.started.set()
                self.result = c.response(sid, IO_TIMEOUT * SLACK + self.tokens * self.itl_ms / 1000.0)
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e
        finally:
            self.started.set()

    def __enter__(self):
        self.thread.start()
        assert self.started.wait(IO_TIMEOUT * SLACK), "healthy stream never started"
        assert self.error is None, f"healthy stream failed to start: {self.error!r}"
        return self

    def running(self) -> bool:
        return self.thread.is_alive()

    def __exit__(self, *exc):
        self.thread.join(IO_TIMEOUT * 3)
        if exc[0] is not None:
            return False
        assert not self.thread.is_alive(), "healthy stream hung"
        assert self.error is None, f"healthy stream failed: {self.error!r}"
        assert_full_stream(self.result.to_stream(), self.tokens)
        return False


def assert_serving(g) -> None:
    """The process is alive and answers both protocols."""
    assert g.proc.alive(), g.proc.output()
    assert chat(g.port, chat_body(), {"x-mock-tokens": "2"}).status == 200
    with H2Client(g.port) as c:
        r = c.response(c.chat(headers={"x-mock-tokens": "2"}))
        assert r.status == 200 and r.json()["choices"][0]["message"]["content"], (r.status, bytes(r.data[:200]))


@pytest.fixture(scope="module")
def gw(module_dir, mock):
    """A gateway with the default HTTP/2 settings (and server.max_headers: 32),
    shared by the attack tests: each attack must leave it alive and serving
    for the next."""
    g = start_gateway(module_dir, h2_config(mock.port, server={"max_headers": 32}))
    yield g
    rc = g.proc.stop()
    assert rc == 0, f"gateway exited with {rc}:\n{g.proc.output()}"


# --------------------------------------------------------------------------
# 1. Interleaving and per-stream backpressure
# --------------------------------------------------------------------------

CLIENT_WINDOW = 16 * 1024
NORMAL_TOKENS = 120   # ~23 KB of SSE: more than CLIENT_WINDOW, so every stream needs WINDOW_UPDATEs
NORMAL_ITL_MS = 5
STALLED_TOKENS = 2000  # ~380 KB: far more than the client window plus the gateway's 64 KiB stream buffer


def _open_batch(c: H2Client, n: int, prefix: str) -> list:
    return [c.chat(chat_body(f"{prefix}{i}", stream=True),
                   {"x-mock-tokens": str(NORMAL_TOKENS), "x-mock-itl-ms": str(NORMAL_ITL_MS)}, stream=True)
            for i in range(n)]


def _stall_setup(c: H2Client) -> int:
    sid = c.chat(chat_body("stalled", stream=True), {"x-mock-tokens": str(STALLED_TOKENS)}, stream=True)
    c.stalled.add(sid)
    return sid


def test_fifty_streams_interleave_and_one_stalled_stream_holds_back_only_itself(mock, gateways):
    g = gateways(mock.port, timeouts={"client_stall": "30s", "idle": "10s"})
    before = g.metrics()

    # Baseline: 49 streams on one connection, nobody stalled.
    with H2Client(g.port, initial_window=CLIENT_WINDOW) as c:
        t0 = time.monotonic()
        sids = _open_batch(c, 49, "base")
        c.wait(lambda: all(c.streams[s].done for s in sids), 15 * SLACK, "the baseline streams")
        baseline = time.monotonic() - t0
        for s in sids:
            assert_full_stream(c.streams[s].to_stream(), NORMAL_TOKENS)

    # The same 49 streams plus one whose reader never hands back its window.
    with H2Client(g.port, initial_window=CLIENT_WINDOW) as c:
        t0 = time.monotonic()
        stalled = _stall_setup(c)
        sids = _open_batch(c, 49, "n")
        c.wait(lambda: all(c.streams[s].done for s in sids), 15 * SLACK, "the 49 unstalled streams")
        took = time.monotonic() - t0
        for i, s in enumerate(sids):
            r = c.streams[s]
            assert r.reset is None, (s, r.reset)
            st = r.to_stream()
            assert_full_stream(st, NORMAL_TOKENS)
            assert all(ch["model"] == f"n{i}" for ch in st.chunks()), "stream contents crossed"
            assert len(r.data) > CLIENT_WINDOW  # more than one window: our WINDOW_UPDATEs were honoured
        bound = max(2.0 * baseline, baseline + 1.0 * SLACK)
        assert took <= bound, f"49 streams took {took:.2f}s next to a stalled one, {baseline:.2f}s alone"

        # The stalled stream got exactly what its window allowed and is still open.
        c.wait(lambda: time.monotonic() - t0 >= 2.0, 5, "the stall period")
        r = c.streams[stalled]
        assert not r.done, "the stalled stream completed (or was reset) while its window was closed"
        assert r.status == 200
        assert 0 < len(r.data) <= CLIENT_WINDOW, len(r.data)
        # Its producer is parked, not finished: the request is still in progress.
        assert g.metrics(settled=False).get1("sluice_active_requests") == 1

        # Reading again lets it finish, intact.
        c.ack(stalled)
        r = c.response(stalled, 15 * SLACK)
        assert_full_stream(r.to_stream(), STALLED_TOKENS)
        assert len(r.data) > CLIENT_WINDOW + 64 * 1024

    wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 2.0 * SLACK, what="requests settled")
    after = g.metrics()
    # 49 interleaved, 49 baseline and the stalled one, all through the "*" route.
    assert metric_delta(before, after, "sluice_requests_total", model="*", status="200") == 49 + 49 + 1
    assert (after.get1("sluice_connections_total", protocol="HTTP/2")
            - before.get1("sluice_connections_total", protocol="HTTP/2")) == 2
    assert after.get1("sluice_client_aborts_total") == before.get1("sluice_client_aborts_total")
    assert after.sum("sluice_upstream_errors_total") == before.sum("sluice_upstream_errors_total")


def test_stalled_stream_is_reset_after_client_stall_and_neighbours_are_unaffected(mock, gateways):
    g = gateways(mock.port, timeouts={"client_stall": "1s", "idle": "10s"})
    before = g.metrics()
    with H2Client(g.port, initial_window=CLIENT_WINDOW) as c:
        t0 = time.monotonic()
        stalled = _stall_setup(c)
        sids = _open_batch(c, 5, "nb")
        c.wait(lambda: c.streams[stalled].done, 6 * SLACK, "the stalled stream to be reset")
        r = c.streams[stalled]
        took = r.t_end - t0
        assert r.reset == CANCEL, (r.reset, r.ended)
        assert 0.9 <= took <= 1.0 + 2.0 * SLACK, took
        assert len(r.data) <= CLIENT_WINDOW
        c.wait(lambda: all(c.streams[s].done for s in sids), 10 * SLACK, "the other streams")
        for s in sids:
            assert_full_stream(c.streams[s].to_stream(), NORMAL_TOKENS)
        # The connection itself is fine.
        r2 = c.response(c.chat(headers={"x-mock-tokens": "2"}))
        assert r2.status == 200 and c.goaway is None
    wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 2.0 * SLACK, what="requests settled")
    after = g.metrics()
    assert after.get1("sluice_timeouts_total", kind="client_stall") == before.get1("sluice_timeouts_total",
                                                                                   kind="client_stall") + 1
    assert after.get1("sluice_client_aborts_total") == before.get1("sluice_client_aborts_total") + 1


def test_client_stall_longer_than_upstream_idle_timeout_does_not_break_the_stream(mock, gateways):
    g = gateways(mock.port, timeouts={"client_stall": "30s", "idle": "1s"})
    before = g.metrics()
    with H2Client(g.port, initial_window=CLIENT_WINDOW) as c:
        t0 = time.monotonic()
        stalled = _stall_setup(c)
        c.wait(lambda: time.monotonic() - t0 >= 2.5, 5, "a 2.5 s stall (client_stall is 30 s)")
        assert not c.streams[stalled].done
        c.ack(stalled)
        r = c.response(stalled, 15 * SLACK)
        assert r.status == 200 and r.reset is None
        # Actual: the stream ends early with {"error": {"code": "upstream_reset", "message": "the upstream
        # connection failed mid-response: upstream body incomplete: Bad file descriptor"}}.
        assert_full_stream(r.to_stream(), STALLED_TOKENS)
    after = g.metrics()
    assert after.sum("sluice_upstream_errors_total") == before.sum("sluice_upstream_errors_total"), \
        "a slow client was counted as an upstream failure"


# --------------------------------------------------------------------------
# 2. Attacks: each ends (or refuses) only the attacker while a neighbour streams on
# --------------------------------------------------------------------------

def run_attack(g, limit: str, attack, expect_count: int = 1):
    """Runs attack() (which returns its finished connection) while a healthy
    stream runs on another connection; checks the defence was counted, the
    neighbour was unaffected, memory stayed bounded and the gateway serves."""
    before = g.metrics()
    rss0 = rss_bytes(g.proc.pid)
    with Healthy(g.port) as h:
        t0 = time.monotonic()
        result = attack()
        took = time.monotonic() - t0
        overlapped = h.running()
    assert overlapped, f"the attack ({took:.2f}s) did not overlap the healthy stream: make it longer"
    growth = rss_bytes(g.proc.pid) - rss0
    assert growth < MEMORY_BOUND, f"RSS grew by {growth >> 20} MiB during the attack"
    after = g.metrics()
    assert limit_count(after, limit) == limit_count(before, limit) + expect_count, \
        {k: v for k, v in after.items() if k[0] == "sluice_protocol_limits_total"}
    assert_serving(g)
    return result


def assert_calm_goaway(c: RawH2) -> tuple:
    assert c.goaway is not None, f"no GOAWAY; frames: {[(f.type, f.sid) for f in c.frames[-5:]]}"
    last_sid, code, _ = c.goaway
    assert code == ENHANCE_YOUR_CALM, c.goaway
    assert c.eof, "the connection stayed open after GOAWAY"
    return c.goaway


def test_rapid_reset_ends_connection_with_enhance_your_calm(gw):
    state = {}

    def attack():
        c = RawH2(gw.port)
        c.handshake()
        fields = request_fields(extra=[("content-type", "application/json")])
        # A client that cancels a few streams is fine.
        few = b""
        for _ in range(100):
            sid = c.new_sid()
            few += c.headers(sid, fields) + rst_frame(sid)
        t0 = time.monotonic()
        c.send(few + ping_frame(7))
        assert c.read_until(lambda c: any(f.type == PING and f.flags & ACK for f in c.frames), IO_TIMEOUT), \
            "100 cancelled streams already ended the connection"
        assert c.goaway is None
        # Thousands of open-then-cancel streams as fast as possible (CVE-2023-44487).
        for _ in range(10):
            batch = b""
            for _ in range(500):
                sid = c.new_sid()
                batch += c.headers(sid, fields) + rst_frame(sid)
            if not c.send(batch):
                break
            c.pump(0.001)
        c.read_to_eof(IO_TIMEOUT)
        state["took"] = time.monotonic() - t0
        c.close()
        return c

    c = run_attack(gw, "rapid_reset", attack)
    last_sid, _, _ = assert_calm_goaway(c)
    # Our budget (burst 400, 200/s), not nghttp2's own (4x larger), stopped it.
    streams = (last_sid + 1) // 2
    assert 400 <= streams <= 100 + 400 + 200 * state["took"] + 50, (streams, state["took"])


def test_oversized_header_list_gets_431_on_its_stream_and_connection_survives(gw):
    def attack():
        with H2Client(gw.port) as c:
            # 8 KiB is the limit (server.max_header_bytes); 5 KB passes.
            ok = c.response(c.chat(headers={"x-mock-tokens": "2", **{f"x-fine-{i}": "f" * 1000 for i in range(5)}}))
            assert ok.status == 200, (ok.status, bytes(ok.data[:200]))
            big = c.response(c.chat(headers={f"x-big-{i}": "b" * 2000 for i in range(10)}))
            assert_json_error(big, 431, "request_header_fields_too_large")
            # 40 fields: more than server.max_headers (32) though small.
            many = c.response(c.chat(headers={f"x-many-{i}": "m" for i in range(40)}))
            assert_json_error(many, 431, "request_header_fields_too_large")
            fine = c.response(c.chat(headers={"x-mock-tokens": "3", **{f"x-few-{i}": "m" for i in range(20)}}))
            assert fine.status == 200 and fine.json()["usage"]["completion_tokens"] == 3
            assert c.goaway is None and not c.eof
        return c

    before = gw.metrics()
    run_attack(gw, "header_list_size", attack, expect_count=2)
    after = gw.metrics()
    assert after.get1("sluice_requests_total", model="none", status="431") == \
        before.get1("sluice_requests_total", model="none", status="431") + 2
    assert after.get1("sluice_rejected_requests_total", reason="header_too_large") == \
        before.get1("sluice_rejected_requests_total", reason="header_too_large") + 2


def test_continuation_flood_ends_connection_with_enhance_your_calm(gw):
    # A header block in a few CONTINUATIONs (within max_continuations: 8) is fine.
    with RawH2(gw.port) as c:
        c.handshake()
        sid = c.new_sid()
        body = chat_body()
        out = frame(HEADERS, 0, sid, c.block(request_fields()))
        for i in range(5):
            out += frame(CONTINUATION, 0, sid, c.block([(f"x-part-{i}", "p" * 50)]))
        out += frame(CONTINUATION, END_HEADERS, sid, c.block([("content-type", "application/json"),
                                                               ("x-mock-tokens", "2")]))
        out += frame(DATA, END_STREAM, sid, body)
        c.send(out)
        assert c.read_until(lambda c: c.ended(sid), IO_TIMEOUT * SLACK), "split header block not answered"
        assert c.status(sid) == 200 and c.goaway is None
        assert json.loads(c.body(sid))["usage"]["completion_tokens"] == 2

    def attack():
        c = RawH2(gw.port)
        c.handshake()
        sid = c.new_sid()
        out = frame(HEADERS, 0, sid, c.block(request_fields()))
        for i in range(3000):
            out += frame(CONTINUATION, 0, sid, c.block([(f"x-pad-{i}", "v" * 20)]))
        c.send(out)
        c.read_to_eof(IO_TIMEOUT)
        c.close()
        return c

    c = run_attack(gw, "continuation_flood", attack)
    assert_calm_goaway(c)
    assert c.status(1) is None  # the never-ending header block was not served


def test_ping_flood_ends_connection_with_enhance_your_calm(gw):
    def attack():
        c = RawH2(gw.port)
        c.handshake()
        # A hundred PINGs are answered.
        c.send(b"".join(ping_frame(i) for i in range(100)))
        assert c.read_until(lambda c: len([f for f in c.of_type(PING) if f.flags & ACK]) >= 100, IO_TIMEOUT * SLACK)
        assert c.goaway is None
        # Then thousands, never reading the answers.
        for b in range(10):
            if not c.send(b"".join(ping_frame(b * 1000 + i) for i in range(1000))):
                break
        c.read_to_eof(IO_TIMEOUT)
        c.close()
        return c

    c = run_attack(gw, "control_frame_flood", attack)
    assert_calm_goaway(c)
    acks = len([f for f in c.of_type(PING) if f.flags & ACK])
    assert acks < 1000, acks


def test_settings_flood_ends_connection_with_enhance_your_calm(gw):
    def attack():
        c = RawH2(gw.port)
        c.handshake()
        for _ in range(10):
            if not c.send(b"".join(settings_frame({S_INITIAL_WINDOW_SIZE: 65535}) for _ in range(1000))):
                break
        c.read_to_eof(IO_TIMEOUT)
        c.close()
        return c

    c = run_attack(gw, "control_frame_flood", attack)
    assert_calm_goaway(c)
    assert len([f for f in c.of_type(SETTINGS) if f.flags & ACK]) < 1000


def test_empty_data_frame_flood_ends_connection_with_enhance_your_calm(gw):
    def attack():
        c = RawH2(gw.port)
        c.handshake()
        sid = c.new_sid()
        c.send(c.headers(sid, request_fields(extra=[("content-type", "application/json")])))
        for _ in range(10):
            if not c.send(b"".join(frame(DATA, 0, sid) for _ in range(1000))):
                break
        c.read_to_eof(IO_TIMEOUT)
        c.close()
        return c

    c = run_attack(gw, "empty_frame_flood", attack)
    assert_calm_goaway(c)
    assert c.status(1) is None


@pytest.mark.parametrize("kind", ["resets", "pings", "empty"])
def test_configured_rates_set_the_budgets(mock, gateways, kind):
    """max_*_per_second: N allows a burst of 2N; the next frames trip it."""
    g = gateways(mock.port, http2={"max_resets_per_second": 10, "max_control_frames_per_second": 10,
                                   "max_empty_frames_per_second": 10})
    limit = {"resets": "rapid_reset", "pings": "control_frame_flood", "empty": "empty_frame_flood"}[kind]
    before = limit_count(g.metrics(), limit)
    with RawH2(g.port) as c:
        c.handshake()
        fields = request_fields(extra=[("content-type", "application/json")])
        sid0 = c.new_sid()
        if kind == "empty":
            c.send(c.headers(sid0, fields))

        def burst(n):
            out = b""
            for i in range(n):
                if kind == "resets":
                    sid = c.new_sid()
                    out += c.headers(sid, fields) + rst_frame(sid)
                elif kind == "pings":
                    out += ping_frame(i)
                else:
                    out += frame(DATA, 0, sid0)
            return out

        # 15 (plus our SETTINGS for pings) fit in a burst of 20.
        t0 = time.monotonic()
        c.send(burst(15) + ping_frame(99))
        assert c.read_until(lambda c: any(f.type == PING and f.flags & ACK and f.payload == struct.pack(">Q", 99)
                                          for f in c.frames), IO_TIMEOUT * SLACK), "a burst of 15 ended the connection"
        assert c.goaway is None
        c.send(burst(30))
        assert c.read_to_eof(IO_TIMEOUT * SLACK)
        assert_calm_goaway(c)
        if kind == "resets":
            # Streams 3, 5, ... were reset; the one whose reset overdrew the budget is the last processed.
            took = c.of_type(GOAWAY)[0].t - t0
            processed = (c.goaway[0] - 1) // 2
            assert 20 <= processed <= 21 + 10 * took + 2, (processed, took)
    assert limit_count(g.metrics(), limit) == before + 1
    assert_serving(g)


def test_streams_over_max_concurrent_streams(mock, gateways):
    g = gateways(mock.port, http2={"max_concurrent_streams": 4})
    slow = [("content-type", "application/json"), ("x-mock-ttft-ms", "600"), ("x-mock-tokens", "2")]
    body = chat_body()

    def open_six(c: RawH2) -> list:
        sids = []
        out = b""
        for _ in range(6):
            sid = c.new_sid()
            sids.append(sid)
            out += c.headers(sid, request_fields(extra=slow)) + frame(DATA, END_STREAM, sid, body)
        c.send(out)
        return sids

    def attack():
        # Before the client acknowledged SETTINGS (MAX_CONCURRENT_STREAMS: 4),
        # the streams over the limit are refused one by one.
        with RawH2(g.port) as c:
            assert c.read_until(lambda c: c.got_settings(), IO_TIMEOUT * SLACK)
            assert c.server_settings().get(S_MAX_CONCURRENT_STREAMS) == 4
            sids = open_six(c)
            assert c.read_until(lambda c: all(c.ended(s) or c.rst_code(s) is not None for s in sids),
                                IO_TIMEOUT * SLACK)
            assert [c.rst_code(s) for s in sids] == [None] * 4 + [REFUSED_STREAM] * 2
            assert [c.status(s) for s in sids[:4]] == [200] * 4
            assert c.goaway is None
        # After acknowledging it, exceeding the limit is a connection error
        # (nghttp2): GOAWAY PROTOCOL_ERROR naming the last stream within it.
        c = RawH2(g.port)
        c.handshake(ack=True)
        sids = open_six(c)
        c.read_to_eof(IO_TIMEOUT * SLACK)
        c.close()
        return c

    c = run_attack(g, "max_concurrent_streams", attack, expect_count=3)
    assert c.goaway is not None and c.eof
    last_sid, code, debug = c.goaway
    assert code == PROTOCOL_ERROR and last_sid == 7, c.goaway
    assert b"concurrent" in debug


# --------------------------------------------------------------------------
# 3. Idle timeout
# --------------------------------------------------------------------------

IDLE = {"server": {"idle_timeout": "1s", "header_timeout": "1s"}, "timeouts": {"ttft": "5s"}}


def test_idle_connection_gets_goaway_after_idle_timeout(mock, gateways):
    g = gateways(mock.port, **IDLE)
    before = limit_count(g.metrics(), "idle_timeout")
    # A connection that never opens a stream.
    with RawH2(g.port) as c:
        t0 = time.monotonic()
        c.handshake()
        assert c.read_to_eof(3.0 * SLACK), "idle connection not closed"
        assert c.goaway is not None and c.goaway[:2] == (0, NO_ERROR), c.goaway
        took = c.of_type(GOAWAY)[0].t - t0
        assert 0.9 <= took <= 1.0 + 1.0 * SLACK, took
    # After a finished request, once the client sent something more (a PING).
    with RawH2(g.port) as c:
        c.handshake()
        sid = c.new_sid()
        c.send(c.headers(sid, request_fields(extra=[("content-type", "application/json"), ("x-mock-tokens", "2")]))
               + frame(DATA, END_STREAM, sid, chat_body()))
        assert c.read_until(lambda c: c.ended(sid), IO_TIMEOUT * SLACK) and c.status(sid) == 200
        t0 = time.monotonic()
        c.send(ping_frame(1))
        assert c.read_to_eof(3.0 * SLACK), "connection idle after its request not closed"
        assert c.goaway is not None and c.goaway[:2] == (1, NO_ERROR), c.goaway
        assert 0.9 <= c.of_type(GOAWAY)[0].t - t0 <= 1.0 + 1.0 * SLACK
    assert limit_count(g.metrics(), "idle_timeout") == before + 2
    # A connection whose stream runs longer than the idle timeout is not idle.
    with H2Client(g.port) as c:
        sid = c.chat(chat_body(stream=True), {"x-mock-ttft-ms": "1300", "x-mock-tokens": "8", "x-mock-itl-ms": "150"},
                     stream=True)
        r = c.response(sid, 10 * SLACK)
        assert c.goaway is None
        assert_full_stream(r.to_stream(), 8)
        assert r.t_end - r.t0 >= 2.0


def test_connection_idle_after_its_last_stream_gets_goaway(mock, gateways):
    g = gateways(mock.port, **IDLE)
    with RawH2(g.port) as c:
        c.handshake()
        sid = c.new_sid()
        c.send(c.headers(sid, request_fields(extra=[("content-type", "application/json"), ("x-mock-tokens", "2")]))
               + frame(DATA, END_STREAM, sid, chat_body()))
        assert c.read_until(lambda c: c.ended(sid), IO_TIMEOUT * SLACK) and c.status(sid) == 200
        t0 = time.monotonic()
        # The client now sends nothing at all.
        assert c.read_to_eof(3.0 * SLACK), "connection idle after its request never closed"
        assert c.goaway is not None and c.goaway[:2] == (1, NO_ERROR), c.goaway
        assert c.of_type(GOAWAY)[0].t - t0 <= 1.0 + 1.0 * SLACK


# --------------------------------------------------------------------------
# 4. Graceful drain
# --------------------------------------------------------------------------

def test_drain_sends_goaway_and_finishes_the_stream_in_flight(mock, gateways):
    g = gateways(mock.port, server={"drain_timeout": "10s"})
    idle = RawH2(g.port)
    idle.handshake()
    with H2Client(g.port) as c, idle:
        c.response(c.chat(headers={"x-mock-tokens": "1"}))  # stream 1 done; the next is 3
        sid = c.chat(chat_body(stream=True), {"x-mock-tokens": "30", "x-mock-itl-ms": "50"}, stream=True)
        assert sid == 3
        c.wait(lambda: len(c.streams[sid].to_stream().events) >= 2, IO_TIMEOUT * SLACK, "the stream to start")
        t0 = time.monotonic()
        g.proc.signal(signal.SIGTERM)
        c.wait(lambda: c.goaway is not None, 2.0 * SLACK, "GOAWAY")
        assert c.goaway.error_code == NO_ERROR
        assert c.goaway.last_stream_id >= sid, c.goaway
        assert not c.streams[sid].done, "the stream ended before the drain began: make it longer"
        # The idle connection is told and closed at once.
        assert idle.read_to_eof(2.0 * SLACK)
        assert idle.goaway is not None and idle.goaway[1] == NO_ERROR, idle.goaway
        # The stream in flight completes intact.
        r = c.response(sid, 10 * SLACK)
        assert_full_stream(r.to_stream(), 30)
        assert r.t_end - t0 >= 0.5  # it kept streaming after GOAWAY
        c.wait(lambda: c.eof, 3.0 * SLACK, "the close after the last stream")
        # With a stream open: first a shutdown notice (highest stream id, so
        # requests already on the wire are still served), then the final
        # GOAWAY naming the last stream processed.
        assert len(c.goaways) == 2, c.goaways
        assert c.goaways[0].last_stream_id == 2**31 - 1 and c.goaways[0].error_code == NO_ERROR
        assert c.goaways[1].last_stream_id == sid and c.goaways[1].error_code == NO_ERROR
    assert g.proc.wait(10 * SLACK) == 0, g.proc.output()


# --------------------------------------------------------------------------
# 5. Request bodies
# --------------------------------------------------------------------------

def test_request_body_larger_than_stream_window_arrives_intact(tmp_path):
    up = RecordingUpstream()
    g = start_gateway(tmp_path, h2_config(up.port))
    try:
        with H2Client(g.port) as c:
            c.wait(lambda: c.settings_seen, IO_TIMEOUT, "the server's SETTINGS")
            assert c.conn.remote_settings.initial_window_size == 256 * 1024
            body = chat_body("big-body", content="".join(f"word{i} " for i in range(45000)))
            assert len(body) > 300 * 1024
            sid = c.chat(body)
            r = c.response(sid, 10 * SLACK)
            assert r.status == 200, (r.status, bytes(r.data[:300]))
            assert r.json()["choices"][0]["message"]["content"] == "".join(RecordingUpstream.CONTENT)
            # More than one stream window went out: the gateway reopened it.
            assert r.window_updates >= 1
        got = up.last()
        assert got["body"] == body
        assert dict(got["headers"]).get("content-length") == str(len(body))
    finally:
        assert g.proc.stop() == 0
        up.close()


@pytest.mark.parametrize("content_length", [True, False], ids=["with-content-length", "without-content-length"])
def test_request_body_over_max_body_bytes_gets_413(gw, content_length):
    before = gw.metrics()
    with H2Client(gw.port) as c:
        body = chat_body(content="x" * (1200 * 1024))  # server.max_body_bytes: 1MiB
        sid = c.chat(body, content_length=content_length)
        r = c.response(sid, 10 * SLACK)
        err = assert_json_error(r, 413, "request_too_large")
        assert "larger than" in err["message"]
        # The connection goes on.
        r2 = c.response(c.chat(headers={"x-mock-tokens": "2"}))
        assert r2.status == 200 and c.goaway is None
    after = gw.metrics()
    assert after.sum("sluice_requests_total", status="413") == before.sum("sluice_requests_total", status="413") + 1


def test_client_rst_stream_cancels_the_upstream(tmp_path):
    m = start_mock(tmp_path)
    g = start_gateway(tmp_path, h2_config(m.port))
    try:
        before = g.metrics()
        with H2Client(g.port) as c:
            sid = c.chat(chat_body(stream=True), {"x-mock-tokens": "1000", "x-mock-itl-ms": "20"}, stream=True)
            c.wait(lambda: len(c.streams[sid].to_stream().events) >= 3, IO_TIMEOUT * SLACK, "the stream to start")
            assert established_to(m.port) == 1
            c.reset(sid, CANCEL)
            t0 = time.monotonic()
            wait_until(lambda: g.metrics().get1("sluice_client_aborts_total")
                       == before.get1("sluice_client_aborts_total") + 1, 1.0 * SLACK, what="client abort counted")
            wait_until(lambda: g.metrics().get1("sluice_active_requests") == 0, 1.0 * SLACK, what="request settled")
            # The upstream stops generating: its connection is closed, not pooled mid-stream.
            wait_until(lambda: established_to(m.port) == 0, 1.0 * SLACK, what="upstream connection closed")
            assert time.monotonic() - t0 < 1.5 * SLACK
            # The connection and the gateway keep serving.
            sid2 = c.chat(chat_body(stream=True), {"x-mock-tokens": "4"}, stream=True)
            assert_full_stream(c.response(sid2).to_stream(), 4)
            assert c.goaway is None
        assert len(c.streams[sid].to_stream().events) < 1000
    finally:
        assert g.proc.stop() == 0
        m.proc.stop()
