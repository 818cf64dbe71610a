"""The OpenAI-compatible surface over HTTP/1.1: routing, listing, request ids,
keep-alive, pipelining, chunked bodies, 100-continue, header forwarding."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import (Raw, RecordingUpstream, assert_error_body, chat, chat_body, gateway_config,
                      http_head, raw_chat, request, start_gateway, stream_chat)

MODELS = ('  - {name: gpt-x, upstream: m}\n'
          '  - {name: fast, aliases: [quick, speedy], upstream: m, timeouts: {ttft: 300ms}}\n')

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def gw(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, models=MODELS))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


def test_healthz_and_readyz(gw):
    r = request(gw.admin, "GET", "/healthz")
    assert r.status == 200
    r = request(gw.admin, "GET", "/readyz")
    assert r.status == 200
    r = request(gw.admin, "GET", "/no-such-admin-path")
    assert r.status == 404


def test_chat_completion_non_streaming(gw):
    r = chat(gw.port, chat_body("gpt-x"), {"x-mock-tokens": "7"})
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["object"] == "chat.completion"
    assert doc["model"] == "gpt-x"
    msg = doc["choices"][0]["message"]
    assert msg["role"] == "assistant" and len(msg["content"].split()) == 7
    assert doc["usage"]["completion_tokens"] == 7
    assert doc["usage"]["prompt_tokens"] > 0


def test_alias_routes_to_its_model(gw):
    for name in ("fast", "quick", "speedy"):
        r = chat(gw.port, chat_body(name), {"x-mock-tokens": "3"})
        assert r.status == 200, (name, r.body)
        assert r.json()["usage"]["completion_tokens"] == 3


def test_unknown_model_is_404_model_not_found(gw):
    r = chat(gw.port, chat_body("definitely-not-configured"))
    assert_error_body(r, 404, "model_not_found")
    # The catch-all "*" is not a model name a client can use by accident either.
    r = chat(gw.port, chat_body("*"))
    assert_error_body(r, 404, "model_not_found")


def test_models_lists_names_and_aliases(gw):
    r = request(gw.port, "GET", "/v1/models")
    assert r.status == 200
    doc = r.json()
    assert doc["object"] == "list"
    ids = sorted(m["id"] for m in doc["data"])
    assert ids == sorted(["gpt-x", "fast", "quick", "speedy"])
    assert all(m["object"] == "model" for m in doc["data"])


def test_models_list_omits_catch_all(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, models='  - {name: a, upstream: m}\n'
                                                                 '  - {name: "*", upstream: m}\n'))
    try:
        ids = [m["id"] for m in request(g.port, "GET", "/v1/models").json()["data"]]
        assert ids == ["a"]
        # ... yet the catch-all routes anything.
        assert chat(g.port, chat_body("whatever-model"), {"x-mock-tokens": "2"}).status == 200
    finally:
        assert g.proc.stop() == 0


def test_wrong_method_and_unknown_path(gw):
    r = request(gw.port, "GET", "/v1/chat/completions")
    assert_error_body(r, 405)
    r = request(gw.port, "POST", "/v1/models", body=b"{}")
    assert_error_body(r, 405)
    r = request(gw.port, "GET", "/nope")
    assert_error_body(r, 404)


def test_request_id_echoed_when_valid(gw):
    rid = "client-req_0123.ABC"
    r = chat(gw.port, chat_body(), {"x-request-id": rid, "x-mock-tokens": "1"})
    assert r.status == 200
    assert r.headers["x-request-id"] == rid
    # Also on locally generated errors.
    r = chat(gw.port, chat_body("unknown-model"), {"x-request-id": rid})
    assert r.status == 404 and r.headers["x-request-id"] == rid


@pytest.mark.parametrize("bad", ["has spaces in it", "x" * 300, "semi;colon", "quote\"d", "<script>"])
def test_request_id_replaced_when_invalid(gw, bad):
    r = chat(gw.port, chat_body(), {"x-request-id": bad, "x-mock-tokens": "1"})
    assert r.status == 200
    assert HEX32.match(r.headers["x-request-id"]), r.headers["x-request-id"]


def test_request_id_generated_when_missing_and_unique(gw):
    ids = set()
    for _ in range(5):
        r = chat(gw.port, chat_body(), {"x-mock-tokens": "1"})
        assert r.status == 200
        assert HEX32.match(r.headers["x-request-id"]), r.headers
        ids.add(r.headers["x-request-id"])
    assert len(ids) == 5


def test_keep_alive_many_requests_one_connection(gw):
    with Raw(gw.port) as c:
        for i in range(40):
            c.send(raw_chat(chat_body(), [("x-mock-tokens", "2"), ("x-request-id", f"ka-{i}")]))
            r = c.read_response()
            assert r.status == 200, r.body
            assert r.headers["x-request-id"] == f"ka-{i}"
            assert json.loads(r.body)["usage"]["completion_tokens"] == 2
        # Still open after all of them.
        assert not c.closed_by_peer(0.2)


def test_http10_request_gets_answer_and_close(gw):
    with Raw(gw.port) as c:
        body = chat_body()
        c.send(http_head("POST", "/v1/chat/completions",
                         [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                          ("x-mock-tokens", "2")], version="HTTP/1.0") + body)
        r = c.read_response()
        assert r.status == 200
        assert json.loads(r.body)["usage"]["completion_tokens"] == 2
        assert c.closed_by_peer(2.0)


def test_pipelined_requests_answered_in_order(gw):
    # The first is the slowest: answers must still come back in request order.
    reqs = [(0, 400, 3), (1, 0, 1), (2, 100, 5), (3, 0, 2)]
    data = b""
    for i, ttft, toks in reqs:
        data += raw_chat(chat_body(), [("x-request-id", f"pipe-{i}"), ("x-mock-ttft-ms", str(ttft)),
                                       ("x-mock-tokens", str(toks))])
    data += http_head("GET", "/v1/models", [("x-request-id", "pipe-4")])
    with Raw(gw.port) as c:
        c.send(data)
        for i, _, toks in reqs:
            r = c.read_response()
            assert r.status == 200
            assert r.headers["x-request-id"] == f"pipe-{i}"
            assert json.loads(r.body)["usage"]["completion_tokens"] == toks
        r = c.read_response()
        assert r.headers["x-request-id"] == "pipe-4" and r.status == 200
        assert json.loads(r.body)["object"] == "list"


def test_pipelined_streaming_requests_in_order(gw):
    data = b""
    for i in range(3):
        data += raw_chat(chat_body(stream=True), [("x-request-id", f"ps-{i}"), ("x-mock-tokens", str(i + 2)),
                                                  ("x-mock-itl-ms", "10")])
    with Raw(gw.port) as c:
        c.send(data)
        for i in range(3):
            r = c.read_response()
            assert r.status == 200 and r.headers["x-request-id"] == f"ps-{i}"
            body = r.body.decode()
            assert body.rstrip().endswith("data: [DONE]")
            assert body.count('"content":"') - 1 == i + 2  # minus the role chunk's empty content


def test_chunked_request_body(gw):
    body = chat_body(content="split across several chunks")
    parts = [body[:5], body[5:17], body[17:]]
    wire = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    with Raw(gw.port) as c:
        c.send(http_head("POST", "/v1/chat/completions",
                         [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"),
                          ("x-mock-tokens", "4")]))
        # Dribble the chunks in to exercise partial reads.
        for i in range(0, len(wire), 7):
            c.send(wire[i:i + 7])
        r = c.read_response()
        assert r.status == 200, r.body
        assert json.loads(r.body)["usage"]["completion_tokens"] == 4
        # The connection stays usable after a chunked request.
        c.send(raw_chat(chat_body(), [("x-mock-tokens", "1")]))
        assert c.read_response().status == 200


def test_expect_100_continue(gw):
    body = chat_body()
    with Raw(gw.port) as c:
        c.send(http_head("POST", "/v1/chat/completions",
                         [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                          ("Expect", "100-continue"), ("x-mock-tokens", "3")]))
        interim = c.read_response(head_only=True)
        assert interim.status == 100
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r.body
        assert json.loads(r.body)["usage"]["completion_tokens"] == 3


def test_embedded_default_config_routes_everything_to_builtin_mock(module_dir):
    g = start_gateway(module_dir, None)
    try:
        r = chat(g.port, chat_body("any-model-at-all"))
        assert r.status == 200, r.body
        assert r.json()["choices"][0]["message"]["content"]
        s = stream_chat(g.port, chat_body("another", stream=True))
        assert s.status == 200 and s.done
    finally:
        assert g.proc.stop() == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_client(gw):
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", f"http://127.0.0.1:{gw.port}/v1/chat/completions",
                          "-H", "content-type: application/json", "-H", "x-mock-tokens: 5",
                          "-d", chat_body().decode()], capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["usage"]["completion_tokens"] == 5


# ---- What the upstream sees --------------------------------------------------

@pytest.fixture(scope="module")
def recording(module_dir):
    up = RecordingUpstream()
    extra = ('    api_key: upstream-secret-key\n'
             '    headers: {X-Team: platform}\n')
    g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{up.port}", upstream_extra=extra))
    yield up, g
    assert g.proc.stop() == 0
    up.close()


def test_client_authorization_not_forwarded_upstream_key_sent(recording):
    up, g = recording
    body = chat_body("rec-model")
    r = chat(g.port, body, {"Authorization": "Bearer client-key-must-not-leak", "x-api-key": "also-secret"})
    assert r.status == 200, r.body
    h = up.last()["headers"]
    auth = [v for k, v in h if k == "authorization"]
    assert auth == ["Bearer upstream-secret-key"], auth
    assert not any("client-key-must-not-leak" in v or "also-secret" in v for _, v in h), h
    assert ("x-team", "platform") in h


def test_request_forwarded_verbatim(recording):
    up, g = recording
    # Odd but valid JSON formatting must reach the upstream byte for byte.
    body = b'{ "model" : "rec-model",\n  "messages":[{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}],"temperature":0.25 }'
    r = chat(g.port, body, {"x-custom-thing": "kept"})
    assert r.status == 200, r.body
    rec = up.last()
    assert rec["method"] == "POST" and rec["path"] == "/v1/chat/completions"
    assert rec["body"] == body
    assert ("x-custom-thing", "kept") in rec["headers"]
    assert r.json()["choices"][0]["message"]["content"] == "alpha beta gamma delta "


def test_no_hop_by_hop_headers_forwarded(recording):
    up, g = recording
    r = chat(g.port, chat_body("rec-model"), {"Connection": "keep-alive, x-hop", "x-hop": "secret-hop",
                                              "Keep-Alive": "timeout=5", "TE": "trailers"})
    assert r.status == 200
    names = [k for k, _ in up.last()["headers"]]
    assert "x-hop" not in names and "keep-alive" not in names and "te" not in names, names
