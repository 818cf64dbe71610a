"""Start-up, configuration errors, SIGTERM drain."""
import signal
import socket
import subprocess
import threading
import time

from conftest import (BIN_DIR, SLACK, Raw, assert_full_stream, chat, chat_body, gateway_config, raw_chat, request,
                      start_gateway, start_mock, stream_chat)


def _refused(port: int) -> bool:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except (ConnectionRefusedError, socket.timeout, OSError):
        return True
    # Accepted by the kernel: make sure nobody serves it either.
    try:
        s.settimeout(0.5)
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        d = s.recv(100)
        return not d.startswith(b"HTTP/1.1 200")
    except OSError:
        return True
    finally:
        s.close()


def test_sigterm_drains_in_flight_stream_and_exits_zero(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port))
    done = {}
    got_first = threading.Event()

    def run():
        done["s"] = stream_chat(g.port, chat_body(stream=True), {"x-mock-itl-ms": "50", "x-mock-tokens": "20"},
                                on_event=lambda e: got_first.set())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert got_first.wait(5 * SLACK)
    t_sig = time.monotonic()
    g.proc.signal(signal.SIGTERM)
    # New connections are refused while the old stream goes on.
    deadline = time.monotonic() + 1.0 * SLACK
    while not _refused(g.port):
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.05)
    assert t.is_alive(), "the stream ended too early"
    t.join(10)
    s = done["s"]
    assert_full_stream(s, 20)
    assert s.events[-1].t >= 0.9
    rc = g.proc.wait(5 * SLACK)
    assert rc == 0, (rc, g.proc.output())
    assert time.monotonic() - t_sig < 3 * SLACK
    g.proc.stop()


def test_sigterm_idle_gateway_exits_promptly(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, server={"drain_timeout": "20s", "idle_timeout": "20s"}))
    assert chat(g.port, chat_body(), {"x-mock-tokens": "1"}).status == 200
    # An idle keep-alive connection must not hold up the shutdown.
    c = Raw(g.port)
    try:
        c.send(raw_chat(chat_body(), [("x-mock-tokens", "1")]))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        g.proc.signal(signal.SIGTERM)
        rc = g.proc.wait(3 * SLACK)
        assert rc == 0, (rc, time.monotonic() - t0, g.proc.output())
        assert c.closed_by_peer(1.0)
    finally:
        c.close()
        g.proc.stop()


def test_drain_timeout_bounds_shutdown(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, server={"drain_timeout": "1s"}))
    got_first = threading.Event()
    done = {}

    def run():
        done["s"] = stream_chat(g.port, chat_body(stream=True), {"x-mock-itl-ms": "50", "x-mock-tokens": "200"},
                                on_event=lambda e: got_first.set())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert got_first.wait(5 * SLACK)
    t0 = time.monotonic()
    g.proc.signal(signal.SIGTERM)
    rc = g.proc.wait(6 * SLACK)
    took = time.monotonic() - t0
    assert rc == 0, (rc, g.proc.output())
    assert 0.9 <= took < 1.0 + 2.0 * SLACK, took
    t.join(5)
    s = done["s"]
    assert not s.done and len(s.content_events()) < 200, "a 10 s stream cannot have completed"
    g.proc.stop()


def test_request_on_kept_alive_connection_during_drain(module_dir, mock):
    # A client that already holds a connection and sends a new request after
    # SIGTERM gets an answer (served or 503), never a hang.
    g = start_gateway(module_dir, gateway_config(mock.port))
    got_first = threading.Event()
    t = threading.Thread(target=lambda: stream_chat(g.port, chat_body(stream=True),
                                                    {"x-mock-itl-ms": "50", "x-mock-tokens": "30"},
                                                    on_event=lambda e: got_first.set()), daemon=True)
    c = Raw(g.port)
    try:
        c.send(raw_chat(chat_body(), [("x-mock-tokens", "1")]))
        assert c.read_response().status == 200
        t.start()
        assert got_first.wait(5 * SLACK)
        g.proc.signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            c.send(raw_chat(chat_body(), [("x-mock-tokens", "1")]))
            try:
                r = c.read_response()
                assert r.status in (200, 503), r.status
                if r.status == 503:
                    assert r.headers.get("connection") == "close"
            except EOFError:
                pass  # closed between requests: also fine
        except OSError:
            pass
        t.join(10)
        assert g.proc.wait(5 * SLACK) == 0
    finally:
        c.close()
        g.proc.stop()


