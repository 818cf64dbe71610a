"""Kubernetes manifests (deploy/k8s): the base and every overlay render with
`kubectl kustomize` (offline, no cluster), and what they render fits sluice:
the ConfigMap's config passes `sluice --check-config`, a gateway started with
it answers the probes' paths on the probes' port, the drain fits in the grace
period, Services, the ServiceMonitor and the HPA point at what exists.

Skipped when kubectl is not installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN_DIR, REPO, SLACK, chat, chat_body, request, start_gateway

K8S = REPO / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl")
TARGETS = ["base", "overlays/single", "overlays/redis"]
OVERLAYS = ["overlays/single", "overlays/redis"]
# The config's path in the pod: the ConfigMap is mounted as this directory.
CONFIG_DIR = "/etc/sluice"
# After drain_timeout sluice ends what still runs and waits up to this long
# for those last writes (kDrainCutGrace in src/gateway/gateway.cc).
DRAIN_CUT_GRACE_S = 1.0
# Stands in for the Secret's value: sluice refuses to start without it.
FAKE_ENV = {"OPENAI_API_KEY": "sk-test-not-a-real-key"}

pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: it renders deploy/k8s (`kubectl kustomize`), no cluster needed")


# --- rendering and lookups ---------------------------------------------------------------------------------------

_rendered: dict[str, list[dict]] = {}


def kustomize(path: Path) -> list[dict]:
    p = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"kubectl kustomize {path} failed:\n{p.stderr}"
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    assert docs, f"kubectl kustomize {path} rendered nothing"
    return docs


def render(target: str) -> list[dict]:
    if target not in _rendered:
        _rendered[target] = kustomize(K8S / target)
    return _rendered[target]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def deployment(docs: list[dict]) -> dict:
    return one(docs, "Deployment", "sluice")


def container(docs: list[dict]) -> dict:
    cs = [c for c in deployment(docs)["spec"]["template"]["spec"]["containers"] if c["name"] == "sluice"]
    assert len(cs) == 1, "the Deployment has no container named sluice"
    return cs[0]


def config_text(docs: list[dict]) -> str:
    """The sluice.yaml the pod reads, after checking the pod really reads it:
    --config names a key of the ConfigMap mounted (as a directory) there."""
    c = container(docs)
    args = c.get("args", [])
    assert "--config" in args, f"the container's args do not name a config: {args}"
    path = args[args.index("--config") + 1]
    assert os.path.dirname(path) == CONFIG_DIR, path
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == CONFIG_DIR]
    assert len(mounts) == 1, f"nothing is mounted at {CONFIG_DIR}"
    # A subPath mount never sees the ConfigMap's updates: no hot reload.
    assert "subPath" not in mounts[0], "mount the ConfigMap as a directory, not with subPath"
    vols = {v["name"]: v for v in deployment(docs)["spec"]["template"]["spec"]["volumes"]}
    cm_name = vols[mounts[0]["name"]]["configMap"]["name"]
    data = one(docs, "ConfigMap", cm_name)["data"]
    key = os.path.basename(path)
    assert key in data, f"ConfigMap {cm_name} has no {key} (keys: {sorted(data)})"
    return data[key]


def config(docs: list[dict]) -> dict:
    return yaml.safe_load(config_text(docs))


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def container_port(c: dict, ref) -> dict:
    """The container port a probe or a Service's targetPort names (by name or number)."""
    for p in c.get("ports", []):
        if ref == p.get("name") or ref == p["containerPort"]:
            return p
    raise AssertionError(f"container {c['name']} has no port {ref!r}: {c.get('ports')}")


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pods_of_service(docs: list[dict], svc: dict) -> list[dict]:
    sel = svc["spec"]["selector"]
    return [d for d in find(docs, "Deployment") if selects(sel, d["spec"]["template"]["metadata"]["labels"])]


def duration_ms(v) -> int:
    """A sluice duration: integer milliseconds, or 250ms / 10s / 2m / 1h."""
    if isinstance(v, int):
        return v
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h)?\s*", str(v))
    assert m, f"not a duration: {v!r}"
    return int(m.group(1)) * {None: 1, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[m.group(2)]


# --- tests -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("v, ms", [(1500, 1500), ("1500", 1500), ("500ms", 500), ("30s", 30_000), ("2m", 120_000),
                                   ("1h", 3_600_000)])
def test_duration_parser(v, ms):
    assert duration_ms(v) == ms


