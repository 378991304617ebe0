"""The browser's own EventSource, WebSocket and fetch(), in headless Chromium
driven by playwright-core (tests/browser/transports.mjs), against sidepush in
front of the demo app."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SIDEPUSH, RedisServer, free_port, wait_port, workers_line
from pushutil import wait_metric

BROWSER_DIR = ROOT / "tests" / "browser"


def run_browser_script(script, env):
    """Runs a tests/browser script; returns its JSON result, which must say ok."""
    assert (BROWSER_DIR / "node_modules" / "playwright-core").exists(), \
        "run `npm ci` in tests/browser (.ci/deps test does)"
    out = subprocess.run([shutil.which("node"), script], cwd=BROWSER_DIR, env=env,
                         capture_output=True, text=True, timeout=120)
    print(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    assert result["ok"], result
    return result


def start_demo(tmp_path, replicas=1, extra=""):
    """The demo app behind sidepush replicas; yields their ports and publish ports."""
    app_port = free_port()
    app = subprocess.Popen([sys.executable, str(ROOT / "deploy/base/demo-app/app.py"),
                            "--port", str(app_port)])
    wait_port(app_port, app, "demo app")
    procs, ports, publish_ports = [], [], []
    for i in range(replicas):
        port, publish_port = free_port(), free_port()
        config = tmp_path / f"browser{i}.yaml"
        config.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{publish_port}\n"
                          f"backend: {{ url: 'http://127.0.0.1:{app_port}' }}\n"
                          "log: { level: warn }\n" + workers_line(extra) + extra +
                          "routes:\n  - path: /events/{channel}\n"
                          "    subscribe: { sse: { retry: 300ms } }\n")
        sp = subprocess.Popen([SIDEPUSH, "--config", str(config)])
        wait_port(port, sp, "sidepush")
        procs.append(sp)
        ports.append(port)
        publish_ports.append(publish_port)
    yield ports, publish_ports
    for sp in procs:
        sp.terminate()
        assert sp.wait(10) == 0
    app.terminate()
    app.wait(10)


@pytest.fixture
def demo_stack(tmp_path):
    for ports, publish_ports in start_demo(tmp_path):
        yield ports[0], publish_ports[0]


@pytest.fixture
def demo_replicas(tmp_path):
    redis = RedisServer(tmp_path)
    try:
        yield from start_demo(tmp_path, 3, redis.config())
    finally:
        redis.stop()


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_eventsource_websocket_and_fetch_in_chromium(demo_stack):
    port, publish_port = demo_stack
    env = dict(os.environ, SIDEPUSH_PORT=str(port), SIDEPUSH_PUBLISH_PORT=str(publish_port))
    result = run_browser_script("transports.mjs", env)
    assert result["opens"]["sse"] >= 2 and result["opens"]["ws"] >= 2  # they really reconnected


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_browser_transports_resume_on_other_replicas_through_redis(demo_replicas):
    """Three replicas sharing Redis behind a round-robin relay: the page's EventSource,
    WebSocket and fetch() loop reconnect to other replicas after the cut and resume there;
    publishes go to the replicas in turn."""
    ports, publish_ports = demo_replicas
    for port in ports:  # both Redis connections ready
        wait_metric(f"http://127.0.0.1:{port}", "sidepush_redis_up", 1)
    env = dict(os.environ, SIDEPUSH_PORTS=",".join(map(str, ports)),
               SIDEPUSH_PUBLISH_PORTS=",".join(map(str, publish_ports)))
    result = run_browser_script("transports.mjs", env)
    assert result["opens"]["sse"] >= 2 and result["opens"]["ws"] >= 2


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_eventsource_on_a_grip_stream_in_chromium(sidepush):
    env = dict(os.environ, SIDEPUSH_PORT=str(sidepush.port),
               SIDEPUSH_PUBLISH_PORT=str(sidepush.publish_port))
    run_browser_script("grip.mjs", env)


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_apps_own_websocket_through_sidepush_in_chromium(sidepush):
    """The backend's own WebSocket endpoint, from the browser, through the
    Upgrade tunnel (text, binary, the app's close code, its subprotocol)."""
    env = dict(os.environ, SIDEPUSH_PORT=str(sidepush.port))
    run_browser_script("app-websocket.mjs", env)
