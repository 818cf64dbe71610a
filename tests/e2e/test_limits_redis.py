"""Key limits shared by replicas through a real Redis (issue 11): two sluice
processes, one redis-server started here on a free loopback port, one key.
The limits' window is shortened to 2 s (limits.window) so several windows fit
in a test; their semantics do not depend on the length."""
import json
import subprocess
import time

import pytest

from conftest import (BIN_DIR, SLACK, assert_error_body, chat_body, closed_port, gateway_config, request,
                      start_gateway, stream_chat, wait_until)

KEY_ID = "shared"
WINDOW_S = 2


class Redis:
    def __init__(self, workdir, port=None):
        self.port = port or closed_port()
        self.workdir = workdir
        self.start()

    def start(self):
        self.popen = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--loglevel", "warning"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(self.workdir))
        wait_until(lambda: self.cli("PING") == "PONG", 5 * SLACK, what="redis-server")

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)

    def cli(self, *args) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", *args], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip()


@pytest.fixture
def redis(module_dir):
    r = Redis(module_dir)
    yield r
    r.stop()


def _key():
    out = subprocess.run([str(BIN_DIR / "sluice"), "keys", "new", "--id", KEY_ID], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    key = out.split("key:", 1)[1].split()[0]
    line = [ln for ln in out.splitlines() if ln.strip().startswith("- {id:")][0].strip()
    return key, line


def _replica(module_dir, mock, redis_port, key_line, limits, on_failure="local_fallback", timeout="20ms"):
    auth = (f"auth:\n  keys:\n    {key_line[:-1]}, limits: {limits}}}\n"
            f"limits: {{backend: redis, window: {WINDOW_S}s, default_max_tokens: 64,"
            f" redis: {{address: \"127.0.0.1:{redis_port}\", timeout: {timeout}, on_failure: {on_failure},"
            f" expected_replicas: 2}}}}\n")
    return start_gateway(module_dir, gateway_config(mock.port, extra_yaml=auth))


def _overload(g, key, rate, seconds, out):
    return subprocess.Popen([str(BIN_DIR / "sluice-bench"), "-r", str(rate), "-d", str(seconds), "--connections", "32",
                             "--input-mean", "48", "--input-sigma", "0.5", "--input-max", "400",
                             "--output-mean", "48", "--output-sigma", "0.6", "--output-max", "400",
                             "--stream-share", "0.5", "-H", f"x-api-key: {key}", "--json", str(out),
                             f"http://127.0.0.1:{g.port}/v1/chat/completions"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _watch_windows(redis, limit_name, runs):
    """Each window's counter as last seen while the load runs (a counter
    expires two windows after its own)."""
    seen = {}
    while any(p.poll() is None for p in runs):
        now = int(time.time() // WINDOW_S)
        for i in (now - 1, now):
            v = int(redis.cli("GET", f"sluice:lim:{{key:{KEY_ID}}}:{limit_name}:{i}") or 0)
            if v:
                seen[i] = v
        time.sleep(0.25)
    return seen


@pytest.mark.parametrize("limit_name,limit,rate", [("tpm", 4000, 30), ("rpm", 40, 30)])
def test_two_replicas_share_one_limit(module_dir, mock, redis, limit_name, limit, rate):
    key, line = _key()
    a = _replica(module_dir, mock, redis.port, line, f"{{{limit_name}: {limit}}}")
    b = _replica(module_dir, mock, redis.port, line, f"{{{limit_name}: {limit}}}")
    try:
        seconds = 5 * WINDOW_S + 1
        runs = [_overload(g, key, rate, seconds, module_dir / f"{limit_name}-{i}.json") for i, g in enumerate((a, b))]
        seen = _watch_windows(redis, limit_name, runs)
        reports = [json.loads((module_dir / f"{limit_name}-{i}.json").read_text()) for i in (0, 1)]
        statuses = [r["status_counts"] for r in reports]
        # Only the windows both load generators covered whole (from when they
        # really started sending, whatever the machine's load).
        start = max(r["start_time_unix_us"] for r in reports) / 1e6
        first, end = int(start // WINDOW_S) + 1, int((start + seconds - 0.5) // WINDOW_S)
        counts = [seen.get(i, 0) for i in range(first, end)]
        print(f"\n{limit_name} limit {limit} per {WINDOW_S}s window, two replicas overloaded at {rate} req/s each:"
              f" admitted per window {counts} ({[f'{c / limit:.0%}' for c in counts]}); statuses {statuses}")
        assert len(counts) >= 3, counts
        for c in counts:
            assert c <= limit * 1.05, (c, limit, counts)
            assert c >= limit * 0.90, (c, limit, counts)
        # Both replicas were refused at times: they share one limit.
        assert all(s.get("429", 0) > 0 for s in statuses), statuses
    finally:
        for g in (a, b):
            assert g.proc.stop() == 0, g.proc.output()


def test_daily_budget_trips_for_streams_across_replicas(module_dir, mock, redis):
    key, line = _key()
    a = _replica(module_dir, mock, redis.port, line, "{tokens_per_day: 1500}")
    b = _replica(module_dir, mock, redis.port, line, "{tokens_per_day: 1500}")
    try:
        admitted, refused = 0, None
        for i in range(40):
            g = (a, b)[i % 2]
            s = stream_chat(g.port, chat_body(stream=True, max_tokens=60),
                            {"x-api-key": key, "x-mock-tokens": "60"})
            if s.status == 429:
                refused = json.loads(s.body)["error"]["code"]
                break
            assert s.status == 200 and s.done
            admitted += 1
        assert refused == "insufficient_quota", refused
        # About 1500 / (prompt + 60) streams, counted over both replicas.
        assert 10 <= admitted <= 22, admitted
        # The other replica is refused too.
        r = request(b.port if admitted % 2 == 0 else a.port, "POST", "/v1/chat/completions",
                    chat_body(max_tokens=60), {"x-api-key": key})
        assert_error_body(r, 429, "insufficient_quota")
    finally:
        for g in (a, b):
            assert g.proc.stop() == 0, g.proc.output()


def test_redis_down_each_failure_mode_then_back(module_dir, mock, redis):
    key, line = _key()
    modes = {m: _replica(module_dir, mock, redis.port, line, "{rpm: 100000}", on_failure=m)
             for m in ("fail_open", "fail_closed", "local_fallback")}
    try:
        for g in modes.values():
            assert request(g.port, "POST", "/v1/chat/completions", chat_body(), {"x-api-key": key}).status == 200
        redis.stop()
        bound = 0.5 + 1.0 * SLACK  # the 20 ms Redis timeout plus normal latency, with room for a busy machine
        for mode, g in modes.items():
            for _ in range(5):
                t0 = time.monotonic()
                r = request(g.port, "POST", "/v1/chat/completions", chat_body(), {"x-api-key": key})
                took = time.monotonic() - t0
                assert took < bound, (mode, took)
                if mode == "fail_closed":
                    assert_error_body(r, 503, "limits_unavailable")
                else:
                    assert r.status == 200, (mode, r.status, r.body)
            m = g.metrics()
            assert m.get1("sluice_limits_unavailable_total", mode=mode) >= 1, mode
            assert m.get1("sluice_limits_breaker_transitions_total", state="open") >= 1, mode
        redis.start()
        g = modes["fail_closed"]
        wait_until(lambda: request(g.port, "POST", "/v1/chat/completions", chat_body(),
                                   {"x-api-key": key}).status == 200, 10 * SLACK, what="enforcement resumed")
        assert g.metrics().get1("sluice_limits_breaker_transitions_total", state="closed") >= 1
        assert int(redis.cli("GET", f"sluice:lim:{{key:{KEY_ID}}}:rpm:{int(time.time() // WINDOW_S)}") or 0) >= 1
    finally:
        for g in modes.values():
            assert g.proc.stop() == 0, g.proc.output()