@pytest.mark.parametrize("target", TARGETS)
def test_renders(target):
    docs = render(target)
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} <= kinds, kinds
    if target in OVERLAYS:
        assert "ServiceMonitor" in kinds
    for d in docs:
        assert d["metadata"].get("name"), d
    for dep in find(docs, "Deployment"):
        assert selects(dep["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]), dep


@pytest.mark.parametrize("target", TARGETS)
def test_config_passes_check_config(target, tmp_path):
    text = config_text(render(target))
    cfg = tmp_path / "sluice.yaml"
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in FAKE_ENV}
    p = subprocess.run([str(BIN_DIR / "sluice"), "--check-config", str(cfg)], capture_output=True, text=True,
                       timeout=10 * SLACK, env=env)
    assert p.returncode == 0, f"--check-config failed:\n{p.stdout}{p.stderr}"
    assert ": OK" in p.stdout, p.stdout
    # The only warnings allowed are the secrets' variables, set in the pod.
    for line in p.stderr.splitlines():
        assert "environment variable" in line and "is not set" in line, line


@pytest.mark.parametrize("target", TARGETS)
def test_upstream_keys_come_from_secrets(target):
    docs = render(target)
    env = {e["name"]: e for e in container(docs).get("env", [])}
    for up in config(docs)["upstreams"]:
        assert "api_key" not in up, f"upstream {up['name']}: a key in the ConfigMap; use api_key_env"
        var = up.get("api_key_env")
        if var is None:
            continue
        assert var in env, f"upstream {up['name']} reads ${var}, which the container does not set"
        assert "value" not in env[var], f"${var} is a literal in the manifest; take it from a Secret"
        assert "secretKeyRef" in env[var].get("valueFrom", {}), env[var]


@pytest.mark.parametrize("target", TARGETS)
def test_listeners_match_container_ports(target):
    docs = render(target)
    c = container(docs)
    srv = config(docs)["server"]
    assert port_of(srv["listen"]) == container_port(c, "http")["containerPort"]
    admin = srv["admin_listen"]
    # The kubelet probes the pod IP: a loopback admin listener is unreachable.
    assert admin.rsplit(":", 1)[0] in ("0.0.0.0", "[::]"), f"admin_listen {admin} is not reachable from the kubelet"
    assert port_of(admin) == container_port(c, "admin")["containerPort"]


@pytest.mark.parametrize("target", TARGETS)
def test_probes_answer_on_a_gateway_running_the_rendered_config(target, tmp_path):
    docs = render(target)
    c = container(docs)
    admin_port = port_of(config(docs)["server"]["admin_listen"])
    probes = {k: c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, probe in probes.items():
        assert probe and "httpGet" in probe, f"{kind} missing or not an HTTP GET"
        assert container_port(c, probe["httpGet"]["port"])["containerPort"] == admin_port, \
            f"{kind} probes {probe['httpGet']['port']}, not the admin port {admin_port}"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"

    g = start_gateway(tmp_path, config_text(docs), env=FAKE_ENV)
    try:
        for kind, probe in probes.items():
            r = request(g.admin, "GET", probe["httpGet"]["path"])
            assert r.status == 200, f"{kind} {probe['httpGet']['path']}: {r.status} {r.body!r}"
        # The custom-metric HPA example (components/hpa-active-requests) scales on this gauge.
        metrics = request(g.admin, "GET", "/metrics")
        assert metrics.status == 200
        assert re.search(rb"^sluice_active_requests(\{[^}]*\})? ", metrics.body, re.M), \
            "sluice_active_requests is not in /metrics"
        # The mock route meant for smoke tests works without any provider
        # (a config with keys answers 401 first: that is auth working).
        r = chat(g.port, chat_body(model="mock-1"))
        assert r.status == (401 if config(docs).get("auth", {}).get("keys") else 200), r.body
    finally:
        rc = g.proc.stop()
    assert rc == 0, f"sluice exited with {rc} on SIGTERM:\n{g.proc.output()}"


@pytest.mark.parametrize("target", TARGETS)
def test_drain_fits_in_the_grace_period(target):
    docs = render(target)
    spec = deployment(docs)["spec"]["template"]["spec"]
    grace = spec["terminationGracePeriodSeconds"]
    pre_stop = container(docs).get("lifecycle", {}).get("preStop", {})
    # The image has no shell: an exec preStop could not run.
    assert "exec" not in pre_stop, "the image has no shell: use the sleep action"
    sleep_s = pre_stop.get("sleep", {}).get("seconds", 0)
    assert sleep_s > 0, "no preStop sleep: the pod would stop accepting before endpoints drop it"
    drain_s = duration_ms(config(docs)["server"].get("drain_timeout", "30s")) / 1000
    need = sleep_s + drain_s + DRAIN_CUT_GRACE_S
    assert grace >= need, (f"terminationGracePeriodSeconds {grace} < preStop sleep {sleep_s} + drain_timeout "
                           f"{drain_s:g} + cut-off grace {DRAIN_CUT_GRACE_S:g} = {need:g}")


@pytest.mark.parametrize("target", TARGETS)
def test_pod_security(target):
    docs = render(target)
    pod = deployment(docs)["spec"]["template"]["spec"]
    c = container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the image's user
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]


@pytest.mark.parametrize("target", TARGETS)
def test_services_match_container_ports(target):
    docs = render(target)
    for svc in find(docs, "Service"):
        deps = pods_of_service(docs, svc)
        assert len(deps) == 1, f"Service {svc['metadata']['name']} selects {len(deps)} Deployments"
        cs = deps[0]["spec"]["template"]["spec"]["containers"]
        for sp in svc["spec"]["ports"]:
            cp = container_port(cs[0], sp.get("targetPort", sp["port"]))
            assert cp.get("protocol", "TCP") == sp.get("protocol", "TCP"), (sp, cp)
    # The gateway's Service exposes the API and the admin port.
    sluice_svc = one(docs, "Service", "sluice")
    c = container(docs)
    exposed = {container_port(c, p["targetPort"])["name"] for p in sluice_svc["spec"]["ports"]}
    assert {"http", "admin"} <= exposed, exposed
    # HTTP/3 is an opt-in component: no overlay opens UDP.
    assert all(p.get("protocol", "TCP") == "TCP" for p in sluice_svc["spec"]["ports"])


@pytest.mark.parametrize("target", OVERLAYS)
def test_servicemonitor_scrapes_the_admin_port(target):
    docs = render(target)
    sm = one(docs, "ServiceMonitor", "sluice")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    svcs = [s for s in find(docs, "Service") if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in svcs] == ["sluice"]
    admin_port = port_of(config(docs)["server"]["admin_listen"])
    by_name = {p["name"]: p for p in svcs[0]["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        sp = by_name[ep["port"]]
        assert container_port(container(docs), sp["targetPort"])["containerPort"] == admin_port
        assert ep.get("path", "/metrics") == "/metrics"


@pytest.mark.parametrize("target", TARGETS)
def test_hpa_and_pdb(target):
    docs = render(target)
    dep = deployment(docs)
    replicas = dep["spec"].get("replicas", 1)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"], ref["name"]) == ("apps/v1", "Deployment", "sluice")
        assert 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"]
        cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
        assert cpu, "no CPU metric"
        # Utilization is a share of the request: without one the HPA cannot compute it.
        assert container(docs)["resources"]["requests"]["cpu"]
    if target == "overlays/single":
        assert replicas == 1
        hpas = find(docs, "HorizontalPodAutoscaler")
        assert not hpas or hpas[0]["spec"].get("minReplicas", 1) == 1
    pdbs = find(docs, "PodDisruptionBudget")
    assert len(pdbs) == 1
    pdb = pdbs[0]["spec"]
    assert selects(pdb["selector"]["matchLabels"], pod_labels)
    # Never block a voluntary eviction (a node drain) forever, even with one replica.
    if "maxUnavailable" in pdb:
        assert pdb["maxUnavailable"] not in (0, "0%"), pdb
    else:
        assert isinstance(pdb["minAvailable"], int) and pdb["minAvailable"] < replicas, pdb


def test_redis_overlay_shares_limits_through_its_redis():
    docs = render("overlays/redis")
    cfg = config(docs)
    limits = cfg["limits"]
    assert limits["backend"] == "redis"
    host, port = limits["redis"]["address"].rsplit(":", 1)
    svc = one(docs, "Service", host)
    assert int(port) in [p["port"] for p in svc["spec"]["ports"]]
    assert pods_of_service(docs, svc)[0]["metadata"]["name"] == "sluice-redis"
    # Limits (in Redis or not) apply to keyed requests only.
    assert cfg["auth"]["keys"], "no keys: nothing would reach Redis"
    replicas = deployment(docs)["spec"]["replicas"]
    assert replicas > 1
    assert limits["redis"]["expected_replicas"] == replicas
    hpa = one(docs, "HorizontalPodAutoscaler", "sluice")
    assert hpa["spec"]["minReplicas"] == replicas


def test_optional_components_render(tmp_path):
    """http3 and hpa-active-requests on top of the redis overlay (neither is on by default)."""
    def rel(p: Path) -> str:
        return os.path.relpath(p, tmp_path)  # kustomize wants relative paths
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {rel(K8S / 'overlays/redis')}\n"
        f"components:\n  - {rel(K8S / 'components/http3')}\n  - {rel(K8S / 'components/hpa-active-requests')}\n")
    docs = kustomize(tmp_path)
    c = container(docs)
    h3 = container_port(c, "h3")
    assert h3["protocol"] == "UDP"
    svc_h3 = [p for p in one(docs, "Service", "sluice")["spec"]["ports"] if p["name"] == "h3"]
    assert svc_h3 and svc_h3[0]["protocol"] == "UDP" and svc_h3[0]["targetPort"] == "h3"
    # The TCP ports are untouched.
    assert container_port(c, "http")["protocol"] == "TCP"
    metrics = one(docs, "HorizontalPodAutoscaler", "sluice")["spec"]["metrics"]
    pods = [m for m in metrics if m["type"] == "Pods"]
    assert pods and pods[0]["pods"]["metric"]["name"] == "sluice_active_requests"
    assert any(m["type"] == "Resource" for m in metrics), "the CPU metric must stay"
