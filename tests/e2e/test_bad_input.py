"""Malformed and hostile requests get their precise status, and never disturb a
healthy stream running at the same time on another connection."""
import json
import threading
import time

import pytest

from conftest import (SLACK, BackgroundStream, Raw, chat, chat_body, gateway_config, http_head,
                      raw_chat, start_gateway)


@pytest.fixture(scope="module")
def gw(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


def _json_error(r, status, code=None):
    assert r.status == status, (r.status, r.body[:300])
    doc = json.loads(r.body)
    err = doc["error"]
    assert err["message"] and err["type"] and "code" in err
    if code:
        assert err["code"] == code, err
    return err


def _still_serves(gw):
    r = chat(gw.port, chat_body(), {"x-mock-tokens": "2"})
    assert r.status == 200, r.body


# ---- Bad JSON bodies (complete, well-framed HTTP) ----------------------------

BAD_BODIES = {
    "invalid_json": b'{"model": "gpt-x", "messages": [',
    "not_json_at_all": b"hello world",
    "json_array": b'[{"model": "gpt-x"}]',
    "stream_wrong_type": b'{"model":"gpt-x","stream":"yes","messages":[{"role":"user","content":"hi"}]}',
    "model_wrong_type": b'{"model":42,"messages":[{"role":"user","content":"hi"}]}',
    "model_missing": b'{"messages":[{"role":"user","content":"hi"}]}',
    "empty_body": b"",
    "invalid_utf8": b'{"model":"gpt-x","messages":[{"role":"user","content":"\xff\xfe"}]}',
    "trailing_garbage": b'{"model":"gpt-x","messages":[]} trailing',
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_json_body_is_400(gw, case):
    with BackgroundStream(gw.port):
        with Raw(gw.port) as c:
            c.send(raw_chat(BAD_BODIES[case]))
            r = c.read_response()
            _json_error(r, 400)
            # A well-framed bad body does not cost the client its connection.
            c.send(raw_chat(chat_body(), [("x-mock-tokens", "1")]))
            assert c.read_response().status == 200


def test_body_over_limit_content_length_is_413(gw):
    with BackgroundStream(gw.port):
        with Raw(gw.port) as c:
            c.send(http_head("POST", "/v1/chat/completions",
                             [("Content-Type", "application/json"), ("Content-Length", str(2 * 1024 * 1024))]))
            c.send(b'{"model":"gpt-x","messages":[{"role":"user","content":"' + b"a" * 65536)
            r = c.read_response()
            _json_error(r, 413)
            # The rest of the body was never read: the connection cannot be reused.
            assert c.closed_by_peer(3.0 * SLACK)
    _still_serves(gw)


def test_body_over_limit_chunked_is_413(gw):
    with BackgroundStream(gw.port):
        with Raw(gw.port) as c:
            c.send(http_head("POST", "/v1/chat/completions",
                             [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]))
            piece = b"a" * 65536
            chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            errors = []

            def pump():
                try:
                    first = b'{"model":"gpt-x","messages":[{"role":"user","content":"'
                    c.send(f"{len(first):x}\r\n".encode() + first + b"\r\n")
                    for _ in range(24):  # 1.5 MiB > 1 MiB
                        c.send(chunk)
                    c.send(b"0\r\n\r\n")
                except OSError as e:  # the gateway may stop reading and close: fine
                    errors.append(e)

            t = threading.Thread(target=pump, daemon=True)
            t.start()
            r = c.read_response()
            _json_error(r, 413)
            t.join(5)
    _still_serves(gw)


def test_body_just_under_limit_is_accepted(gw):
    # ~1 MiB minus a little: still within max_body_bytes.
    filler = "w " * ((1024 * 1024 - 200) // 2)
    body = chat_body(content=filler)
    assert len(body) < 1024 * 1024
    r = chat(gw.port, body, {"x-mock-tokens": "1"})
    assert r.status == 200, r.body[:200]


# ---- Malformed HTTP framing: error status, then the connection is closed ------

def _expect_status_and_close(gw, wire: bytes, status: int, code: str | None = None):
    with BackgroundStream(gw.port):
        with Raw(gw.port) as c:
            c.send(wire)
            r = c.read_response()
            assert r.status == status, (r.status, r.body[:200])
            if r.body:
                _json_error(r, status, code)
            assert c.closed_by_peer(2.0 * SLACK), "connection left open after a framing error"
    _still_serves(gw)


BODY = chat_body()
CL = str(len(BODY))

FRAMING = {
    "duplicate_content_length_differing": (
        http_head("POST", "/v1/chat/completions", [("Content-Length", CL), ("Content-Length", str(len(BODY) + 1))])
        + BODY, 400),
    "duplicate_content_length_same": (
        http_head("POST", "/v1/chat/completions", [("Content-Length", CL), ("Content-Length", CL)]) + BODY, 400),
    "content_length_and_transfer_encoding": (
        http_head("POST", "/v1/chat/completions", [("Content-Length", CL), ("Transfer-Encoding", "chunked")])
        + f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n", 400),
    "content_length_not_a_number": (
        http_head("POST", "/v1/chat/completions", [("Content-Length", "12abc")]) + BODY, 400),
    "content_length_negative": (
        http_head("POST", "/v1/chat/completions", [("Content-Length", "-1")]) + BODY, 400),
    "obs_fold": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n  two\r\n"
        b"Content-Length: " + CL.encode() + b"\r\n\r\n" + BODY, 400),
    "nul_in_header_value": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Evil: a\x00b\r\n"
        b"Content-Length: " + CL.encode() + b"\r\n\r\n" + BODY, 400),
    "space_before_colon": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length : " + CL.encode() + b"\r\n\r\n" + BODY,
        400),
    "header_without_colon": (
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    "bad_request_line_garbage": (b"GARBAGE\r\n\r\n", 400),
    "bad_request_line_extra_space": (b"GET  /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad_request_line_no_version": (b"GET /v1/models\r\nHost: x\r\n\r\n", 400),
    "bad_request_line_lowercase_version": (b"GET /v1/models http/1.1\r\nHost: x\r\n\r\n", 400),
    "control_char_in_target": (b"GET /v1/mo\x01dels HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "missing_host_http11": (b"GET /v1/models HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "duplicate_host": (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    "bad_chunk_size": (
        http_head("POST", "/v1/chat/completions", [("Transfer-Encoding", "chunked")]) + b"zz\r\nabc\r\n0\r\n\r\n",
        400),
    "http_1_2": (b"GET /v1/models HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    "http_2_0_in_h1": (b"GET /v1/models HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "unknown_transfer_encoding": (
        http_head("POST", "/v1/chat/completions", [("Transfer-Encoding", "gzip-x")]) + b"0\r\n\r\n", 501),
    "oversized_header_block": (
        http_head("GET", "/v1/models", [("X-Big", "b" * 9000)]), 431),
    "oversized_many_headers": (
        http_head("GET", "/v1/models", [(f"X-H{i}", "v" * 100) for i in range(100)]), 431),
}


@pytest.mark.parametrize("case", sorted(FRAMING))
def test_malformed_http(gw, case):
    wire, status = FRAMING[case]
    _expect_status_and_close(gw, wire, status)


def test_oversized_single_line_without_end(gw):
    # A head that never ends but keeps growing past max_header_bytes is cut off
    # with 431 as soon as the limit is crossed, without waiting for the timeout.
    with BackgroundStream(gw.port):
        with Raw(gw.port) as c:
            t0 = time.monotonic()
            c.send(b"GET /v1/models HTTP/1.1\r\nX-Long: " + b"a" * 20000)
            r = c.read_response()
            assert r.status == 431
            assert time.monotonic() - t0 < 1.0 * SLACK
            assert c.closed_by_peer(2.0 * SLACK)
    _still_serves(gw)


def test_header_timeout_disconnects_slow_client(gw):
    # server.header_timeout is 2 s.
    with BackgroundStream(gw.port, tokens=150, itl_ms=20):
        with Raw(gw.port) as c:
            t0 = time.monotonic()
            c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
            time.sleep(0.5)
            c.send(b"ngth: 10\r\n")  # trickling bytes must not extend the deadline
            closed = c.closed_by_peer(5.0 * SLACK)
            took = time.monotonic() - t0
            assert closed, "slow client was never disconnected"
            assert 1.8 <= took <= 2.0 + 1.5 * SLACK, took
            if c.buf:  # an optional 408 before closing
                assert c.buf.startswith(b"HTTP/1.1 408"), c.buf[:100]
    _still_serves(gw)


def test_idle_connection_with_partial_body_is_dropped(gw):
    # Head complete, body never finishes: the connection must not be held forever.
    with Raw(gw.port) as c:
        c.send(http_head("POST", "/v1/chat/completions", [("Content-Length", "100")]) + b'{"model":')
        t0 = time.monotonic()
        closed = c.closed_by_peer(6.0 * SLACK)
        assert closed, "a request whose body never arrives was kept open"
        # The body read deadline is server.header_timeout (2 s).
        assert 1.8 <= time.monotonic() - t0 <= 2.0 + 1.5 * SLACK
        if c.buf:
            assert c.buf.startswith(b"HTTP/1.1 408") or c.buf.startswith(b"HTTP/1.1 400"), c.buf[:100]
    _still_serves(gw)


def test_many_bad_connections_at_once(gw):
    # A burst of garbage from many connections while a stream runs.
    with BackgroundStream(gw.port, tokens=40, itl_ms=20):
        conns = [Raw(gw.port) for _ in range(30)]
        try:
            for i, c in enumerate(conns):
                c.send([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                        b"\r\n\r\n\r\n",
                        b"GET / HTTP/1.1\r\nHo\x00st: x\r\n\r\n"][i % 4])
            for c in conns:
                assert c.closed_by_peer(3.0 * SLACK)
        finally:
            for c in conns:
                c.close()
    _still_serves(gw)
