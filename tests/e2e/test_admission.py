"""Admission control (issue 10): header rules with an audit trail, route
allow-lists, concurrency limits with queues, slow request bodies and
connection floods. Memory-watermark shedding is in test_memory_shedding.py."""
import json
import socket
import threading
import time
import uuid

import pytest

from conftest import (BIN_DIR, SLACK, BackgroundStream, Gateway, Proc, Raw, RecordingUpstream, assert_error_body,
                      chat_body, gateway_config, gateway_target, metric_delta, request, start_gateway, stream_chat,
                      tcp_connect, wait_until)

UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
BEARER = "^Bearer [A-Za-z0-9._~+/-]+=*$"
AUTH = {"authorization": "Bearer test-token"}


def _audit_lines(path, request_id=None):
    if not path.exists():
        return []
    out = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return [d for d in out if request_id is None or d.get("request_id") == request_id]


@pytest.fixture(scope="module")
def rules_gw(module_dir, mock):
    audit = module_dir / "audit.log"
    cfg = gateway_config(mock.port, server={"max_header_value_bytes": "1KiB"}, admission={
        "header_rules": [{"header": "x-request-id", "pattern": UUID, "required": False},
                         {"header": "authorization", "pattern": BEARER, "required": True}],
        "audit_log": str(audit)})
    g = start_gateway(module_dir, cfg)
    g.audit = audit
    yield g
    assert g.proc.stop() == 0, g.proc.output()


CASES = [  # (headers, status, code, rule, header)
    ({}, 400, "missing_header", "required:authorization", "authorization"),
    ({"authorization": "Basic dXNlcjpwYXNzd29yZA=="}, 400, "invalid_header", "pattern:authorization", "authorization"),
    ({**AUTH, "x-request-id": "req-not-a-uuid"}, 400, "invalid_header", "pattern:x-request-id", "x-request-id"),
    ({**AUTH, "x-model-tag": "v" * 2000}, 431, "header_value_too_large", "max_header_value_bytes", "x-model-tag"),
]


@pytest.mark.parametrize("proto", ["h1", "h2c"])
@pytest.mark.parametrize("case", CASES, ids=[c[2] + "-" + c[4] for c in CASES])
def test_header_rule_violation_is_refused_and_audited(rules_gw, proto, case):
    headers, status, code, rule, header = case
    target = gateway_target(rules_gw, proto)
    before = rules_gw.metrics()
    # A healthy stream on another connection is not disturbed.
    with BackgroundStream(rules_gw.port, tokens=20, itl_ms=10, headers=AUTH):
        r = request(target, "POST", "/v1/chat/completions", chat_body(), headers)
        err = assert_error_body(r, status, code)
        assert f"'{header}'" in err["message"], err
        for v in headers.values():
            assert v not in r.body.decode(), "the refusal echoes a header value"
    rid = r.headers.get("x-request-id")
    assert rid
    line = wait_until(lambda: (_audit_lines(rules_gw.audit, rid) or [None])[0], 3 * SLACK, what="audit line")
    assert line["event"] == "header_rejected" and line["rule"] == rule and line["header"] == header, line
    assert line["status"] == status and line["client"].startswith("127.0.0.1:"), line
    assert line["value_length"] == len(headers.get(header, "")), line
    assert "ts" in line
    raw = rules_gw.audit.read_text()
    for v in headers.values():
        assert v not in raw, "the audit log must never hold a header value"
    after = rules_gw.metrics()
    assert metric_delta(before, after, "sluice_header_rule_rejections_total", rule=rule) == 1


def test_valid_headers_pass_and_rule_series_exist_from_start(rules_gw):
    r = request(rules_gw.port, "POST", "/v1/chat/completions", chat_body(),
                {**AUTH, "x-request-id": str(uuid.uuid4())})
    assert r.status == 200, r.body
    m = rules_gw.metrics()
    for rule in ("max_header_value_bytes", "pattern:x-request-id", "pattern:authorization", "required:authorization"):
        assert ("sluice_header_rule_rejections_total", frozenset({("rule", rule)})) in m, rule


# ---- Route allow-lists ----------------------------------------------------------------

