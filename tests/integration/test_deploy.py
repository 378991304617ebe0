"""deploy/ manifests and the Dockerfile: parsed and checked for the invariants a
Kubernetes user relies on (no cluster or Docker engine needed)."""
import os
import re
import subprocess

import pytest
import yaml

from conftest import ROOT, SIDEPUSH

DEPLOY = ROOT / "deploy"


def load(name):
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def pod_spec(name):
    (dep,) = [d for d in load(name) if d["kind"] == "Deployment"]
    return dep["spec"]["template"]["spec"], dep


def sidepush_config():
    return yaml.safe_load((DEPLOY / "sidepush.yaml").read_text())


def port_of(address):
    return int(address.rsplit(":", 1)[1])


@pytest.mark.parametrize("manifest", ["deployment.yaml", "deployment-classic.yaml"])
def test_pod_invariants(manifest):
    spec, dep = pod_spec(manifest)
    cfg = sidepush_config()
    native = manifest == "deployment.yaml"
    containers = spec.get("initContainers" if native else "containers", [])
    (sp,) = [c for c in containers if c["name"] == "sidepush"]
    if native:
        assert sp["restartPolicy"] == "Always"  # the native sidecar form
    assert any(c["name"] == "app" for c in spec["containers"])

    ports = {p["name"]: p["containerPort"] for p in sp["ports"]}
    # The publish port is not declared; probes go to the admin listener, whose
    # cap is apart from the clients' (a full client cap must not fail them).
    assert ports == {"http": port_of(cfg["listen"]), "admin": port_of(cfg["metrics"]["listen"])}
    assert cfg["publish_listen"].startswith("127.0.0.1:")  # and binds to the pod only
    health = cfg.get("health", {})
    probes = {k: sp[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == health.get("liveness_path", "/healthz")
    assert probes["startupProbe"]["path"] == health.get("liveness_path", "/healthz")
    assert probes["readinessProbe"]["path"] == health.get("readiness_path", "/readyz")
    assert all(p["port"] == "admin" for p in probes.values())

    for c in spec["containers"] + spec.get("initContainers", []):
        assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
    grace = int(re.match(r"(\d+)s", cfg["shutdown_grace"]).group(1))
    assert spec["terminationGracePeriodSeconds"] > grace
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert isinstance(spec["securityContext"]["runAsUser"], int)
    assert sp["securityContext"]["readOnlyRootFilesystem"] is True

    token = [e for e in sp["env"] if e["name"] == "SIDEPUSH_PUBLISH_TOKEN"][0]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "sidepush-publish"
    assert "${SIDEPUSH_PUBLISH_TOKEN}" in (DEPLOY / "sidepush.yaml").read_text()
    mount = sp["volumeMounts"][0]["mountPath"]
    assert sp["args"] == ["--config", f"{mount}/sidepush.yaml"]


def test_service_exposes_only_the_client_port():
    (svc,) = load("service.yaml")
    spec, dep = pod_spec("deployment.yaml")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]


def test_kustomization_lists_everything():
    k = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for res in k["resources"]:
        assert (DEPLOY / res).exists(), res
    files = [f for g in k["configMapGenerator"] for f in g["files"]]
    for f in files:
        assert (DEPLOY / f).exists(), f
    names = {g["name"] for g in k["configMapGenerator"]}
    spec, _ = pod_spec("deployment.yaml")
    assert {v["configMap"]["name"] for v in spec["volumes"]} <= names


def test_pod_config_is_valid():
    env = dict(os.environ, SIDEPUSH_PUBLISH_TOKEN="t")
    out = subprocess.run([SIDEPUSH, "--check-config", str(DEPLOY / "sidepush.yaml")], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages[0].startswith("debian:12") and stages[-1].startswith("debian:12")
    assert len(stages) == 2  # multi-stage: build, then a slim runtime
    assert "RUN .ci/build" in text  # the very script .ci/test runs
    assert (ROOT / ".ci" / "build").exists()
    user = re.search(r"^USER\s+(\d+)(?::(\d+))?", text, re.M)
    assert user and int(user.group(1)) != 0  # numeric and not root
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/sidepush"\]', text, re.M)
    assert re.search(r'^CMD \["--config", ', text, re.M)  # the config path can be overridden
    assert re.search(r"^EXPOSE 8080 8081", text, re.M)
    runtime = text.split("FROM debian:12-slim", 1)[1]
    assert "build-essential" not in runtime and "-dev" not in runtime  # runtime libraries only


def test_replicas_overlay_shares_redis():
    over = DEPLOY / "replicas"
    k = yaml.safe_load((over / "kustomization.yaml").read_text())
    for res in k["resources"]:
        assert (over / res).exists(), res
    (gen,) = k["configMapGenerator"]
    assert gen["name"] == "sidepush-config" and gen["behavior"] == "replace"
    assert "value: 3" in k["patches"][0]["patch"]
    base = yaml.safe_load((DEPLOY / "sidepush.yaml").read_text())
    conf = yaml.safe_load((over / "sidepush.yaml").read_text())
    assert {key: v for key, v in conf.items() if key != "redis"} == base
    redis = [d for d in yaml.safe_load_all((over / "redis.yaml").read_text()) if d]
    (svc,) = [d for d in redis if d["kind"] == "Service"]
    assert conf["redis"]["url"] == f"redis://{svc['metadata']['name']}:6379"
    env = dict(os.environ, SIDEPUSH_PUBLISH_TOKEN="t")
    out = subprocess.run([SIDEPUSH, "--check-config", str(over / "sidepush.yaml")], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
