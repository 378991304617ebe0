"""Spreading load to new pods: limits.max_connection_age ends old streams the
way a drain does (SSE retry hint, WebSocket 1012, keep-alive closed after an
answer), and the admin listener's POST /drain (a preStop hook's) sheds every
subscriber while sidepush keeps serving until SIGTERM."""
import asyncio
import signal
import time

import requests
import websockets

from conftest import free_port
from pushutil import CurlSSE, metric, publish_ok, wait_subscribers

ROUTES = "routes:\n  - path: /events/{channel}\n    subscribe: {}\n"


def retry_hints(sse):
    return [line for line in sse.raw.split(b"\n") if line.startswith(b"retry: ")]


def ended_cleanly(sse, timeout=5):
    """curl exited 0 (a clean end of the stream) and its last bytes are read:
    the reader thread is done, not merely the process."""
    ok = sse.proc.wait(timeout) == 0
    sse.thread.join(timeout)
    return ok


def test_old_streams_are_ended_and_resume_without_loss(make_sidepush):
    admin = free_port()
    sp = make_sidepush(f"limits: {{ max_connection_age: 2s }}\nmetrics: {{ listen: '127.0.0.1:{admin}' }}\n"
                       + ROUTES)
    sse = CurlSSE(f"{sp.url}/events/age")
    ws_closed = {}

    async def ws_client():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/events/age") as ws:
            try:
                while True:
                    await ws.recv()
            except websockets.exceptions.ConnectionClosed as e:
                ws_closed["code"] = e.rcvd.code if e.rcvd else None
                ws_closed["at"] = time.monotonic()

    started = time.monotonic()
    session = requests.Session()
    assert session.get(f"{sp.url}/hits", timeout=5).headers.get("Connection") != "close"
    try:
        wait_subscribers(sp, "age", 1)
        sent = publish_ok(sp, "age", "before")
        asyncio.run(asyncio.wait_for(ws_client(), 10))
        assert ws_closed["code"] == 1012  # service restart: reconnect
        assert 1.7 <= ws_closed["at"] - started < 4.5  # 2 s less a tenth at most, 1 s ticks
        assert ended_cleanly(sse)
        assert len(retry_hints(sse)) >= 2  # the opening one and the jittered one at the end
        # The client comes back with its last id and misses nothing.
        publish_ok(sp, "age", "meanwhile")
        again = CurlSSE(f"{sp.url}/events/age", headers=[f"Last-Event-ID: {sent['id']}"])
        try:
            assert [e["data"] for e in again.events(1)] == ["meanwhile"]
        finally:
            again.close()
        # A keep-alive connection past its age is closed after its next answer. The
        # streams above may end up to a tick before the connection's own age is reached.
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))
        r = session.get(f"{sp.url}/hits", timeout=5)
        assert r.status_code == 200 and r.headers.get("Connection") == "close"
        assert metric(f"http://127.0.0.1:{admin}", "sidepush_streams_aged_out_total") == 2
    finally:
        sse.close()


def test_post_drain_sheds_subscribers_and_keeps_serving(make_sidepush):
    admin = free_port()
    sp = make_sidepush(f"metrics: {{ listen: '127.0.0.1:{admin}' }}\n" + ROUTES)
    admin_url = f"http://127.0.0.1:{admin}"
    first = CurlSSE(f"{sp.url}/events/shed")
    later = None
    try:
        wait_subscribers(sp, "shed", 1)
        assert requests.get(f"{admin_url}/readyz", timeout=5).status_code == 200
        r = requests.get(f"{admin_url}/drain", timeout=5)
        assert r.status_code == 405 and r.headers["Allow"] == "POST"
        r = requests.post(f"{admin_url}/drain", timeout=5)
        assert r.status_code == 202 and r.json() == {"status": "draining"}
        assert requests.get(f"{admin_url}/readyz", timeout=5).status_code == 503
        assert ended_cleanly(first) and len(retry_hints(first)) >= 2  # sent away (2 s grace)
        # Still serving: the app through the proxy, and a client the Service still sent.
        assert requests.get(f"{sp.url}/hits", timeout=5).status_code == 200
        time.sleep(2)  # past the shed's window
        later = CurlSSE(f"{sp.url}/events/shed")
        wait_subscribers(sp, "shed", 1)
        publish_ok(sp, "shed", "still delivered")
        assert [e["data"] for e in later.events(1)] == ["still delivered"]
        assert requests.post(f"{admin_url}/drain", timeout=5).status_code == 202  # again: no-op
        # SIGTERM drains again, and whoever came since goes too.
        sp.proc.send_signal(signal.SIGTERM)
        assert sp.proc.wait(10) == 0
        assert ended_cleanly(later) and len(retry_hints(later)) >= 2
    finally:
        first.close()
        if later:
            later.close()


def test_post_drain_is_only_for_the_pod_and_has_a_way_back(make_sidepush):
    """Issue 22 item 9: any pod that reached the admin port could drain every
    replica for good. POST /drain is taken from metrics.drain_from (loopback by
    default) or with metrics.drain_token; a drain that no SIGTERM follows makes
    liveness fail after twice shutdown_grace, so the kubelet restarts it."""
    admin = free_port()
    sp = make_sidepush(f"metrics: {{ listen: '127.0.0.1:{admin}', drain_from: [127.0.0.2/32], "
                       "drain_token: s3cret }\n" + ROUTES)
    admin_url = f"http://127.0.0.1:{admin}"
    r = requests.post(f"{admin_url}/drain", timeout=5)  # from 127.0.0.1, not in drain_from
    assert r.status_code == 403 and "drain_from" in r.json()["error"]
    r = requests.post(f"{admin_url}/drain", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 403
    assert requests.get(f"{admin_url}/readyz", timeout=5).status_code == 200  # untouched
    r = requests.post(f"{admin_url}/drain", headers={"Authorization": "Bearer s3cret"}, timeout=5)
    assert r.status_code == 202
    assert requests.get(f"{admin_url}/readyz", timeout=5).status_code == 503
    assert requests.get(f"{admin_url}/healthz", timeout=5).status_code == 200
    time.sleep(4.5)  # twice shutdown_grace (2 s) and no SIGTERM came
    r = requests.get(f"{admin_url}/healthz", timeout=5)
    assert r.status_code == 503 and "restart" in r.json()["error"]
    sp.proc.send_signal(signal.SIGTERM)  # a stop after all: alive until it ends
    assert sp.proc.wait(10) == 0


def test_post_drain_from_loopback_by_default(make_sidepush):
    admin = free_port()
    sp = make_sidepush(f"metrics: {{ listen: '127.0.0.1:{admin}' }}\n" + ROUTES)
    assert requests.post(f"http://127.0.0.1:{admin}/drain", timeout=5).status_code == 202
