"""Regressions for the defects found by trying Sluice as a new user would
(issue 9): model aliases, a second instance on the same port, SIGHUP, /v1
endpoint URLs, pass-through without a model, the default model list, drain,
metric label cardinality, --check-config without secrets, the command line,
OpenAI error bodies, and access-log and metric gaps."""
import json
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (BIN_DIR, REPO, SLACK, RecordingUpstream, assert_error_body, chat, chat_body, closed_port,
                      gateway_config, gateway_target, request, start_gateway, stream_chat, wait_until)

http_request = request  # the tests that take pytest's `request` fixture

CANONICAL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
ALIASES = f'  - {{name: {CANONICAL}, aliases: [llama3], upstream: m}}\n'
OVERRIDE = '  - {name: mini, upstream: m, upstream_model: gpt-4o-mini-2024-07-18}\n'


def _run(*args, env=None, timeout=10.0):
    return subprocess.run([str(BIN_DIR / "sluice"), *args], capture_output=True, text=True,
                          timeout=timeout * SLACK, env=env)


@pytest.fixture(scope="module")
def rec():
    r = RecordingUpstream()
    yield r
    r.close()


def _recording_gateway(module_dir, rec, models, name):
    log = module_dir / f"{name}-access.log"
    return start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{rec.port}", models=models),
                         access_log=log)


@pytest.fixture(scope="module")
def alias_gw(module_dir, rec):
    g = _recording_gateway(module_dir, rec, ALIASES, "alias")
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(scope="module")
def override_gw(module_dir, rec):
    g = _recording_gateway(module_dir, rec, OVERRIDE, "override")
    yield g
    assert g.proc.stop() == 0, g.proc.output()


# ---- 1. Aliases and upstream_model reach the upstream as its own name ------------

