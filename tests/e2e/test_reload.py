"""Hot configuration reload (issue 12): SIGHUP, a change of the file and
POST /admin/reload publish a new snapshot without dropping a stream; a bad
file changes nothing; SIGUSR1 reopens the log files."""
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import (BIN_DIR, SLACK, Proc, Session, Target, assert_full_stream, chat, chat_body, fetch_metrics,
                      gateway_config, request, start_gateway, start_mock, stream_chat, tls_listener, wait_until)

STREAM_TOKENS = 30
STREAM_ITL_MS = 40
RELOADS = 20


def _config(mocks, i, *, bad=None):
    """Generation i: a stable route the long streams use, a route named after
    i (so each reload's new route is seen), upstreams and limits that change
    with i. `bad` gives a broken file instead: "yaml" or "reference"."""
    a, b = mocks
    # The stable upstream gains and loses a second endpoint (pools reconciled
    # under the streams); limits move (never below the load).
    a_endpoints = [f"http://127.0.0.1:{a}"] + ([f"http://127.0.0.1:{b}"] if i % 2 else [])
    target = "b" if i % 3 else f"extra{i}"
    cfg = (
        "server: {listen: \"127.0.0.1:0\", admin_listen: \"127.0.0.1:0\", workers: 2, drain_timeout: 10s,"
        " access_log: off}\n"
        f"admission: {{concurrency: {{max: {200 + i}, queue: 10}}}}\n"
        "timeouts: {connect: 2s, ttft: 5s, idle: 5s, total: 60s}\n"
        "upstreams:\n"
        f"  - name: a\n    endpoints: {json.dumps(a_endpoints)}\n"
        f"    concurrency: {{max: {150 + i}, queue: 10}}\n"
        f"  - name: b\n    endpoints: [\"http://127.0.0.1:{b}\"]\n"
        + (f"  - name: extra{i}\n    endpoints: [\"http://127.0.0.1:{b}\"]\n" if target != "b" else "")
        + "models:\n"
        f"  - {{name: stable, upstream: a, concurrency: {{max: {100 + i}, queue: 10}}}}\n"
        f"  - {{name: route-{i}, upstream: {target}}}\n")
    if bad == "yaml":
        cfg += "  - {name: broken, upstream: [\n"
    elif bad == "reference":
        cfg += "  - {name: broken, upstream: nowhere}\n"
    return cfg


def _write(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # as editors and ConfigMaps do: the reader never sees half a file


class _Streams:
    """`n` clients that each stream paced chats back to back until stopped."""

    def __init__(self, target, n):
        self.stop = threading.Event()
        self.done = 0
        self.failures = []
        self.lock = threading.Lock()
        body = chat_body("stable", stream=True)
        hdrs = {"x-mock-itl-ms": str(STREAM_ITL_MS), "x-mock-tokens": str(STREAM_TOKENS)}
        timeout = 10 + STREAM_TOKENS * STREAM_ITL_MS / 1000 * SLACK

        def run():
            while not self.stop.is_set():
                try:
                    assert_full_stream(stream_chat(target, body, hdrs, timeout=timeout), STREAM_TOKENS)
                    with self.lock:
                        self.done += 1
                except BaseException as e:  # noqa: BLE001 - collected, asserted by the test
                    with self.lock:
                        self.failures.append(repr(e)[:300])
        self.threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30 * SLACK)
        assert not any(t.is_alive() for t in self.threads), "a stream hung"
        return False


def _state(admin):
    m = fetch_metrics(admin)
    return (m.get1("sluice_config_reloads_total", result="ok"), m.get1("sluice_config_reloads_total", result="rejected"),
            m.get1("sluice_config_generation"))


# The inotify watcher waits this long for a burst of events to settle.
DEBOUNCE = 0.2


