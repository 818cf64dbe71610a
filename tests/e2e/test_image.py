"""The container image: built from $SLUICE_BIN/sluice by deploy/build-image
(what `make image` runs), started as this VM needs (runc, explicit ulimits,
host network) on loopback port 0, and checked from outside: a streamed chat
answer from the embedded default, /readyz, a non-root process, a mounted
--config whose upstream is reached by host name, a clean SIGTERM stop, and
the size (printed).

Every container and the test's own tag are removed at the end."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import BIN_DIR, PORT_FILE_TIMEOUT, REPO, SANITIZED, SLACK, gateway_config, request

pytestmark = pytest.mark.skipif(
    SANITIZED, reason="the image ships the release binary; a sanitizer build is not what it is made from")

# What running a container takes on this VM (deploy/README.md): crun fails on
# its cgroup setup, and the default ulimits are refused.
RUN = ["--runtime", "runc", "run", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1024:1024",
       "--network", "host"]
IMAGE_UID = 65532
MAX_IMAGE_BYTES = 30 * 1000 * 1000
BUILD_TIMEOUT = 180
PODMAN_TIMEOUT = 30
# Mounted at /run/sluice: where the container writes its port file.
RUN_DIR = "/run/sluice"


def podman(*args: str, timeout: float = PODMAN_TIMEOUT, check: bool = True) -> str:
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, f"podman {' '.join(args)} exited with {r.returncode}:\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def image():
    """A test-only tag of the image, built by the script `make image` uses."""
    missing = [t for t in ("podman", "runc") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: the image test needs them; "
                    f"scripts/bootstrap (make bootstrap) installs both")
    tag = f"localhost/sluice-e2e:{os.getpid()}-{secrets.token_hex(3)}"
    try:
        r = subprocess.run([str(REPO / "deploy" / "build-image"), "--tag", tag, str(BIN_DIR / "sluice")],
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"deploy/build-image exited with {r.returncode}:\n{r.stdout}\n{r.stderr}"
        yield tag
    finally:
        # Untags; removes the image only when no other tag (sluice:latest) holds it.
        podman("rmi", "--ignore", tag, check=False)


@dataclass
class Container:
    name: str
    ports: dict

    @property
    def port(self) -> int:
        return self.ports["api"]

    @property
    def admin(self) -> int:
        return self.ports["admin"]

    def state(self) -> dict:
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.name))

    def logs(self) -> str:
        return podman("logs", self.name, check=False)


@contextmanager
def container(image: str, workdir: Path, *args: str, volumes: tuple = ()):
    """Runs the image detached with `args` plus --port-file into a mounted
    directory, waits for the port file, and removes the container at the end."""
    name = f"sluice-e2e-{os.getpid()}-{secrets.token_hex(3)}"
    run_dir = workdir / name
    run_dir.mkdir()
    run_dir.chmod(0o777)  # the container's user (uid 65532) writes the port file here
    port_file = run_dir / "ports.json"
    mounts = [f"--volume={v}" for v in (f"{run_dir}:{RUN_DIR}", *volumes)]
    try:
        podman(*RUN, "--detach", "--name", name, *mounts, image, *args, "--port-file", f"{RUN_DIR}/ports.json")
        c = Container(name, {})
        deadline = time.monotonic() + PORT_FILE_TIMEOUT * SLACK
        while not c.ports:
            try:
                c.ports = json.loads(port_file.read_text() or "{}")
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            if not c.ports:
                assert time.monotonic() < deadline, f"no port file from {name}: {c.state()}\n{c.logs()}"
                time.sleep(0.05)
        yield c
    finally:
        podman("rm", "--force", "--ignore", "--time", "2", name, check=False)


def test_image_size_user_and_labels(image, capsys):
    info = json.loads(podman("image", "inspect", image))[0]
    size = info["Size"]
    with capsys.disabled():
        print(f"\nsluice image: {size} bytes ({size / 1e6:.1f} MB)")
    assert size < MAX_IMAGE_BYTES, f"the image is {size} bytes, over the {MAX_IMAGE_BYTES} target"
    cfg = info["Config"]
    assert cfg["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert cfg["Entrypoint"] == ["/usr/local/bin/sluice"]
    assert not cfg.get("Cmd"), "no default arguments: without any, sluice runs its embedded default"
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "9901/tcp"}
    version = subprocess.run([str(BIN_DIR / "sluice"), "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[1]
    assert cfg["Labels"]["org.opencontainers.image.version"] == version


def test_embedded_default_streams_as_non_root(image, module_dir):
    # Only the listeners are moved (to loopback port 0): no --config, so this
    # is the embedded default that a bare `podman run IMAGE` serves.
    with container(image, module_dir, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0") as c:
        body = json.dumps({"model": "mock-1", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        r = request(c.port, "POST", "/v1/chat/completions", body)
        assert r.status == 200, (r.status, r.body[:300])
        assert r.headers.get("content-type", "").startswith("text/event-stream"), r.headers
        events = [e for e in r.body.split(b"\n\n") if e.strip()]
        assert all(e.startswith(b"data: ") for e in events), events[:3]
        assert len(events) >= 3, events
        assert events[-1] == b"data: [DONE]", events[-2:]
        assert any(b'"content":"' in e and b'"content":""' not in e for e in events), events[:3]

        ready = request(c.admin, "GET", "/readyz")
        assert ready.status == 200, (ready.status, ready.body)

        pid = c.state()["Pid"]
        assert pid > 0
        status = Path(f"/proc/{pid}/status").read_text()
        ids = {ln.split(":")[0]: [int(x) for x in ln.split()[1:]]
               for ln in status.splitlines() if ln.startswith(("Uid:", "Gid:"))}
        assert ids["Uid"] == [IMAGE_UID] * 4 and ids["Gid"] == [IMAGE_UID] * 4, status

        # PID 1 in the container: SIGTERM still drains and exits 0 (what
        # `podman stop` and Kubernetes send).
        podman("stop", "--time", "10", c.name)
        st = c.state()
        assert st["ExitCode"] == 0, (st, c.logs())


def test_mounted_config_reaches_upstream_by_host_name(image, module_dir, mock):
    # The documented form: `IMAGE --config /etc/sluice/sluice.yaml`. The
    # upstream is named `localhost`, so getaddrinfo runs in the scratch image.
    conf_dir = module_dir / "etc-sluice"
    conf_dir.mkdir()
    (conf_dir / "sluice.yaml").write_text(gateway_config(endpoint=f"http://localhost:{mock.port}"))
    with container(image, module_dir, "--config", "/etc/sluice/sluice.yaml",
                   volumes=(f"{conf_dir}:/etc/sluice:ro",)) as c:
        r = request(c.port, "POST", "/v1/chat/completions",
                    json.dumps({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}).encode())
        assert r.status == 200, (r.status, r.body[:300], c.logs())
        assert r.json()["choices"][0]["message"]["content"], r.body[:300]
