"""The sluice and sluice-mock processes: started on port 0 with a port file,
configured, and stopped by pid (SIGTERM, then SIGKILL after 5 s)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .env import BIN_DIR, PORT_FILE_TIMEOUT, SLACK
from .metrics import Metrics, fetch_metrics, wait_until
from .tls import Target, TestPki, tls_listener


_ALL_PROCS: list["Proc"] = []


class Proc:
    """A child process started with a port file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port_file: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.port_file = port_file
        self.out_path = workdir / f"{name}.out"
        for stale in (port_file, port_file.with_name(port_file.name + ".tmp")):
            stale.unlink(missing_ok=True)
        self._out = open(self.out_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=str(workdir))
        self.pid = self.popen.pid
        _ALL_PROCS.append(self)
        self.ports = self._wait_ports()

    def _wait_ports(self) -> dict:
        deadline = time.monotonic() + PORT_FILE_TIMEOUT
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode} before listening:\n"
                                   f"{self.output()}")
            try:
                text = self.port_file.read_text()
                if text.strip():
                    return json.loads(text)
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} wrote no port file within {PORT_FILE_TIMEOUT}s:\n{self.output()}")

    def output(self) -> str:
        try:
            if not self._out.closed:
                self._out.flush()
            return self.out_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 5 s. Returns the exit code."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self._out.close()
        if self in _ALL_PROCS:
            _ALL_PROCS.remove(self)
        return self.popen.returncode


def _check_binaries():
    for b in ("sluice", "sluice-mock"):
        if not (BIN_DIR / b).exists():
            pytest.exit(f"missing binary {BIN_DIR / b}; build it or set SLUICE_BIN", returncode=2)


@dataclass
class Mock:
    proc: Proc

    @property
    def port(self) -> int:
        return self.proc.ports["api"]


@dataclass
class Gateway:
    proc: Proc
    workdir: Path
    access_log: Path | None = None

    @property
    def port(self) -> int:
        return self.proc.ports["api"]

    @property
    def admin(self) -> int:
        return self.proc.ports["admin"]

    @property
    def tls_port(self) -> int:
        """The TLS listener's port (server.tls); fails when there is none."""
        port = self.proc.ports.get("tls")
        assert port, f"the gateway has no TLS listener: ports {self.proc.ports}"
        return port

    def metrics(self, settled: bool = True) -> "Metrics":
        """The gateway's metrics. A request is accounted just after its last
        byte is written, so a client can read its answer a moment before the
        counters move: with `settled`, wait briefly (bounded) for requests in
        progress to reach 0 before taking the snapshot."""
        m = fetch_metrics(self.admin)
        if not settled:
            return m
        deadline = time.monotonic() + 0.3 * SLACK
        while m.get1("sluice_active_requests") > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
            m = fetch_metrics(self.admin)
        return m

    def log_entry(self, request_id: str, timeout: float = 2.0) -> dict:
        """The access-log line of `request_id` (the log is flushed every ~200 ms)."""
        assert self.access_log is not None, "this gateway was started without an access log"

        def find():
            if not self.access_log.exists():
                return None
            for ln in self.access_log.read_text().splitlines():
                d = json.loads(ln)  # every line is one JSON object
                if d.get("request_id") == request_id:
                    return d
            return None
        return wait_until(find, timeout * SLACK, what=f"access log line for {request_id}")


_counter = [0]


def _unique(workdir: Path, stem: str) -> Path:
    _counter[0] += 1
    return workdir / f"{stem}-{_counter[0]}"


def start_mock(workdir: Path, *extra: str) -> Mock:
    _check_binaries()
    pf = _unique(workdir, "mock") .with_suffix(".port")
    argv = [str(BIN_DIR / "sluice-mock"), "--listen", "127.0.0.1:0", "--workers", "1",
            "--port-file", str(pf), *extra]
    return Mock(Proc(pf.stem, argv, workdir, pf))


def gateway_config(mock_port: int | None = None, *, endpoint: str | None = None, server: dict | None = None,
                   timeouts: dict | None = None, upstream_extra: str = "", models: str | None = None,
                   access_log: Path | None = None, admission: dict | None = None, extra_yaml: str = "") -> str:
    """YAML for a gateway with one upstream `m` (the mock unless `endpoint` is given)."""
    srv = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "workers": 1,
           "max_header_bytes": "8KiB", "max_body_bytes": "1MiB", "header_timeout": "2s",
           "idle_timeout": "5s", "drain_timeout": "5s",
           "access_log": str(access_log) if access_log else "off"}
    srv.update(server or {})
    to = {"connect": "2s", "ttft": "1s", "idle": "1s", "total": "30s", "client_stall": "2s"}
    to.update(timeouts or {})
    ep = endpoint or f"http://127.0.0.1:{mock_port}"

    def scalar(v):
        # Nested mappings and sequences (server.tls) render as YAML flow too.
        if isinstance(v, dict):
            return flow(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, Path):
            v = str(v)
        return json.dumps(v) if isinstance(v, str) else v

    def flow(d):
        return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in d.items()) + "}"

    if models is None:
        models = '  - {name: "*", upstream: m}\n'
    return (f"server: {flow(srv)}\n"
            + (f"admission: {flow(admission)}\n" if admission else "") +
            f"timeouts: {flow(to)}\n"
            f"upstreams:\n"
            f"  - name: m\n"
            f"    endpoints: [{json.dumps(ep)}]\n"
            f"{upstream_extra}"
            f"models:\n{models}"
            f"{extra_yaml}")


def start_gateway(workdir: Path, config: str | None = None, *, workers: int = 1,
                  access_log: Path | None = None, extra: tuple = (), env: dict | None = None) -> Gateway:
    """Starts sluice. `config` is YAML text (None = the embedded default)."""
    _check_binaries()
    pf = _unique(workdir, "sluice").with_suffix(".port")
    argv = [str(BIN_DIR / "sluice")]
    if config is not None:
        cfg = pf.with_suffix(".yaml")
        cfg.write_text(config)
        argv += ["--config", str(cfg)]
    argv += ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", str(workers),
             "--port-file", str(pf), "--access-log", str(access_log) if access_log else "off", *extra]
    return Gateway(Proc(pf.stem, argv, workdir, pf, env), workdir, access_log)


def start_tls_gateway(workdir: Path, mock_port: int | None, pki: TestPki, *, tls: dict | None = None,
                      server: dict | None = None, **config_kw) -> Gateway:
    """A gateway with its cleartext listener plus a TLS listener using the
    PKI's localhost certificate (unless `tls` gives the block)."""
    srv = dict(server or {})
    srv["tls"] = tls if tls is not None else tls_listener((pki.cert, pki.key))
    return start_gateway(workdir, gateway_config(mock_port, server=srv, **config_kw))


def gateway_target(gw: Gateway, proto: str, pki: TestPki | None = None, *,
                   server_hostname: str | None = None) -> Target:
    """A Target for one of PROTOCOLS on this gateway (TLS ones need the PKI)."""
    if proto in ("h1", "h2c"):
        return Target(gw.port, proto)
    assert pki is not None, f"{proto} needs the test PKI"
    alpn = ("h2",) if proto == "h2-tls" else ("http/1.1",)
    return Target(gw.tls_port, proto, ssl_context=pki.client_context(alpn), server_hostname=server_hostname)