@pytest.mark.parametrize("proto", ["h1", "h2c"])
def test_reload_under_load_keeps_every_stream(tmp_path, proto):
    """50 paced streams run back to back while the configuration is reloaded
    20 times (routes, upstreams, endpoints and limits change; 4 of the files
    are bad), by POST /admin/reload, SIGHUP and the file watcher in turn."""
    mocks = [start_mock(tmp_path).port for _ in range(2)]
    gw = start_gateway(tmp_path, _config(mocks, 0), workers=2)
    cfg_file = Path(next(a for a in gw.proc.argv if a.endswith(".yaml")))
    target = Target(gw.port, proto)
    assert chat(target, chat_body("route-0")).status == 200

    latencies, last_good, bad_files = [], 0, {4: "yaml", 9: "reference", 14: "yaml", 19: "reference"}
    with _Streams(target, 50) as streams:
        time.sleep(0.5)
        for i in range(1, RELOADS + 1):
            trigger = ("admin", "sighup", "file")[i % 3]
            bad = bad_files.get(i)
            time.sleep(DEBOUNCE * 1.5)  # the previous step's file events are handled
            ok0, rejected0, gen0 = _state(gw.admin)
            t0 = time.monotonic()
            _write(cfg_file, _config(mocks, i, bad=bad))
            if trigger == "admin":
                r = request(gw.admin, "POST", "/admin/reload")
                body = json.loads(r.body)
                if bad:
                    assert r.status == 400 and body["status"] == "rejected", (r.status, body)
                    assert f"{cfg_file.name}:" in body["error"], body  # file:line:col, as --check-config says
                    assert body["generation"] == gen0
                else:
                    assert r.status == 200 and body["status"] == "reloaded", (r.status, body)
            elif trigger == "sighup":
                gw.proc.signal(signal.SIGHUP)
            if bad:
                wait_until(lambda: _state(gw.admin)[1] > rejected0, 2 * SLACK,
                           what=f"reload {i} ({trigger}, {bad} file) counted as rejected")
                time.sleep(DEBOUNCE * 1.5)
                assert _state(gw.admin)[2] == gen0, "a bad file changed the generation"
                assert chat(target, chat_body(f"route-{last_good}")).status == 200
                assert chat(target, chat_body(f"route-{i}")).status == 404
                continue
            # New requests see the new route within a second of the change.
            wait_until(lambda: chat(target, chat_body(f"route-{i}")).status == 200, 1.0 * SLACK,
                       what=f"route-{i} after reload {i} ({trigger})", interval=0.01)
            latencies.append(time.monotonic() - t0)
            assert chat(target, chat_body(f"route-{last_good}")).status == 404
            last_good = i
        # Streams that started on the last generation run to their end too.
        time.sleep(STREAM_TOKENS * STREAM_ITL_MS / 1000)

    assert streams.failures == [], streams.failures[:5]
    assert streams.done >= 50, streams.done
    ok, rejected, gen = _state(gw.admin)
    assert rejected >= len(bad_files) and ok >= RELOADS - len(bad_files), (ok, rejected)
    assert gen >= 1 + RELOADS - len(bad_files), gen
    latencies.sort()
    print(f"\nreload under load ({proto}): {RELOADS} reloads ({len(bad_files)} bad files, {int(rejected)} rejections), "
          f"{streams.done} streams completed, {len(streams.failures)} failed; a new route answered "
          f"{latencies[len(latencies) // 2] * 1000:.0f} ms (median), {latencies[-1] * 1000:.0f} ms (max) after the change")
    assert gw.proc.stop() == 0, gw.proc.output()[-2000:]


def test_sigusr1_reopens_the_access_log(tmp_path):
    """logrotate without copytruncate: the file is renamed, SIGUSR1 makes the
    gateway open a new one; nothing is lost or written to the old one after."""
    mock = start_mock(tmp_path)
    log = tmp_path / "access.log"
    gw = start_gateway(tmp_path, gateway_config(mock.port), access_log=log)
    assert chat(gw.port, chat_body("m"), headers={"x-request-id": "before-rotation"}).status == 200
    gw.log_entry("before-rotation")
    rotated = tmp_path / "access.log.1"
    os.rename(log, rotated)
    gw.proc.signal(signal.SIGUSR1)
    wait_until(lambda: fetch_metrics(gw.admin).get1("sluice_log_reopens_total", result="ok") == 1, 2 * SLACK,
               what="SIGUSR1 handled")
    assert chat(gw.port, chat_body("m"), headers={"x-request-id": "after-rotation"}).status == 200
    assert gw.log_entry("after-rotation")["status"] == 200  # in the new file
    assert "after-rotation" not in rotated.read_text()
    assert "before-rotation" in rotated.read_text()
    assert gw.proc.alive()
    assert gw.proc.stop() == 0, gw.proc.output()


