"""Binary upgrade with zero downtime (issue 12): SIGUSR2 or POST /admin/upgrade
starts the binary now at the same path with the listening sockets; once it
serves, the old process stops accepting, finishes its streams and exits. A new
binary that fails leaves the old one serving."""
import json
import os
import shutil
import signal
import threading
import time

import pytest

from conftest import (BIN_DIR, SLACK, Proc, assert_full_stream, chat, chat_body, fetch_metrics, gateway_config,
                      request, start_mock, stream_chat, wait_until)

STREAM_TOKENS = 30
STREAM_ITL_MS = 100  # 3 s streams: still running when the upgrade happens


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _stop_pid(pid):
    """Stops a process that is not our child (the successor), by pid."""
    if not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def upgradable(tmp_path):
    """A gateway run from a copy of the binary that a test may replace; the
    successors it starts are stopped by pid at the end."""
    exe = tmp_path / "bin" / "sluice"
    exe.parent.mkdir()
    shutil.copy(BIN_DIR / "sluice", exe)
    mock = start_mock(tmp_path)
    cfg = tmp_path / "upgrade.yaml"
    cfg.write_text(gateway_config(mock.port, server={"workers": 2, "drain_timeout": "20s"},
                                  timeouts={"ttft": "5s", "idle": "5s", "total": "60s"}))
    pf = tmp_path / "upgrade.port"
    proc = Proc("upgrade", [str(exe), "--config", str(cfg), "--port-file", str(pf)], tmp_path, pf)
    successors = []
    yield exe, proc, pf, successors
    for pid in successors:
        _stop_pid(pid)
    proc.stop()


def _replace_binary(exe, source):
    """As a package manager does: the new file is renamed over the old path."""
    tmp = exe.with_name("sluice.new")
    shutil.copy(source, tmp)
    os.replace(tmp, exe)


def _port_file_pid(pf):
    try:
        return json.loads(pf.read_text()).get("pid")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_sigusr2_upgrade_under_load_drops_nothing(upgradable):
    exe, old, pf, successors = upgradable
    port, admin = old.ports["api"], old.ports["admin"]
    old_pid = old.ports["pid"]
    assert old_pid == old.pid

    # New connections all the time: each request on a connection of its own.
    stop = threading.Event()
    churn = {"ok": 0, "errors": []}
    lock = threading.Lock()

    def churner():
        while not stop.is_set():
            try:
                r = chat(port, chat_body("m"), headers={"x-mock-tokens": "3"})
                with lock:
                    if r.status == 200:
                        churn["ok"] += 1
                    else:
                        churn["errors"].append(r.status)
            except Exception as e:  # noqa: BLE001 - a refused or reset connection is what we count
                with lock:
                    churn["errors"].append(repr(e)[:200])
    churners = [threading.Thread(target=churner, daemon=True) for _ in range(4)]
    for t in churners:
        t.start()

    # Long streams that start on the old process.
    results, started = [], threading.Barrier(11)
    hdrs = {"x-mock-tokens": str(STREAM_TOKENS), "x-mock-itl-ms": str(STREAM_ITL_MS)}

    def streamer():
        started.wait()
        results.append(stream_chat(port, chat_body("m", stream=True), hdrs, timeout=30 * SLACK))
    streamers = [threading.Thread(target=streamer, daemon=True) for _ in range(10)]
    for t in streamers:
        t.start()
    started.wait()
    time.sleep(0.5)  # the streams are on the old process

    _replace_binary(exe, BIN_DIR / "sluice")  # "a second copy of the binary"
    t_signal = time.monotonic()
    old.signal(signal.SIGUSR2)
    new_pid = wait_until(lambda: (p := _port_file_pid(pf)) != old_pid and p, 10 * SLACK,
                         what="the new process writes its port file")
    successors.append(new_pid)
    t_ready = time.monotonic()
    assert old.alive(), "the old process must stay until its streams end"
    assert "sluice_build_info" in fetch_metrics(admin).names()  # the admin socket was handed over too

    for t in streamers:
        t.join(30 * SLACK)
    t_streams_done = time.monotonic()
    assert len(results) == 10
    for s in results:
        assert_full_stream(s, STREAM_TOKENS)  # finished on the old process, intact
    rc = old.wait(20 * SLACK)
    t_old_exit = time.monotonic()
    assert rc == 0, old.output()[-2000:]
    assert t_old_exit >= t_streams_done - 0.5, "the old process left before its streams ended"

    time.sleep(0.5)  # new connections keep going to the new process alone
    stop.set()
    for t in churners:
        t.join(10 * SLACK)
    assert churn["errors"] == [], churn["errors"][:5]
    assert churn["ok"] > 50, churn
    assert chat(port, chat_body("m")).status == 200
    assert _pid_alive(new_pid)
    out = old.output()
    assert "serves now; this process stops accepting and drains" in out, out[-2000:]
    print(f"\nupgrade under load: new process ready {1000 * (t_ready - t_signal):.0f} ms after SIGUSR2; "
          f"{churn['ok']} new-connection requests, 0 failed or refused; 10 streams finished on the old process, "
          f"which exited {t_old_exit - t_ready:.1f} s after the hand-over")