def test_invalid_config_fails_with_position(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("server:\n  listen: \"127.0.0.1:0\"\nupstreams:\n  - name: m\n    endpoints: [\"ftp://nowhere\"]\n"
                   "models:\n  - {name: x, upstream: m}\n")
    out = subprocess.run([str(BIN_DIR / "sluice"), "--config", str(cfg), "--port-file", str(tmp_path / "p")],
                         capture_output=True, timeout=10 * SLACK)
    assert out.returncode != 0
    err = out.stderr.decode()
    assert "bad.yaml:5" in err and "endpoints[0]" in err, err
    assert not (tmp_path / "p").exists()
    chk = subprocess.run([str(BIN_DIR / "sluice"), "--check-config", str(cfg)], capture_output=True,
                         timeout=10 * SLACK)
    assert chk.returncode != 0


def test_unknown_upstream_reference_rejected(tmp_path):
    cfg = tmp_path / "bad2.yaml"
    cfg.write_text("upstreams:\n  - name: m\n    endpoints: [\"builtin:mock\"]\nmodels:\n  - {name: x, upstream: nope}\n")
    out = subprocess.run([str(BIN_DIR / "sluice"), "--check-config", str(cfg)], capture_output=True,
                         timeout=10 * SLACK)
    assert out.returncode != 0
    assert "nope" in out.stderr.decode()


def test_check_config_accepts_examples():
    from conftest import REPO
    for f in sorted((REPO / "examples").glob("*.yaml")):
        env = {"GROQ_API_KEY": "x", "OPENAI_API_KEY": "x", "VLLM_API_KEY": "x", "PATH": "/usr/bin:/bin"}
        out = subprocess.run([str(BIN_DIR / "sluice"), "--check-config", str(f)], capture_output=True,
                             timeout=10 * SLACK, env=env)
        assert out.returncode == 0, (f.name, out.stderr)


def test_listen_port_in_use_fails(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        out = subprocess.run([str(BIN_DIR / "sluice"), "--listen", f"127.0.0.1:{port}", "--admin", "127.0.0.1:0",
                              "--access-log", "off", "--port-file", str(tmp_path / "p")],
                             capture_output=True, timeout=10 * SLACK)
        assert out.returncode != 0
        assert out.stderr
    finally:
        s.close()


def test_several_workers_serve_concurrently(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port), workers=3)
    try:
        results = []

        def one(i):
            results.append(stream_chat(g.port, chat_body(stream=True), {"x-mock-itl-ms": "20", "x-mock-tokens": "15"}))

        ts = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join(15)
        assert len(results) == 12
        for s in results:
            assert_full_stream(s, 15)
        # 12 streams of 0.3 s run side by side, not one after the other.
        assert time.monotonic() - t0 < 2.5 * SLACK
        assert request(g.admin, "GET", "/readyz").status == 200
    finally:
        assert g.proc.stop() == 0


def test_mock_standalone_sigterm_exits_zero(tmp_path):
    m = start_mock(tmp_path)
    r = chat(m.port, chat_body(), {"x-mock-tokens": "2"})
    assert r.status == 200
    assert m.proc.stop() == 0


def test_keep_alive_idle_timeout_closes_connection(module_dir, mock):
    g = start_gateway(module_dir, gateway_config(mock.port, server={"idle_timeout": "1s"}))
    try:
        with Raw(g.port) as c:
            c.send(raw_chat(chat_body(), [("x-mock-tokens", "1")]))
            assert c.read_response().status == 200
            t0 = time.monotonic()
            assert c.closed_by_peer(4.0 * SLACK), "idle keep-alive connection never closed"
            took = time.monotonic() - t0
            assert 0.9 <= took <= 1.0 + 1.0 * SLACK, took
            assert c.buf == b"", "nothing may be sent on an idle close"
        # A connection in use (a long stream) is not idle.
        s = stream_chat(g.port, chat_body(stream=True), {"x-mock-itl-ms": "300", "x-mock-tokens": "5"})
        assert_full_stream(s, 5)
    finally:
        assert g.proc.stop() == 0
