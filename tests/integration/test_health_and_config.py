"""Health endpoints, the command line, and every example file in config/."""
import os
import subprocess

import pytest
import requests

from conftest import ROOT, SIDEPUSH

CONFIG_FILES = sorted((ROOT / "config").glob("*.yaml"))


def test_health_endpoints_are_answered_not_proxied(sidepush, backend):
    before = backend.hits().get("/healthz", 0)
    r = requests.get(sidepush.url + "/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = requests.get(sidepush.url + "/readyz", timeout=5)
    assert r.status_code == 200
    assert requests.head(sidepush.url + "/readyz", timeout=5).status_code == 200
    r = requests.post(sidepush.url + "/healthz", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert backend.hits().get("/healthz", 0) == before


def test_health_paths_are_configurable(make_sidepush, backend):
    sp = make_sidepush("health: { liveness_path: /live, readiness_path: /ready }\n")
    assert requests.get(sp.url + "/live", timeout=5).status_code == 200
    assert requests.get(sp.url + "/ready", timeout=5).status_code == 200
    before = backend.hits().get("/healthz", 0)
    requests.get(sp.url + "/healthz", timeout=5)  # now an ordinary path: proxied
    assert backend.hits().get("/healthz", 0) == before + 1


def test_publish_listener_answers_json_404(sidepush):
    r = requests.post(f"http://127.0.0.1:{sidepush.publish_port}/nothing", timeout=5)
    assert r.status_code == 404 and r.json()["error"]


def test_routes_claim_their_paths(make_sidepush, backend):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    before = backend.hits().get("/events/news", 0)
    r = requests.get(sp.url + "/events/news?wait=0", timeout=5)
    assert r.status_code == 304  # answered by sidepush (a plain poll), not the backend
    assert backend.hits().get("/events/news", 0) == before


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    env = dict(os.environ, SIDEPUSH_PUBLISH_TOKEN="test-token",
               SIDEPUSH_WEBHOOK_SECRET="whsec_dGVzdA==", PUSHER_APP_SECRET="test-secret",
               SUBSCRIBE_TOKEN_SECRET="a-test-secret-of-at-least-32-bytes!")
    out = subprocess.run([SIDEPUSH, "--check-config", str(path)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "configuration is valid" in out.stdout


def test_there_are_example_configs():
    names = {p.name for p in CONFIG_FILES}
    assert {"minimal.yaml", "full.yaml"} <= names


def test_full_example_documents_every_key():
    """Every key sidepush knows appears in config/full.yaml."""
    reference = subprocess.run([SIDEPUSH, "--help-config"], capture_output=True, text=True,
                               check=True).stdout
    full = (ROOT / "config" / "full.yaml").read_text()
    for line in reference.splitlines():
        if line.startswith("#"):
            continue
        key = line.split(":", 1)[0].strip().split(".")[-1]
        assert f"{key}:" in full, f"config/full.yaml does not document '{key}'"


def test_check_config_reports_every_error_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: nowhere\nbackend:\n  url: ftp://x\n  timeout: 30\nextra: 1\n")
    out = subprocess.run([SIDEPUSH, "--check-config", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 4, out.stderr
    assert lines[0].startswith(f"{bad}:1:9: invalid address")
    assert lines[1].startswith(f"{bad}:3:8: URL 'ftp://x'")
    assert lines[2].startswith(f"{bad}:4:12: duration '30' needs a unit")
    assert lines[3].startswith(f"{bad}:5:1: unknown key 'extra'")


def test_unset_env_var_is_an_error(tmp_path):
    f = tmp_path / "env.yaml"
    f.write_text('backend: { url: "${SIDEPUSH_TEST_UNSET_VAR}" }\n')
    env = {k: v for k, v in os.environ.items() if k != "SIDEPUSH_TEST_UNSET_VAR"}
    out = subprocess.run([SIDEPUSH, "--check-config", str(f)], capture_output=True, text=True,
                         env=env)
    assert out.returncode != 0
    assert f"{f}:1:17: environment variable 'SIDEPUSH_TEST_UNSET_VAR' is not set" in out.stderr


def test_run_with_bad_config_exits_nonzero(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("nonsense: [\n")
    out = subprocess.run([SIDEPUSH, "--config", str(f)], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and "YAML syntax error" in out.stderr


def test_https_backend_is_refused_with_its_position(tmp_path):
    """The proxy speaks plain HTTP/1.1 to the app beside it (its own client)."""
    f = tmp_path / "tls.yaml"
    f.write_text("backend: { url: 'https://app.example:8443' }\n")
    out = subprocess.run([SIDEPUSH, "--check-config", str(f)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode != 0
    assert f"{f}:1:1: backend.url must be an http:// URL or unix:/path" in out.stderr


def test_version_and_help():
    out = subprocess.run([SIDEPUSH, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sidepush ")
    out = subprocess.run([SIDEPUSH, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--check-config" in out.stdout
    out = subprocess.run([SIDEPUSH], capture_output=True, text=True)
    assert out.returncode == 2


def test_listen_address_in_use_is_reported(sidepush, tmp_path):
    f = tmp_path / "clash.yaml"
    f.write_text(f"listen: 127.0.0.1:{sidepush.port}\npublish_listen: 127.0.0.1:1\n"
                 "backend: {url: http://127.0.0.1:9}\n")
    out = subprocess.run([SIDEPUSH, "--config", str(f)], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert "cannot listen on 127.0.0.1" in out.stdout


def test_start_logs_the_cpus_it_may_use(tmp_path):
    """The affinity mask counts (taskset here; a cpuset or Kubernetes' CPU
    manager in a pod); the cgroup v2 quota is read from cpu.max (unit-tested
    on a made-up cgroup tree)."""
    import json
    import time
    from conftest import free_port
    port, pub = free_port(), free_port()
    conf = tmp_path / "c.yaml"
    conf.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{pub}\n"
                    "backend: { url: 'http://127.0.0.1:9' }\n")
    proc = subprocess.Popen(["taskset", "-c", "0", SIDEPUSH, "--config", str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        line, started = None, False
        while not started and time.monotonic() < deadline:
            text = proc.stdout.readline()
            event = json.loads(text) if text.startswith("{") else {}
            if event.get("event") == "cpus":
                line = event
            started = event.get("event") == "started"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert line is not None and line["level"] == "info"
    assert line["msg"].startswith("1 usable (affinity mask 1, cgroup v2 quota ")


def test_config_readme_lists_every_key_as_the_loader_does():
    """config/README.md's key block is --help-config's output (the loader's own
    key table); .ci/config-readme writes it again after a change."""
    ref = subprocess.run([SIDEPUSH, "--help-config"], capture_output=True, text=True, check=True).stdout
    text = (ROOT / "config" / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].rsplit("```", 1)[0]
    assert block == ref, "config/README.md differs from sidepush --help-config: run .ci/config-readme"