def test_failed_upgrade_keeps_the_old_process_serving(upgradable, tmp_path):
    exe, old, pf, successors = upgradable
    port, admin = old.ports["api"], old.ports["admin"]
    broken = tmp_path / "broken-sluice"
    broken.write_text("#!/bin/sh\necho 'this build is broken' >&2\nexit 3\n")
    broken.chmod(0o755)
    _replace_binary(exe, broken)

    old.signal(signal.SIGUSR2)
    wait_until(lambda: fetch_metrics(admin).get1("sluice_upgrades_total", result="failed") == 1, 10 * SLACK,
               what="the failed upgrade is counted")
    assert old.alive()
    assert _port_file_pid(pf) == old.pid
    assert chat(port, chat_body("m")).status == 200

    # The same through the admin API, which answers with the reason.
    r = request(admin, "POST", "/admin/upgrade")
    body = json.loads(r.body)
    assert r.status == 500 and body["status"] == "failed", (r.status, body)
    assert "exited with code 3" in body["error"], body
    assert request(admin, "GET", "/admin/upgrade").status == 405
    assert chat(port, chat_body("m")).status == 200
    assert old.alive()

    # A good binary afterwards upgrades as usual.
    _replace_binary(exe, BIN_DIR / "sluice")
    r = request(admin, "POST", "/admin/upgrade")
    body = json.loads(r.body)
    assert r.status == 200 and body["status"] == "upgraded", (r.status, body)
    successors.append(body["pid"])
    assert old.wait(10 * SLACK) == 0, old.output()[-2000:]
    assert chat(port, chat_body("m")).status == 200
    assert _port_file_pid(pf) == body["pid"]


def test_upgrade_from_pid_takes_over_from_another_path(upgradable, tmp_path):
    """`sluice --upgrade-from PID`: a binary at a new path copies the running
    one's listening sockets (pidfd_getfd), serves, then tells it to drain."""
    exe, old, pf, successors = upgradable
    port, admin = old.ports["api"], old.ports["admin"]
    hdrs = {"x-mock-tokens": "20", "x-mock-itl-ms": "100"}
    results = []
    streamer = threading.Thread(target=lambda: results.append(
        stream_chat(port, chat_body("m", stream=True), hdrs, timeout=20 * SLACK)), daemon=True)
    streamer.start()
    time.sleep(0.3)
    new_dir = tmp_path / "v2"
    new_dir.mkdir()
    shutil.copy(BIN_DIR / "sluice", new_dir / "sluice")
    cfg = next(a for a in old.argv if a.endswith(".yaml"))
    pf2 = tmp_path / "v2.port"
    # The ports the old process got (port 0 names no socket to take over).
    new = Proc("v2", [str(new_dir / "sluice"), "--config", cfg, "--listen", f"127.0.0.1:{port}",
                      "--admin", f"127.0.0.1:{admin}", "--port-file", str(pf2), "--upgrade-from", str(old.pid)],
               tmp_path, pf2)
    assert new.ports["api"] == port and new.ports["admin"] == admin
    streamer.join(20 * SLACK)
    assert_full_stream(results[0], 20)  # finished on the old process
    assert old.wait(10 * SLACK) == 0, old.output()[-2000:]
    assert "a successor took over the listening sockets (SIGWINCH)" in old.output()
    assert chat(port, chat_body("m")).status == 200  # the new one serves
    assert "sluice_build_info" in fetch_metrics(admin).names()
    assert new.stop() == 0, new.output()[-2000:]
