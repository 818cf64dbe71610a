"""Prometheus metrics and the JSON access log reflect what really happened."""
import json
import re
import time

import pytest

from conftest import (SLACK, Raw, RecordingUpstream, assert_full_stream, chat, chat_body,
                      gateway_config, parse_metrics, raw_chat, request, start_gateway, stream_chat, wait_until)

MODELS = ('  - {name: known, aliases: [kn], upstream: m}\n'
          '  - {name: slowpoke, upstream: m, timeouts: {ttft: 300ms}}\n')


@pytest.fixture(scope="module")
def gw(module_dir, mock):
    log = module_dir / "access.log"
    g = start_gateway(module_dir, gateway_config(mock.port, models=MODELS), access_log=log)
    yield g
    assert g.proc.stop() == 0, g.proc.output()


def log_entry(gw, request_id: str, timeout: float = 2.0) -> dict:
    return gw.log_entry(request_id, timeout)


def _d(before, after, name, **labels):
    return after.get1(name, **labels) - before.get1(name, **labels)


EXPECTED_FAMILIES = {
    "sluice_requests_total": "counter", "sluice_request_duration_seconds": "histogram",
    "sluice_ttft_seconds": "histogram", "sluice_gateway_overhead_seconds": "histogram",
    "sluice_stream_inter_event_seconds": "histogram", "sluice_tokens_total": "counter",
    "sluice_usage_source_total": "counter", "sluice_stream_events_total": "counter",
    "sluice_stream_usage_chunks_stripped_total": "counter", "sluice_active_connections": "gauge",
    "sluice_active_requests": "gauge", "sluice_upstream_errors_total": "counter",
    "sluice_rejected_requests_total": "counter", "sluice_timeouts_total": "counter",
    "sluice_client_aborts_total": "counter",
}


