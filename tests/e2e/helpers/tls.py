"""Where and how to reach the gateway (Target, PROTOCOLS) and a throw-away test PKI
(TestPki, tls_listener)."""
from __future__ import annotations

import re
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .env import IO_TIMEOUT


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


def tls_listener(*certificates: tuple, **opts) -> dict:
    """The server.tls block for gateway_config(server={"tls": ...}): a TLS
    listener on port 0 with these (cert, key) pairs, first one the default.
    opts: min_version, session_tickets, reload_check."""
    assert certificates, "at least one (cert, key) pair"
    d = {"listen": "127.0.0.1:0",
         "certificates": [{"cert_file": str(c), "key_file": str(k)} for c, k in certificates]}
    d.update(opts)
    return d
