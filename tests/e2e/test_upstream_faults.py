"""An upstream is untrusted input too: broken heads, broken framing, garbage
SSE and oversized events each get a typed error, and the gateway keeps serving."""
import json
import time

import pytest

from conftest import (BackgroundStream, Raw, ScriptedUpstream, assert_error_body, assert_full_stream, chat,
                      chat_body, gateway_config, raw_chat, sse_chunk, sse_response, start_gateway, stream_chat)

OK_JSON = json.dumps({"id": "x", "object": "chat.completion", "model": "up",
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"},
                                   "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()

SCRIPTS = {
    "bad_status_line": [b"HTTP/1.1 abc OK\r\n\r\n"],
    "not_http": [b"SSH-2.0-OpenSSH_9.2\r\n"],
    "close_no_response": [],
    "huge_headers": [b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(200))
                     + b"content-length: 2\r\n\r\n{}"],
    "interim_100_then_ok": [b"HTTP/1.1 100 Continue\r\n\r\n",
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                            b"content-length: " + str(len(OK_JSON)).encode() + b"\r\n\r\n" + OK_JSON],
    "close_delimited_json": [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
                             OK_JSON[:20], OK_JSON[20:]],
    # Keep-alive framing, then the upstream goes away without answering the
    # next request the gateway sends on this connection: without reading it
    # (its close then sends RST), or after reading it (an orderly FIN).
    "keepalive_then_reset": [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(OK_JSON)).encode() + b"\r\n\r\n" + OK_JSON, 0.3],
    "keepalive_then_fin": [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                           + str(len(OK_JSON)).encode() + b"\r\n\r\n" + OK_JSON, 0.3, "drain"],
    "truncated_json": [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                       + str(len(OK_JSON)).encode() + b"\r\n\r\n" + OK_JSON[:25]],
    "error_503": [b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                  b"content-length: 80\r\n\r\n"
                  + json.dumps({"error": {"message": "overloaded", "type": "x", "code": "busy"}}).encode().ljust(80)],
    "garbage_sse": sse_response(b"data: {not json at all\n\n", b": a comment line\n\n",
                                b"event: ping\ndata: {}\n\n", sse_chunk("hello "),
                                b"data: \xff\xfe invalid utf8\n\n", sse_chunk("world"),
                                sse_chunk(finish="stop"), b"data: [DONE]\n\n"),
    "split_events": sse_response(*(lambda b: [b[i:i + 3] for i in range(0, len(b), 3)])(
        sse_chunk("one ") + sse_chunk("two ") + sse_chunk(finish="stop") + b"data: [DONE]\n\n")),
    "crlf_events": sse_response(sse_chunk("a ").replace(b"\n", b"\r\n"), sse_chunk("b ").replace(b"\n", b"\r\n"),
                                b"data: [DONE]\r\n\r\n"),
    "no_final_blank_line": sse_response(sse_chunk("x "), b"data: [DONE]", chunked=False),
    "bad_chunk_mid_stream": [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                             b"%x\r\n%s\r\n" % (len(sse_chunk("ok ")), sse_chunk("ok ")),
                             b"zz\r\ngarbage\r\n"],
    "oversized_event": sse_response(sse_chunk("first "), b"data: " + b"A" * (3 << 20)),
}


@pytest.fixture(scope="module")
def up():
    u = ScriptedUpstream(SCRIPTS)
    yield u
    u.close()


@pytest.fixture(scope="module")
def gw(module_dir, up, mock):
    models = ('  - {name: healthy, upstream: healthy}\n'
              '  - {name: "*", upstream: m}\n')
    extra = (f'  - name: healthy\n'
             f'    endpoints: ["http://127.0.0.1:{mock.port}"]\n')
    g = start_gateway(module_dir, gateway_config(endpoint=f"http://127.0.0.1:{up.port}", upstream_extra=extra,
                                                 models=models))
    yield g
    assert g.proc.stop() == 0, g.proc.output()


def _bg(gw):
    return BackgroundStream(gw.port, tokens=30, itl_ms=20, model="healthy")


@pytest.mark.parametrize("script", ["bad_status_line", "not_http", "close_no_response", "huge_headers"])
def test_broken_upstream_head_is_502(gw, script):
    with _bg(gw):
        before = gw.metrics()
        for stream in (False, True):
            r = chat(gw.port, chat_body(stream=stream), {"x-script": script})
            assert_error_body(r, 502, "upstream_unavailable")
        after = gw.metrics()
        assert (after.sum("sluice_upstream_errors_total", upstream="m")
                - before.sum("sluice_upstream_errors_total", upstream="m")) >= 2


def test_interim_100_from_upstream_is_skipped(gw):
    r = chat(gw.port, chat_body(), {"x-script": "interim_100_then_ok"})
    assert r.status == 200, r.body
    assert r.body == OK_JSON


