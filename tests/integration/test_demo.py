"""The README's demo: the legacy demo app behind sidepush with an example config."""
import json
import subprocess
import sys
import time

import pytest
import requests

from conftest import ROOT, SIDEPUSH, free_port, wait_port
from pushutil import CurlSSE


def wait_subscribers_at(admin_url, channel, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = requests.get(admin_url + "/metrics", timeout=5).text
        if any(line.startswith('sidepush_subscribers{transport="sse"} 1') for line in text.splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no subscriber on {channel}")


@pytest.fixture
def demo(tmp_path):
    app_port, port, publish_port = free_port(), free_port(), free_port()
    app = subprocess.Popen([sys.executable, str(ROOT / "deploy/base/demo-app/app.py"),
                            "--port", str(app_port)])
    wait_port(app_port, app, "demo app")
    # config/minimal.yaml, moved to free ports so the test can run anywhere.
    config = (ROOT / "config/minimal.yaml").read_text().replace("127.0.0.1:3000",
                                                                  f"127.0.0.1:{app_port}")
    config += f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{publish_port}\n"
    path = tmp_path / "demo.yaml"
    path.write_text(config)
    sp = subprocess.Popen([SIDEPUSH, "--config", str(path)], stdout=subprocess.DEVNULL)
    wait_port(port, sp, "sidepush")
    yield f"http://127.0.0.1:{port}"
    sp.terminate()
    assert sp.wait(10) == 0
    app.terminate()
    app.wait(10)


def test_demo_app_through_sidepush(demo):
    page = requests.get(demo + "/", timeout=5)
    assert page.status_code == 200 and "<h1>Orders</h1>" in page.text
    created = requests.post(demo + "/api/orders", json={"item": "tea"}, timeout=5)
    assert created.status_code == 201
    oid = created.json()["id"]
    assert requests.get(demo + f"/api/orders/{oid}", timeout=5).json()["item"] == "tea"
    assert any(o["item"] == "tea" for o in requests.get(demo + "/api/orders", timeout=5).json())
    assert requests.get(demo + "/healthz", timeout=5).json() == {"status": "ok"}


def start_app(*args):
    port = free_port()
    app = subprocess.Popen([sys.executable, str(ROOT / "deploy/base/demo-app/app.py"),
                            "--port", str(port), *args])
    wait_port(port, app, "demo app")
    return app, f"http://127.0.0.1:{port}"


def test_replicas_of_the_app_share_one_board(tmp_path):
    from conftest import RedisServer
    redis = RedisServer(tmp_path, password="s3cret")
    (tmp_path / "redis-password").write_text("s3cret\n")
    apps = [start_app("--redis", f"127.0.0.1:{redis.port}",
                      "--redis-password-file", str(tmp_path / "redis-password")) for _ in range(2)]
    try:
        (_, a), (_, b) = apps
        made = requests.post(a + "/api/orders", json={"item": "tea"}, timeout=5).json()
        assert requests.get(b + f"/api/orders/{made['id']}", timeout=5).json()["item"] == "tea"
        assert [o["item"] for o in requests.get(b + "/api/orders", timeout=5).json()] == \
            ["coffee", "tea"]
    finally:
        for app, _ in apps:
            app.terminate()
            app.wait(10)
        redis.stop()


def test_the_app_reaches_a_managed_redis_over_tls_as_an_acl_user(tmp_path):
    """deploy/managed-redis: the demo app's own store speaks TLS (the server's
    certificate checked against a CA and its name) and AUTHs as an ACL user."""
    from test_redis_tls import TlsRedis, make_ca, make_cert
    make_ca(tmp_path, "ca")
    make_cert(tmp_path, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    redis = TlsRedis(tmp_path, tmp_path)
    subprocess.run(["redis-cli", "--tls", "--cacert", str(tmp_path / "ca.crt"), "-p",
                    str(redis.port), "ACL", "SETUSER", "board", "on", ">pw", "~orders*", "+@all"],
                   check=True, capture_output=True)
    (tmp_path / "password").write_text("pw\n")
    common = ["--redis", f"localhost:{redis.port}", "--redis-user", "board",
              "--redis-password-file", str(tmp_path / "password")]
    apps = [start_app(*common, "--redis-ca", str(tmp_path / "ca.crt")) for _ in range(2)]
    untrusted, untrusted_url = start_app(*common, "--redis-tls")  # the system's CAs only
    try:
        (_, a), (_, b) = apps
        made = requests.post(a + "/api/orders", json={"item": "tea"}, timeout=5).json()
        assert requests.get(b + f"/api/orders/{made['id']}", timeout=5).json()["item"] == "tea"
        refused = requests.get(untrusted_url + "/api/orders", timeout=5)
        assert refused.status_code == 503 and "certificate" in refused.json()["error"]
    finally:
        for app, _ in apps + [(untrusted, untrusted_url)]:
            app.terminate()
            app.wait(10)
        redis.stop()


def test_sigterm_stops_the_app_at_once_with_a_kept_connection_open():
    app, url = start_app()
    session = requests.Session()  # keeps its connection open, idle, after the answer
    assert session.get(url + "/api/orders", timeout=5).status_code == 200
    started = time.monotonic()
    app.terminate()
    assert app.wait(5) == 0
    assert time.monotonic() - started < 2


def test_token_file_and_pre_stop_hook(tmp_path):
    admin, port, publish_port = free_port(), free_port(), free_port()
    token = tmp_path / "token"
    token.write_text("first\n")
    config = tmp_path / "sp.yaml"
    app, app_url = start_app("--publish", f"http://127.0.0.1:{publish_port}",
                             "--token-file", str(token))
    config.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{publish_port}\n"
                      f"metrics: {{ listen: '127.0.0.1:{admin}' }}\n"
                      f"backend: {{ url: '{app_url}' }}\nshutdown_grace: 2s\n"
                      f"publish: {{ auth: {{ bearer_token: '${{file:{token}}}' }} }}\n"
                      "routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    sp = subprocess.Popen([SIDEPUSH, "--config", str(config)], stdout=subprocess.DEVNULL)
    wait_port(port, sp, "sidepush")
    url = f"http://127.0.0.1:{port}"
    sse = CurlSSE(url + "/events/orders")
    try:
        wait_subscribers_at(f"http://127.0.0.1:{admin}", "orders")
        requests.post(url + "/api/orders", json={"item": "tea"}, timeout=5)
        assert json.loads(sse.events(1)[0]["data"])["item"] == "tea"
        token.write_text("second\n")  # both sides read it: sidepush reloads, the app rereads
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(sse.events(2, timeout=0.5)) < 2:
            requests.post(url + "/api/orders", json={"item": "rotated"}, timeout=5)
        assert any(json.loads(e["data"])["item"] == "rotated" for e in sse.events(2))
        hook = subprocess.run([sys.executable, str(ROOT / "deploy/base/demo-app/app.py"), "--pre-stop",
                               f"http://127.0.0.1:{admin}/drain", "--pre-stop-wait", "0"],
                              timeout=10)
        assert hook.returncode == 0
        assert requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=5).status_code == 503
        assert sse.proc.wait(5) == 0  # sent away by the drain
        assert requests.get(url + "/api/orders", timeout=5).status_code == 200  # still proxied
    finally:
        sse.close()
        sp.terminate()
        assert sp.wait(10) == 0
        app.terminate()
        app.wait(10)