def test_reload_moves_the_listener(tmp_path):
    """server.listen changed by a reload: the new address accepts, the old one
    no longer does, and a connection already open on it keeps working."""
    mock = start_mock(tmp_path)
    cfg = tmp_path / "listen.yaml"
    pf = tmp_path / "listen.port"
    text = gateway_config(mock.port)
    cfg.write_text(text)
    proc = Proc("listen", [str(BIN_DIR / "sluice"), "--config", str(cfg), "--port-file", str(pf)], tmp_path, pf)
    old_port = proc.ports["api"]
    admin = proc.ports["admin"]
    with Session(old_port) as kept:
        assert kept.chat(chat_body("m")).status == 200
        _write(cfg, text.replace('listen: "127.0.0.1:0"', 'listen: "[::1]:0"'))
        r = request(admin, "POST", "/admin/reload")
        assert r.status == 200, r.body
        assert "now listening on [::1]:0" in json.loads(r.body)["notes"][-1]
        new_port = wait_until(lambda: json.loads(pf.read_text())["api"] != old_port and json.loads(pf.read_text())["api"],
                              2 * SLACK, what="the port file names the new listener")
        wait_until(lambda: _refused("127.0.0.1", old_port), 2 * SLACK, what="the old address stops accepting")
        assert chat(Target(new_port, "h1", host="::1"), chat_body("m")).status == 200
        assert kept.chat(chat_body("m")).status == 200  # the open connection still works
    assert proc.stop() == 0, proc.output()


def _refused(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_configmap_symlink_swap_is_seen(tmp_path):
    """A Kubernetes ConfigMap volume: sluice.yaml -> ..data/sluice.yaml,
    ..data -> ..<timestamp>; an update writes a new timestamped directory and
    renames a new ..data symlink over the old one."""
    mock = start_mock(tmp_path)
    vol = tmp_path / "configmap"
    vol.mkdir()

    def publish(version, text):
        d = vol / f"..2026_12_07_{version}"
        d.mkdir()
        (d / "sluice.yaml").write_text(text)
        tmp_link = vol / "..data_tmp"
        tmp_link.symlink_to(d.name)
        os.replace(tmp_link, vol / "..data")

    publish(1, gateway_config(mock.port, models='  - {name: "first", upstream: m}\n'))
    (vol / "sluice.yaml").symlink_to("..data/sluice.yaml")
    pf = tmp_path / "cm.port"
    proc = Proc("cm", [str(BIN_DIR / "sluice"), "--config", str(vol / "sluice.yaml"), "--port-file", str(pf)],
                tmp_path, pf)
    port = proc.ports["api"]
    assert chat(port, chat_body("first")).status == 200
    publish(2, gateway_config(mock.port, models='  - {name: "second", upstream: m}\n'))
    wait_until(lambda: chat(port, chat_body("second")).status == 200, 2 * SLACK, what="the swapped config is live")
    assert chat(port, chat_body("first")).status == 404
    assert "configuration reloaded (the file changed)" in proc.output()
    assert proc.stop() == 0, proc.output()


def test_reload_adds_moves_and_removes_the_tls_listener(tmp_path, server_pki):
    """server.tls.listen by reload: a TLS listener appears, moves (with a new
    certificate set) and goes; the cleartext listener is untouched."""
    mock = start_mock(tmp_path)
    cfg = tmp_path / "tls.yaml"
    pf = tmp_path / "tls.port"
    cfg.write_text(gateway_config(mock.port))
    proc = Proc("tls", [str(BIN_DIR / "sluice"), "--config", str(cfg), "--port-file", str(pf)], tmp_path, pf)
    admin, port = proc.ports["admin"], proc.ports["api"]
    assert proc.ports["tls"] == 0

    def reload_with(server):
        _write(cfg, gateway_config(mock.port, server=server))
        r = request(admin, "POST", "/admin/reload")
        assert r.status == 200, r.body
        return json.loads(r.body)["notes"]

    def tls_chat(tls_port, host="127.0.0.1"):
        t = Target(tls_port, "h1-tls", host=host, ssl_context=server_pki.client_context(["http/1.1"]),
                   server_hostname="localhost")
        return chat(t, chat_body("m"))

    notes = reload_with({"tls": tls_listener((server_pki.cert, server_pki.key))})
    assert any(n.startswith("TLS now on 127.0.0.1:0") for n in notes), notes
    first = json.loads(pf.read_text())["tls"]
    assert first and tls_chat(first).status == 200
    # Moved, with options that need a new TLS server (TLS 1.3 only).
    notes = reload_with({"tls": {**tls_listener((server_pki.cert, server_pki.key)), "listen": "[::1]:0",
                                 "min_version": "1.3"}})
    second = json.loads(pf.read_text())["tls"]
    assert second and second != first, notes
    assert tls_chat(second, host="::1").status == 200
    wait_until(lambda: _refused("127.0.0.1", first), 2 * SLACK, what="the old TLS address stops accepting")
    # Removed.
    notes = reload_with({})
    assert "the TLS listener is closed" in notes, notes
    assert json.loads(pf.read_text())["tls"] == 0
    wait_until(lambda: _refused("::1", second), 2 * SLACK, what="the TLS listener closes")
    assert chat(port, chat_body("m")).status == 200
    assert proc.stop() == 0, proc.output()
