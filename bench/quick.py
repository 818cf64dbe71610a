#!/usr/bin/env python3
"""make bench-quick: Sluice in front of sluice-mock vs. sluice-mock directly.

Side by side in one run, non-streaming and streaming chat completions over
every downstream protocol: HTTP/1.1 and HTTP/1.1+TLS driven by wrk, h2c and
h2 over TLS driven by h2load (the same number of concurrent requests: CONNS
connections for HTTP/1.1, CONNS/8 connections x 8 streams for HTTP/2), plus
a many-stream multiplexed SSE run (1 connection x 100 streams). Rows named
"X>h2" reach the mock over upstream HTTP/2 (one multiplexed h2c connection)
instead of pooled HTTP/1.1 connections. The gateway
is pinned to core 0 with one worker; the mock and the load generator share
core 1. Reports requests/s, p50/p99, the gateway's CPU time per request and
per forwarded SSE event (from /proc/<pid>/stat), RSS, and the ratio to
direct. Then: the memory one idle keep-alive connection costs (4 000 of
them, RSS before and after), and an A/B of the admission stage on the same
wrk run: three RE2 header rules and the memory-watermark sampler off vs on,
alternating runs, CPU per request. Bounded: ~10 s per run.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "bin"))
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
CONNS = int(os.environ.get("BENCH_CONNS", "32"))
TOKENS = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
GW_CPU = "0"
LOAD_CPU = "1" if NCPU > 1 else "0"

CHAT = json.dumps({"model": "mock-1", "max_tokens": TOKENS,
                   "messages": [{"role": "user", "content": "Say something short about gateways."}]})
CHAT_STREAM = json.dumps({"model": "mock-1", "max_tokens": TOKENS, "stream": True,
                          "messages": [{"role": "user", "content": "Say something short about gateways."}]})
# The same requests for the model routed to the mock over upstream HTTP/2 (h2c).
CHAT_UP_H2 = CHAT.replace('"mock-1"', '"via-h2"')
CHAT_STREAM_UP_H2 = CHAT_STREAM.replace('"mock-1"', '"via-h2"')


def wait_port_file(path, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + path)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wrk_script(body, path, headers=None):
    lua = os.path.join(tempfile.gettempdir(), f"sluice-bench-{os.getpid()}-{abs(hash((body, str(headers))))}.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        for k, v in (headers or {}).items():
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
        f.write("wrk.body = " + json.dumps(body) + "\n")
    return lua


def parse_latency(text, pct):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
    if not m:
        return None
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, body, gw_pid, scheme="http", headers=None):
    lua = wrk_script(body, "/v1/chat/completions", headers)
    url = f"{scheme}://127.0.0.1:{port}/v1/chat/completions"
    # Warm up connections and pools.
    subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNS}", "-d1s", "-s", lua, url],
                   capture_output=True, text=True, timeout=30)
    cpu0 = cpu_seconds(gw_pid) if gw_pid else 0.0
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--latency",
                          "-s", lua, url], capture_output=True, text=True, timeout=DURATION + 30).stdout
    cpu1 = cpu_seconds(gw_pid) if gw_pid else 0.0
    os.unlink(lua)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"requests": reqs, "rps": rps, "p50_ms": parse_latency(out, 50), "p99_ms": parse_latency(out, 99),
            "errors": errors, "cpu_s": cpu1 - cpu0}


def run_h2load(url, body, gw_pid, conns, streams):
    """h2load for DURATION s after a 1 s warm-up; latencies from its per-request log."""
    tmp = tempfile.mkdtemp(prefix="sluice-h2load-")
    data, log = os.path.join(tmp, "body.json"), os.path.join(tmp, "log.tsv")
    with open(data, "w") as f:
        f.write(body)
    base = ["taskset", "-c", LOAD_CPU, "h2load", "-c", str(conns), "-m", str(streams), "-t", "1",
            "-H", "content-type: application/json", "-d", data]
    subprocess.run(base + ["-D", "1", url], capture_output=True, text=True, timeout=30)
    cpu0 = cpu_seconds(gw_pid) if gw_pid else 0.0
    out = subprocess.run(base + ["-D", str(DURATION), "--log-file", log, url], capture_output=True, text=True,
                         timeout=DURATION + 30).stdout
    cpu1 = cpu_seconds(gw_pid) if gw_pid else 0.0
    lat = []
    with open(log) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 3:
                lat.append(int(cols[2]) / 1000.0)
    subprocess.run(["rm", "-rf", tmp])
    lat.sort()
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    if not m:
        raise RuntimeError("unexpected h2load output:\n" + out)
    done, ok = int(m.group(3)), int(m.group(4))
    failed = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m2 = re.search(r"status codes: (\d+) 2xx", out)
    non2xx = max(0, ok - int(m2.group(1))) if m2 else ok
    rps = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    return {"requests": done, "rps": rps, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": failed + non2xx, "cpu_s": cpu1 - cpu0}


def make_cert(tmp):
    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key


def start(cmd, cpu, pf):
    p = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ports = wait_port_file(pf, p)
    return p, ports


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# Admission A/B: a typical rule set (three RE2 header rules), the memory
# watermark sampler, and API keys with local rate limits, each against
# nothing, on the same request with the same headers.
BENCH_KEY = "sk-sluice-benchBENCHbenchBENCHbenchBENCHbenchBENCH"


def stored_key_hash(key):
    """sha256:<salt>:<hex> as `sluice keys hash` writes it (policy/api_keys.h)."""
    import hashlib
    salt = hashlib.sha256(key.encode()).hexdigest()[:8] + "0" * 24
    return f"sha256:{salt}:" + hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


RULE_HEADERS = {"Authorization": "Bearer sk-bench-0123456789abcdef", "X-Request-ID": "0f8fad5b-d9cb-469f-a165-70867728950e",
                "X-Model-Name": "mock-1", "X-Api-Key": BENCH_KEY}
ADMISSION = {
    "off": "",
    "rules": """admission:
  header_rules:
    - {header: x-request-id, pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'}
    - {header: authorization, pattern: '^Bearer [A-Za-z0-9._~+/-]+=*$', required: true}
    - {header: x-model-name, pattern: '^[A-Za-z0-9._:/-]{1,128}$'}
""",
    "memory": """admission:
  memory: {limit: 4GiB, sample: 100ms}
""",
    # Keys with local limits high enough never to refuse: the cost of
    # authenticating, reserving and settling (rpm, tpm, a daily budget).
    "keys": f"""auth:
  keys:
    - {{id: bench, hash: "{stored_key_hash(BENCH_KEY)}", limits: {{rpm: 100000000, tpm: 100000000000, tokens_per_day: 100000000000}}}}
""",
}


def start_redis(tmp):
    """A redis-server on a free loopback port (for the keys+redis mode)."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    p = subprocess.Popen(["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd=tmp)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True).stdout.strip() == "PONG":
            return p, port
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def admission_ab(tmp, mock_port, rounds=3):
    """CPU per request and p99 with nothing, the three header rules, the memory
    watermark sampler, API keys with local limits, or with Redis limits;
    alternating runs, the same headers."""
    base = f"""server: {{listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 1, access_log: "off"}}
upstreams:
  - {{name: mock, endpoints: ["http://127.0.0.1:{mock_port}"], max_idle_per_endpoint: 1024}}
models:
  - {{name: "*", upstream: mock}}
"""
    redis, redis_port = start_redis(tmp)
    modes = dict(ADMISSION)
    # The same keys with their limits in Redis (one EVALSHA per request, one to settle).
    modes["keys+redis"] = ADMISSION["keys"] + (f"limits: {{backend: redis, redis: {{address: \"127.0.0.1:{redis_port}\","
                                               f" timeout: 50ms}}}}\n")
    per_req = {mode: [] for mode in modes}
    p99 = {mode: [] for mode in modes}
    try:
        for rnd in range(rounds):
            for mode, admission in modes.items():
                cfg = os.path.join(tmp, f"ab-{mode}.yaml")
                with open(cfg, "w") as f:
                    f.write(base + admission)
                pf = os.path.join(tmp, f"ab-{mode}-{rnd}.json")
                gw, ports = start([os.path.join(BIN, "sluice"), "--config", cfg, "--port-file", pf], GW_CPU, pf)
                try:
                    r = run_wrk(ports["api"], CHAT, gw.pid, headers=RULE_HEADERS)
                    if r["errors"]:
                        raise RuntimeError(f"admission {mode}: {r['errors']} errors")
                    per_req[mode].append(r["cpu_s"] / r["requests"] * 1e6)
                    p99[mode].append(r["p99_ms"] or 0.0)
                finally:
                    stop(gw)
    finally:
        stop(redis)
    return per_req, p99


