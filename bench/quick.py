#!/usr/bin/env python3
"""make bench-quick: Sluice in front of sluice-mock vs. sluice-mock directly.

Side by side in one run: wrk (HTTP/1.1 keep-alive) drives non-streaming and
streaming chat completions. The gateway is pinned to core 0 with one worker;
the mock and wrk share core 1. Reports requests/s, p50/p99, the gateway's CPU
time per request and per forwarded SSE event (from /proc/<pid>/stat), idle and
peak RSS, and the ratio to direct. Bounded: ~10 s per scenario.
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


def wrk_script(body, path):
    lua = os.path.join(tempfile.gettempdir(), f"sluice-bench-{os.getpid()}-{abs(hash(body))}.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        f.write("wrk.body = " + json.dumps(body) + "\n")
    return lua


def parse_latency(text, pct):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
    if not m:
        return None
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, body, gw_pid):
    lua = wrk_script(body, "/v1/chat/completions")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
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


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    mock_pf, gw_pf = os.path.join(tmp, "mock.json"), os.path.join(tmp, "gw.json")
    cfg = os.path.join(tmp, "gw.yaml")
    mock, gw = None, None
    try:
        mock, mports = start([os.path.join(BIN, "sluice-mock"), "--listen", "127.0.0.1:0", "--workers", "1",
                              "--port-file", mock_pf], LOAD_CPU, mock_pf)
        with open(cfg, "w") as f:
            f.write(f"""server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  workers: 1
  access_log: "off"
upstreams:
  - name: mock
    endpoints: ["http://127.0.0.1:{mports['api']}"]
    max_idle_per_endpoint: 1024
models:
  - name: "*"
    upstream: mock
""")
        gw, gports = start([os.path.join(BIN, "sluice"), "--config", cfg, "--port-file", gw_pf], GW_CPU, gw_pf)
        time.sleep(0.3)
        idle_rss = rss_kb(gw.pid)
        results = {}
        for name, body in (("chat", CHAT), ("chat_stream", CHAT_STREAM)):
            direct = run_wrk(mports["api"], body, None)
            via = run_wrk(gports["api"], body, gw.pid)
            events = TOKENS + 3 if "stream" in name else 0  # role chunk, tokens, finish chunk, [DONE]
            results[name] = {"direct": direct, "sluice": via, "events_per_request": events}
        peak_rss = rss_kb(gw.pid, "VmHWM")
    finally:
        if gw:
            stop(gw)
        if mock:
            stop(mock)

    print(f"\nbench-quick: wrk -c{CONNS} -d{DURATION}s, HTTP/1.1 keep-alive, {TOKENS}-token answers;"
          f" sluice pinned to cpu {GW_CPU} (1 worker), mock + wrk on cpu {LOAD_CPU}\n")
    print(f"{'scenario':<12} {'target':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
          f" {'CPU us/req':>10} {'CPU us/event':>12}")
    for name, r in results.items():
        for target in ("direct", "sluice"):
            x = r[target]
            per_req = f"{x['cpu_s'] / x['requests'] * 1e6:.1f}" if target == "sluice" and x["requests"] else "-"
            per_ev = (f"{x['cpu_s'] / (x['requests'] * r['events_per_request']) * 1e6:.2f}"
                      if target == "sluice" and r["events_per_request"] and x["requests"] else "-")
            print(f"{name:<12} {target:<7} {x['rps']:>9.0f} {x['p50_ms'] or 0:>8.2f} {x['p99_ms'] or 0:>8.2f}"
                  f" {x['errors']:>6} {per_req:>10} {per_ev:>12}")
        print(f"{'':<12} ratio sluice/direct req/s: {r['sluice']['rps'] / r['direct']['rps']:.2f}")
    print(f"\nsluice RSS: idle {idle_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB"
          f" ({CONNS} concurrent connections)")
    bad = sum(r[t]["errors"] for r in results.values() for t in ("direct", "sluice"))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "quick-latest.json"), "w") as f:
        json.dump({"idle_rss_kb": idle_rss, "peak_rss_kb": peak_rss, "results": results,
                   "conns": CONNS, "seconds": DURATION}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
