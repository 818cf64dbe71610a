"""Requests and answers whatever the protocol: chat bodies, Response, Stream and its
server-sent events, and the assertions on them."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


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
