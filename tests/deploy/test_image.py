"""The container image, built for real from the Dockerfile (podman with runc,
on Debian 12 base images made by image-base.sh from the Debian archive) and
run the way the manifests run it: a read-only root, a non-root user, no
capabilities, no-new-privileges. It must print its version, accept every
example configuration, answer health, proxy to an app, deliver a publish to
SSE subscribers, and drain them on SIGTERM as PID 1 with exit code 0."""
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = "localhost/sidepush:test"
VERSION = re.search(r"version: '([^']+)'", (ROOT / "meson.build").read_text()).group(1)


def limits():
    """podman's defaults (a million open files and processes) are above what a
    sandboxed CI machine lets runc set, and runc then refuses to start: the
    open files are this process's own hard limit; 4096 processes are plenty."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return [f"--ulimit=nofile={nofile}:{nofile}", "--ulimit=nproc=4096:4096"]


RUN = ["podman", "run", "--runtime", "runc", *limits(), "--read-only", "--user", "10001:10001",
       "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "host"]


def podman(*args, timeout=60, check=True):
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"podman {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=1)
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (.ci/deps test installs it)")
    base = subprocess.run([str(HERE / "image-base.sh"), str(tmp_path_factory.mktemp("base"))],
                          capture_output=True, text=True, timeout=900)
    assert base.returncode == 0, base.stdout + base.stderr
    build = subprocess.run(["podman", "build", "--runtime", "runc", "--pull=never", "--network", "host",
                            *limits(), "--build-arg", f"VERSION={VERSION}", "-t", IMAGE, str(ROOT)],
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-20000:] + build.stderr[-5000:]
    yield IMAGE
    podman("rmi", "-f", IMAGE, check=False)


def test_image_metadata(image):
    (info,) = json.loads(podman("image", "inspect", image).stdout)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/sidepush"]
    assert config["Cmd"] == ["--config", "/etc/sidepush/sidepush.yaml"]
    assert set(config["ExposedPorts"]) == {"8080/tcp"}  # the publish listener is the pod's
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "sidepush"
    assert labels["org.opencontainers.image.version"] == VERSION
    print(f"image size: {info['Size'] / 1e6:.1f} MB")
    assert info["Size"] < 150e6  # runtime libraries only, no compiler, no apt caches


def test_version_read_only_and_unprivileged(image):
    out = subprocess.run([*RUN, "--rm", image, "--version"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"sidepush {VERSION}"
    whoami = subprocess.run([*RUN, "--rm", "--entrypoint", "/usr/bin/id", image, "-u"],
                            capture_output=True, text=True, timeout=60)
    assert whoami.stdout.strip() == "10001", whoami.stdout + whoami.stderr


def example_configs():
    return sorted(ROOT.glob("config/*.yaml")) + [ROOT / "deploy/base/sidepush.yaml",
                                                 ROOT / "deploy/replicas/sidepush.yaml"]


@pytest.mark.parametrize("config", example_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_configuration_is_accepted(image, config, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "token").write_text("stand-in\n")
    (secrets / "password").write_text("stand-in\n")
    out = subprocess.run([*RUN, "--rm", "-v", f"{config}:/etc/sidepush/sidepush.yaml:ro",
                          "-v", f"{secrets}:/etc/sidepush-secret:ro",
                          "-v", f"{secrets}:/etc/sidepush-redis:ro",
                          "-e", "SIDEPUSH_PUBLISH_TOKEN=t", "-e", "SIDEPUSH_WEBHOOK_SECRET=whsec_dGVzdA==",
                          "-e", "PUSHER_APP_SECRET=stand-in",
                          "-e", "SUBSCRIBE_TOKEN_SECRET=a-stand-in-secret-of-32-bytes-or-more",
                          image, "--check-config", "/etc/sidepush/sidepush.yaml"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


async def sse_clients(url, n, opened):
    """n EventSource-like readers: each is True if it got the message, then a
    retry: hint (sent away by the drain), then a clean end of the stream."""
    async def one(session):
        got = retry_after = False
        async with session.get(url, headers={"Accept": "text/event-stream"}) as r:
            assert r.status == 200
            opened.append(1)
            async for line in r.content:
                got = got or line == b"data: hello\n"
                retry_after = retry_after or (got and line.startswith(b"retry: "))
        return got and retry_after
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     connector=aiohttp.TCPConnector(limit=0)) as session:
        return await asyncio.gather(*(one(session) for _ in range(n)), return_exceptions=True)


def test_serves_proxies_delivers_and_drains_as_pid_1(image, tmp_path):
    app_port, port, publish_port = free_port(), free_port(), free_port()
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text("<p>the legacy app</p>\n")
    app = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                            "--directory", str(site), str(app_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "sidepush.yaml"
    config.write_text((ROOT / "config/minimal.yaml").read_text().replace("127.0.0.1:3000", f"127.0.0.1:{app_port}")
                      + f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{publish_port}\n"
                      "shutdown_grace: 4s\n")
    name = f"sidepush-test-{port}"
    podman("run", "--runtime", "runc", *limits(), "--read-only", "--user", "10001:10001",
           "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "host",
           "-d", "--name", name, "-v", f"{config}:/etc/sidepush/sidepush.yaml:ro", image)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_http(url + "/healthz").json() == {"status": "ok"}
        r = requests.get(url + "/page.html", timeout=5)
        assert r.status_code == 200 and "the legacy app" in r.text

        async def scenario():
            opened = []
            readers = asyncio.ensure_future(sse_clients(url + "/events/img", 200, opened))
            while len(opened) < 200:
                await asyncio.sleep(0.05)
            r = requests.post(f"http://127.0.0.1:{publish_port}/publish/img", data=b"hello", timeout=5)
            assert r.status_code == 202
            await asyncio.sleep(0.5)
            started = time.monotonic()
            podman("kill", "--signal", "TERM", name)
            results = await readers
            return results, time.monotonic() - started
        results, took = asyncio.run(asyncio.wait_for(scenario(), 90))
        assert all(r is True for r in results), [r for r in results if r is not True][:3]
        assert took < 4 + 2  # spread over shutdown_grace, then done
        exit_code = podman("wait", name, timeout=30).stdout.strip()
        assert exit_code == "0"
        logs = podman("logs", name).stdout
        assert '"event":"draining"' in logs and '"event":"stopped"' in logs
    finally:
        podman("rm", "-f", name, check=False)
        app.terminate()
        app.wait(10)