@pytest.mark.parametrize("proto", ["h1", "h2c"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("asked,sent", [("llama3", CANONICAL), (CANONICAL, CANONICAL),
                                        ("mini", "gpt-4o-mini-2024-07-18")], ids=["alias", "canonical", "override"])
def test_upstream_receives_the_canonical_model_name(request, rec, proto, stream, asked, sent):
    rec_gw = request.getfixturevalue("override_gw" if asked == "mini" else "alias_gw")
    target = gateway_target(rec_gw, proto)
    rid = uuid.uuid4().hex
    body = json.dumps({"model": asked, "stream": stream, "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    if stream:
        s = stream_chat(target, body, {"x-request-id": rid})
        assert s.status == 200 and s.done, (s.status, s.body[:300])
        # The response's model is what the upstream said.
        assert {c["model"] for c in s.chunks()} == {sent}
    else:
        r = http_request(target, "POST", "/v1/chat/completions", body, {"x-request-id": rid})
        assert r.status == 200, r.body[:300]
        assert r.json()["model"] == sent
    got = rec.last()
    assert json.loads(got["body"])["model"] == sent, got["body"][:300]
    # Only the model value changed: every other field arrives as the client wrote it.
    sent_doc = json.loads(got["body"])
    assert sent_doc["messages"] == [{"role": "user", "content": "hi"}] and sent_doc["max_tokens"] == 5
    entry = rec_gw.log_entry(rid)
    route = CANONICAL if asked != "mini" else "mini"
    assert entry["model"] == route, entry
    assert entry.get("requested_model") == (asked if asked != route else None), entry
    assert entry.get("upstream_model") == (sent if sent != route else None), entry
    m = rec_gw.metrics()
    assert m.get1("sluice_requests_total", model=route, status="200") >= 1
    assert m.get1("sluice_requests_total", model=asked, status="200") == 0 or asked == route


# ---- 2. A second instance cannot silently share the port --------------------------

def test_second_instance_on_the_same_port_fails(module_dir, mock):
    cfg = module_dir / "second-instance.yaml"
    cfg.write_text(gateway_config(mock.port))
    g = start_gateway(module_dir, cfg.read_text())
    try:
        for flags in (["--listen", f"127.0.0.1:{g.port}", "--admin", "127.0.0.1:0"],
                      ["--listen", "127.0.0.1:0", "--admin", f"127.0.0.1:{g.admin}"]):
            out = _run("--config", str(cfg), *flags, "--access-log", "off")
            assert out.returncode == 1, (flags, out.stdout, out.stderr)
            assert "address already in use" in out.stderr, out.stderr
            assert "listening" not in out.stderr
        # The first instance still owns its port and serves.
        for _ in range(8):
            assert chat(g.port, chat_body(), {"x-mock-tokens": "1"}).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- 3. SIGHUP is caught and logged, streams go on -------------------------------

def test_sighup_without_tls_keeps_serving(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port))
    try:
        got_first = threading.Event()
        done = {}
        t = threading.Thread(target=lambda: done.setdefault("s", stream_chat(
            g.port, chat_body(stream=True), {"x-mock-itl-ms": "20", "x-mock-tokens": "40"},
            on_event=lambda e: got_first.set())), daemon=True)
        t.start()
        assert got_first.wait(5 * SLACK)
        g.proc.signal(signal.SIGHUP)
        g.proc.signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP" in g.proc.output(), 2 * SLACK, what="SIGHUP logged")
        t.join(10 * SLACK)
        assert g.proc.alive, g.proc.output()
        assert done["s"].done and len(done["s"].content_events()) == 40
        assert chat(g.port, chat_body()).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- 4. An endpoint written as an SDK base URL (…/v1) ----------------------------

def test_endpoint_url_ending_in_v1(module_dir, rec):
    g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{rec.port}/v1"))
    try:
        r = chat(g.port, chat_body("any"))
        assert r.status == 200, r.body
        assert rec.last()["path"] == "/v1/chat/completions"
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- 5. Pass-through paths without a model ---------------------------------------

def test_passthrough_without_model_uses_the_default_route(module_dir, rec):
    up = f"http://127.0.0.1:{rec.port}"
    wild = start_gateway(module_dir, gateway_config(endpoint=up))  # a "*" route
    named = start_gateway(module_dir, gateway_config(endpoint=up, models="  - {name: a, upstream: m}\n"))
    dflt = start_gateway(module_dir, "default_upstream: m\n" +
                         gateway_config(endpoint=up, models="  - {name: a, upstream: m}\n"))
    try:
        for g in (wild, dflt):
            r = request(g.port, "GET", "/v1/files")
            assert r.status == 200, r.body
            assert rec.last()["path"] == "/v1/files" and rec.last()["method"] == "GET"
        r = request(named.port, "GET", "/v1/files")
        err = assert_error_body(r, 404, "no_default_route")
        assert "default_upstream" in err["message"] and '"*"' in err["message"], err
        # The default route is not a catch-all for unknown models.
        assert_error_body(chat(dflt.port, chat_body("zzz")), 404, "model_not_found")
    finally:
        for g in (wild, named, dflt):
            assert g.proc.stop() == 0, g.proc.output()


# ---- 6. The embedded default lists the mock's model ------------------------------

def test_embedded_default_lists_mock_models(module_dir):
    g = start_gateway(module_dir, None)
    try:
        ids = [m["id"] for m in request(g.port, "GET", "/v1/models").json()["data"]]
        assert "mock-1" in ids, ids
        r = chat(g.port, chat_body("mock-1"))
        assert r.status == 200 and r.json()["model"] == "mock-1"
        assert chat(g.port, chat_body("anything-else")).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- 7. Drain: the admin listener answers, a cut stream ends with an error event ---

def test_drain_keeps_admin_up_and_ends_streams_cleanly(module_dir, mock):
    log = module_dir / "drain-access.log"
    g = start_gateway(module_dir, gateway_config(mock.port, server={"drain_timeout": "1500ms"}, access_log=log),
                      access_log=log)
    got_first = threading.Event()
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("s", stream_chat(
        g.port, chat_body(stream=True), {"x-mock-itl-ms": "50", "x-mock-tokens": "400", "x-request-id": "drain-1"},
        on_event=lambda e: got_first.set(), timeout=15 * SLACK)), daemon=True)
    t.start()
    assert got_first.wait(5 * SLACK)
    g.proc.signal(signal.SIGTERM)
    time.sleep(0.3)
    r = request(g.admin, "GET", "/readyz")
    assert r.status == 503 and r.json()["status"] == "draining", (r.status, r.body)
    r = request(g.admin, "GET", "/metrics")
    assert r.status == 200 and b"sluice_active_requests 1" in r.body, r.body[-500:]
    assert request(g.admin, "GET", "/healthz").status == 200
    rc = g.proc.wait(8 * SLACK)
    assert rc == 0, (rc, g.proc.output())
    t.join(5)
    s = done["s"]
    assert not s.done and 0 < len(s.content_events()) < 400
    last = s.events[-1].json()
    assert last["error"]["code"] == "drain_deadline", last
    assert s.complete, "the stream must end cleanly after the error event"
    entry = json.loads([ln for ln in log.read_text().splitlines() if "drain-1" in ln][0])
    assert entry["status"] == 200 and entry["error"] == "drain_deadline", entry
    assert entry["events"] > 0


# ---- 8. Metric labels never carry raw client input ---------------------------------

def test_wildcard_traffic_is_labelled_by_route(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, models='  - {name: known, upstream: m}\n'
                                                                   '  - {name: "*", upstream: m}\n'))
    try:
        for i in range(12):
            assert chat(g.port, chat_body(f"random-{uuid.uuid4().hex}")).status == 200
        assert chat(g.port, chat_body("known")).status == 200
        m = g.metrics()
        models = {dict(k[1]).get("model") for k in m if k[0] == "sluice_requests_total"}
        assert models == {"*", "known"}, models
        text = request(g.admin, "GET", "/metrics").body.decode()
        assert "random-" not in text
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- 9. --check-config validates without the secrets ------------------------------

def test_check_config_without_secrets_warns():
    env = {"PATH": "/usr/bin:/bin"}
    out = _run("--check-config", str(REPO / "examples/openai-tls.yaml"), env=env)
    assert out.returncode == 0, out.stderr
    assert re.search(r"warning: .*openai-tls\.yaml:\d+:\d+: .*OPENAI_API_KEY is not set", out.stderr), out.stderr
    assert "with warnings" in out.stdout
    # Starting with it is still an error.
    out = _run("--config", str(REPO / "examples/openai-tls.yaml"), "--listen", "127.0.0.1:0", "--admin",
               "127.0.0.1:0", env=env)
    assert out.returncode == 1 and "OPENAI_API_KEY is not set" in out.stderr, out.stderr
    fleet = (REPO / "examples/vllm-fleet.yaml").read_text()
    header = fleet.split("\n\n")[0]
    assert "VLLM_API_KEY" in header
    for curl in re.findall(r"curl [^\n]*(?:\\\n[^\n]*)*", fleet):
        if " -d " in curl:
            assert "content-type: application/json" in curl.lower(), curl


# ---- 10. One validation for the command line and the config -----------------------

def test_command_line_is_validated_like_the_config(tmp_path):
    ok = REPO / "tests/data/config/minimal.yaml"
    if not ok.exists():
        ok = tmp_path / "ok.yaml"
        ok.write_text('upstreams: [{name: u, endpoints: ["http://127.0.0.1:1"]}]\nmodels: [{name: m, upstream: u}]\n')
    cases = [(["--listen", "127.0.0.1:99999"], "--listen: port must be 0-65535"),
             (["--workers", "-3"], "--workers: expected an integer from 0 to 256"),
             (["--admin", "myhost:1"], "--admin: host 'myhost' is not an IP address")]
    for flags, msg in cases:
        out = _run("--check-config", str(ok), *flags)
        assert out.returncode == 1 and msg in out.stderr, (flags, out.stderr)
        out = _run("--config", str(ok), *flags, "--access-log", "off")
        assert out.returncode == 1 and msg in out.stderr, (flags, out.stderr)
    # localhost is accepted in both places.
    cfg = tmp_path / "localhost.yaml"
    cfg.write_text('server: {listen: "localhost:0", admin_listen: "localhost:0"}\n' + ok.read_text())
    assert _run("--check-config", str(cfg)).returncode == 0
    assert _run("--check-config", str(ok), "--listen", "localhost:0").returncode == 0

    out = _run("--version")
    assert out.returncode == 0
    first = out.stdout.splitlines()[0]
    assert re.match(r"sluice \d+\.\d+\.\d+ \(commit [0-9a-f]{7,}(-dirty)?|sluice \d+\.\d+\.\d+ \(commit unknown", first), first
    assert "build" in first and "OpenSSL" in out.stdout and "nghttp2" in out.stdout


# ---- 11. Error bodies as OpenAI writes them ----------------------------------------

def test_error_bodies_match_openai(module_dir, mock):
    dead = f'  - name: dead\n    endpoints: ["http://127.0.0.1:{closed_port()}"]\n'
    log = module_dir / "errors-access.log"
    g = start_gateway(module_dir, gateway_config(mock.port, upstream_extra=dead, access_log=log,
                                                 models='  - {name: a, upstream: m}\n'
                                                        '  - {name: gone, upstream: dead}\n'), access_log=log)
    try:
        r = chat(g.port, chat_body("nope"))
        err = assert_error_body(r, 404, "model_not_found")
        assert err["type"] == "invalid_request_error" and "param" in err and err["param"] is None, err
        r = request(g.port, "GET", "/v2/whatever")
        err = assert_error_body(r, 404)
        assert err["type"] == "invalid_request_error" and err["param"] is None, err
        r = request(g.port, "GET", "/v1/chat/completions")
        assert_error_body(r, 405, "method_not_allowed")
        assert r.headers.get("allow") == "POST", r.headers
        r = request(g.port, "DELETE", "/v1/models")
        assert r.status == 405 and r.headers.get("allow") == "GET, HEAD"
        r = request(g.port, "HEAD", "/v1/models")
        assert r.status == 200 and r.body == b"", (r.status, r.body)
        for path in ("/healthz", "/readyz", "/metrics"):
            assert request(g.admin, "HEAD", path).status == 200
        r = chat(g.port, chat_body("gone"), {"x-request-id": "bad-gateway-1"})
        err = assert_error_body(r, 502, "upstream_unavailable")
        dead_port = re.search(r"127\.0\.0\.1:(\d+)", g.proc.output() + dead).group(1)
        assert "127.0.0.1" not in r.body.decode() and dead_port not in r.body.decode(), r.body
        assert "connect failed" in err["message"], err  # the reason, without the address
        entry = g.log_entry("bad-gateway-1")
        assert "127.0.0.1" in entry.get("error_detail", ""), entry
    finally:
        assert g.proc.stop() == 0, g.proc.output()


# ---- 12. What an operator reads: access log and metrics ----------------------------

def test_access_log_and_metrics_gaps(module_dir, mock):
    log = module_dir / "ops-access.log"
    g = start_gateway(module_dir, gateway_config(mock.port, access_log=log), access_log=log)
    try:
        m0 = g.metrics()
        # Present at 0 from start, for every known kind.
        for kind in ("connect", "connect_timeout", "reset", "bad_response", "dead_connection",
                     "ttft_timeout", "total_timeout", "timeout", "http_4xx", "http_5xx"):
            assert ("sluice_upstream_errors_total", frozenset({("kind", kind), ("upstream", "m")})) in m0, kind
        info = [k for k in m0 if k[0] == "sluice_build_info"]
        assert len(info) == 1 and m0[info[0]] == 1, info
        assert dict(info[0][1])["mode"] in ("release", "asan", "tsan")
        assert m0.get1("sluice_upstream_endpoint_up", upstream="m", endpoint=f"http://127.0.0.1:{mock.port}") == 1

        r = chat(g.port, chat_body(), {"x-request-id": "ok-1", "user-agent": "sdk-test/1.2"})
        assert r.status == 200
        entry = g.log_entry("ok-1")
        assert re.fullmatch(r"127\.0\.0\.1:\d+", entry["client"]), entry
        assert entry["user_agent"] == "sdk-test/1.2"

        before = g.metrics()
        r = chat(g.port, chat_body(), {"x-request-id": "err-1", "x-mock-status": "500"})
        assert r.status == 500
        entry = g.log_entry("err-1")
        assert entry["error"] == "upstream_error", entry
        assert "usage_source" not in entry and entry["tokens_out"] is None, entry
        after = g.metrics()
        assert after.sum("sluice_ttft_seconds_count") == before.sum("sluice_ttft_seconds_count")
        assert after.sum("sluice_upstream_ttft_seconds_count") == before.sum("sluice_upstream_ttft_seconds_count")
        assert after.get1("sluice_upstream_errors_total", upstream="m", kind="http_5xx") == 1
    finally:
        assert g.proc.stop() == 0, g.proc.output()