def test_close_delimited_upstream_body_forwarded_whole(gw):
    r = chat(gw.port, chat_body(), {"x-script": "close_delimited_json"})
    assert r.status == 200
    assert r.body == OK_JSON


def test_truncated_upstream_body_is_not_passed_off_as_complete(gw):
    with _bg(gw):
        with Raw(gw.port) as c:
            c.send(raw_chat(chat_body(), [("x-script", "truncated_json")]))
            try:
                r = c.read_response()
            except EOFError:
                return  # cut off: the client can tell the body is incomplete
            raise AssertionError(f"truncated upstream body delivered as a complete {r.status} answer: {r.body!r}")


def test_upstream_error_status_and_body_passed_through(gw):
    r = chat(gw.port, chat_body(), {"x-script": "error_503"})
    assert r.status == 503
    assert r.json()["error"]["code"] == "busy"


def test_garbage_sse_forwarded_without_harm(gw):
    with _bg(gw):
        s = stream_chat(gw.port, chat_body(stream=True), {"x-script": "garbage_sse"})
        assert s.status == 200 and s.complete and s.done
        datas = [e.data for e in s.events]
        assert "{not json at all" in datas  # forwarded as sent: the gateway is not a validator
        contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in datas
                    if d.startswith('{"id"')]
        assert "hello " in contents and "world" in contents


def test_sse_split_byte_by_byte_is_reassembled(gw):
    s = stream_chat(gw.port, chat_body(stream=True), {"x-script": "split_events"})
    assert s.status == 200 and s.done
    assert s.content() == "one two "


def test_sse_with_crlf_line_endings(gw):
    s = stream_chat(gw.port, chat_body(stream=True), {"x-script": "crlf_events"})
    assert s.status == 200 and s.done
    assert s.content() == "a b "


def test_sse_without_final_blank_line_tail_is_kept(gw):
    s = stream_chat(gw.port, chat_body(stream=True), {"x-script": "no_final_blank_line"})
    assert s.status == 200 and s.complete
    assert s.content() == "x "
    assert s.body.strip() == b"data: [DONE]"


def test_bad_chunk_framing_mid_stream_ends_with_error_event(gw):
    with _bg(gw):
        s = stream_chat(gw.port, chat_body(stream=True), {"x-script": "bad_chunk_mid_stream"})
        assert s.status == 200 and s.complete
        assert s.content() == "ok "
        err = s.events[-1].json()["error"]
        assert err["code"] == "upstream_reset", err


def test_oversized_sse_event_ends_with_error_event(gw):
    with _bg(gw):
        s = stream_chat(gw.port, chat_body(stream=True), {"x-script": "oversized_event"}, timeout=15)
        assert s.status == 200 and s.complete
        assert s.content() == "first "
        assert not s.done
        err = s.events[-1].json()["error"]
        assert err["code"] and err["message"]
        # The 3 MiB event was not passed on.
        assert all(len(e.data) < 1 << 20 for e in s.events)


def test_gateway_healthy_after_hostile_upstream(gw):
    s = stream_chat(gw.port, chat_body("healthy", stream=True), {"x-mock-tokens": "5"})
    assert_full_stream(s, 5)


def test_pooled_connection_closed_orderly_is_retried(gw):
    # The upstream framed its answer for keep-alive, so the gateway pools the
    # connection and reuses it for the next request at once; the upstream then
    # closes it with a FIN and no response byte (a keep-alive race every real
    # upstream has). Nothing was answered, so the gateway retries once on a
    # fresh connection and the client never sees the race.
    before = gw.metrics()
    for _ in range(3):
        r1 = chat(gw.port, chat_body(), {"x-script": "keepalive_then_fin"})
        assert r1.status == 200
        r2 = chat(gw.port, chat_body(), {"x-script": "keepalive_then_fin"})
        assert r2.status == 200, r2.body
        assert r2.body == OK_JSON
        time.sleep(0.4)  # both scripted connections are gone
    after = gw.metrics()
    assert (after.sum("sluice_upstream_errors_total", upstream="m")
            == before.sum("sluice_upstream_errors_total", upstream="m")), "a stale connection is not an upstream error"


def test_pooled_connection_reset_is_not_retried(gw):
    # The same race ending in a reset is not retried (the upstream may have
    # started generating): a typed 502, counted, and the next request works.
    before = gw.metrics()
    r1 = chat(gw.port, chat_body(), {"x-script": "keepalive_then_reset"})
    assert r1.status == 200
    r2 = chat(gw.port, chat_body(), {"x-script": "keepalive_then_reset"})
    assert_error_body(r2, 502, "upstream_unavailable")
    after = gw.metrics()
    assert (after.sum("sluice_upstream_errors_total", upstream="m")
            - before.sum("sluice_upstream_errors_total", upstream="m")) == 1
    time.sleep(0.4)
    assert chat(gw.port, chat_body(), {"x-script": "close_delimited_json"}).status == 200