def run_paced(port, pid, n, tokens=19, itl_ms=50, seconds=3.0):
    """n concurrent paced streams (tokens+3 SSE events, itl_ms apart) through sluice-bench: the gateway's
    CPU time per forwarded event and its memory per concurrent stream ((peak - idle RSS) / n)."""
    import threading
    bench = os.path.join(BIN, "sluice-bench")
    out = tempfile.mktemp(prefix="sluice-paced-", suffix=".json")
    idle = rss_kb(pid)
    peak = [idle]
    stop_sampling = threading.Event()

    def sample():
        while not stop_sampling.wait(0.05):
            peak[0] = max(peak[0], rss_kb(pid))

    warm = tokens * itl_ms / 1000 * 1.5
    cmd = ["taskset", "-c", LOAD_CPU, bench, f"http://127.0.0.1:{port}/v1/chat/completions", "-c", str(n),
           "-d", str(seconds), "--warmup", str(warm), "--stream-share", "1", "-H", f"x-mock-tokens: {tokens}",
           "-H", f"x-mock-itl-ms: {itl_ms}", "-H", "x-mock-ttft-ms: 0", "--json", out]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(warm)
    c0 = cpu_seconds(pid)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = p.communicate(timeout=seconds + warm + 60)
    c1 = cpu_seconds(pid)
    stop_sampling.set()
    th.join()
    with open(out) as f:
        r = json.load(f)
    os.unlink(out)
    events = r["events"]["received"]
    return {"requests": r["requests"]["completed"], "errors": r["errors"]["total"], "cpu_s": c1 - c0,
            "events": events, "cpu_us_per_event": (c1 - c0) / events * 1e6 if events else None,
            "kb_per_stream": (peak[0] - idle) / n, "gap_p99_ms": r["gap_us"].get("p99", 0) / 1000}