def test_allow_list_drops_or_rejects_unlisted_headers(module_dir):
    rec = RecordingUpstream()
    try:
        models = ('  - {name: strict, upstream: m, allow_headers: {mode: reject, names: [content-type]}}\n'
                  '  - {name: "*", upstream: m, allow_headers: {mode: drop, names: [content-type, x-request-id]}}\n')
        g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{rec.port}", models=models))
        try:
            r = request(g.port, "POST", "/v1/chat/completions", chat_body("any"),
                        {"x-secret-debug": "1", "user-agent": "probe/1", "x-request-id": "keep-me-1",
                         "authorization": "Bearer client-key"})
            assert r.status == 200, r.body
            sent = dict(rec.last()["headers"])
            assert "x-secret-debug" not in sent and "user-agent" not in sent, sent
            assert sent["content-type"] == "application/json" and sent["x-request-id"] == "keep-me-1", sent
            assert "authorization" not in sent  # the client's credentials never travel upstream
            r = request(g.port, "POST", "/v1/chat/completions", chat_body("strict"), {"x-secret-debug": "1"})
            err = assert_error_body(r, 400, "header_not_allowed")
            assert "'x-secret-debug'" in err["message"]
            r = request(g.port, "POST", "/v1/chat/completions", chat_body("strict"))
            assert r.status == 200, r.body
        finally:
            assert g.proc.stop() == 0, g.proc.output()
    finally:
        rec.close()


# ---- Concurrency limits with queues -------------------------------------------------------

def test_concurrency_limit_queue_and_fast_rejections(module_dir, mock):
    N, Q, K = 3, 4, 3
    g = start_gateway(module_dir, gateway_config(mock.port, admission={
        "concurrency": {"max": N, "queue": Q, "queue_timeout": "20s"}}))
    try:
        results = [None] * (N + Q + K)
        done_at = [0.0] * (N + Q + K)
        first_at = [0.0] * (N + Q + K)

        # The first N hold their slots for different times (400, 520, 640 ms), so the queued
        # ones start at least 120 ms apart and their order shows through client-side timing.
        tokens = [10 + 3 * i if i < N else 10 for i in range(N + Q + K)]

        def one(i):
            hdrs = {"x-mock-itl-ms": "40", "x-mock-tokens": str(tokens[i])}
            s = stream_chat(g.port, chat_body(stream=True), hdrs, timeout=30 * SLACK,
                            on_event=lambda e, i=i: first_at.__setitem__(i, first_at[i] or time.monotonic()))
            results[i] = s
            done_at[i] = time.monotonic()

        t0 = time.monotonic()
        threads = []
        for i in range(N + Q + K):  # in a known order of arrival
            th = threading.Thread(target=one, args=(i,), daemon=True)
            th.start()
            threads.append(th)
            wait_until(lambda: g.metrics(settled=False).get1("sluice_active_requests") >= i + 1 or results[i],
                       3 * SLACK, what=f"request {i} admitted or answered")
        for th in threads:
            th.join(30 * SLACK)
        rejected = [i for i, s in enumerate(results) if s.status == 503]
        assert rejected == list(range(N + Q, N + Q + K)), [s.status for s in results]
        for i in rejected:
            s = results[i]
            assert json.loads(s.body)["error"]["code"] == "overloaded"
            assert s.headers.get("retry-after") == "1", s.headers
            assert done_at[i] - t0 < 1.0 * SLACK + 0.1 * (N + Q + K), "a full queue must refuse at once"
        for i in range(N + Q):
            assert results[i].status == 200 and results[i].done, (i, results[i].status)
            assert len(results[i].content_events()) == tokens[i]
        # The queued ones started in their order of arrival, after the first N.
        queued_starts = [first_at[i] for i in range(N, N + Q)]
        assert queued_starts == sorted(queued_starts), queued_starts
        assert min(queued_starts) > max(first_at[:N])
        m = g.metrics()
        assert m.get1("sluice_rejected_requests_total", reason="overloaded") == K
        assert m.get1("sluice_concurrency_active", scope="global") == 0
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def test_model_limit_answers_429_and_abandoned_waiters_leave(module_dir, mock):
    models = ('  - {name: tight, upstream: m, concurrency: {max: 1, queue: 1, queue_timeout: 300ms, status: 429}}\n'
              '  - {name: "*", upstream: m}\n')
    g = start_gateway(module_dir, gateway_config(mock.port, models=models))
    try:
        with BackgroundStream(g.port, tokens=30, itl_ms=50, model="tight"):
            # The queue's one place: taken, then the wait times out -> 429.
            t0 = time.monotonic()
            r = request(g.port, "POST", "/v1/chat/completions", chat_body("tight"))
            assert_error_body(r, 429, "overloaded")
            assert 0.28 <= time.monotonic() - t0 < 0.3 + 1.0 * SLACK
            assert r.headers.get("retry-after") == "1"
            # A waiting client that hangs up leaves the queue at once.
            s = tcp_connect("127.0.0.1", g.port, 5)
            body = chat_body("tight")
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            wait_until(lambda: g.metrics(settled=False).get1("sluice_concurrency_queued", scope="model:tight") == 1,
                       2 * SLACK, what="request queued")
            s.close()
            wait_until(lambda: g.metrics(settled=False).get1("sluice_concurrency_queued", scope="model:tight") == 0,
                       0.25 * SLACK, what="abandoned request left the queue")
            # Other models are not limited.
            assert request(g.port, "POST", "/v1/chat/completions", chat_body("free")).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- Slow request bodies ----------------------------------------------------------------

