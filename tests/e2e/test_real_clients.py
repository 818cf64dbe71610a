"""Real HTTP/2 and TLS clients against the gateway: curl, nghttp, h2load and
Node's http2 module. A missing tool is a failure, not a skip."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SLACK, _parse_events, assert_full_stream, chat_body, start_tls_gateway, Stream, wait_until, metric_delta

JS_DIR = Path(__file__).resolve().parent / "js"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: these tests need it (apt-get install curl nghttp2-client nodejs)",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def gw(module_dir, mock, server_pki):
    g = start_tls_gateway(module_dir, mock.port, server_pki)
    yield g
    assert g.proc.stop() == 0, g.proc.output()


@pytest.fixture(scope="module")
def stream_body_file(module_dir):
    f = module_dir / "stream-body.json"
    f.write_bytes(chat_body("tool-model", stream=True))
    return f


def _run(argv, timeout=20):
    out = subprocess.run(argv, capture_output=True, timeout=timeout)
    return out


def _sse(text: bytes) -> Stream:
    events = []
    rest = _parse_events(text, 0.0, events)
    return Stream(200, {"content-type": "text/event-stream"}, events, rest, True, 0.0)


# ---- curl -----------------------------------------------------------------------

CURL_MARK = b"\n#curl-http-version="


def _curl(gw, server_pki, *args, url_path="/v1/chat/completions", tls: bool, body: bytes | None = None,
          headers: tuple = ()):
    curl = tool("curl")
    if tls:
        url = f"https://localhost:{gw.tls_port}{url_path}"
        conn = ["--cacert", str(server_pki.ca), "--resolve", f"localhost:{gw.tls_port}:127.0.0.1"]
    else:
        url = f"http://127.0.0.1:{gw.port}{url_path}"
        conn = []
    argv = [curl, "-sS", "-N", "--max-time", "15", *conn, *args, "-w", CURL_MARK.decode() + "%{http_version}",
            url]
    for h in headers:
        argv += ["-H", h]
    if body is not None:
        argv += ["-H", "content-type: application/json", "--data-binary", body.decode()]
    out = _run(argv)
    assert out.returncode == 0, (argv, out.stderr.decode(errors="replace"))
    payload, _, version = out.stdout.rpartition(CURL_MARK)
    return payload, version.decode().strip()


@pytest.mark.parametrize("mode", ["h2c-prior-knowledge", "h2-tls", "h1-tls"])
def test_curl_streaming(gw, server_pki, mode):
    args = {"h2c-prior-knowledge": ["--http2-prior-knowledge"], "h2-tls": ["--http2"],
            "h1-tls": ["--http1.1"]}[mode]
    before = gw.metrics()
    payload, version = _curl(gw, server_pki, *args, tls=mode != "h2c-prior-knowledge",
                             body=chat_body("curl-model", stream=True, include_usage=True),
                             headers=("x-mock-tokens: 9", "x-mock-itl-ms: 5"))
    assert version == ("1.1" if mode == "h1-tls" else "2"), version
    s = _sse(payload)
    assert_full_stream(s, 9, usage_chunk=True)
    assert all(c["model"] == "curl-model" for c in s.chunks())
    label = "HTTP/1.1" if mode == "h1-tls" else "HTTP/2"
    assert metric_delta(before, gw.metrics(), "sluice_connections_total", protocol=label) == 1


@pytest.mark.parametrize("mode", ["h2c-prior-knowledge", "h2-tls"])
def test_curl_non_streaming_and_models(gw, server_pki, mode):
    args = ["--http2-prior-knowledge"] if mode == "h2c-prior-knowledge" else ["--http2"]
    payload, version = _curl(gw, server_pki, *args, tls=mode == "h2-tls", body=chat_body(),
                             headers=("x-mock-tokens: 4", "x-request-id: curl-rid-1"))
    assert version == "2"
    doc = json.loads(payload)
    assert doc["usage"]["completion_tokens"] == 4
    payload, version = _curl(gw, server_pki, *args, "-i", tls=mode == "h2-tls", url_path="/v1/models")
    assert version == "2"
    assert payload.startswith(b"HTTP/2 200"), payload[:100]
    # An error keeps the OpenAI shape over HTTP/2 too.
    payload, version = _curl(gw, server_pki, *args, tls=mode == "h2-tls", url_path="/nope")
    assert version == "2"
    assert json.loads(payload)["error"]["code"] == "unknown_url"


def test_curl_h2_tls_streams_incrementally(gw, server_pki):
    """Events reach a real client as they are generated, not at the end."""
    curl = tool("curl")
    argv = [curl, "-sS", "-N", "--max-time", "15", "--http2", "--cacert", str(server_pki.ca),
            "--resolve", f"localhost:{gw.tls_port}:127.0.0.1", f"https://localhost:{gw.tls_port}/v1/chat/completions",
            "-H", "content-type: application/json", "-H", "x-mock-tokens: 6", "-H", "x-mock-itl-ms: 100",
            "--data-binary", chat_body(stream=True).decode()]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stamps = []
        for line in p.stdout:
            if line.startswith(b"data: "):
                stamps.append((time.monotonic() - t0, line.strip()))
        assert p.wait(15) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        p.stdout.close()
        p.stderr.close()
    assert stamps and stamps[-1][1] == b"data: [DONE]", stamps[-3:]
    assert len(stamps) == 1 + 6 + 1 + 1
    content = stamps[1:7]
    assert content[-1][0] - content[0][0] >= 0.35, stamps


# ---- nghttp -----------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-tls"])
def test_nghttp(gw, stream_body_file, tls):
    nghttp = tool("nghttp")
    url = (f"https://127.0.0.1:{gw.tls_port}" if tls else f"http://127.0.0.1:{gw.port}") + "/v1/chat/completions"
    hdrs = ["-H", "content-type: application/json", "-H", "x-mock-tokens: 5", "-H", "x-mock-itl-ms: 5"]
    out = _run([nghttp, "-nv", *hdrs, "-d", str(stream_body_file), url])
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, text[-3000:] + out.stderr.decode(errors="replace")
    if tls:
        assert "negotiated protocol: h2" in text, text[:2000]
    m = re.search(r"recv \(stream_id=(\d+)\) :status: 200", text)
    assert m, text[-3000:]
    sid = m.group(1)
    assert re.search(rf"recv \(stream_id={sid}\) content-type: text/event-stream", text), text[-3000:]
    # Several DATA frames as the tokens come, then END_STREAM on that stream, never a reset.
    assert len(re.findall(rf"recv DATA frame <length=[1-9]\d*, flags=0x00, stream_id={sid}>", text)) >= 3, text
    assert re.search(rf"recv (DATA|HEADERS) frame <[^>]*flags=0x0[15], stream_id={sid}>\s*\n\s*; END_STREAM",
                     text), text[-3000:]
    assert "RST_STREAM" not in text, text[-3000:]
    assert "recv GOAWAY" not in text, text[-3000:]
    # And the body itself, without -n: a complete stream.
    out = _run([nghttp, *hdrs, "-d", str(stream_body_file), url])
    assert out.returncode == 0, out.stderr
    assert_full_stream(_sse(out.stdout), 5)


# ---- h2load -------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-tls"])
def test_h2load_multiplexed_streaming(gw, stream_body_file, tls):
    h2load = tool("h2load")
    url = (f"https://127.0.0.1:{gw.tls_port}" if tls else f"http://127.0.0.1:{gw.port}") + "/v1/chat/completions"
    before = gw.metrics()
    out = _run([h2load, "-n", "200", "-c", "2", "-m", "20", "-d", str(stream_body_file),
                "-H", "content-type: application/json", "-H", "x-mock-tokens: 5", "-H", "x-mock-itl-ms: 2",
                url], timeout=60)
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, text + out.stderr.decode(errors="replace")
    if tls:
        assert "Application protocol: h2" in text, text
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    assert m, text
    total, started, done, succeeded, failed, errored, tmo = map(int, m.groups())
    assert (total, started, done, succeeded, failed, errored, tmo) == (200, 200, 200, 200, 0, 0, 0), text
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    assert m and tuple(map(int, m.groups())) == (200, 0, 0, 0), text
    wait_until(lambda: gw.metrics().get1("sluice_active_requests") == 0, 2.0 * SLACK, what="requests settled")
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_connections_total", protocol="HTTP/2") == 2
    assert metric_delta(before, after, "sluice_requests_total", model="*", status="200") == 200
    assert metric_delta(before, after, "sluice_tokens_total", model="*", direction="output") == 200 * 5


# ---- Node.js http2 ------------------------------------------------------------------

def test_node_http2_concurrent_streams_one_session(gw, server_pki):
    node = tool("node")
    n, tokens = 6, 8
    before = gw.metrics()
    out = _run([node, str(JS_DIR / "h2_streams.js"), f"https://127.0.0.1:{gw.tls_port}", str(server_pki.ca),
                str(n), str(tokens)], timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    doc = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert doc["alpn"] == "h2"
    assert len(doc["results"]) == n
    for i, r in enumerate(doc["results"]):
        assert "error" not in r, r
        assert r["status"] == 200 and r["contentType"].startswith("text/event-stream"), r
        s = _sse(r["body"].encode())
        assert_full_stream(s, tokens)
        assert s.events[-1].data == "[DONE]"
        assert all(c["model"] == f"node-{i}" for c in s.chunks())
    after = gw.metrics()
    assert metric_delta(before, after, "sluice_connections_total", protocol="HTTP/2") == 1
    assert metric_delta(before, after, "sluice_connections_total", protocol="HTTP/1.1") == 0
