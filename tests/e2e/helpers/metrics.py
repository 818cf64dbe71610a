"""Metric snapshots from the admin port (Metrics, fetch_metrics, metric_delta) and
wait_until for polling."""
from __future__ import annotations

import re
import time

from .clients import request


_METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


class Metrics(dict):
    """{(name, frozenset(labels.items())): value}"""

    def get1(self, name: str, **labels) -> float:
        """The sample with exactly these labels (0 when absent)."""
        return self.get((name, frozenset(labels.items())), 0.0)

    def sum(self, name: str, **labels) -> float:
        """Sum over every sample whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.items() if n == name and want <= ls)

    def names(self) -> set:
        return {n for (n, _) in self}


def parse_metrics(text: str) -> Metrics:
    out = Metrics()
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = _METRIC_RE.match(ln)
        assert m, f"unparsable metrics line: {ln!r}"
        name, labels, value = m.groups()
        ls = {}
        if labels:
            pos = 0
            while pos < len(labels):
                lm = _LABEL_RE.match(labels, pos)
                assert lm, f"bad labels in {ln!r}"
                ls[lm.group(1)] = lm.group(2)
                pos = lm.end()
        key = (name, frozenset(ls.items()))
        assert key not in out, f"duplicate series {ln!r}"
        out[key] = float(value)
    return out


def fetch_metrics_text(admin_port: int) -> str:
    r = request(admin_port, "GET", "/metrics")
    assert r.status == 200, r.status
    return r.body.decode()


def fetch_metrics(admin_port: int) -> Metrics:
    return parse_metrics(fetch_metrics_text(admin_port))


def metric_delta(before: "Metrics", after: "Metrics", name: str, **labels) -> float:
    """How much one sample (exactly these labels) moved between two snapshots."""
    return after.get1(name, **labels) - before.get1(name, **labels)


def wait_until(pred, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what} (last={last!r})")
        time.sleep(interval)
