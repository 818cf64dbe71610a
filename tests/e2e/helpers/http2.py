"""A small synchronous HTTP/2 client (H2Client) built on the `h2` library."""
from __future__ import annotations

import socket
import ssl
import time

from .env import IO_TIMEOUT
from .http1 import tcp_connect
from .messages import Response, Stream, _parse_events, chat_body
from .tls import Target


class H2Error(Exception):
    pass


class _H2Stream:
    def __init__(self, sid: int, t0: float, on_event=None, stop_after: int | None = None):
        self.sid = sid
        self.t0 = t0
        self.on_event = on_event
        self.stop_after = stop_after
        self.status: int | None = None
        self.header_list: list = []
        self.headers: dict = {}
        self.trailers: list = []
        self.data = bytearray()
        self.sse_buf = b""
        self.events: list = []
        self.ended = False          # END_STREAM received
        self.reset_code: int | None = None   # RST_STREAM received (or sent by us)
        self.conn_lost = False      # the connection ended first
        self.end_t: float | None = None

    @property
    def finished(self) -> bool:
        return self.ended or self.reset_code is not None or self.conn_lost

    @property
    def sse(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")


_H2_CONN_CLASS = []


def _graceful_goaway_connection_class():
    """h2's H2Connection, except that a GOAWAY with NO_ERROR leaves the
    connection open for the streams it lets finish (RFC 9113 6.8). Stock h2
    closes its state machine on any GOAWAY and then refuses their frames.
    start() never opens a stream after a GOAWAY."""
    if not _H2_CONN_CLASS:
        import h2.connection

        class GracefulGoawayConnection(h2.connection.H2Connection):
            def _receive_goaway_frame(self, frame):
                state = self.state_machine.state
                frames, events = super()._receive_goaway_frame(frame)
                if frame.error_code == 0 and state == h2.connection.ConnectionState.CLIENT_OPEN:
                    self.state_machine.state = state
                return frames, events

        _H2_CONN_CLASS.append(GracefulGoawayConnection)
    return _H2_CONN_CLASS[0]


class H2Client:
    """A synchronous HTTP/2 client over one connection (h2c with prior
    knowledge, or TLS with ALPN h2), built on the `h2` library. Several
    streams can be open at once: start() sends a request and returns its
    stream id; response()/stream()/collect() read until streams end. Events
    are stamped with their arrival time (seconds since the request was sent)."""

    def __init__(self, target: "Target | int", *, timeout: float = IO_TIMEOUT, settings: dict | None = None):
        import h2.config
        import h2.connection
        if isinstance(target, int):
            target = Target(target, "h2c")
        assert target.is_h2, f"{target} is not HTTP/2"
        self.target = target
        self.timeout = timeout
        self.streams: dict = {}
        self.goaway: object | None = None   # the ConnectionTerminated event, if any
        self.closed = False                 # the connection is over (peer closed, or we dropped it)
        self.protocol_error: Exception | None = None  # what the h2 library refused in the peer's frames
        self._corked = False
        if target.is_tls:
            self.sock = target.connect_tls(timeout)
            alpn = self.sock.selected_alpn_protocol()
            if alpn != "h2":
                self.sock.close()
                raise H2Error(f"ALPN selected {alpn!r}, not h2")
        else:
            self.sock = tcp_connect(target.host, target.port, timeout)
        self.conn = _graceful_goaway_connection_class()(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self._flush()

    # -- plumbing
    def _flush(self) -> None:
        if self._corked:
            return
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def cork(self):
        """Context manager: frames queued inside go out together in one write
        when it ends (so the server reads them at once). Only for frames that
        need no answer first (small bodies)."""
        client = self

        class _Cork:
            def __enter__(self):
                client._corked = True
                return client

            def __exit__(self, *exc):
                client._corked = False
                client._flush()
                return False

        return _Cork()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Polite close: GOAWAY, then the socket."""
        if self.sock is None:
            return
        try:
            if not self.closed:
                self.conn.close_connection()
                self._flush()
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.abort()

    def abort(self) -> None:
        """Drop the connection without a word (a client that goes away)."""
        if self.sock is None:
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None
        self.closed = True
        for st in self.streams.values():
            if not st.finished:
                st.conn_lost = True

    def _pump(self, deadline: float) -> None:
        """Reads once from the socket (waiting until `deadline`) and dispatches the events."""
        import h2.events as ev
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("HTTP/2 response timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            data = b""
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)
        if not data:
            self.closed = True
            for st in self.streams.values():
                if not st.finished:
                    st.conn_lost = True
            return
        now = time.monotonic()
        import h2.exceptions
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self.protocol_error = e
            self.abort()
            return
        for e in events:
            st = self.streams.get(getattr(e, "stream_id", None) or 0)
            if isinstance(e, ev.ResponseReceived) and st:
                st.header_list = [(k, v) for k, v in e.headers if not k.startswith(":")]
                st.headers = {k.lower(): v for k, v in st.header_list}
                st.status = int(dict(e.headers)[":status"])
            elif isinstance(e, ev.TrailersReceived) and st:
                st.trailers = list(e.headers)
            elif isinstance(e, ev.DataReceived):
                if e.flow_controlled_length:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if st:
                    st.data += e.data
                    if st.sse:
                        n = len(st.events)
                        st.sse_buf = _parse_events(st.sse_buf + e.data, now - st.t0, st.events)
                        for x in st.events[n:]:
                            if st.on_event:
                                st.on_event(x)
            elif isinstance(e, ev.StreamEnded) and st:
                st.ended = True
                st.end_t = now
            elif isinstance(e, ev.StreamReset) and st:
                if not st.ended:
                    st.reset_code = int(e.error_code)
                st.end_t = now
            elif isinstance(e, ev.ConnectionTerminated):
                self.goaway = e
                for sid, s in self.streams.items():
                    if not s.finished and (e.last_stream_id is None or sid > e.last_stream_id
                                           or e.error_code != 0):
                        s.conn_lost = True
        if self.sock is not None:
            try:
                self._flush()
            except OSError:
                pass

    def closed_by_peer_within(self, seconds: float) -> bool:
        """Reads (and handles) frames until the peer closes the connection; False if it has not within `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while not self.closed:
                self._pump(deadline)
        except socket.timeout:
            return False
        return True

    def _wait(self, pred, timeout: float | None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            if self.closed:
                for st in self.streams.values():
                    if not st.finished:
                        st.conn_lost = True
                return
            self._pump(deadline)

    # -- requests
    def start(self, method: str, path: str, body: bytes | None = None, headers: dict | list | None = None, *,
              on_event=None, stop_after: int | None = None, content_length: bool = True,
              timeout: float | None = None) -> int:
        """Sends a request (head, then the body within flow control) and returns its stream id.
        Like request(): content-type application/json when there is a body."""
        assert not self.closed, "the connection is closed"
        assert self.goaway is None, f"the server sent GOAWAY: {self.goaway}"
        sid = self.conn.get_next_available_stream_id()
        t = self.target
        default_port = 443 if t.is_tls else 80
        authority = t.server_hostname or t.host
        if t.port != default_port:
            authority += f":{t.port}"
        hl = [(":method", method), (":scheme", "https" if t.is_tls else "http"), (":authority", authority),
              (":path", path)]
        extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in extra}
        if body is not None and "content-type" not in names:
            hl.append(("content-type", "application/json"))
        if body is not None and content_length and "content-length" not in names:
            hl.append(("content-length", str(len(body))))
        hl += [(k.lower(), v) for k, v in extra]
        st = _H2Stream(sid, time.monotonic(), on_event, stop_after)
        self.streams[sid] = st
        self.conn.send_headers(sid, hl, end_stream=body is None)
        self._flush()
        if body is not None:
            self._send_body(st, body, timeout)
        return sid

    def _send_body(self, st: _H2Stream, body: bytes, timeout: float | None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        view = memoryview(body)
        off = 0
        while True:
            if st.finished or self.closed:
                break  # the server answered (or gave up) before taking it all
            if off == len(body):
                self.conn.send_data(st.sid, b"", end_stream=True)
                self._flush()
                return
            win = min(self.conn.local_flow_control_window(st.sid), self.conn.max_outbound_frame_size)
            if win <= 0:
                self._pump(deadline)
                continue
            n = min(win, len(body) - off)
            self.conn.send_data(st.sid, view[off:off + n].tobytes(), end_stream=off + n == len(body))
            off += n
            self._flush()
            if off == len(body):
                return
        # Stopped early: if the stream is still open on our side, end it.
        if not self.closed and st.reset_code is None:
            try:
                self.conn.reset_stream(st.sid, 0)  # NO_ERROR: we just stop sending
                self._flush()
            except Exception:  # noqa: BLE001 - already closed
                pass

    def reset(self, sid: int, code: int = 0x8) -> None:
        """RST_STREAM (CANCEL by default): this stream goes away, the connection stays."""
        self.conn.reset_stream(sid, code)
        self._flush()
        st = self.streams[sid]
        if not st.finished:
            st.reset_code = code

    def _stream_obj(self, sid: int) -> Stream:
        st = self.streams[sid]
        complete = st.ended and st.reset_code is None and not st.conn_lost
        body = st.sse_buf if st.sse else bytes(st.data)
        end = st.end_t or time.monotonic()
        return Stream(st.status or 0, st.headers, st.events, body, complete, end - st.t0)

    def response(self, sid: int, timeout: float | None = None) -> Response:
        """Waits for the whole response of stream `sid`."""
        st = self.streams[sid]
        self._wait(lambda: st.finished, timeout)
        if st.status is None:
            raise H2Error(f"stream {sid} ended without a response (reset={st.reset_code}, "
                          f"conn_lost={st.conn_lost}, goaway={self.goaway})")
        return Response(st.status, st.headers, bytes(st.data), st.header_list)

    def stream(self, sid: int, timeout: float | None = None, abort: str = "reset") -> Stream:
        """Reads stream `sid` as SSE until it ends. With stop_after=N given to
        start(), stops after N events: abort="reset" sends RST_STREAM(CANCEL)
        (the connection stays usable), "close" drops the whole connection."""
        st = self.streams[sid]

        def stop_now():
            return st.stop_after is not None and len(st.events) >= st.stop_after

        self._wait(lambda: st.finished or (st.status is not None and not st.sse) or stop_now(), timeout)
        if st.status is not None and not st.sse:
            self._wait(lambda: st.finished, timeout)
        elif stop_now() and not st.finished:
            st.end_t = time.monotonic()
            if abort == "close":
                self.abort()
            else:
                self.reset(sid)
            return self._stream_obj(sid)
        if st.status is None:
            raise H2Error(f"stream {sid} ended without a response (reset={st.reset_code}, "
                          f"conn_lost={st.conn_lost}, goaway={self.goaway})")
        return self._stream_obj(sid)

    def collect(self, sids: list, timeout: float | None = None) -> list:
        """Waits for all these streams to end; their Streams, in order."""
        self._wait(lambda: all(self.streams[s].finished for s in sids), timeout)
        return [self._stream_obj(s) for s in sids]

    # Same call shapes as the module helpers, on this connection.
    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float | None = None) -> Response:
        return self.response(self.start(method, path, body, headers, timeout=timeout), timeout)

    def chat(self, body: bytes | None = None, headers: dict | None = None, **kw) -> Response:
        return self.request("POST", "/v1/chat/completions", body if body is not None else chat_body(), headers, **kw)

    def stream_chat(self, body: bytes, headers: dict | None = None, timeout: float | None = None,
                    path: str = "/v1/chat/completions", on_event=None, stop_after: int | None = None,
                    abort: str = "reset") -> Stream:
        h = {"accept": "text/event-stream"}
        h.update(headers or {})
        sid = self.start("POST", path, body, h, on_event=on_event, stop_after=stop_after, timeout=timeout)
        return self.stream(sid, timeout, abort=abort)
