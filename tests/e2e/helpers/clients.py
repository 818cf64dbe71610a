"""request(), chat(), stream_chat(), Session and BackgroundStream: the same calls
over any protocol (an int port for HTTP/1.1 cleartext, or a Target)."""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time

from .env import IO_TIMEOUT, SLACK
from .http1 import h1_connection
from .http2 import H2Client
from .messages import Response, Stream, _parse_events, assert_full_stream, chat_body
from .tls import Target


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


class BackgroundStream:
    """A healthy streaming request running on its own connection while a test
    does something nasty on another one; join() returns the Stream."""

    def __init__(self, port: int, tokens: int = 30, itl_ms: int = 20, model: str = "gpt-x",
                 headers: dict | None = None):
        self.tokens = tokens
        self.first = threading.Event()
        self.result: Stream | None = None
        self.error: BaseException | None = None
        body = chat_body(model, stream=True)
        hdrs = {"x-mock-itl-ms": str(itl_ms), "x-mock-tokens": str(tokens), **(headers or {})}
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
