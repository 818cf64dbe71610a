#!/usr/bin/env python3
"""Cold start to ready: time from exec to the first 200 from /readyz (workers
accept, upstreams known), for sluice on its embedded default (no TLS), over
several runs. Usage: bench/startup.py [BIN_DIR] [RUNS]."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "build" / "bin")
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def once(workdir: Path, extra: list[str]) -> float:
    pf = workdir / "port.json"
    pf.unlink(missing_ok=True)
    t0 = time.monotonic()
    p = subprocess.Popen([str(bin_dir / "sluice"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                          "--access-log", "off", "--port-file", str(pf), *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError("sluice exited")
            try:
                admin = json.loads(pf.read_text())["admin"]
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except (FileNotFoundError, ValueError, KeyError, OSError):
                pass
            time.sleep(0.0005)
    finally:
        p.terminate()
        p.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        for label, extra in (("1 worker", ["--workers", "1"]), (f"{os.cpu_count()} workers (one per core)", [])):
            times = sorted(once(Path(d), extra) * 1000 for _ in range(runs))
            print(f"cold start to ready, {label}: median {statistics.median(times):.1f} ms, "
                  f"p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, max {times[-1]:.1f} ms ({runs} runs)")


if __name__ == "__main__":
    main()
