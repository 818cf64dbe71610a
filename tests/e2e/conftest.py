"""Shared fixtures and helpers for Sluice end-to-end tests.

Every process is started on port 0 and reports its ports through a port file.
Processes are recorded by pid and always stopped by pid at teardown
(SIGTERM, then SIGKILL after 5 s).

Environment:
  SLUICE_BIN        directory holding `sluice` and `sluice-mock`
                    (default: <repo>/build/bin)
  SLUICE_SANITIZED  set when the binaries are an ASan/UBSan build; widens the
                    time windows of timing-sensitive assertions.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("SLUICE_BIN") or (REPO / "build" / "bin"))
SANITIZED = bool(os.environ.get("SLUICE_SANITIZED")) or "asan" in str(BIN_DIR)
# Multiplier for "it happens within X seconds" windows (never for "not before").
SLACK = 2.5 if SANITIZED else 1.0

PORT_FILE_TIMEOUT = 15.0
IO_TIMEOUT = 8.0


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

_ALL_PROCS: list["Proc"] = []


class Proc:
    """A child process started with a port file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port_file: Path):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.port_file = port_file
        self.out_path = workdir / f"{name}.out"
        for stale in (port_file, port_file.with_name(port_file.name + ".tmp")):
            stale.unlink(missing_ok=True)
        self._out = open(self.out_path, "wb")
        env = dict(os.environ)
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=str(workdir))
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


@pytest.fixture(scope="session", autouse=True)
def _reap_all_processes():
    yield
    for p in list(_ALL_PROCS):
        p.stop()


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
                   access_log: Path | None = None) -> str:
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
            f"timeouts: {flow(to)}\n"
            f"upstreams:\n"
            f"  - name: m\n"
            f"    endpoints: [{json.dumps(ep)}]\n"
            f"{upstream_extra}"
            f"models:\n{models}")


def start_gateway(workdir: Path, config: str | None = None, *, workers: int = 1,
                  access_log: Path | None = None, extra: tuple = ()) -> Gateway:
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
    return Gateway(Proc(pf.stem, argv, workdir, pf), workdir, access_log)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, request):
    return tmp_path_factory.mktemp(request.module.__name__.split(".")[-1])


@pytest.fixture(scope="module")
def mock(module_dir):
    m = start_mock(module_dir)
    yield m
    rc = m.proc.stop()
    assert rc == 0, f"sluice-mock exited with {rc}:\n{m.proc.output()}"


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict  # lower-case name -> value (last wins)
    body: bytes
    header_list: list = field(default_factory=list)

    def json(self):
        return json.loads(self.body)


def chat_body(model: str = "gpt-x", *, stream: bool | None = None, include_usage: bool | None = None,
              content: str = "Hello there, how are you?", **extra) -> bytes:
    d = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream is not None:
        d["stream"] = stream
    if include_usage is not None:
        d["stream_options"] = {"include_usage": include_usage}
    d.update(extra)
    return json.dumps(d).encode()


def request(port: "int | Target", method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = IO_TIMEOUT, conn: http.client.HTTPConnection | None = None) -> Response:
    """One request. `port` is a port (HTTP/1.1, cleartext) or a Target (any protocol)."""
    if isinstance(port, Target) and port.is_h2:
        assert conn is None, "conn= is for HTTP/1.1; use an H2Client to reuse an HTTP/2 connection"
        with H2Client(port, timeout=timeout) as c:
            return c.request(method, path, body, headers, timeout=timeout)
    own = conn is None
    if own:
        conn = h1_connection(port, timeout=timeout)
    try:
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=h)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            if not isinstance(port, Target):
                raise
            # The server answered before taking the whole body (a 413) and
            # closed: what it said is still there to read.
        r = conn.getresponse()
        data = r.read()
        hl = r.getheaders()
        return Response(r.status, {k.lower(): v for k, v in hl}, data, hl)
    finally:
        if own:
            conn.close()


def chat(port: "int | Target", body: bytes | None = None, headers: dict | None = None, **kw) -> Response:
    return request(port, "POST", "/v1/chat/completions", body if body is not None else chat_body(), headers, **kw)


def assert_error_body(resp: Response, status: int, code: str | None = None) -> dict:
    assert resp.status == status, (resp.status, resp.body[:500])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    doc = json.loads(resp.body)
    err = doc["error"]
    assert isinstance(err["message"], str) and err["message"], doc
    assert isinstance(err["type"], str) and err["type"], doc
    assert "code" in err, doc
    if code is not None:
        assert err["code"] == code, doc
    return err


