"""API keys (issue 11, first part): keys stored as salted hashes, accepted as
`Authorization: Bearer` or `x-api-key`, per-key model allow-lists, the key's
id (never the key) in the access log and metrics; over every protocol."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import (BIN_DIR, PROTOCOLS, RecordingUpstream, assert_error_body, chat_body, gateway_config,
                      gateway_target, request, start_gateway, start_tls_gateway, stream_chat)


def _new_key(key_id: str) -> tuple:
    out = subprocess.run([str(BIN_DIR / "sluice"), "keys", "new", "--id", key_id], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    key = out.split("key:", 1)[1].split()[0]
    line = [ln for ln in out.splitlines() if ln.strip().startswith("- {id:")][0]
    return key, line.strip()


@pytest.fixture(scope="module")
def keys():
    return {"prod": _new_key("team-a-prod"), "any": _new_key("ops")}


def _auth_yaml(keys) -> str:
    prod, anyk = keys["prod"][1], keys["any"][1]
    return ("auth:\n"
            "  teams:\n    - {name: team-a}\n"
            "  keys:\n"
            f"    {prod[:-1]}, team: team-a, models: [\"gpt-4o*\", llama3]}}\n"
            f"    {anyk}\n")


@pytest.fixture(scope="module")
def gw(module_dir, mock, server_pki, keys):
    models = '  - {name: meta-llama/Meta-Llama-3.1-8B-Instruct, aliases: [llama3], upstream: m}\n' \
             '  - {name: "*", upstream: m}\n'
    g = start_tls_gateway(module_dir, mock.port, server_pki, models=models, extra_yaml=_auth_yaml(keys))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(params=PROTOCOLS)
def target(request, gw, server_pki):
    return gateway_target(gw, request.param, server_pki)


def test_missing_and_wrong_keys_get_401(target, keys, gw):
    key = keys["prod"][0]
    # The key with its last character changed (to one it does not already end with: a random key
    # ends with 'X' once in 62 draws, and then "key[:-1] + 'X'" was the valid key itself).
    wrong = key[:-1] + ("Y" if key.endswith("X") else "X")
    assert wrong != key
    for headers in ({}, {"authorization": "Bearer " + wrong}, {"x-api-key": "sk-sluice-nope"},
                    {"authorization": "Basic " + key}):
        r = request(target, "POST", "/v1/chat/completions", chat_body("gpt-4o"), headers)
        if r.status != 401:
            # Once seen under ASan in a full run and not reproduced since: say which process answered
            # and with which configuration generation.
            m = gw.metrics(settled=False)
            pytest.fail(f"{target.proto} {headers.keys()}: {r.status} {r.body[:200]!r}; gateway pid {gw.proc.pid}, "
                        f"alive {gw.proc.alive()}, generation {m.get1('sluice_config_generation')}, "
                        f"reloads {m.sum('sluice_config_reloads_total')}; output: {gw.proc.output()[-2000:]}")
        assert_error_body(r, 401, "invalid_api_key")
        assert key not in r.body.decode() and key[:-1] not in r.body.decode(), "an error must never echo a key"


def test_keys_in_either_header_and_model_allow_lists(target, keys, gw):
    key = keys["prod"][0]
    before = gw.metrics()
    for headers in ({"authorization": "Bearer " + key}, {"x-api-key": key}):
        r = request(target, "POST", "/v1/chat/completions", chat_body("gpt-4o-mini"), headers)
        assert r.status == 200, r.body
        # An alias the key names reaches the canonical model.
        s = stream_chat(target, chat_body("llama3", stream=True), headers)
        assert s.status == 200 and s.done
    r = request(target, "POST", "/v1/chat/completions", chat_body("claude-3"), {"x-api-key": key})
    err = assert_error_body(r, 403, "model_not_allowed")
    assert "team-a-prod" in err["message"] and key not in r.body.decode()
    # A key with no models list may use any.
    r = request(target, "POST", "/v1/chat/completions", chat_body("claude-3"), {"x-api-key": keys["any"][0]})
    assert r.status == 200, r.body
    after = gw.metrics()
    d = (after.get1("sluice_key_requests_total", key="team-a-prod", team="team-a", status="200")
         - before.get1("sluice_key_requests_total", key="team-a-prod", team="team-a", status="200"))
    assert d == 4
    text = request(gw.admin, "GET", "/metrics").body.decode()
    assert key not in text and keys["any"][0] not in text


def test_invalid_keys_never_reach_the_upstream(module_dir, keys):
    rec = RecordingUpstream()
    try:
        g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{rec.port}",
                                                     extra_yaml=_auth_yaml(keys)),
                          access_log=module_dir / "keys-access.log")
        try:
            for i in range(300):
                r = request(g.port, "POST", "/v1/chat/completions", chat_body("gpt-4o"),
                            {"x-api-key": f"sk-sluice-bad-{i:04d}"})
                assert r.status == 401
            assert rec.requests == []
            r = request(g.port, "POST", "/v1/chat/completions", chat_body("gpt-4o"),
                        {"x-api-key": keys["prod"][0], "x-request-id": "with-key-1"})
            assert r.status == 200
            assert len(rec.requests) == 1
            sent = dict(rec.last()["headers"])
            assert "x-api-key" not in sent and "authorization" not in sent  # the client's key stays here
            entry = g.log_entry("with-key-1")
            assert entry["key"] == "team-a-prod" and entry["team"] == "team-a", entry
            raw = g.access_log.read_text()
            assert keys["prod"][0] not in raw
            assert g.metrics().get1("sluice_rejected_requests_total", reason="invalid_api_key") == 300
        finally:
            assert g.proc.stop() == 0, g.proc.output()
    finally:
        rec.close()


def test_check_config_validates_auth(tmp_path, keys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(gateway_config(1234) + "auth:\n  keys:\n    - {id: x, hash: \"sha256:zz:zz\", team: nobody}\n")
    out = subprocess.run([str(BIN_DIR / "sluice"), "--check-config", str(bad)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 1 and "auth.keys[0].hash: malformed key hash" in out.stderr, out.stderr
    h = subprocess.run([str(BIN_DIR / "sluice"), "keys", "hash"], input=keys["prod"][0] + "\n", capture_output=True,
                       text=True, timeout=10)
    assert h.returncode == 0 and h.stdout.startswith("sha256:") and keys["prod"][0] not in h.stdout


# ---- Key and team limits (local backend) ------------------------------------------------------

def _limits_gateway(module_dir, mock, keys, limits: str, team_limits: str = ""):
    key_line = keys["prod"][1]
    auth = ("auth:\n"
            f"  teams:\n    - {{name: team-a{', limits: ' + team_limits if team_limits else ''}}}\n"
            "  keys:\n"
            f"    {key_line[:-1]}, team: team-a, limits: {limits}}}\n")
    return start_gateway(module_dir, gateway_config(mock.port, extra_yaml=auth + "limits: {default_max_tokens: 50}\n"))


def test_rpm_limit_with_openai_headers(module_dir, mock, keys):
    g = _limits_gateway(module_dir, mock, keys, "{rpm: 5}")
    try:
        key = {"x-api-key": keys["prod"][0]}
        remaining = []
        for _ in range(5):
            r = request(g.port, "POST", "/v1/chat/completions", chat_body(), key)
            assert r.status == 200, r.body
            assert r.headers["x-ratelimit-limit-requests"] == "5"
            remaining.append(int(r.headers["x-ratelimit-remaining-requests"]))
        assert remaining == [4, 3, 2, 1, 0], remaining
        r = request(g.port, "POST", "/v1/chat/completions", chat_body(), key)
        err = assert_error_body(r, 429, "rate_limit_exceeded")
        assert "team-a-prod" in err["message"] and "requests per minute" in err["message"]
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        # A key this gateway does not know is refused, not rate limited.
        assert request(g.port, "POST", "/v1/chat/completions", chat_body(),
                       {"x-api-key": keys["any"][0]}).status == 401  # not configured on this gateway
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def test_tpm_reserves_before_and_settles_after(module_dir, mock, keys):
    g = _limits_gateway(module_dir, mock, keys, "{tpm: 1000}")
    try:
        key = {"x-api-key": keys["prod"][0]}
        # A request that may use 900 tokens is charged 900+ up front...
        body = chat_body(max_tokens=900)
        r = request(g.port, "POST", "/v1/chat/completions", body, {**key, "x-mock-tokens": "5"})
        assert r.status == 200, r.body
        used = r.json()["usage"]["total_tokens"]
        # ...and settled with what it used: the next response shows the refund.
        r = request(g.port, "POST", "/v1/chat/completions", chat_body(max_tokens=10), {**key, "x-mock-tokens": "5"})
        assert r.status == 200
        assert int(r.headers["x-ratelimit-remaining-tokens"]) >= 1000 - 2 * used - 20, r.headers
        # A request whose reservation does not fit is refused before it is forwarded.
        r = request(g.port, "POST", "/v1/chat/completions", chat_body(max_tokens=5000), key)
        err = assert_error_body(r, 429, "rate_limit_exceeded")
        assert "tokens per minute" in err["message"]
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def test_daily_token_budget_trips_for_streams(module_dir, mock, keys):
    g = _limits_gateway(module_dir, mock, keys, "{tokens_per_day: 400}")
    try:
        key = {"x-api-key": keys["prod"][0], "x-mock-tokens": "60"}
        admitted = 0
        for _ in range(20):
            s = stream_chat(g.port, chat_body(stream=True, max_tokens=60), key)
            if s.status == 429:
                assert json_code(s.body) == "insufficient_quota"
                break
            assert s.status == 200 and s.done
            admitted += 1
        # Each stream is charged its real usage (prompt + 60 output tokens), so
        # the day's 400 tokens admit a handful, then the budget trips.
        assert 3 <= admitted <= 6, admitted
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def test_key_and_team_concurrency(module_dir, mock, keys):
    import threading
    g = _limits_gateway(module_dir, mock, keys, "{max_concurrent: 1}")
    try:
        key = {"x-api-key": keys["prod"][0]}
        started = threading.Event()
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("s", stream_chat(
            g.port, chat_body(stream=True), {**key, "x-mock-itl-ms": "50", "x-mock-tokens": "20"},
            on_event=lambda e: started.set())), daemon=True)
        t.start()
        assert started.wait(5)
        r = request(g.port, "POST", "/v1/chat/completions", chat_body(), key)
        assert_error_body(r, 429, "overloaded")
        t.join(10)
        assert box["s"].done
        assert request(g.port, "POST", "/v1/chat/completions", chat_body(), key).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def json_code(body: bytes) -> str:
    import json
    return json.loads(body)["error"]["code"]


def test_budget_spend_survives_a_restart(module_dir, mock, keys):
    state = module_dir / "budgets.state"
    state.unlink(missing_ok=True)
    key_line = keys["prod"][1]
    cfg = gateway_config(mock.port, extra_yaml=(
        "auth:\n  teams:\n    - {name: team-a}\n  keys:\n"
        f"    {key_line[:-1]}, team: team-a, limits: {{tokens_per_day: 300}}}}\n"
        f"limits: {{default_max_tokens: 50, state_file: {json_str(state)}}}\n"))
    key = {"x-api-key": keys["prod"][0], "x-mock-tokens": "50"}
    g = start_gateway(module_dir, cfg)
    try:
        for _ in range(3):
            assert request(g.port, "POST", "/v1/chat/completions", chat_body(max_tokens=50), key).status == 200
    finally:
        assert g.proc.stop() == 0, g.proc.output()
    text = state.read_text()
    assert text.startswith("key team-a-prod tokens_day "), text
    assert keys["prod"][0] not in text
    used = int(text.split()[-1])
    assert 150 <= used <= 250, text
    # A restart keeps the day's spend: the budget trips as it would have.
    g = start_gateway(module_dir, cfg)
    try:
        codes = [request(g.port, "POST", "/v1/chat/completions", chat_body(max_tokens=50), key).status
                 for _ in range(3)]
        assert codes.count(200) <= 2 and codes[-1] == 429, codes
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def json_str(p) -> str:
    import json
    return json.dumps(str(p))


def test_official_openai_sdk_with_keys(module_dir, mock, keys):
    import json
    import os
    npm = os.environ.get("SLUICE_NPM_DIR", os.path.expanduser("~/.cache/sluice/npm"))
    if not os.path.exists(os.path.join(npm, "node_modules", "openai")):
        pytest.fail(f"the openai npm package is missing from {npm}: run scripts/bootstrap")
    g = _limits_gateway(module_dir, mock, keys, "{rpm: 4}")
    try:
        out = subprocess.run(["node", str(Path(__file__).parent / "js" / "openai_sdk.cjs")],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "NODE_PATH": os.path.join(npm, "node_modules"),
                                  "BASE_URL": f"http://127.0.0.1:{g.port}/v1", "KEY": keys["prod"][0],
                                  "BAD_KEY": "sk-sluice-not-a-key-0000000000", "LIMITED": "5"})
        assert out.returncode == 0, out.stdout + out.stderr
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["completion"]["model"] == "gpt-4o" and r["completion"]["usage"] > 0, r
        assert r["stream_chunks"] > 0, r
        assert r["bad"]["auth"] is True and r["bad"]["status"] == 401 and r["bad"]["code"] == "invalid_api_key", r
        # rpm 4: the completion and the stream took two; two more pass, then the SDK raises RateLimitError.
        assert r["limited"]["rate"] is True and r["limited"]["status"] == 429, r
        assert r["limited"]["code"] == "rate_limit_exceeded" and r["limited"]["after"] == 2, r
        assert int(r["limited"]["retry_after"]) >= 1
    finally:
        assert g.proc.stop() == 0, g.proc.output()


def test_invalid_key_flood_leaves_valid_clients_alone(module_dir, mock, keys):
    """Thousands of bad keys per second are refused before any upstream work
    and more cheaply than a served request, and valid clients are all served
    meanwhile. Their latency is measured unloaded and during the flood and
    printed; only a gross disturbance fails (a median 8x worse: a flood that
    holds them up for good). The two load generators share the machine's two
    cores with the gateway, so the latencies carry scheduler noise: on one
    VM the same binary's median moved from 0.8x to 3.8x between runs, and an
    idle run's p99 was 29 ms; the p99 is printed, not bounded."""
    import json
    from conftest import SANITIZED
    g = _limits_gateway(module_dir, mock, keys, "{rpm: 1000000}")
    bench = str(BIN_DIR / "sluice-bench")
    url = f"http://127.0.0.1:{g.port}/v1/chat/completions"

    def valid_latency(tag):
        out = module_dir / f"valid-{tag}.json"
        subprocess.run([bench, "-r", "200", "-d", "4", "--output-mean", "8", "--output-sigma", "0", "--input-mean", "16",
                        "-H", f"x-api-key: {keys['prod'][0]}", "--json", str(out), url],
                       capture_output=True, timeout=60, check=True)
        d = json.loads(out.read_text())
        assert d["requests"]["completed"] >= 700 and sum(d["errors"].values()) == 0, d["errors"]
        return d["latency_us"]["p50"], d["latency_us"]["p99"]

    def cpu_s():
        with open(f"/proc/{g.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    try:
        before = g.metrics()
        c0 = cpu_s()
        unloaded50, unloaded = valid_latency("unloaded")
        c1 = cpu_s()
        served = g.metrics().sum("sluice_requests_total", status="200") - before.sum("sluice_requests_total", status="200")
        rate = "800" if SANITIZED else "3000"
        flood_json = module_dir / "flood.json"
        flood = subprocess.Popen([bench, "-r", rate, "-d", "6", "--connections", "16", "--output-mean", "8",
                                  "-H", "x-api-key: sk-sluice-not-a-valid-key-0000000000", "--json", str(flood_json),
                                  url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import time
            time.sleep(0.5)
            loaded50, loaded = valid_latency("loaded")
        finally:
            flood.wait(30)
        c2 = cpu_s()
        d = json.loads(flood_json.read_text())
        refused = g.metrics().get1("sluice_rejected_requests_total", reason="invalid_api_key") - \
            before.get1("sluice_rejected_requests_total", reason="invalid_api_key")
        served_cost = (c1 - c0) / served
        served_loaded = g.metrics().sum("sluice_requests_total", status="200") - before.sum(
            "sluice_requests_total", status="200") - served
        refusal_cost = max(0.0, (c2 - c1) - served_loaded * served_cost) / refused
        print(f"\ninvalid-key flood at {rate}/s: {refused:.0f} refused at {refusal_cost * 1e6:.1f} us CPU each "
              f"(a served request: {served_cost * 1e6:.1f} us); valid p50 {unloaded50 / 1000:.2f} ms unloaded, "
              f"{loaded50 / 1000:.2f} ms during the flood ({loaded50 / unloaded50:.2f}x); p99 {unloaded / 1000:.2f} ms, "
              f"{loaded / 1000:.2f} ms ({loaded / unloaded:.2f}x)")
        assert refused >= float(rate) * 4, (refused, d["status_counts"])
        # None of them reached the upstream: every upstream request was a valid one.
        m = g.metrics()
        assert m.get1("sluice_key_requests_total", key="team-a-prod", team="team-a", status="200") == \
            m.sum("sluice_requests_total", status="200")
        assert refusal_cost < served_cost, (refusal_cost, served_cost)
        assert loaded50 <= 8.0 * unloaded50, f"valid p50 {loaded50 / 1000:.2f} ms under the flood vs {unloaded50 / 1000:.2f} ms"
    finally:
        assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(scope="module")
def limited_gw(module_dir, mock, server_pki):
    """One key per protocol, each allowed 2 requests per minute."""
    keys = {p: _new_key(f"rpm2-{p}") for p in PROTOCOLS}
    lines = "".join(f"    {line[:-1]}, limits: {{rpm: 2}}}}\n" for _, line in keys.values())
    g = start_tls_gateway(module_dir, mock.port, server_pki, extra_yaml="auth:\n  keys:\n" + lines)
    g.keys = {p: k for p, (k, _) in keys.items()}
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_rate_limit_429_with_headers_over_every_protocol(limited_gw, server_pki, proto):
    target = gateway_target(limited_gw, proto, server_pki)
    key = {"x-api-key": limited_gw.keys[proto]}
    for left in ("1", "0"):
        r = request(target, "POST", "/v1/chat/completions", chat_body(), key)
        assert r.status == 200, r.body
        assert r.headers["x-ratelimit-limit-requests"] == "2" and r.headers["x-ratelimit-remaining-requests"] == left
    r = request(target, "POST", "/v1/chat/completions", chat_body(), key)
    err = assert_error_body(r, 429, "rate_limit_exceeded")
    assert f"rpm2-{proto}" in err["message"] and limited_gw.keys[proto] not in r.body.decode()
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and "x-ratelimit-reset-requests" in r.headers
