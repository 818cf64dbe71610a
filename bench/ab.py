#!/usr/bin/env python3
"""A/B of two sluice builds on the request path, in one run.

    bench/ab.py OLD_BIN_DIR NEW_BIN_DIR [ROUNDS] [PACED_STREAMS]

Each round starts OLD then NEW (same config: one pinned worker, access log
off, every model to one sluice-mock) and drives each with wrk (HTTP/1.1,
chat and streamed chat) and h2load (h2c, streamed chat); it reports the
gateway's CPU time per request and per forwarded SSE event, medians over the
rounds, from /proc/<pid>/stat. With PACED_STREAMS (e.g. 1000), each round
also runs that many concurrent paced streams (22 events 50 ms apart,
sluice-bench) and reports CPU per event and memory per concurrent stream
((peak - idle RSS) / streams). Uses bench/quick.py's runners.
"""
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quick as q  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bins = {"old": sys.argv[1], "new": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    paced = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    tmp = tempfile.mkdtemp(prefix="sluice-ab-")
    mock, mports = q.start([os.path.join(bins["new"], "sluice-mock"), "--listen", "127.0.0.1:0", "--workers", "1",
                            "--port-file", tmp + "/mock.json"], q.LOAD_CPU, tmp + "/mock.json")
    cfg = os.path.join(tmp, "gw.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server: {{listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", workers: 1, access_log: "off"}}
upstreams:
  - {{name: mock, endpoints: ["http://127.0.0.1:{mports['api']}"], max_idle_per_endpoint: 10000}}
models:
  - {{name: "*", upstream: mock}}
""")
    events = q.TOKENS + 3  # role chunk, tokens, finish chunk, [DONE]
    cases = ("chat h1", "stream h1", "stream h2c")
    res = {(b, c): [] for b in bins for c in cases}
    mem = {b: [] for b in bins}
    if paced:
        cases += (f"paced {paced}",)
        res.update({(b, cases[-1]): [] for b in bins})
    try:
        for rnd in range(rounds):
            for b, d in bins.items():
                pf = os.path.join(tmp, f"{b}-{rnd}.json")
                gw, gp = q.start([os.path.join(d, "sluice"), "--config", cfg, "--port-file", pf], q.GW_CPU, pf)
                try:
                    url = f"http://127.0.0.1:{gp['api']}/v1/chat/completions"
                    runs = {"chat h1": q.run_wrk(gp["api"], q.CHAT, gw.pid),
                            "stream h1": q.run_wrk(gp["api"], q.CHAT_STREAM, gw.pid),
                            "stream h2c": q.run_h2load(url, q.CHAT_STREAM, gw.pid, max(1, q.CONNS // 8), 8)}
                    if paced:
                        runs[cases[-1]] = q.run_paced(gp["api"], gw.pid, paced)
                finally:
                    q.stop(gw)
                for c, r in runs.items():
                    if r["errors"]:
                        raise RuntimeError(f"{b} {c}: {r['errors']} errors")
                    if c.startswith("paced"):  # per event, scaled to a stream of `events` for the table
                        res[(b, c)].append(r["cpu_us_per_event"] * events)
                        mem[b].append(r["kb_per_stream"])
                    else:
                        res[(b, c)].append(r["cpu_s"] / r["requests"] * 1e6)
    finally:
        q.stop(mock)
    print(f"A/B, {rounds} rounds alternating, {q.DURATION}s per run, {q.CONNS} concurrent requests, "
          f"{q.TOKENS}-token answers ({events} SSE events); CPU us (median):")
    print(f"{'case':<12} {'old /req':>9} {'new /req':>9} {'old /event':>11} {'new /event':>11} {'change':>8}")
    for c in cases:
        o, n = statistics.median(res[("old", c)]), statistics.median(res[("new", c)])
        per_ev = "stream" in c or c.startswith("paced")
        print(f"{c:<12} {o:>9.2f} {n:>9.2f} {o / events if per_ev else 0:>11.3f} {n / events if per_ev else 0:>11.3f}"
              f" {100 * (n - o) / o:>+7.1f}%")
    if paced:
        o, n = statistics.median(mem["old"]), statistics.median(mem["new"])
        print(f"paced {paced}: memory per concurrent stream old {o:.2f} KB, new {n:.2f} KB ({100 * (n - o) / o:+.1f}%)"
              f" (the paced row's per-request CPU is per event x {events})")
    print("runs:", {f"{b} {c}": [round(x, 2) for x in v] for (b, c), v in res.items()})


if __name__ == "__main__":
    main()