# ---- Server-sent events ---------------------------------------------------

@dataclass
class Event:
    t: float      # seconds since the request was sent
    data: str     # the joined data: lines

    def json(self):
        return json.loads(self.data)


@dataclass
class Stream:
    status: int
    headers: dict
    events: list
    body: bytes          # for a non-SSE answer
    complete: bool       # the response body ended cleanly
    elapsed: float

    @property
    def done(self) -> bool:
        return any(e.data == "[DONE]" for e in self.events)

    def chunks(self) -> list:
        return [e.json() for e in self.events if e.data != "[DONE]"]

    def content_events(self) -> list:
        out = []
        for e in self.events:
            if e.data == "[DONE]":
                continue
            d = e.json()
            for c in d.get("choices") or []:
                if (c.get("delta") or {}).get("content"):
                    out.append(e)
                    break
        return out

    def content(self) -> str:
        s = ""
        for e in self.content_events():
            for c in e.json()["choices"]:
                s += c["delta"].get("content") or ""
        return s


def _parse_events(buf: bytes, t: float, out: list) -> bytes:
    while True:
        m = re.search(rb"\r?\n\r?\n", buf)
        if not m:
            return buf
        raw, buf = buf[:m.start()], buf[m.end():]
        data = [ln[5:].lstrip(b" ") if ln.startswith(b"data:") else None for ln in raw.splitlines()]
        data = [d for d in data if d is not None]
        if data:
            out.append(Event(t, b"\n".join(data).decode("utf-8", "replace")))


def stream_chat(port: "int | Target", body: bytes, headers: dict | None = None, timeout: float = IO_TIMEOUT,
                path: str = "/v1/chat/completions", on_event=None, stop_after: int | None = None) -> Stream:
    """POSTs and reads the SSE answer, stamping each event with its arrival time.

    on_event(event) is called as each event arrives. stop_after=N closes the
    socket abruptly after N events (a client that goes away). `port` is a
    port (HTTP/1.1, cleartext) or a Target (any protocol)."""
    if isinstance(port, Target) and port.is_h2:
        with H2Client(port, timeout=timeout) as c:
            return c.stream_chat(body, headers, timeout=timeout, path=path, on_event=on_event,
                                 stop_after=stop_after, abort="close")
    conn = h1_connection(port, timeout=timeout)
    h = {"content-type": "application/json", "accept": "text/event-stream"}
    h.update(headers or {})
    t0 = time.monotonic()
    try:
        conn.request("POST", path, body=body, headers=h)
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if not hdrs.get("content-type", "").startswith("text/event-stream"):
            data = r.read()
            return Stream(r.status, hdrs, [], data, True, time.monotonic() - t0)
        events: list = []
        buf = b""
        complete = False
        while True:
            try:
                piece = r.read1(65536)
            except (http.client.IncompleteRead, ConnectionError, socket.timeout) as e:
                if isinstance(e, socket.timeout):
                    raise
                break
            if not piece:
                complete = True
                break
            n = len(events)
            buf = _parse_events(buf + piece, time.monotonic() - t0, events)
            for ev in events[n:]:
                if on_event:
                    on_event(ev)
            if stop_after is not None and len(events) >= stop_after:
                # Abort: RST-free close of our side without reading the rest.
                conn.sock.shutdown(socket.SHUT_RDWR)
                break
        return Stream(r.status, hdrs, events, buf, complete, time.monotonic() - t0)
    finally:
        conn.close()


