"""Upstreams over HTTPS: certificate verification against a CA file, SNI, and
the failure a wrong trust store must produce. The upstream is a real TLS
server (Python's ssl) with certificates made by the openssl CLI."""
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import assert_error_body, chat, chat_body, gateway_config, start_gateway, stream_chat


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(module_dir):
    d = module_dir / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sluice test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:upstream.test,IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=upstream.test", "-keyout", "srv.key",
             "-out", "srv.csr", cwd=d)
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext.cnf", "-out", "srv.pem", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
             "-keyout", "other.key", "-out", "other.pem", cwd=d)
    return d


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Upstream.seen.append({"authorization": self.headers.get("authorization")})
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for ev in ({"choices": [{"index": 0, "delta": {"content": "secure "}}]},
                       {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}}):
                data = f"data: {json.dumps(ev)}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            done = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            return
        out = json.dumps({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
                          "content": "secure"}}], "usage": {"prompt_tokens": 4, "completion_tokens": 1,
                                                            "total_tokens": 5}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def tls_upstream(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _config(port, tls_block):
    return gateway_config(endpoint=f"https://127.0.0.1:{port}",
                          upstream_extra=f"    api_key: sk-upstream\n    tls: {tls_block}\n")


def test_https_upstream_verified_with_ca_file(module_dir, pki, tls_upstream):
    gw = start_gateway(module_dir, _config(tls_upstream, f'{{ca_file: "{pki / "ca.pem"}", sni: upstream.test}}'))
    try:
        _Upstream.seen.clear()
        r = chat(gw.port, chat_body(), headers={"authorization": "Bearer client-key"})
        assert r.status == 200, r.body
        assert r.json()["choices"][0]["message"]["content"] == "secure"
        assert _Upstream.seen[-1]["authorization"] == "Bearer sk-upstream"
        s = stream_chat(gw.port, chat_body(stream=True))
        assert s.status == 200
        assert s.content() == "secure "
        assert s.done
        # The request is settled just after its last byte is written: poll briefly.
        deadline = time.time() + 3
        while gw.metrics().get1("sluice_active_requests") != 0 and time.time() < deadline:
            time.sleep(0.02)
        assert gw.metrics().get1("sluice_tokens_total", model="*", direction="output") == 2
    finally:
        gw.proc.stop()


def test_https_upstream_with_untrusted_certificate_is_refused(module_dir, pki, tls_upstream):
    gw = start_gateway(module_dir, _config(tls_upstream, f'{{ca_file: "{pki / "other.pem"}"}}'))
    try:
        r = chat(gw.port, chat_body())
        assert_error_body(r, 502, "upstream_unavailable")
        assert "TLS" in r.json()["error"]["message"] or "certificate" in r.json()["error"]["message"]
        assert gw.metrics().get1("sluice_upstream_errors_total", upstream="m", kind="connect") >= 1
    finally:
        gw.proc.stop()


def test_https_upstream_name_mismatch_is_refused(module_dir, pki, tls_upstream):
    gw = start_gateway(module_dir, _config(tls_upstream, f'{{ca_file: "{pki / "ca.pem"}", sni: wrong.test}}'))
    try:
        assert_error_body(chat(gw.port, chat_body()), 502, "upstream_unavailable")
    finally:
        gw.proc.stop()


def test_https_upstream_without_verification(module_dir, pki, tls_upstream):
    gw = start_gateway(module_dir, _config(tls_upstream, "{verify: false}"))
    try:
        assert chat(gw.port, chat_body()).status == 200
    finally:
        gw.proc.stop()