def idle_connection_memory(port, pid, n):
    """RSS added by n idle keep-alive connections (each served one request)."""
    import socket
    before = rss_kb(pid)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /v1/models HTTP/1.1\r\nhost: bench\r\n\r\n")
            socks.append(s)
        for s in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
        time.sleep(0.5)
        after = rss_kb(pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) * 1024 / n


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    mock_pf, gw_pf = os.path.join(tmp, "mock.json"), os.path.join(tmp, "gw.json")
    cfg = os.path.join(tmp, "gw.yaml")
    mock, gw = None, None
    try:
        mock, mports = start([os.path.join(BIN, "sluice-mock"), "--listen", "127.0.0.1:0", "--workers", "1",
                              "--port-file", mock_pf], LOAD_CPU, mock_pf)
        crt, key = make_cert(tmp)
        with open(cfg, "w") as f:
            f.write(f"""server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  workers: 1
  access_log: "off"
  tls:
    listen: "127.0.0.1:0"
    certificates: [{{cert_file: "{crt}", key_file: "{key}"}}]
upstreams:
  - name: mock
    endpoints: ["http://127.0.0.1:{mports['api']}"]
    max_idle_per_endpoint: 1024
  - name: mock-h2
    endpoints: ["http://127.0.0.1:{mports['api']}"]
    protocol: h2
models:
  - name: via-h2
    upstream: mock-h2
  - name: "*"
    upstream: mock
""")
        gw, gports = start([os.path.join(BIN, "sluice"), "--config", cfg, "--port-file", gw_pf], GW_CPU, gw_pf)
        time.sleep(0.3)
        idle_rss = rss_kb(gw.pid)
        results = {}
        h2c = max(1, CONNS // 8)
        path = "/v1/chat/completions"
        for name, body, body_up_h2 in (("chat", CHAT, CHAT_UP_H2), ("chat_stream", CHAT_STREAM, CHAT_STREAM_UP_H2)):
            events = TOKENS + 3 if "stream" in name else 0  # role chunk, tokens, finish chunk, [DONE]
            runs = {
                "h1 direct": run_wrk(mports["api"], body, None),
                "h1": run_wrk(gports["api"], body, gw.pid),
                "h1+tls": run_wrk(gports["tls"], body, gw.pid, scheme="https"),
                "h2c direct": run_h2load(f"http://127.0.0.1:{mports['api']}{path}", body, None, h2c, 8),
                "h2c": run_h2load(f"http://127.0.0.1:{gports['api']}{path}", body, gw.pid, h2c, 8),
                "h2+tls": run_h2load(f"https://127.0.0.1:{gports['tls']}{path}", body, gw.pid, h2c, 8),
                # Upstream over HTTP/2 too: one multiplexed h2c connection to the mock.
                "h1>h2": run_wrk(gports["api"], body_up_h2, gw.pid),
                "h2c>h2": run_h2load(f"http://127.0.0.1:{gports['api']}{path}", body_up_h2, gw.pid, h2c, 8),
            }
            for r in runs.values():
                r["rss_kb"] = rss_kb(gw.pid)
            results[name] = {"runs": runs, "events_per_request": events}
        # Many-stream multiplexed SSE: one connection, 100 concurrent streams.
        mux = {
            "h2c direct": run_h2load(f"http://127.0.0.1:{mports['api']}{path}", CHAT_STREAM, None, 1, 100),
            "h2c": run_h2load(f"http://127.0.0.1:{gports['api']}{path}", CHAT_STREAM, gw.pid, 1, 100),
            "h2+tls": run_h2load(f"https://127.0.0.1:{gports['tls']}{path}", CHAT_STREAM, gw.pid, 1, 100),
            "h2c>h2": run_h2load(f"http://127.0.0.1:{gports['api']}{path}", CHAT_STREAM_UP_H2, gw.pid, 1, 100),
        }
        for r in mux.values():
            r["rss_kb"] = rss_kb(gw.pid)
        results["sse_mux_1x100"] = {"runs": mux, "events_per_request": TOKENS + 3}
        peak_rss = rss_kb(gw.pid, "VmHWM")
        idle_conns = int(os.environ.get("BENCH_IDLE_CONNS", "4000"))
        idle_bytes = idle_connection_memory(gports["api"], gw.pid, idle_conns)
        stop(gw)
        gw = None
        ab, ab_p99 = admission_ab(tmp, mports["api"], rounds=int(os.environ.get("BENCH_AB_ROUNDS", "5")))
    finally:
        if gw:
            stop(gw)
        if mock:
            stop(mock)

    print(f"\nbench-quick: {TOKENS}-token answers, {CONNS} concurrent requests (HTTP/1.1: wrk -c{CONNS};"
          f" HTTP/2: h2load -c{max(1, CONNS // 8)} -m8), {DURATION}s per run; sluice pinned to cpu {GW_CPU}"
          f" (1 worker), mock + load generator on cpu {LOAD_CPU}\n")
    print(f"{'scenario':<14} {'protocol':<11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
          f" {'CPU us/req':>10} {'CPU us/event':>12} {'RSS MiB':>8}")
    for name, r in results.items():
        for proto, x in r["runs"].items():
            via = "direct" not in proto
            per_req = f"{x['cpu_s'] / x['requests'] * 1e6:.1f}" if via and x["requests"] else "-"
            per_ev = (f"{x['cpu_s'] / (x['requests'] * r['events_per_request']) * 1e6:.2f}"
                      if via and r["events_per_request"] and x["requests"] else "-")
            rss = f"{x['rss_kb'] / 1024:.1f}" if via else "-"
            print(f"{name:<14} {proto:<11} {x['rps']:>9.0f} {x['p50_ms'] or 0:>8.2f} {x['p99_ms'] or 0:>8.2f}"
                  f" {x['errors']:>6} {per_req:>10} {per_ev:>12} {rss:>8}")
        runs = r["runs"]
        for proto in ("h1", "h2c"):
            if proto in runs and f"{proto} direct" in runs:
                print(f"{'':<14} ratio sluice/direct req/s ({proto}): "
                      f"{runs[proto]['rps'] / runs[proto + ' direct']['rps']:.2f}")
    print(f"\nsluice RSS: idle {idle_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB;"
          f" {idle_bytes / 1024:.2f} KiB per idle keep-alive connection ({idle_conns} connections)")
    med = {k: sorted(v)[len(v) // 2] for k, v in ab.items()}
    print(f"admission A/B (chat, h1, wrk, median of {len(ab['off'])} alternating runs): CPU us/req off {med['off']:.2f},"
          f" 3 RE2 header rules {med['rules']:.2f} ({med['rules'] - med['off']:+.2f}),"
          f" memory watermark {med['memory']:.2f} ({med['memory'] - med['off']:+.2f}),"
          f" API key + local limits {med['keys']:.2f} ({med['keys'] - med['off']:+.2f}),"
          f" API key + Redis limits {med['keys+redis']:.2f} ({med['keys+redis'] - med['off']:+.2f})")
    for k, v in ab.items():
        p = sorted(ab_p99[k])[len(ab_p99[k]) // 2]
        print(f"  {k:<10} CPU us/req {', '.join(f'{x:.2f}' for x in v)}; p99 ms (median) {p:.2f}")
    bad = sum(x["errors"] for r in results.values() for x in r["runs"].values())
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "quick-latest.json"), "w") as f:
        json.dump({"idle_rss_kb": idle_rss, "peak_rss_kb": peak_rss, "idle_conn_bytes": idle_bytes,
                   "admission_us_per_req": ab, "admission_p99_ms": ab_p99, "results": results,
                   "conns": CONNS, "seconds": DURATION}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
