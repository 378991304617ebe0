"""SIGTERM: every kind of subscriber gets its proper ending, spread over
shutdown_grace, new connections are refused (never answered 503), exit 0."""
import asyncio
import signal
import socket
import threading
import time

import requests
import websockets

from pushutil import CurlSSE, wait_subscribers


def test_sigterm_drains_every_transport(make_sidepush):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    sse = [CurlSSE(f"{sp.url}/events/d") for _ in range(3)]
    lp_result = {}
    lp = threading.Thread(target=lambda: lp_result.update(
        r=requests.get(f"{sp.url}/events/d", timeout=10)))
    lp.start()
    ws_result = {}

    async def ws_client():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/events/d") as ws:
            ws_result["open"] = True
            try:
                await ws.recv()
            except websockets.exceptions.ConnectionClosed as e:
                ws_result["code"] = e.rcvd.code if e.rcvd else None

    ws = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(ws_client(), 15)))
    ws.start()
    wait_subscribers(sp, "d", 5)

    started = time.monotonic()
    sp.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:  # listeners are closed: refused, not a 503
        socket.create_connection(("127.0.0.1", sp.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert sp.proc.wait(10) == 0
    elapsed = time.monotonic() - started
    lp.join(10)
    ws.join(10)
    assert refused
    assert elapsed < 2 + 1.5  # shutdown_grace: 2s
    assert lp_result["r"].status_code == 204 and "Retry-After" in lp_result["r"].headers
    assert ws_result.get("code") == 1001
    for s in sse:
        assert s.proc.wait(5) == 0  # a clean end of the chunked stream
        s.thread.join(5)  # and its last bytes read
        retry = [line for line in s.raw.split(b"\n") if line.startswith(b"retry: ")]
        assert len(retry) == 2 and 1000 <= int(retry[-1].split()[1]) < 10000  # jittered hint
        s.close()


def test_drain_finishes_proxied_requests_in_flight(make_sidepush):
    sp = make_sidepush()
    result = {}
    t = threading.Thread(target=lambda: result.update(
        r=requests.get(f"{sp.url}/slow/800", timeout=10)))
    t.start()
    time.sleep(0.2)
    sp.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert result["r"].status_code == 200 and result["r"].text == "slow\n"
    assert sp.proc.wait(10) == 0
