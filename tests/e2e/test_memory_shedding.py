"""Memory-watermark shedding with hysteresis (issue 10): many clients that
read very slowly from large streamed answers drive the gateway's memory over
its high watermark; new requests then get 503 with Retry-After while every
admitted stream completes intact, and admission resumes once the slow readers
have drained and the level is under the low watermark."""
import os
import threading
import time

from conftest import SANITIZED, SLACK, assert_full_stream, chat, chat_body, gateway_config, \
    start_gateway, wait_until
from helpers.h2raw import H2Client

MiB = 1 << 20
TOKENS = 4000          # about 0.6 MB of SSE per answer (the mock gives at most 4096)
STREAMS = 90 if SANITIZED else 60  # slow readers, over two connections


def _env():
    if not SANITIZED:
        return None
    # ASan keeps freed memory in quarantine and its own free lists; let this
    # process hand it back so the sampled RSS can fall under the low watermark.
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
            ":quarantine_size_mb=0:allocator_release_to_os_interval_ms=50"}


def _config(mock_port, memory=None):
    return gateway_config(
        mock_port,
        server={"http2": {"stream_buffer_bytes": "2MiB", "max_connection_memory": "512MiB"}},
        timeouts={"ttft": "10s", "idle": "60s", "total": "300s", "client_stall": "120s"},
        admission={"memory": memory} if memory else None)


class Timeline:
    """Samples the gateway's memory metrics every 100 ms, for the test output."""

    def __init__(self, g):
        self.g, self.rows, self.stop = g, [], threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                m = self.g.metrics(settled=False)
                self.rows.append((time.monotonic() - self.t0, m.get1("sluice_memory_level_bytes") / MiB,
                                  m.get1("sluice_memory_buffered_bytes") / MiB, int(m.get1("sluice_memory_shedding")),
                                  int(m.get1("sluice_active_requests"))))
            except OSError:
                pass
            self.stop.wait(0.1)

    def print(self, high, low):
        self.stop.set()
        self.thread.join(2)
        print(f"\nmemory timeline (high {high / MiB:.1f} MiB, low {low / MiB:.1f} MiB):")
        last = None
        for t, level, buffered, shed, active in self.rows:
            row = (round(level), round(buffered), shed, active)
            if row != last:
                print(f"  t={t:5.1f}s level={level:6.1f} MiB (buffers {buffered:5.1f} MiB) shedding={shed}"
                      f" active={active}")
                last = row


def test_memory_watermark_sheds_new_work_and_keeps_admitted_streams(module_dir, mock):
    # The idle level of this very binary (ASan's is far larger than release's).
    probe = start_gateway(module_dir, _config(mock.port), env=_env())
    for _ in range(3):
        assert chat(probe.port, chat_body()).status == 200
    idle = probe.metrics().get1("sluice_memory_level_bytes")
    assert probe.proc.stop() == 0
    # ASan's allocator keeps more of what the streams freed (its size-class
    # regions fragment), so the sanitized run leaves it more room under low.
    high = idle + (48 if SANITIZED else 24) * MiB
    low = idle + (28 if SANITIZED else 8) * MiB
    limit = int(high / 0.75) + 1
    memory = {"limit": limit, "high": 0.75, "low": round(low / limit, 4), "sample": "50ms", "retry_after": "2s",
              "stop_accepting": True}
    g = start_gateway(module_dir, _config(mock.port, memory), env=_env())
    timeline = Timeline(g)
    clients = [H2Client(g.port, timeout=30 * SLACK) for _ in range(2)]
    try:
        sids = []
        for i in range(STREAMS):
            c = clients[i % 2]
            sid = c.chat(chat_body(stream=True), {"x-mock-tokens": str(TOKENS), "x-mock-itl-ms": "0"}, stream=True)
            c.stalled.add(sid)  # read, but never hand the window back: the gateway buffers the rest
            sids.append((c, sid))

        def level():
            for c in clients:
                c.pump(0.05)
            return g.metrics(settled=False)

        deadline = time.monotonic() + 20 * SLACK
        while level().get1("sluice_memory_shedding") != 1:
            assert time.monotonic() < deadline, "the slow readers never drove memory over the high watermark"

        # New work is refused while over the watermark: a request on a
        # connection already open gets 503 with Retry-After...
        c = clients[0]
        sid = c.chat(chat_body())
        r = c.response(sid, timeout=5 * SLACK)
        assert r.status == 503 and r.json()["error"]["code"] == "overloaded", (r.status, bytes(r.data))
        assert r.headers.get("retry-after") == "2", r.headers
        # ...and a new connection waits in the backlog (stop_accepting) until
        # admission resumes, then gets its answer.
        late = {}
        late_thread = threading.Thread(
            target=lambda: late.update(r=chat(g.port, chat_body(), timeout=60 * SLACK), t=time.monotonic()),
            daemon=True)
        late_thread.start()
        m = g.metrics(settled=False)
        assert m.get1("sluice_memory_transitions_total", to="shedding") == 1
        # The gateway knows who holds it: its HTTP/2 stream queues.
        wait_until(lambda: g.metrics(settled=False).get1("sluice_memory_buffered_bytes") > 8 * MiB, 2 * SLACK,
                   what="the buffered bytes accounted")
        assert m.get1("sluice_rejected_requests_total", reason="overloaded") >= 1

        # ...and every admitted stream goes on and completes intact.
        for c, sid in sids:
            c.ack(sid)
        for c, sid in sids:
            resp = c.response(sid, timeout=120 * SLACK)
            assert resp.reset is None, (sid, resp.reset)
            assert_full_stream(resp.to_stream(), TOKENS)

        # Admission resumes once the level is under the low watermark.
        deadline = time.monotonic() + 20 * SLACK
        while g.metrics(settled=False).get1("sluice_memory_shedding") != 0:
            assert time.monotonic() < deadline, "admission never resumed after the slow readers drained"
            time.sleep(0.1)
        late_thread.join(10 * SLACK)
        assert late["r"].status == 200, late["r"].body
        last_seen_shedding = max(t for t, _, _, shed, _ in timeline.rows if shed)
        assert late["t"] - timeline.t0 > last_seen_shedding, \
            "the waiting connection was answered while the gateway was still shedding"
        assert chat(g.port, chat_body()).status == 200
        m = g.metrics()
        assert m.get1("sluice_memory_transitions_total", to="admitting") == 1
        assert m.get1("sluice_memory_limit_bytes") == limit
        assert g.proc.alive, "the gateway must never be killed"
    finally:
        timeline.print(high, low)
        for c in clients:
            c.close()
        assert g.proc.stop() == 0, g.proc.output()