def _trickle(port, total, chunk, every, result):
    s = tcp_connect("127.0.0.1", port, 10)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: " + str(total).encode() + b"\r\n\r\n")
        t0 = time.monotonic()
        sent = 0
        s.settimeout(every)
        buf = b""
        while sent < total:
            try:
                s.sendall(b" " * chunk)
                sent += chunk
            except OSError:
                break
            try:
                data = s.recv(65536)
                if not data:
                    break
                buf += data
                if b"\r\n\r\n" in buf:
                    break
            except socket.timeout:
                pass
        s.settimeout(5)
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        result["response"] = buf
        result["elapsed"] = time.monotonic() - t0
        result["sent"] = sent
    finally:
        s.close()


def test_slow_post_is_cut_with_408(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, server={
        "body_timeout": "4s", "min_body_rate": {"bytes_per_second": 1000, "grace": "1s"}}))
    try:
        res = {}
        with BackgroundStream(g.port, tokens=20, itl_ms=40):
            th = threading.Thread(target=_trickle, args=(g.port, 100_000, 20, 0.2, res), daemon=True)
            th.start()
            # Normal requests on other connections go on meanwhile.
            for _ in range(5):
                assert request(g.port, "POST", "/v1/chat/completions", chat_body()).status == 200
            th.join(10 * SLACK)
        head = res["response"].split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.1 408"), head
        assert "connection: close" in head.lower()
        assert 1.0 <= res["elapsed"] < 1.0 + 1.0 * SLACK, res["elapsed"]  # cut soon after the grace
        assert res["sent"] < 100_000

        # Fast enough on average, but longer than body_timeout in all.
        res = {}
        _trickle(g.port, 30_000, 1500, 0.5, res)  # 3 000 bytes/s for 10 s
        head = res["response"].split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.1 408"), head
        assert 4.0 <= res["elapsed"] < 4.0 + 1.0 * SLACK, res["elapsed"]
        m = g.metrics()
        assert m.get1("sluice_rejected_requests_total", reason="request_timeout") == 2
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- Connection floods ----------------------------------------------------------------------

def test_connection_flood_leaves_room_for_a_new_client(module_dir, mock):
    cap = 40
    g = start_gateway(module_dir, gateway_config(mock.port, server={"max_connections": cap, "idle_timeout": "60s"}))
    socks = []
    try:
        # Fill the cap with idle keep-alive connections (each served one request).
        for i in range(cap + 10):
            c = Raw(g.port, 5)
            socks.append(c)
            c.send(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
            assert c.read_response().status == 200
        m = g.metrics()
        assert m.get1("sluice_active_connections") <= cap + 1, m.get1("sluice_active_connections")
        assert m.get1("sluice_connections_shed_total", reason="idle_evicted") >= 10
        # A new client completes a request; the oldest idle ones made room.
        for _ in range(3):
            r = request(g.port, "POST", "/v1/chat/completions", chat_body())
            assert r.status == 200, r.body
        # The evicted ones were the oldest: the first connection is closed, the last is not.
        assert socks[0].closed_by_peer(1.0)
        socks[-1].send(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
        assert socks[-1].read_response().status == 200
    finally:
        for s in socks:
            s.close()
        assert g.proc.stop() == 0, g.proc.output()


def test_descriptor_limit_caps_connections_below_it(module_dir, mock):
    """With 128 descriptors the gateway keeps client connections well below
    the limit, so accept() does not fail with EMFILE and a new client still
    gets in (the oldest idle connections make room)."""
    cfg = module_dir / "nofile.yaml"
    cfg.write_text(gateway_config(mock.port, server={"idle_timeout": "60s"}))
    pf = module_dir / "nofile.port"
    argv = ["prlimit", "--nofile=128:128", str(BIN_DIR / "sluice"), "--config", str(cfg), "--listen", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--workers", "1", "--access-log", "off", "--port-file", str(pf)]
    g = Gateway(Proc("sluice-nofile", argv, module_dir, pf), module_dir)
    socks = []
    try:
        for _ in range(150):
            s = tcp_connect("127.0.0.1", g.port, 5)
            s.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
            socks.append(s)
        wait_until(lambda: g.metrics(settled=False).sum("sluice_connections_shed_total") >= 50, 5 * SLACK,
                   what="connections shed")
        r = request(g.port, "POST", "/v1/chat/completions", chat_body())
        assert r.status == 200, r.body
        m = g.metrics()
        assert m.get1("sluice_accept_errors_total", error="EMFILE") == 0
        assert m.get1("sluice_active_connections") <= 64 + 1
    finally:
        for s in socks:
            s.close()
        assert g.proc.stop() == 0, g.proc.output()
