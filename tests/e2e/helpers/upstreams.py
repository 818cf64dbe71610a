"""Fake upstreams in Python (RecordingUpstream, ScriptedUpstream), SSE wire pieces
for scripts, and port probes (closed_port, established_to)."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


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
