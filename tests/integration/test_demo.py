"""The README's demo: the legacy demo app behind sidepush with an example config."""
import subprocess
import sys

import pytest
import requests

from conftest import ROOT, SIDEPUSH, free_port, wait_port


@pytest.fixture
def demo(tmp_path):
    app_port, port, publish_port = free_port(), free_port(), free_port()
    app = subprocess.Popen([sys.executable, str(ROOT / "deploy/demo-app/app.py"),
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
