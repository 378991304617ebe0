"""A backend with its own WebSocket endpoint, reached through sidepush: the
Upgrade is forwarded and, after the backend's 101, both directions are
tunnelled byte for byte (Python's websockets here; Chromium in
test_browser.py)."""
import asyncio
import json
import os
import re

import requests
import websockets


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def metric(sp, name):
    text = requests.get(sp.url + "/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_apps_own_websocket_through_sidepush(make_sidepush):
    sp = make_sidepush()

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws",
                                      subprotocols=["chat"]) as ws:
            hello = json.loads(await ws.recv())
            await ws.send("ping")
            echoed = await ws.recv()
            big = os.urandom(256 * 1024)  # past any one buffer; random, so compression cannot shrink it
            await ws.send(big)
            reversed_back = await ws.recv()
            return hello, echoed, reversed_back == big[::-1], ws.subprotocol
    hello, echoed, binary_ok, protocol = run(main())
    assert hello["hello"] and hello["forwarded_for"] == "127.0.0.1"
    assert protocol == "chat" and hello["protocol"] == "chat"  # negotiated by the app
    assert echoed == "echo:ping" and binary_ok
    assert metric(sp, "sidepush_proxy_tunnels_total") >= 1
    assert metric(sp, 'sidepush_proxy_tunnel_bytes_total{direction="to_backend"}') > 256 * 1024


def test_app_closing_its_websocket_reaches_the_client(make_sidepush):
    sp = make_sidepush()

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws") as ws:
            await ws.recv()
            await ws.send("bye")
            try:
                await ws.recv()
            except websockets.exceptions.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None
    assert run(main()) == 4000  # the app's own close code, through the tunnel


def test_many_tunnels_and_their_gauge(make_sidepush):
    sp = make_sidepush()

    async def main():
        conns = [await websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws") for _ in range(20)]
        for ws in conns:
            await ws.recv()
        open_now = await asyncio.get_running_loop().run_in_executor(
            None, metric, sp, "sidepush_proxy_tunnels")
        for i, ws in enumerate(conns):
            await ws.send(f"m{i}")
        replies = [await ws.recv() for ws in conns]
        for ws in conns:
            await ws.close()
        return open_now, replies
    open_now, replies = run(main())
    assert open_now == 20
    assert replies == [f"echo:m{i}" for i in range(20)]
    for _ in range(100):
        if metric(sp, "sidepush_proxy_tunnels") == 0:
            break
        import time
        time.sleep(0.05)
    assert metric(sp, "sidepush_proxy_tunnels") == 0  # closed on both sides, freed


def test_upgrade_refused_by_the_backend_is_an_ordinary_answer(make_sidepush):
    sp = make_sidepush()
    r = requests.get(f"{sp.url}/status/403", headers={"Connection": "Upgrade",
                                                      "Upgrade": "websocket"}, timeout=5)
    assert r.status_code == 403


def test_tunnel_idle_timeout_is_the_tunnels_not_a_sides(make_sidepush):
    """tunnel_idle_timeout 1s: a client that only listens while the app pushes
    every 0.3 s keeps its tunnel; one where nobody says anything loses it."""
    sp = make_sidepush(backend_keys=", tunnel_idle_timeout: 1s")

    async def listening():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws?push=8",
                                      ping_interval=None) as ws:
            await ws.recv()
            return [await ws.recv() for _ in range(8)]  # 2.4 s of the app talking

    async def silent():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws",
                                      ping_interval=None) as ws:
            await ws.recv()
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.exceptions.ConnectionClosed:
                return "closed"
            return "open"
    assert run(listening()) == [f"tick {i}" for i in range(8)]
    assert run(silent()) == "closed"


def wait_metric_value(sp, name, value, timeout=10):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(sp, name) == value:
            return True
        time.sleep(0.1)
    return False


def test_ended_tunnels_give_their_places_back(make_sidepush):
    """Issue 22 item 7: tunnels filling limits.max_connections, then closing,
    left the client listener paused until an unrelated connection closed."""
    import socket
    sp = make_sidepush("workers: 1\nlimits: { max_connections: 3 }\n")

    async def three():
        conns = [await websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws", ping_interval=None)
                 for _ in range(3)]
        for ws in conns:
            await ws.recv()
        for ws in conns:
            await ws.close()
    run(three())
    __import__("time").sleep(1)  # touching nothing else: any connection closing resumed the listener
    with socket.create_connection(("127.0.0.1", sp.port), timeout=3) as s:
        s.sendall(b"GET /hits HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")  # accepted, not left in the backlog


def test_a_tunnel_stalled_both_ways_still_times_out(make_sidepush):
    """Item 8: both sides send and neither reads: no side is read any more, and
    the idle timeout (a side's read timeout before) never came."""
    import socket
    import threading
    from scripted import ScriptedBackend
    blob = b"x" * (1 << 20)
    backend = ScriptedBackend({"/stall": [
        ("send", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")]
        + [("send", blob)] * 64}, timeout=60)
    try:
        sp = make_sidepush("workers: 1\nlimits: { proxy_buffer_size: 64KiB }\n",
                           backend_url=backend.url, backend_keys=", tunnel_idle_timeout: 1s")
        client = socket.create_connection(("127.0.0.1", sp.port))
        client.sendall(b"GET /stall HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
        client.settimeout(2)

        def flood():
            try:
                for _ in range(64):
                    client.sendall(blob)
            except OSError:
                pass
        threading.Thread(target=flood, daemon=True).start()
        assert wait_metric_value(sp, "sidepush_proxy_tunnels", 1, 5)
        assert wait_metric_value(sp, "sidepush_proxy_tunnels", 0, 8)  # closed when nothing moved
        client.close()
    finally:
        backend.stop()


def test_a_reload_reaches_open_tunnels(make_sidepush):
    """Item 8: tunnel_idle_timeout from a reload applies to tunnels already open."""
    import signal
    import time
    sp = make_sidepush(backend_keys=", tunnel_idle_timeout: 1h")

    async def silent():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/app-ws",
                                      ping_interval=None) as ws:
            await ws.recv()
            sp.config.write_text(sp.config.read_text().replace("tunnel_idle_timeout: 1h",
                                                               "tunnel_idle_timeout: 1s"))
            sp.proc.send_signal(signal.SIGHUP)
            started = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 8)
            except websockets.exceptions.ConnectionClosed:
                return time.monotonic() - started
            return None
    took = run(silent())
    assert took is not None and took < 6
