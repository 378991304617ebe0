"""deploy/: every overlay rendered with `kubectl kustomize`, every object
validated against the Kubernetes schemas (validate.mjs, npm kubernetes-models,
field names strictly), every pod held to the Pod Security "restricted"
profile, and the invariants a user of the example relies on: what leaves the
pod, probes, pinned images, the grace arithmetic, Redis locked down, and each
overlay's sidepush configuration accepted by `sidepush --check-config`."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HERE = Path(__file__).resolve().parent
SIDEPUSH = os.environ.get("SIDEPUSH_BIN", str(ROOT / "build" / "cmd" / "sidepush"))
OVERLAYS = ["single", "classic", "replicas", "managed-redis"]
# Where the overlays mount their Secrets; the test stands in files for them.
SECRET_MOUNTS = {"/etc/sidepush-secret/": "token", "/etc/sidepush-redis/": "password"}


def need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is needed (.ci/deps test installs it)")


_rendered = {}


def render(overlay):
    if overlay not in _rendered:
        need("kubectl")
        out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / overlay)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        _rendered[overlay] = [d for d in yaml.safe_load_all(out.stdout) if d]
    return _rendered[overlay]


def objects(overlay, kind):
    return [o for o in render(overlay) if o["kind"] == kind]


def orders(overlay):
    (dep,) = [d for d in objects(overlay, "Deployment") if d["metadata"]["name"] == "orders"]
    return dep


def containers(pod):
    return pod.get("initContainers", []) + pod["containers"]


def sidepush_container(pod):
    (sp,) = [c for c in containers(pod) if c["name"] == "sidepush"]
    return sp


def sidepush_config(overlay):
    (cm,) = [c for c in objects(overlay, "ConfigMap") if c["metadata"]["name"] == "sidepush-config"]
    return cm["data"]["sidepush.yaml"]


def seconds(text):
    return int(re.fullmatch(r"(\d+)s", text).group(1))


# ---- rendering and schemas ------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_is_valid(overlay):
    need("node")
    if not (HERE / "node_modules" / "kubernetes-models").is_dir():
        pytest.fail("tests/deploy/node_modules is missing: .ci/deps test runs npm ci there")
    out = subprocess.run(["node", str(HERE / "validate.mjs")], input=json.dumps(render(overlay)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_validator_catches_what_the_server_would_drop():
    """validate.mjs itself: a misspelt field and a wrong type are both reported."""
    need("node")
    bad = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"terminationGracePeriodSeconds": "45",
                                           "containers": [{"name": "c", "image": "i:1",
                                                           "readinessProbe": {"timeoutSecond": 2}}]}}}}]
    out = subprocess.run(["node", str(HERE / "validate.mjs")], input=json.dumps(bad),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "readinessProbe.timeoutSecond: unknown field" in out.stdout
    assert "terminationGracePeriodSeconds must be integer" in out.stdout


# ---- the Pod Security "restricted" profile ---------------------------------------------------
# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline + restricted)

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod):
    found = []
    psc = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(key)
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {v['name']}: {kinds - RESTRICTED_VOLUMES}")
    if psc.get("sysctls"):
        found.append("sysctls")
    for c in containers(pod):
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("privileged"):
            found.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{where}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: adds capabilities")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{where}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            found.append(f"{where}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{where}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{where}: procMount")
    return found


def test_the_restricted_checker_itself():
    pod = {"containers": [{"name": "c", "securityContext": {}}], "volumes": [{"name": "h", "hostPath": {}}]}
    found = restricted_violations(pod)
    assert any("allowPrivilegeEscalation" in f for f in found)
    assert any("drop ALL" in f for f in found)
    assert any("seccompProfile" in f for f in found)
    assert any("hostPath" in f for f in found)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_passes_the_restricted_profile(overlay):
    for dep in objects(overlay, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert restricted_violations(pod) == [], dep["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False  # nothing talks to the API server
        for c in containers(pod):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
            assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]


# ---- the pod ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_and_never_pulled_again(overlay):
    for dep in objects(overlay, "Deployment"):
        for c in containers(dep["spec"]["template"]["spec"]):
            name, _, tag = c["image"].rpartition(":")
            assert name and re.search(r"\d+\.\d+\.\d+", tag), c["image"]  # no latest, no 3.11
            assert c["imagePullPolicy"] == "IfNotPresent", c["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_labels(overlay):
    for obj in render(overlay):
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "orders-demo", obj["metadata"]["name"]
    for dep in objects(overlay, "Deployment"):
        selector = dep["spec"]["selector"]["matchLabels"]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
        assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_client_port_leaves_the_pod(overlay):
    (svc,) = [s for s in objects(overlay, "Service") if s["metadata"]["name"] == "orders"]
    dep = orders(overlay)
    cfg = yaml.safe_load(sidepush_config(overlay))
    client_port = int(cfg["listen"].rsplit(":", 1)[1])
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    # A number: a named port on a native sidecar (an init container) has no endpoints
    # before Kubernetes 1.32.
    assert [(p["targetPort"], p["appProtocol"]) for p in svc["spec"]["ports"]] == [(client_port, "http")]
    assert cfg["publish_listen"].startswith("127.0.0.1:")  # the pod only
    assert not cfg["metrics"]["listen"].endswith(f":{client_port}")  # metrics apart


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_form_keeps_other_pods_off_the_admin_port(overlay):
    """Issue 22 item 9: the admin port (metrics, /drain) was open to the whole
    cluster in single and classic. Every form has the pods' NetworkPolicy, and
    sidepush takes /drain from loopback only (its own preStop hook)."""
    dep = orders(overlay)
    cfg = yaml.safe_load(sidepush_config(overlay))
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(overlay, "NetworkPolicy")}
    to_orders = policies["orders"]
    assert to_orders["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    client_port = int(cfg["listen"].rsplit(":", 1)[1])
    admin_port = int(cfg["metrics"]["listen"].rsplit(":", 1)[1])
    open_ports = [p["port"] for r in to_orders["ingress"] if "from" not in r for p in r["ports"]]
    assert open_ports == [client_port] and admin_port not in open_ports
    assert "drain_from" not in cfg["metrics"] and "drain_token" not in cfg["metrics"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes(overlay):
    pod = orders(overlay)["spec"]["template"]["spec"]
    sp = sidepush_container(pod)
    cfg = yaml.safe_load(sidepush_config(overlay))
    admin = int(cfg["metrics"]["listen"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in sp["ports"]}
    assert ports["admin"] == admin
    probes = {k: sp[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["startupProbe"]["httpGet"]["path"] == "/readyz"  # the app starts after it
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name, p in probes.items():
        assert p["httpGet"]["port"] == "admin", name  # apart from the clients' cap
        assert p["timeoutSeconds"] >= 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_covers_the_pre_stop_the_app_and_the_drain(overlay):
    pod = orders(overlay)["spec"]["template"]["spec"]
    cfg = yaml.safe_load(sidepush_config(overlay))
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    hook = app["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[hook.index("--pre-stop") + 1] == f"http://127.0.0.1:{cfg['metrics']['listen'].rsplit(':', 1)[1]}/drain"
    pre_stop = float(hook[hook.index("--pre-stop-wait") + 1])
    app_stop = 5  # the demo app: its requests in flight (app.py, IN_FLIGHT.wait_idle)
    sp = sidepush_container(pod)
    if overlay == "classic":  # both containers stop together: sidepush's hook outlasts the app
        sp_hook = sp["lifecycle"]["preStop"]["exec"]["command"]
        assert sp_hook[0] == "/bin/sleep" and float(sp_hook[1]) >= pre_stop + app_stop
        sidepush_starts_draining = float(sp_hook[1])
        assert "restartPolicy" not in sp and "initContainers" not in pod
    else:  # the native sidecar is stopped after the app has exited
        assert sp["restartPolicy"] == "Always" and sp in pod["initContainers"]
        sidepush_starts_draining = pre_stop + app_stop
    needed = sidepush_starts_draining + seconds(cfg["shutdown_grace"])
    assert pod["terminationGracePeriodSeconds"] >= needed + 5  # and a margin


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_is_valid_and_mounted(overlay, tmp_path):
    pod = orders(overlay)["spec"]["template"]["spec"]
    sp = sidepush_container(pod)
    text = sidepush_config(overlay)
    mounts = {m["mountPath"]: m["name"] for m in sp["volumeMounts"]}
    assert sp["args"] == ["--config", "/etc/sidepush/sidepush.yaml"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/sidepush"]]["configMap"]["name"] == "sidepush-config"
    configmaps = {c["metadata"]["name"] for c in objects(overlay, "ConfigMap")}
    assert {v["configMap"]["name"] for v in volumes.values() if "configMap" in v} <= configmaps
    # Every ${file:} the configuration reads is a mounted Secret's key.
    for path in re.findall(r"\$\{file:([^}]+)\}", text):
        directory, key = path.rsplit("/", 1)
        volume = volumes[mounts[directory]]
        assert "secret" in volume, path
        (tmp_path / key).write_text("stand-in\n")
        text = text.replace(path, str(tmp_path / key))
    config = tmp_path / "sidepush.yaml"
    config.write_text(text)
    out = subprocess.run([SIDEPUSH, "--check-config", str(config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_secret_is_rendered():
    """Created once with kubectl (deploy/README.md), so no `apply -k` overwrites a rotated one."""
    for overlay in OVERLAYS:
        assert objects(overlay, "Secret") == []


# ---- replicas ----------------------------------------------------------------------------------

def test_replicas_roll_safely_and_spread():
    dep = orders("replicas")
    spec = dep["spec"]
    assert spec["replicas"] == 3 and spec["minReadySeconds"] >= 5
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for c in spread:
        assert c["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (pdb,) = objects("replicas", "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    (hpa,) = objects("replicas", "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "orders"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "sidepush_subscribers"
    assert hpa["spec"]["minReplicas"] >= 2
    cfg = yaml.safe_load(sidepush_config("replicas"))
    assert cfg["limits"]["max_connection_age"]  # new pods get their share


def test_replicas_redis_is_locked_down():
    cfg = yaml.safe_load(sidepush_config("replicas"))
    (redis,) = [d for d in objects("replicas", "Deployment") if d["metadata"]["name"] == "sidepush-redis"]
    (svc,) = [s for s in objects("replicas", "Service") if s["metadata"]["name"] == "sidepush-redis"]
    assert cfg["redis"]["url"] == f"redis://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    (c,) = redis["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" in c["args"] and c["args"][c["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    (env,) = [e for e in c["env"] if e["name"] == "REDIS_PASSWORD"]
    secret = env["valueFrom"]["secretKeyRef"]
    pod = orders("replicas")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in sidepush_container(pod)["volumeMounts"] if m["mountPath"] == "/etc/sidepush-redis"]
    assert volumes[mount["name"]]["secret"]["secretName"] == secret["name"]
    assert cfg["redis"]["password"] == "${file:/etc/sidepush-redis/" + secret["key"] + "}"
    policies = {p["metadata"]["name"]: p["spec"] for p in objects("replicas", "NetworkPolicy")}
    to_redis = policies["sidepush-redis"]
    assert to_redis["podSelector"]["matchLabels"] == svc["spec"]["selector"]
    (rule,) = to_redis["ingress"]
    assert [f["podSelector"]["matchLabels"] for f in rule["from"]] == \
        [orders("replicas")["spec"]["selector"]["matchLabels"]]
    assert [p["port"] for p in rule["ports"]] == [6379]
    to_orders = policies["orders"]
    open_ports = [p["port"] for r in to_orders["ingress"] if "from" not in r for p in r["ports"]]
    assert open_ports == [8080]  # the admin port only from the monitoring namespace


def test_replicas_share_the_app_state():
    pod = orders("replicas")["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    assert "--redis" in app["command"] and "--redis-password-file" in app["command"]
    path = app["command"][app["command"].index("--redis-password-file") + 1]
    assert any(path.startswith(m["mountPath"] + "/") for m in app["volumeMounts"])


def test_managed_redis_replaces_the_in_cluster_one_with_tls():
    """deploy/managed-redis: no Redis of its own, sidepush and the app both over
    TLS as the same user, the password a mounted Secret, the CA Secret optional."""
    cfg = yaml.safe_load(sidepush_config("managed-redis"))
    assert not [d for d in render("managed-redis") if "redis" in d["metadata"]["name"]]
    assert cfg["redis"]["url"].startswith("rediss://")
    host_port = cfg["redis"]["url"].split("//", 1)[1]
    pod = orders("managed-redis")["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    cmd = app["command"]
    assert cmd[cmd.index("--redis") + 1] == host_port and "--redis-tls" in cmd
    assert cmd[cmd.index("--redis-user") + 1] == cfg["redis"]["username"]
    assert cfg["redis"]["password"] == "${file:" + cmd[cmd.index("--redis-password-file") + 1] + "}"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["redis-ca"]["secret"]["optional"] is True
    assert volumes["redis-password"]["secret"]["secretName"] == "sidepush-redis"


# ---- the Grafana dashboard ---------------------------------------------------------------------

def test_dashboard_queries_only_metrics_sidepush_exports(tmp_path):
    """Every metric a panel queries is one a running sidepush (with Redis and a
    poll route, so that every family is there) exports on its admin listener."""
    dash = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    wanted = {"subscribers", "delivered", "fanout", "slow_consumer", "proxy_request_duration",
              "proxy_requests", "poll_results", "pusher_connections",
              "pusher_subscriptions", "redis_pubsub_lag", "redis_gaps_filled",
              "redis_primary_info", "websocket_deflate_bytes"}  # what the issues ask for
    queried = {m for p in panels for t in p["targets"] for m in re.findall(r"sidepush_\w+", t["expr"])}
    assert all(any(w in m for m in queried) for w in wanted), wanted
    import socket
    import time
    import requests

    def port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    need("redis-server")
    redis_port, listen, publish, admin = port(), port(), port(), port()
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL)
    config = tmp_path / "sp.yaml"
    config.write_text(f"listen: 127.0.0.1:{listen}\npublish_listen: 127.0.0.1:{publish}\n"
                      f"metrics: {{ listen: '127.0.0.1:{admin}' }}\nbackend: {{ url: 'http://127.0.0.1:1' }}\n"
                      f"redis: {{ url: 'redis://127.0.0.1:{redis_port}' }}\n"
                      "pusher: { app_id: '1', key: k, secret: s }\n"
                      "routes:\n  - path: /orders/{id}\n    subscribe: {}\n"
                      "    poll: { url: '/api/orders/{id}', interval: 1s }\n")
    sp = subprocess.Popen([SIDEPUSH, "--config", str(config)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            try:
                text = requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=2).text
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        exported = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
        assert "sidepush_redis_up" in exported and "sidepush_pollers" in exported
        for name in queried:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert base in exported, f"the dashboard queries {name}, which sidepush does not export"
        for p in panels:
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
    finally:
        sp.terminate()
        sp.wait(10)
        redis.terminate()
        redis.wait(10)