def assert_full_stream(s: Stream, tokens: int, *, usage_chunk: bool = False) -> None:
    """A complete, intact chat stream of `tokens` content tokens."""
    assert s.status == 200, (s.status, s.body[:300])
    assert s.headers.get("content-type", "").startswith("text/event-stream")
    assert s.complete, "stream did not end cleanly"
    assert s.events and s.events[-1].data == "[DONE]", [e.data for e in s.events[-3:]]
    chunks = s.chunks()
    assert all("error" not in c for c in chunks), [c for c in chunks if "error" in c]
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert len(s.content_events()) == tokens, (len(s.content_events()), tokens)
    finishes = [c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
    assert len(finishes) == 1
    usage_chunks = [c for c in chunks if c.get("choices") == [] and c.get("usage")]
    if usage_chunk:
        assert len(usage_chunks) == 1, chunks[-2:]
        assert chunks[-1] is usage_chunks[0]
        assert usage_chunks[0]["usage"]["completion_tokens"] == tokens
    else:
        assert usage_chunks == [], usage_chunks
        assert all(not c.get("usage") for c in chunks), "client got usage it did not ask for"


class BackgroundStream:
    """A healthy streaming request running on its own connection while a test
    does something nasty on another one; join() returns the Stream."""

    def __init__(self, port: int, tokens: int = 30, itl_ms: int = 20, model: str = "gpt-x"):
        self.tokens = tokens
        self.first = threading.Event()
        self.result: Stream | None = None
        self.error: BaseException | None = None
        body = chat_body(model, stream=True)
        hdrs = {"x-mock-itl-ms": str(itl_ms), "x-mock-tokens": str(tokens)}
        timeout = IO_TIMEOUT + tokens * itl_ms / 1000.0

        def run():
            try:
                self.result = stream_chat(port, body, hdrs, timeout=timeout, on_event=lambda e: self.first.set())
            except BaseException as e:  # noqa: BLE001 - reported in join()
                self.error = e
            finally:
                self.first.set()

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.first.wait(IO_TIMEOUT * SLACK), "background stream never started"
        return self

    def __exit__(self, *exc):
        self.thread.join(IO_TIMEOUT * 3)
        if exc[0] is not None:
            return False
        assert not self.thread.is_alive(), "background stream hung"
        if self.error:
            raise AssertionError(f"background stream failed: {self.error!r}")
        assert self.result is not None
        assert_full_stream(self.result, self.tokens)
        return False

    def running(self) -> bool:
        return self.thread.is_alive()


# ---- Raw sockets -------------------------------------------------------------

def tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """A client TCP connection with Nagle off (requests go out as written)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_some(sock: socket.socket, timeout: float, restore: float, size: int = 65536) -> bytes | None:
    """One recv waiting at most `timeout`: the bytes, b"" at EOF or on a
    reset, None when nothing came. The socket's timeout goes back to `restore`."""
    sock.settimeout(max(timeout, 0.001))
    try:
        return sock.recv(size)
    except socket.timeout:
        return None
    except OSError:
        return b""
    finally:
        sock.settimeout(restore)


def metric_delta(before: "Metrics", after: "Metrics", name: str, **labels) -> float:
    """How much one sample (exactly these labels) moved between two snapshots."""
    return after.get1(name, **labels) - before.get1(name, **labels)


class Raw:
    """A raw client connection for requests no well-behaved client would send."""

    def __init__(self, port: int, timeout: float = IO_TIMEOUT):
        self.sock = tcp_connect("127.0.0.1", port, timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self) -> bool:
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            return False
        self.buf += d
        return True

    def read_until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before {sep!r}; have {self.buf[:200]!r}")
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed mid-body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_only: bool = False) -> Response:
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        assert parts[0].startswith("HTTP/1."), lines[0]
        status = int(parts[1])
        hl = []
        for ln in lines[1:]:
            if ln:
                k, _, v = ln.partition(":")
                hl.append((k.strip().lower(), v.strip()))
        h = dict(hl)
        if head_only or 100 <= status < 200 or status in (204, 304):
            return Response(status, h, b"", hl)
        if "chunked" in h.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size_line = self.read_until(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    self.read_until(b"\r\n")  # no trailers expected
                    break
                body += self.read_exact(size)
                assert self.read_exact(2) == b"\r\n"
            return Response(status, h, body, hl)
        n = int(h.get("content-length", "0"))
        return Response(status, h, self.read_exact(n), hl)

    def closed_by_peer(self, within: float) -> bool:
        """True if the peer closes (EOF/RST) within `within` seconds; data before that is kept."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            finally:
                self.sock.settimeout(self.timeout)
            if not d:
                return True
            self.buf += d


def http_head(method: str, path: str, headers: list | None = None, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_chat(body: bytes, headers: list | None = None) -> bytes:
    h = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + list(headers or [])
    return http_head("POST", "/v1/chat/completions", h) + body


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# A tiny upstream that records what it receives
# --------------------------------------------------------------------------

class RecordingUpstream:
    """An OpenAI-ish upstream in Python that records each request's headers
    and body. Streams a few chunks (without usage) when asked to stream."""

    CONTENT = ["alpha ", "beta ", "gamma ", "delta "]

    def __init__(self):
        self.requests: list = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self._record(b"")
                self._send_json(200, {"object": "list", "data": []})

            def do_POST(self):
                if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("content-length") or 0))
                self._record(body)
                try:
                    req = json.loads(body)
                except ValueError:
                    req = {}
                if req.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for i, tok in enumerate(outer.CONTENT):
                        ev = {"id": "rec-1", "object": "chat.completion.chunk", "model": req.get("model"),
                              "choices": [{"index": 0, "delta": {"content": tok}, "finish_reason": None}]}
                        self._chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
                    fin = {"id": "rec-1", "object": "chat.completion.chunk", "model": req.get("model"),
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self._chunk(b"data: " + json.dumps(fin).encode() + b"\n\n")
                    self._chunk(b"data: [DONE]\n\n")
                    self._chunk(b"")
                else:
                    self._send_json(200, {
                        "id": "rec-1", "object": "chat.completion", "model": req.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(outer.CONTENT)},
                                     "finish_reason": "stop"}]})

            def _chunk(self, data: bytes):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _record(self, body: bytes):
                with outer.lock:
                    outer.requests.append({"method": self.command, "path": self.path,
                                           "headers": [(k.lower(), v) for k, v in self.headers.items()],
                                           "body": body})

            def _send_json(self, status, doc):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def last(self) -> dict:
        with self.lock:
            assert self.requests, "the upstream received no request"
            return self.requests[-1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def established_to(port: int) -> int:
    """How many ESTABLISHED IPv4/IPv6 TCP sockets on this host have remote port `port`."""
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            cols = ln.split()
            rem, st = cols[2], cols[3]
            if st == "01" and int(rem.rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


class ScriptedUpstream:
    """A raw-socket upstream that answers each request with the script named by
    its `x-script` header: a list of byte strings (sent in order, with a short
    pause between them; a number in the list is a pause of that many seconds,
    "drain" reads and discards what arrived) and then closes the connection. Scripts
    that end normally should say `connection: close` unless the test is about
    reusing the connection. For upstreams that misbehave in ways no real HTTP
    library would."""

    def __init__(self, scripts: dict):
        self.scripts = scripts
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.srv.settimeout(0.1)
        self.port = self.srv.getsockname()[1]
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stop_flag.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket):
        c.settimeout(5)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            hdrs = {}
            for ln in head.split(b"\r\n")[1:]:
                k, _, v = ln.partition(b":")
                hdrs[k.strip().lower().decode()] = v.strip().decode("latin-1")
            n = int(hdrs.get("content-length", "0"))
            while len(rest) < n:
                d = c.recv(65536)
                if not d:
                    return
                rest += d
            script = self.scripts[hdrs.get("x-script", "")]
            for i, piece in enumerate(script):
                if isinstance(piece, (int, float)):
                    time.sleep(piece)  # an explicit pause
                    continue
                if piece == "drain":  # read what the peer sent since, so close() sends FIN, not RST
                    c.settimeout(0.05)
                    try:
                        while c.recv(65536):
                            pass
                    except OSError:
                        pass
                    continue
                if i:
                    time.sleep(0.005)
                c.sendall(piece)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop_flag.set()
        self.srv.close()
        self.thread.join(2)


def sse_response(*events: bytes, chunked: bool = True) -> list:
    """Wire pieces for a 200 text/event-stream answer: head, then one piece per event."""
    if chunked:
        head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                b"connection: close\r\n\r\n")
        return [head] + [f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events] + [b"0\r\n\r\n"]
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    return [head] + list(events)


def sse_chunk(content: str | None = None, finish: str | None = None, model: str = "up") -> bytes:
    delta = {} if content is None else {"content": content}
    d = {"id": "x", "object": "chat.completion.chunk", "model": model,
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(d).encode() + b"\n\n"


# --------------------------------------------------------------------------
# Protocols: HTTP/1.1 and HTTP/2, cleartext and TLS
# --------------------------------------------------------------------------

# "h1": HTTP/1.1 cleartext; "h1-tls": HTTP/1.1 over TLS (ALPN http/1.1);
# "h2c": HTTP/2 cleartext with prior knowledge; "h2-tls": HTTP/2 over TLS (ALPN h2).
PROTOCOLS = ("h1", "h1-tls", "h2c", "h2-tls")
# The label sluice_connections_total{protocol} uses for each.
PROTOCOL_LABEL = {"h1": "HTTP/1.1", "h1-tls": "HTTP/1.1", "h2c": "HTTP/2", "h2-tls": "HTTP/2"}


@dataclass(frozen=True)
class Target:
    """Where and how to talk to the gateway: request(), chat() and
    stream_chat() take one in place of the int port."""
    port: int
    proto: str = "h1"
    host: str = "127.0.0.1"
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None  # SNI (default: none for an IP host)

    def __post_init__(self):
        assert self.proto in PROTOCOLS, self.proto
        assert self.is_tls == (self.ssl_context is not None), f"{self.proto} needs ssl_context iff TLS"

    @property
    def is_tls(self) -> bool:
        return self.proto.endswith("-tls")

    @property
    def is_h2(self) -> bool:
        return self.proto.startswith("h2")

    @property
    def label(self) -> str:
        return PROTOCOL_LABEL[self.proto]

    def __str__(self) -> str:
        return f"{self.proto}://{self.host}:{self.port}"

    def connect_tls(self, timeout: float = IO_TIMEOUT) -> ssl.SSLSocket:
        """A TCP connection with the TLS handshake done."""
        assert self.ssl_context is not None
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return self.ssl_context.wrap_socket(raw, server_hostname=self.server_hostname or self.host)
        except BaseException:
            raw.close()
            raise


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection to an address with a separate SNI / verification name."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext,
                 server_hostname: str | None):
        super().__init__(host, port, timeout=timeout, context=context)
        self._sni = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni or self.host)


def h1_connection(port: "int | Target", timeout: float = IO_TIMEOUT) -> http.client.HTTPConnection:
    """A keep-alive HTTP/1.1 connection (TLS for an "h1-tls" Target)."""
    if not isinstance(port, Target):
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    assert not port.is_h2, f"{port} is HTTP/2"
    if port.is_tls:
        return _HTTPSConnection(port.host, port.port, timeout=timeout, context=port.ssl_context,
                                server_hostname=port.server_hostname)
    return http.client.HTTPConnection(port.host, port.port, timeout=timeout)


def _openssl(*args, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert out.returncode == 0, f"openssl {' '.join(args)} failed:\n{out.stderr.decode(errors='replace')}"


class TestPki:
    """A throw-away CA (made with the openssl CLI) that issues server
    certificates, and client contexts that trust it."""

    __test__ = False  # not a pytest test class

    def __init__(self, d: Path):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.ca = d / "ca.pem"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-days", "2", "-subj", "/CN=sluice test server CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
        self._serial = 0
        # The gateway's usual certificate: CN=localhost, SAN DNS:localhost, IP:127.0.0.1.
        self.cert, self.key = self.issue("localhost", dns=("localhost",), ips=("127.0.0.1",))

    def issue(self, cn: str, dns: tuple = (), ips: tuple = (), name: str | None = None) -> tuple:
        """A new key and certificate signed by the CA: (cert_path, key_path)."""
        self._serial += 1
        stem = name or f"srv{self._serial}-{re.sub(r'[^A-Za-z0-9.-]', '_', cn)}"
        sans = [f"DNS:{n}" for n in dns] + [f"IP:{i}" for i in ips]
        ext = self.dir / f"{stem}.ext"
        ext.write_text(("subjectAltName=" + ",".join(sans) + "\n") if sans else "basicConstraints=CA:FALSE\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{stem}.key", "-out", f"{stem}.csr", cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(1000 + self._serial), "-days", "2", "-extfile", ext.name,
                 "-out", f"{stem}.pem", cwd=self.dir)
        return self.dir / f"{stem}.pem", self.dir / f"{stem}.key"

    def client_context(self, alpn: tuple | list | None = None, *, minimum: ssl.TLSVersion | None = None,
                       maximum: ssl.TLSVersion | None = None, check_hostname: bool = True) -> ssl.SSLContext:
        """A client context that verifies against the CA, offering `alpn` (None: no ALPN)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.check_hostname = check_hostname
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
        return ctx


@pytest.fixture(scope="session")
def server_pki(tmp_path_factory) -> TestPki:
    """One test CA and gateway certificate per session."""
    return TestPki(tmp_path_factory.mktemp("server-pki"))


def tls_listener(*certificates: tuple, **opts) -> dict:
    """The server.tls block for gateway_config(server={"tls": ...}): a TLS
    listener on port 0 with these (cert, key) pairs, first one the default.
    opts: min_version, session_tickets, reload_check."""
    assert certificates, "at least one (cert, key) pair"
    d = {"listen": "127.0.0.1:0",
         "certificates": [{"cert_file": str(c), "key_file": str(k)} for c, k in certificates]}
    d.update(opts)
    return d


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


# ---- A small synchronous HTTP/2 client ---------------------------------------

class H2Error(Exception):
    pass


class _H2Stream:
    def __init__(self, sid: int, t0: float, on_event=None, stop_after: int | None = None):
        self.sid = sid
        self.t0 = t0
        self.on_event = on_event
        self.stop_after = stop_after
        self.status: int | None = None
        self.header_list: list = []
        self.headers: dict = {}
        self.trailers: list = []
        self.data = bytearray()
        self.sse_buf = b""
        self.events: list = []
        self.ended = False          # END_STREAM received
        self.reset_code: int | None = None   # RST_STREAM received (or sent by us)
        self.conn_lost = False      # the connection ended first
        self.end_t: float | None = None

    @property
    def finished(self) -> bool:
        return self.ended or self.reset_code is not None or self.conn_lost

    @property
    def sse(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")


_H2_CONN_CLASS = []


def _graceful_goaway_connection_class():
    """h2's H2Connection, except that a GOAWAY with NO_ERROR leaves the
    connection open for the streams it lets finish (RFC 9113 6.8). Stock h2
    closes its state machine on any GOAWAY and then refuses their frames.
    start() never opens a stream after a GOAWAY."""
    if not _H2_CONN_CLASS:
        import h2.connection

        class GracefulGoawayConnection(h2.connection.H2Connection):
            def _receive_goaway_frame(self, frame):
                state = self.state_machine.state
                frames, events = super()._receive_goaway_frame(frame)
                if frame.error_code == 0 and state == h2.connection.ConnectionState.CLIENT_OPEN:
                    self.state_machine.state = state
                return frames, events

        _H2_CONN_CLASS.append(GracefulGoawayConnection)
    return _H2_CONN_CLASS[0]


class H2Client:
    """A synchronous HTTP/2 client over one connection (h2c with prior
    knowledge, or TLS with ALPN h2), built on the `h2` library. Several
    streams can be open at once: start() sends a request and returns its
    stream id; response()/stream()/collect() read until streams end. Events
    are stamped with their arrival time (seconds since the request was sent)."""

    def __init__(self, target: "Target | int", *, timeout: float = IO_TIMEOUT, settings: dict | None = None):
        import h2.config
        import h2.connection
        if isinstance(target, int):
            target = Target(target, "h2c")
        assert target.is_h2, f"{target} is not HTTP/2"
        self.target = target
        self.timeout = timeout
        self.streams: dict = {}
        self.goaway: object | None = None   # the ConnectionTerminated event, if any
        self.closed = False                 # the connection is over (peer closed, or we dropped it)
        self.protocol_error: Exception | None = None  # what the h2 library refused in the peer's frames
        self._corked = False
        if target.is_tls:
            self.sock = target.connect_tls(timeout)
            alpn = self.sock.selected_alpn_protocol()
            if alpn != "h2":
                self.sock.close()
                raise H2Error(f"ALPN selected {alpn!r}, not h2")
        else:
            self.sock = tcp_connect(target.host, target.port, timeout)
        self.conn = _graceful_goaway_connection_class()(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self._flush()

    # -- plumbing
    def _flush(self) -> None:
        if self._corked:
            return
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def cork(self):
        """Context manager: frames queued inside go out together in one write
        when it ends (so the server reads them at once). Only for frames that
        need no answer first (small bodies)."""
        client = self

        class _Cork:
            def __enter__(self):
                client._corked = True
                return client

            def __exit__(self, *exc):
                client._corked = False
                client._flush()
                return False

        return _Cork()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Polite close: GOAWAY, then the socket."""
        if self.sock is None:
            return
        try:
            if not self.closed:
                self.conn.close_connection()
                self._flush()
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.abort()

    def abort(self) -> None:
        """Drop the connection without a word (a client that goes away)."""
        if self.sock is None:
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None
        self.closed = True
        for st in self.streams.values():
            if not st.finished:
                st.conn_lost = True

    def _pump(self, deadline: float) -> None:
        """Reads once from the socket (waiting until `deadline`) and dispatches the events."""
        import h2.events as ev
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("HTTP/2 response timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            data = b""
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)
        if not data:
            self.closed = True
            for st in self.streams.values():
                if not st.finished:
                    st.conn_lost = True
            return
        now = time.monotonic()
        import h2.exceptions
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.protocol_error = e
            self.abort()
            return
        for e in events:
            st = self.streams.get(getattr(e, "stream_id", None) or 0)
            if isinstance(e, ev.ResponseReceived) and st:
                st.header_list = [(k, v) for k, v in e.headers if not k.startswith(":")]
                st.headers = {k.lower(): v for k, v in st.header_list}
                st.status = int(dict(e.headers)[":status"])
            elif isinstance(e, ev.TrailersReceived) and st:
                st.trailers = list(e.headers)
            elif isinstance(e, ev.DataReceived):
                if e.flow_controlled_length:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if st:
                    st.data += e.data
                    if st.sse:
                        n = len(st.events)
                        st.sse_buf = _parse_events(st.sse_buf + e.data, now - st.t0, st.events)
                        for x in st.events[n:]:
                            if st.on_event:
                                st.on_event(x)
            elif isinstance(e, ev.StreamEnded) and st:
                st.ended = True
                st.end_t = now
            elif isinstance(e, ev.StreamReset) and st:
                if not st.ended:
                    st.reset_code = int(e.error_code)
                st.end_t = now
            elif isinstance(e, ev.ConnectionTerminated):
                self.goaway = e
                for sid, s in self.streams.items():
                    if not s.finished and (e.last_stream_id is None or sid > e.last_stream_id
                                           or e.error_code != 0):
                        s.conn_lost = True
        if self.sock is not None:
            try:
                self._flush()
            except OSError:
                pass

    def closed_by_peer_within(self, seconds: float) -> bool:
        """Reads (and handles) frames until the peer closes the connection; False if it has not within `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while not self.closed:
                self._pump(deadline)
        except socket.timeout:
            return False
        return True

    def _wait(self, pred, timeout: float | None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            if self.closed:
                for st in self.streams.values():
                    if not st.finished:
                        st.conn_lost = True
                return
            self._pump(deadline)

    # -- requests
    def start(self, method: str, path: str, body: bytes | None = None, headers: dict | list | None = None, *,
              on_event=None, stop_after: int | None = None, content_length: bool = True,
              timeout: float | None = None) -> int:
        """Sends a request (head, then the body within flow control) and returns its stream id.
        Like request(): content-type application/json when there is a body."""
        assert not self.closed, "the connection is closed"
        assert self.goaway is None, f"the server sent GOAWAY: {self.goaway}"
        sid = self.conn.get_next_available_stream_id()
        t = self.target
        default_port = 443 if t.is_tls else 80
        authority = t.server_hostname or t.host
        if t.port != default_port:
            authority += f":{t.port}"
        hl = [(":method", method), (":scheme", "https" if t.is_tls else "http"), (":authority", authority),
              (":path", path)]
        extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in extra}
        if body is not None and "content-type" not in names:
            hl.append(("content-type", "application/json"))
        if body is not None and content_length and "content-length" not in names:
            hl.append(("content-length", str(len(body))))
        hl += [(k.lower(), v) for k, v in extra]
        st = _H2Stream(sid, time.monotonic(), on_event, stop_after)
        self.streams[sid] = st
        self.conn.send_headers(sid, hl, end_stream=body is None)
        self._flush()
        if body is not None:
            self._send_body(st, body, timeout)
        return sid

    def _send_body(self, st: _H2Stream, body: bytes, timeout: float | None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        view = memoryview(body)
        off = 0
        while True:
            if st.finished or self.closed:
                break  # the server answered (or gave up) before taking it all
            if off == len(body):
                self.conn.send_data(st.sid, b"", end_stream=True)
                self._flush()
                return
            win = min(self.conn.local_flow_control_window(st.sid), self.conn.max_outbound_frame_size)
            if win <= 0:
                self._pump(deadline)
                continue
            n = min(win, len(body) - off)
            self.conn.send_data(st.sid, view[off:off + n].tobytes(), end_stream=off + n == len(body))
            off += n
            self._flush()
            if off == len(body):
                return
        # Stopped early: if the stream is still open on our side, end it.
        if not self.closed and st.reset_code is None:
            try:
                self.conn.reset_stream(st.sid, 0)  # NO_ERROR: we just stop sending
                self._flush()
            except Exception:  # noqa: BLE001 - already closed
                pass

    def reset(self, sid: int, code: int = 0x8) -> None:
        """RST_STREAM (CANCEL by default): this stream goes away, the connection stays."""
        self.conn.reset_stream(sid, code)
        self._flush()
        st = self.streams[sid]
        if not st.finished:
            st.reset_code = code

    def _stream_obj(self, sid: int) -> Stream:
        st = self.streams[sid]
        complete = st.ended and st.reset_code is None and not st.conn_lost
        body = st.sse_buf if st.sse else bytes(st.data)
        end = st.end_t or time.monotonic()
        return Stream(st.status or 0, st.headers, st.events, body, complete, end - st.t0)

    def response(self, sid: int, timeout: float | None = None) -> Response:
        """Waits for the whole response of stream `sid`."""
        st = self.streams[sid]
        self._wait(lambda: st.finished, timeout)
        if st.status is None:
            raise H2Error(f"stream {sid} ended without a response (reset={st.reset_code}, "
                          f"conn_lost={st.conn_lost}, goaway={self.goaway})")
        return Response(st.status, st.headers, bytes(st.data), st.header_list)

    def stream(self, sid: int, timeout: float | None = None, abort: str = "reset") -> Stream:
        """Reads stream `sid` as SSE until it ends. With stop_after=N given to
        start(), stops after N events: abort="reset" sends RST_STREAM(CANCEL)
        (the connection stays usable), "close" drops the whole connection."""
        st = self.streams[sid]

        def stop_now():
            return st.stop_after is not None and len(st.events) >= st.stop_after

        self._wait(lambda: st.finished or (st.status is not None and not st.sse) or stop_now(), timeout)
        if st.status is not None and not st.sse:
            self._wait(lambda: st.finished, timeout)
        elif stop_now() and not st.finished:
            st.end_t = time.monotonic()
            if abort == "close":
                self.abort()
            else:
                self.reset(sid)
            return self._stream_obj(sid)
        if st.status is None:
            raise H2Error(f"stream {sid} ended without a response (reset={st.reset_code}, "
                          f"conn_lost={st.conn_lost}, goaway={self.goaway})")
        return self._stream_obj(sid)

    def collect(self, sids: list, timeout: float | None = None) -> list:
        """Waits for all these streams to end; their Streams, in order."""
        self._wait(lambda: all(self.streams[s].finished for s in sids), timeout)
        return [self._stream_obj(s) for s in sids]

    # Same call shapes as the module helpers, on this connection.
    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float | None = None) -> Response:
        return self.response(self.start(method, path, body, headers, timeout=timeout), timeout)

    def chat(self, body: bytes | None = None, headers: dict | None = None, **kw) -> Response:
        return self.request("POST", "/v1/chat/completions", body if body is not None else chat_body(), headers, **kw)

    def stream_chat(self, body: bytes, headers: dict | None = None, timeout: float | None = None,
                    path: str = "/v1/chat/completions", on_event=None, stop_after: int | None = None,
                    abort: str = "reset") -> Stream:
        h = {"accept": "text/event-stream"}
        h.update(headers or {})
        sid = self.start("POST", path, body, h, on_event=on_event, stop_after=stop_after, timeout=timeout)
        return self.stream(sid, timeout, abort=abort)


class Session:
    """Several requests on one connection, whatever the protocol: an
    H2Client for HTTP/2, a keep-alive http.client connection for HTTP/1.1
    (which reconnects by itself after the server closed it)."""

    def __init__(self, target: "Target | int", timeout: float = IO_TIMEOUT):
        self.target = target if isinstance(target, Target) else Target(target)
        self.timeout = timeout
        if self.target.is_h2:
            self.h2 = H2Client(self.target, timeout=timeout)
            self.h1 = None
        else:
            self.h2 = None
            self.h1 = h1_connection(self.target, timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        if self.h2:
            return self.h2.request(method, path, body, headers)
        try:
            return request(self.target, method, path, body, headers, conn=self.h1)
        except (ConnectionError, http.client.HTTPException):
            self.h1.close()
            raise

    def chat(self, body: bytes | None = None, headers: dict | None = None) -> Response:
        return self.request("POST", "/v1/chat/completions", body if body is not None else chat_body(), headers)

    def close(self) -> None:
        if self.h2:
            self.h2.close()
        else:
            self.h1.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
