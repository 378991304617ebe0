"""SIGHUP: a good new file takes effect for new requests while open
subscriptions keep receiving; a broken one is refused and the old one kept."""
import signal
import time

import requests

from conftest import SANITIZED, Sidepush
from pushutil import CurlSSE, publish, publish_ok, wait_subscribers

BASE = "routes:\n  - path: /events/{channel}\n    subscribe: {}\n"


def reload(sp, extra):
    text = sp.config.read_text()
    head = text.split("routes:")[0]
    sp.config.write_text(head + extra)
    sp.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)


def reload_now(sp, extra):
    """reload() without the wait: the caller waits for the log line."""
    text = sp.config.read_text()
    sp.config.write_text(text.split("routes:")[0] + extra)
    sp.proc.send_signal(signal.SIGHUP)


def test_reload_adds_a_route_and_keeps_connections(make_sidepush):
    sp = make_sidepush(BASE)
    sse = CurlSSE(f"{sp.url}/events/keep")
    try:
        wait_subscribers(sp, "keep", 1)
        publish_ok(sp, "keep", "before")
        assert requests.get(f"{sp.url}/live/x?wait=0", timeout=5).status_code == 404  # proxied
        reload(sp, BASE + "  - path: /live/{channel}\n    subscribe: {}\n")
        assert requests.get(f"{sp.url}/live/x?wait=0", timeout=5).status_code == 304  # new route
        publish_ok(sp, "keep", "after")
        assert [e["data"] for e in sse.events(2)] == ["before", "after"]  # never interrupted
    finally:
        sse.close()


def test_broken_config_is_refused_and_the_old_one_serves(make_sidepush):
    sp = make_sidepush(BASE)
    sse = CurlSSE(f"{sp.url}/events/stay")
    try:
        wait_subscribers(sp, "stay", 1)
        reload(sp, "routes: [ this is : not valid\n")
        assert sp.proc.poll() is None  # still running
        assert requests.get(f"{sp.url}/events/stay?wait=0", timeout=5).status_code == 304
        publish_ok(sp, "stay", "still here")
        assert sse.events(1)[0]["data"] == "still here"
    finally:
        sse.close()
    sp.log.flush()
    log = sp.config.with_suffix(".log").read_text()
    assert "reload_rejected" in log and "YAML syntax error" in log


# ---- changes on disk apply by themselves (watch_config, on by default) ----------------------

