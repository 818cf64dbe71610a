"""Two HTTP/2 clients for tests that need more control than helpers.http2:
H2Client, a well-behaved client on the `h2` library whose flow control a
test steers (streams it "stalls" get no WINDOW_UPDATE until ack()), and
RawH2, which writes frames byte by byte for what no well-behaved client
would send and reads whatever comes back without judging it."""
from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.events
import h2.exceptions
import h2.settings
import hpack

from .env import IO_TIMEOUT, SLACK
from .http1 import Raw, recv_some
from .http2 import _graceful_goaway_connection_class
from .messages import Stream, _parse_events, chat_body

# --------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

S_MAX_CONCURRENT_STREAMS = 0x3
S_INITIAL_WINDOW_SIZE = 0x4


def frame(ftype: int, flags: int = 0, sid: int = 0, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def settings_frame(values: dict | None = None, ack: bool = False) -> bytes:
    payload = b"".join(struct.pack(">HI", k, v) for k, v in (values or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def ping_frame(n: int, ack: bool = False) -> bytes:
    return frame(PING, ACK if ack else 0, 0, struct.pack(">Q", n))


def rst_frame(sid: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def request_fields(method: str = "POST", path: str = "/v1/chat/completions", extra: list | tuple = ()) -> list:
    return [(":method", method), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path), *extra]


@dataclass
class RawFrame:
    type: int
    flags: int
    sid: int
    payload: bytes
    t: float
    fields: list | None = None  # decoded header block of HEADERS (joined with its CONTINUATIONs)


class _Conn(Raw):
    """The socket plumbing both clients here share."""

    eof = False

    def _read(self, timeout: float, size: int) -> bytes | None:
        """What arrived within `timeout` (None: nothing yet); b"" (and eof) at EOF."""
        if self.eof:
            return b""
        d = recv_some(self.sock, timeout, self.timeout, size)
        if d == b"":
            self.eof = True
        return d


class RawH2(_Conn):
    """A raw h2c connection: sends exactly the bytes it is given and parses
    what comes back (HPACK blocks decoded so later ones still decode)."""

    def __init__(self, port: int, settings: dict | None = None, timeout: float = IO_TIMEOUT, preface: bool = True):
        super().__init__(port, timeout)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.frames: list[RawFrame] = []
        self.eof = False
        self.send_failed = False
        self._block: RawFrame | None = None
        self._block_bytes = b""
        self.next_sid = 1
        if preface:
            self.send(PREFACE + settings_frame(settings))

    # ---- sending
    def send(self, data: bytes) -> bool:
        """False (and send_failed) once the peer no longer takes bytes."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.send_failed = True
            return False

    def block(self, fields: list) -> bytes:
        return self.enc.encode(fields)

    def headers(self, sid: int, fields: list, end_stream: bool = False, end_headers: bool = True) -> bytes:
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, sid, self.block(fields))

    def new_sid(self) -> int:
        sid = self.next_sid
        self.next_sid += 2
        return sid

    # ---- receiving
    def _parse(self) -> None:
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
            f = RawFrame(ftype, flags, sid, payload, time.monotonic())
            if ftype in (HEADERS, CONTINUATION):
                frag = payload
                if ftype == HEADERS:
                    self._block = f
                    self._block_bytes = b""
                    pad = 0
                    if flags & 0x8:  # PADDED
                        pad = frag[0]
                        frag = frag[1:]
                    if flags & 0x20:  # PRIORITY
                        frag = frag[5:]
                    if pad:
                        frag = frag[:-pad]
                self._block_bytes += frag
                if flags & END_HEADERS and self._block is not None:
                    self._block.fields = [(k.decode() if isinstance(k, bytes) else k,
                                           v.decode() if isinstance(v, bytes) else v)
                                          for k, v in self.dec.decode(self._block_bytes, raw=True)]
                    self._block = None
            self.frames.append(f)

    def pump(self, timeout: float) -> bool:
        """Reads what arrives within `timeout`; False at EOF."""
        d = self._read(timeout, 1 << 16)
        if d is None:
            return True
        if not d:
            return False
        self.buf += d
        self._parse()
        return True

    def read_until(self, pred, timeout: float) -> bool:
        """Reads until pred(self) holds (True), EOF or timeout (False)."""
        deadline = time.monotonic() + timeout
        while not pred(self):
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(min(left, 0.2)):
                return bool(pred(self))
        return True

    def read_to_eof(self, timeout: float) -> bool:
        """Reads until the peer closes (True) or timeout (False)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.2))
        return True

    # ---- what came back
    def of_type(self, ftype: int, sid: int | None = None) -> list:
        return [f for f in self.frames if f.type == ftype and (sid is None or f.sid == sid)]

    @property
    def goaway(self) -> tuple | None:
        """(last_stream_id, error_code, debug) of the first GOAWAY."""
        g = self.of_type(GOAWAY)
        if not g:
            return None
        p = g[0].payload
        return (int.from_bytes(p[:4], "big") & 0x7FFFFFFF, int.from_bytes(p[4:8], "big"), p[8:])

    def rst_code(self, sid: int) -> int | None:
        r = self.of_type(RST_STREAM, sid)
        return int.from_bytes(r[0].payload[:4], "big") if r else None

    def status(self, sid: int) -> int | None:
        for f in self.of_type(HEADERS, sid):
            for k, v in f.fields or []:
                if k == ":status":
                    return int(v)
        return None

    def body(self, sid: int) -> bytes:
        return b"".join(f.payload for f in self.of_type(DATA, sid))

    def ended(self, sid: int) -> bool:
        return any(f.flags & END_STREAM for f in self.frames if f.sid == sid and f.type in (DATA, HEADERS))

    def got_settings(self) -> bool:
        return any(f.type == SETTINGS and not f.flags & ACK for f in self.frames)

    def server_settings(self) -> dict:
        out = {}
        for f in self.frames:
            if f.type == SETTINGS and not f.flags & ACK:
                for i in range(0, len(f.payload), 6):
                    k, v = struct.unpack(">HI", f.payload[i:i + 6])
                    out[k] = v
                return out
        return out

    def handshake(self, ack: bool = True) -> dict:
        """Waits for the server's SETTINGS (and its ACK of ours); ACKs theirs."""
        assert self.read_until(lambda c: c.got_settings() and any(
            f.type == SETTINGS and f.flags & ACK for f in c.frames), IO_TIMEOUT * SLACK), "no SETTINGS from the server"
        if ack:
            self.send(settings_frame(ack=True))
        return self.server_settings()


# --------------------------------------------------------------------------
# A well-behaved client on the h2 library
# --------------------------------------------------------------------------

@dataclass
class H2Resp:
    sid: int
    t0: float
    status: int | None = None
    headers: dict = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    pieces: list = field(default_factory=list)  # (t since t0, bytes)
    ended: bool = False
    reset: int | None = None  # RST_STREAM error code from the server
    t_end: float | None = None
    unacked: int = 0  # flow-controlled bytes not yet handed back
    window_updates: int = 0

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def json(self):
        return json.loads(bytes(self.data))

    def to_stream(self) -> Stream:
        """As a conftest Stream (for assert_full_stream)."""
        events: list = []
        buf = b""
        for t, piece in self.pieces:
            buf = _parse_events(buf + piece, t, events)
        sse = self.headers.get("content-type", "").startswith("text/event-stream")
        return Stream(self.status or 0, self.headers, events if sse else [], buf if sse else bytes(self.data),
                      self.ended and self.reset is None,
                      (self.t_end or time.monotonic()) - self.t0)


class H2Client(_Conn):
    """One h2c connection driven by the h2 library. Received data is handed
    back to the server (flow control) as it is read, except on the streams in
    `stalled`."""

    def __init__(self, port: int, initial_window: int | None = None, conn_window: int = 16 << 20,
                 timeout: float = IO_TIMEOUT):
        super().__init__(port, timeout)
        self.conn = _graceful_goaway_connection_class()(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        local = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                 h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20}
        if initial_window is not None:
            local[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = initial_window
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values=local)
        self.conn.initiate_connection()
        if conn_window > 65535:
            self.conn.increment_flow_control_window(conn_window - 65535)
        self.streams: dict[int, H2Resp] = {}
        self.stalled: set[int] = set()
        self.goaway: h2.events.ConnectionTerminated | None = None  # the first one
        self.goaway_t: float | None = None
        self.goaways: list = []  # all of them
        self.eof = False
        self.conn_window_updates = 0
        self.settings_seen = False
        self.flush()

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    # ---- requests
    def request(self, method: str = "POST", path: str = "/v1/chat/completions", headers: dict | None = None,
                body: bytes | None = None, end_stream: bool = True, content_length: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = request_fields(method, path)
        if body is not None:
            fields.append(("content-type", "application/json"))
            if content_length:
                fields.append(("content-length", str(len(body))))
        fields += list((headers or {}).items())
        self.streams[sid] = H2Resp(sid, time.monotonic())
        self.conn.send_headers(sid, fields, end_stream=body is None and end_stream)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end_stream=end_stream)
        return sid

    def chat(self, body: bytes | None = None, headers: dict | None = None, stream: bool = False, **kw) -> int:
        h = {"accept": "text/event-stream"} if stream else {}
        h.update(headers or {})
        return self.request(body=body if body is not None else chat_body(stream=stream or None), headers=h, **kw)

    def send_body(self, sid: int, data: bytes, end_stream: bool = True, timeout: float = IO_TIMEOUT * SLACK) -> int:
        """Sends as flow control allows, waiting for WINDOW_UPDATEs. Stops early
        (returning the bytes sent) if the server ends or resets the stream."""
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < len(data):
            r = self.streams[sid]
            if r.done or self.eof:
                return sent
            try:
                window = self.conn.local_flow_control_window(sid)
            except h2.exceptions.StreamClosedError:
                return sent
            n = min(window, self.conn.max_outbound_frame_size, len(data) - sent)
            if n <= 0:
                assert time.monotonic() < deadline, f"flow control window never reopened after {sent} bytes"
                self.pump(0.2)
                continue
            last = sent + n == len(data)
            try:
                self.conn.send_data(sid, data[sent:sent + n], end_stream=end_stream and last)
            except h2.exceptions.StreamClosedError:
                return sent
            sent += n
            self.flush()
        if not data and end_stream:
            self.conn.end_stream(sid)
            self.flush()
        return sent

    def reset(self, sid: int, code: int = CANCEL) -> None:
        self.conn.reset_stream(sid, code)
        self.flush()

    def ping(self, data: bytes = b"12345678") -> None:
        self.conn.ping(data)
        self.flush()

    def ack(self, sid: int) -> None:
        """Hands back everything read on a stalled stream and stops stalling it."""
        self.stalled.discard(sid)
        r = self.streams[sid]
        if r.unacked:
            self.conn.acknowledge_received_data(r.unacked, sid)
            r.unacked = 0
            self.flush()

    # ---- receiving
    def pump(self, timeout: float = 0.2) -> bool:
        """Reads and handles what arrives within `timeout`; False at EOF."""
        d = self._read(timeout, 1 << 18)
        if d is None:
            return True
        if not d:
            return False
        now = time.monotonic()
        for ev in self.conn.receive_data(d):
            self._handle(ev, now)
        try:
            self.flush()
        except OSError:
            pass
        return True

    def _handle(self, ev, now: float) -> None:
        r = self.streams.get(getattr(ev, "stream_id", None) or 0)
        if isinstance(ev, h2.events.ResponseReceived):
            hs = {k: v for k, v in ev.headers}
            r.status = int(hs.pop(":status"))
            r.headers = hs
        elif isinstance(ev, h2.events.DataReceived):
            r.data += ev.data
            r.pieces.append((now - r.t0, ev.data))
            if ev.stream_id in self.stalled:
                r.unacked += ev.flow_controlled_length
            elif ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            r.ended = True
            r.t_end = now
        elif isinstance(ev, h2.events.StreamReset):
            if r is not None:
                r.reset = ev.error_code
                r.t_end = now
        elif isinstance(ev, h2.events.WindowUpdated):
            if ev.stream_id == 0:
                self.conn_window_updates += 1
            elif r is not None:
                r.window_updates += 1
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaways.append(ev)
            if self.goaway is None:
                self.goaway = ev
                self.goaway_t = now

    def wait(self, pred, timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out after {timeout:.1f}s waiting for {what}"
            if not self.pump(min(left, 0.2)):
                assert pred(), f"connection closed while waiting for {what}"
                return

    def response(self, sid: int, timeout: float = IO_TIMEOUT * SLACK) -> H2Resp:
        self.wait(lambda: self.streams[sid].done, timeout, f"stream {sid} to end")
        return self.streams[sid]