def test_metrics_exposition_is_well_formed(gw):
    # Produce at least one sample in each labelled family.
    chat(gw.port, chat_body("known"), {"x-mock-tokens": "2"})
    stream_chat(gw.port, chat_body("known", stream=True), {"x-mock-tokens": "3", "x-mock-itl-ms": "5"})
    chat(gw.port, chat_body("not-here"))
    chat(gw.port, chat_body("slowpoke"), {"x-mock-ttft-ms": "600"})
    r = request(gw.admin, "GET", "/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    text = r.body.decode()
    m = parse_metrics(text)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) .+$", text, re.M))
    for fam, typ in EXPECTED_FAMILIES.items():
        assert types.get(fam) == typ, (fam, types.get(fam))
        assert fam in helps, fam
    # Every sample belongs to a declared family.
    for name in m.names():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, name
    # Histograms: cumulative buckets ending in +Inf == _count.
    for fam, typ in types.items():
        if typ != "histogram":
            continue
        series = {}
        for (name, labels), v in m.items():
            if name == fam + "_bucket":
                rest = frozenset(kv for kv in labels if kv[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float("inf") if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            vals = [v for _, v in buckets]
            assert vals == sorted(vals), (fam, rest, buckets)
            assert buckets[-1][0] == float("inf")
            assert m[(fam + "_count", rest)] == vals[-1], (fam, rest)
            assert (fam + "_sum", rest) in m


def test_requests_total_counts_200_and_404(gw):
    before = gw.metrics()
    for _ in range(3):
        assert chat(gw.port, chat_body("known"), {"x-mock-tokens": "1"}).status == 200
    for _ in range(2):
        assert chat(gw.port, chat_body("missing-model")).status == 404
    after = gw.metrics()
    assert _d(before, after, "sluice_requests_total", model="known", status="200") == 3
    assert (after.sum("sluice_requests_total", status="404") - before.sum("sluice_requests_total", status="404")) == 2
    assert _d(before, after, "sluice_rejected_requests_total", reason="model_not_found") == 2
    # The client's unvalidated model string must not become a label value.
    assert not any(dict(ls).get("model") == "missing-model" for (_, ls) in after), "unbounded label cardinality"


def test_alias_counted_under_one_model_label(gw):
    before = gw.metrics()
    assert chat(gw.port, chat_body("kn"), {"x-mock-tokens": "4"}).status == 200
    assert chat(gw.port, chat_body("known"), {"x-mock-tokens": "4"}).status == 200
    after = gw.metrics()
    assert (after.sum("sluice_tokens_total", direction="output")
            - before.sum("sluice_tokens_total", direction="output")) == 8
    assert (after.sum("sluice_requests_total", status="200") - before.sum("sluice_requests_total", status="200")) == 2


def test_histograms_observe_each_request(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body("known", stream=True), {"x-mock-ttft-ms": "100", "x-mock-tokens": "3"})
    assert_full_stream(s, 3)
    after = gw.metrics()
    assert _d(before, after, "sluice_ttft_seconds_count", model="known") == 1
    assert _d(before, after, "sluice_request_duration_seconds_count", model="known") == 1
    ttft = _d(before, after, "sluice_ttft_seconds_sum", model="known")
    assert 0.09 <= ttft < 0.1 + 0.2 * SLACK, ttft
    assert _d(before, after, "sluice_gateway_overhead_seconds_count") >= 1
    # The gateway's own overhead excludes the 100 ms spent waiting for the model.
    assert _d(before, after, "sluice_gateway_overhead_seconds_sum") < 0.05 * SLACK


def test_stream_event_metrics_match_what_client_got(gw):
    before = gw.metrics()
    s = stream_chat(gw.port, chat_body("known", stream=True), {"x-mock-itl-ms": "20", "x-mock-tokens": "10"})
    assert_full_stream(s, 10)
    after = gw.metrics()
    n = len(s.events)  # role + 10 + finish + [DONE]
    assert _d(before, after, "sluice_stream_events_total") == n
    # Events that travel in one upstream read may share one observation, but
    # each of the 10 tokens paced 20 ms apart is a gap of its own.
    gaps = _d(before, after, "sluice_stream_inter_event_seconds_count")
    assert 9 <= gaps <= n - 1, (gaps, n)
    total_gap = _d(before, after, "sluice_stream_inter_event_seconds_sum")
    assert 0.15 <= total_gap <= 0.4 * SLACK + 0.1, total_gap


def test_active_gauges_track_connections_and_requests(gw):
    base = gw.metrics()
    conns = [Raw(gw.port) for _ in range(4)]
    try:
        for c in conns:
            c.send(raw_chat(chat_body("known"), [("x-mock-tokens", "1")]))
            assert c.read_response().status == 200
        m = gw.metrics()
        assert m.get1("sluice_active_connections") >= base.get1("sluice_active_connections") + 4
        # A request is settled just after its last byte is written: allow that moment.
        wait_until(lambda: gw.metrics().get1("sluice_active_requests") == 0, 0.5 * SLACK, what="requests settled")
        # A slow request in flight is visible.
        conns[0].send(raw_chat(chat_body("known"), [("x-mock-ttft-ms", "500"), ("x-mock-tokens", "1")]))
        wait_until(lambda: gw.metrics(settled=False).get1("sluice_active_requests") == 1, 0.4 * SLACK, what="active_requests == 1")
        assert conns[0].read_response().status == 200
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: gw.metrics().get1("sluice_active_connections") <= base.get1("sluice_active_connections"),
               1.0 * SLACK, what="connections closed")
    assert gw.metrics().get1("sluice_active_requests") == 0


def test_access_log_line_for_streaming_request(gw):
    rid = "log-stream-0001"
    body = chat_body("known", stream=True)
    s = stream_chat(gw.port, body, {"x-request-id": rid, "x-mock-tokens": "6", "x-mock-itl-ms": "5"})
    assert_full_stream(s, 6)
    e = log_entry(gw, rid)
    assert e["method"] == "POST" and e["path"] == "/v1/chat/completions"
    assert e["protocol"] == "HTTP/1.1"
    assert e["status"] == 200
    assert e["model"] == "known"
    assert e["stream"] is True
    assert e["tokens_out"] == 6 and e["tokens_in"] > 0
    assert e["usage_source"] == "upstream"
    assert e["upstream"] == "m"
    assert e["endpoint"].endswith(":" + str(gw_mock_port(gw)))
    assert e["events"] == len(s.events)
    assert e["bytes_in"] == len(body)
    assert e["bytes_out"] >= sum(len(ev.data) for ev in s.events)
    assert 0 < e["ttft_ms"] <= e["duration_ms"]
    assert 0 <= e["overhead_ms"] <= e["duration_ms"]
    assert not e.get("error")


def gw_mock_port(gw) -> int:
    cfg = next(gw.workdir.glob(f"{gw.proc.name}.yaml")).read_text()
    return int(re.search(r"http://127\.0\.0\.1:(\d+)", cfg).group(1))


def test_access_log_line_for_non_streaming_and_errors(gw):
    chat(gw.port, chat_body("known"), {"x-request-id": "log-plain-1", "x-mock-tokens": "3"})
    chat(gw.port, chat_body("unknown-x"), {"x-request-id": "log-404-1"})
    chat(gw.port, chat_body("slowpoke"), {"x-request-id": "log-504-1", "x-mock-ttft-ms": "800"})
    chat(gw.port, b"{not json", {"x-request-id": "log-400-1"})
    e = log_entry(gw, "log-plain-1")
    assert e["status"] == 200 and e["stream"] is False and e["tokens_out"] == 3 and not e.get("error")
    e = log_entry(gw, "log-404-1")
    assert e["status"] == 404 and e["error"] == "model_not_found"
    e = log_entry(gw, "log-504-1")
    assert e["status"] == 504 and e["error"] == "upstream_timeout" and e["upstream"] == "m"
    e = log_entry(gw, "log-400-1")
    assert e["status"] == 400 and e["error"]


def test_access_log_for_client_abort_and_mid_stream_failure(gw):
    s = stream_chat(gw.port, chat_body("known", stream=True),
                    {"x-request-id": "log-abort-1", "x-mock-itl-ms": "30", "x-mock-tokens": "500"}, stop_after=3)
    assert not s.done
    stream_chat(gw.port, chat_body("known", stream=True),
                {"x-request-id": "log-reset-1", "x-mock-fail-after": "2", "x-mock-tokens": "5"})
    e = log_entry(gw, "log-abort-1")
    assert e["error"] == "client_closed", e
    assert e["tokens_out"] is not None and 0 < e["tokens_out"] < 500, e
    e = log_entry(gw, "log-reset-1")
    assert e["status"] == 200 and e["error"] == "upstream_reset", e
    assert e["tokens_out"] == 2, e


def test_access_log_flushed_promptly(gw):
    rid = "log-prompt-1"
    chat(gw.port, chat_body("known"), {"x-request-id": rid, "x-mock-tokens": "1"})
    t0 = time.monotonic()
    log_entry(gw, rid, timeout=1.0)
    assert time.monotonic() - t0 < 1.0 * SLACK


def test_access_log_escapes_hostile_values(gw):
    # A path with quotes, backslashes and control bytes must not break the JSON line.
    with Raw(gw.port) as c:
        c.send(b'GET /v1/models?q="\\%0a%22 HTTP/1.1\r\nHost: x\r\nx-request-id: log-esc-1\r\n\r\n')
        assert c.read_response().status == 200
    e = log_entry(gw, "log-esc-1")
    assert e["path"].startswith("/v1/models")
    assert e["status"] == 200


# ---- Usage estimated when the upstream reports none ------------------------------

@pytest.fixture(scope="module")
def rec_gw(module_dir):
    up = RecordingUpstream()
    log = module_dir / "rec-access.log"
    g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{up.port}"), access_log=log)
    yield up, g
    assert g.proc.stop() == 0
    up.close()


def test_usage_estimated_when_upstream_sends_none(rec_gw):
    up, g = rec_gw
    before = g.metrics()
    s = stream_chat(g.port, chat_body("est-model", stream=True), {"x-request-id": "est-1"})
    assert s.status == 200 and s.done
    assert len(s.content_events()) == len(RecordingUpstream.CONTENT)
    after = g.metrics()
    assert _d(before, after, "sluice_usage_source_total", source="estimated") == 1
    assert (_d(before, after, "sluice_tokens_total", model="*", direction="output")
            == len(RecordingUpstream.CONTENT))
    assert _d(before, after, "sluice_tokens_total", model="*", direction="input") > 0
    e = log_entry(g, "est-1")
    assert e["usage_source"] == "estimated" and e["tokens_out"] == len(RecordingUpstream.CONTENT)
    # The gateway asked the upstream for usage on the client's behalf.
    sent = json.loads(up.last()["body"])
    assert sent["stream"] is True
    assert sent.get("stream_options", {}).get("include_usage") is True


def test_usage_estimated_for_non_streaming(rec_gw):
    up, g = rec_gw
    before = g.metrics()
    r = chat(g.port, chat_body("est-model2"))
    assert r.status == 200
    after = g.metrics()
    assert _d(before, after, "sluice_usage_source_total", source="estimated") == 1
    assert _d(before, after, "sluice_tokens_total", model="*", direction="input") > 0