def wait_until(check, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def live_route(sp):
    return requests.get(f"{sp.url}/live/x?wait=0", timeout=5).status_code == 304


def kubelet_swap(volume, version, files):
    """What the kubelet does to a ConfigMap or Secret volume: the new files in
    a fresh hidden directory, then a "..data" symlink renamed over the old."""
    (volume / version).mkdir()
    for name, text in files.items():
        (volume / version / name).write_text(text)
    (volume / "..data_tmp").symlink_to(version)
    (volume / "..data_tmp").rename(volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")


def test_an_edited_file_applies_without_sighup(make_sidepush):
    sp = make_sidepush("log: { level: info }\n" + BASE)
    sse = CurlSSE(f"{sp.url}/events/keep")
    try:
        wait_subscribers(sp, "keep", 1)
        assert not live_route(sp)
        text = sp.config.read_text()
        sp.config.write_text(text + "  - path: /live/{channel}\n    subscribe: {}\n")
        assert wait_until(lambda: live_route(sp))
        publish_ok(sp, "keep", "after")
        assert [e["data"] for e in sse.events(1)] == ["after"]  # never interrupted
    finally:
        sse.close()
    sp.stop()
    assert "config_changed" in sp.output and "reloaded" in sp.output


def test_a_configmap_swap_applies_and_a_broken_one_is_kept_out(backend, tmp_path):
    volume = tmp_path / "config-volume"
    volume.mkdir()
    kubelet_swap(volume, "..v1", {"sidepush.yaml": ""})  # Sidepush writes through the link
    sp = Sidepush(backend.url, "log: { level: info }\n" + BASE, volume)
    try:
        head = (volume / "sidepush.yaml").read_text()
        kubelet_swap(volume, "..v2", {"sidepush.yaml": head + "  - path: /live/{channel}\n"
                                                        "    subscribe: {}\n"})
        assert wait_until(lambda: live_route(sp))
        kubelet_swap(volume, "..v3", {"sidepush.yaml": "routes: [ not : valid\n"})
        assert wait_until(lambda: "reload_rejected" in sp.config.with_suffix(".log").read_text())
        assert sp.proc.poll() is None and live_route(sp)  # the running one kept
    finally:
        assert sp.stop() == 0, sp.output
    assert "kept the running configuration" in sp.output


def test_a_rotated_secret_file_applies(backend, tmp_path):
    """publish.auth.bearer_token: '${file:...}' from a mounted Secret: the
    kubelet's swap of the Secret's volume rotates the token, no restart."""
    secret = tmp_path / "secret-volume"
    secret.mkdir()
    kubelet_swap(secret, "..s1", {"token": "old-token\n"})
    sp = Sidepush(backend.url, f"publish: {{ auth: {{ bearer_token: '${{file:{secret}/token}}' }} }}\n"
                  + BASE, tmp_path)

    def status(token):
        return publish(sp, "rot", "x", headers={"Authorization": f"Bearer {token}"}).status_code
    try:
        assert status("old-token") == 202 and status("new-token") == 401
        kubelet_swap(secret, "..s2", {"token": "new-token\n"})
        assert wait_until(lambda: status("new-token") == 202)
        assert status("old-token") == 401
    finally:
        assert sp.stop() == 0, sp.output


def test_watch_config_false_waits_for_sighup(make_sidepush):
    sp = make_sidepush("watch_config: false\n" + BASE)
    text = sp.config.read_text()
    sp.config.write_text(text + "  - path: /live/{channel}\n    subscribe: {}\n")
    time.sleep(1)  # four times the watcher's quiet spell
    assert not live_route(sp)
    sp.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: live_route(sp))


def test_a_backend_that_does_not_resolve_is_refused_whole(make_sidepush):
    """Issue 22 item 5: a reload whose backend host does not resolve crashed the
    process (host and base path left NULL). It is refused, nothing of it
    applied, and proxying goes on to the old backend."""
    sp = make_sidepush(BASE)
    text = sp.config.read_text()
    url = text.split("url: ")[1].split(",")[0]
    broken = (text.replace(url, "http://no-such-host.invalid:3000") +
              "  - path: /live/{channel}\n    subscribe: {}\n")
    for _ in range(2):
        sp.config.write_text(broken)
        sp.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert sp.proc.poll() is None
        r = requests.get(f"{sp.url}/hits", timeout=5)  # proxied to the old backend
        assert r.status_code == 200
        assert requests.get(f"{sp.url}/live/x?wait=0", timeout=5).status_code != 304  # not applied
    sp.log.flush()
    log = sp.config.with_suffix(".log").read_text()
    assert "reload_rejected" in log and "no-such-host.invalid" in log
    assert '"reloaded"' not in log


def test_check_config_warns_when_the_backend_does_not_resolve(tmp_path):
    import subprocess
    from conftest import SIDEPUSH
    path = tmp_path / "c.yaml"
    path.write_text("backend: { url: 'http://no-such-host.invalid:3000' }\n")
    r = subprocess.run([SIDEPUSH, "--check-config", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # a warning: the check may run where the pod's DNS is not
    assert "warning" in r.stderr and "no-such-host.invalid" in r.stderr


def wait_reloads(sp, count, timeout=20):
    deadline = time.monotonic() + timeout
    log = sp.config.with_suffix(".log")
    while log.read_text().count('"reloaded"') < count:
        assert time.monotonic() < deadline, f"not reloaded {count} times:\n{log.read_text()[-2000:]}"
        time.sleep(0.02)


def many_routes(n, heartbeat):
    """A configuration of some hundreds of KiB in memory: what a reload replaces."""
    return ("routes:\n"
            f"  - path: /ws/{{channel}}\n    subscribe: {{ websocket: {{ heartbeat: {heartbeat} }} }}\n"
            "  - path: /live/{name}\n"
            "    poll: { url: '/resource/{name}', interval: 100ms, event: change }\n"
            + "".join(f"  - path: /r{i}/{{a}}/{{b}}/{{channel}}\n    subscribe: {{}}\n"
                      for i in range(n)))


def test_reloads_free_the_configurations_they_replace(make_sidepush):
    """A ConfigMap edited again and again does not grow the process: a reload frees the
    configuration it replaced once nothing uses it, while what was opened under it (a
    WebSocket with that route's heartbeat, a poller, an SSE stream) goes on working."""
    import asyncio
    import websockets
    sp = make_sidepush("log: { level: info }\n" + many_routes(2000, "ping-0"))
    sse = CurlSSE(f"{sp.url}/live/kept")
    rss = []

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/ws/chan") as ws:
            for i in range(1, 41):
                reload_now(sp, many_routes(2000, f"ping-{i}"))
                wait_reloads(sp, i)
                if i in (5, 40):
                    rss.append(sp.rss_kib())
            # The WebSocket keeps the heartbeat of the configuration it opened under,
            # forty configurations ago.
            await ws.send("ping-0")
            return await asyncio.wait_for(ws.recv(), 5)
    try:
        assert asyncio.run(main()) == "pong"
        assert sse.events(1)  # the poller, started under the first configuration, still polls
    finally:
        sse.close()
    grown_mib = (rss[1] - rss[0]) / 1024
    print(f"RSS after 5 reloads {rss[0]} KiB, after 40 {rss[1]} KiB (+{grown_mib:.1f} MiB)")
    if not SANITIZED:
        assert grown_mib < 8
