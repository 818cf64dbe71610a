"""HTTP/1.1 connections (cleartext or TLS) and raw sockets for requests no
well-behaved client would send."""
from __future__ import annotations

import http.client
import socket
import ssl
import time

from .env import IO_TIMEOUT
from .messages import Response
from .tls import Target


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
