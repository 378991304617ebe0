"""Server-Sent Events with real clients: curl -N and aiohttp's streaming reader."""
import asyncio
import socket
import time

import aiohttp
import pytest
import requests

from pushutil import CurlSSE, channel_info, parse_sse, publish_ok, wait_subscribers

ROUTES = "routes:\n  - path: /events/{channel}\n    subscribe: {}\n"


@pytest.fixture
def sp(make_sidepush):
    return make_sidepush(ROUTES + "channels: { history: 5 }\n"
                         "cors: { allow_origins: ['http://app.example'] }\n")


def test_headers_and_events_with_curl(sp):
    r = requests.get(sp.url + "/events/news", headers={"Accept": "text/event-stream"},
                     stream=True, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["X-Accel-Buffering"] == "no"
    assert "Content-Encoding" not in r.headers
    r.close()
    sse = CurlSSE(sp.url + "/events/news")
    try:
        wait_subscribers(sp, "news", 1)
        a = publish_ok(sp, "news", "line one\nline two\r\nline three", event="update")
        b = publish_ok(sp, "news", "plain")
        events = sse.events(2)
        assert events[0] == {"id": a["id"], "event": "update",
                             "data": "line one\nline two\nline three"}
        assert events[1] == {"id": b["id"], "data": "plain"}
        assert b"retry: 3000\n" in sse.raw
    finally:
        sse.close()


def test_resume_with_last_event_id_replays_exactly_the_missed(sp):
    ids = [publish_ok(sp, "r", f"m{i}")["id"] for i in range(4)]
    for how in ("header", "last_event_id", "lastEventId"):
        if how == "header":
            sse = CurlSSE(sp.url + "/events/r", headers=[f"Last-Event-ID: {ids[1]}"])
        else:
            sse = CurlSSE(sp.url + f"/events/r?{how}={ids[1]}")
        try:
            events = sse.events(2)
            assert [e["data"] for e in events] == ["m2", "m3"], how
            assert not any(e.get("event") == "sidepush-missed" for e in events)
        finally:
            sse.close()


def test_expired_cursor_gets_the_missed_signal(sp):
    first = publish_ok(sp, "gap", "m0")["id"]
    for i in range(1, 8):  # history holds 5: m0..m2 are evicted
        publish_ok(sp, "gap", f"m{i}")
    sse = CurlSSE(sp.url + "/events/gap", headers=[f"Last-Event-ID: {first}"])
    try:
        events = sse.events(6)
        assert events[0]["event"] == "sidepush-missed"
        assert [e["data"] for e in events[1:]] == ["m3", "m4", "m5", "m6", "m7"]
    finally:
        sse.close()


def test_id_from_before_a_restart_is_never_replayed_wrongly(sp):
    publish_ok(sp, "x", "a")
    sse = CurlSSE(sp.url + "/events/x", headers=["Last-Event-ID: zzzzzzzz-1"])
    try:
        events = sse.events(2)
        assert events[0]["event"] == "sidepush-missed"
        assert events[1]["data"] == "a"
    finally:
        sse.close()


def test_new_subscriber_without_cursor_gets_only_new_messages(sp):
    publish_ok(sp, "fresh", "old")
    sse = CurlSSE(sp.url + "/events/fresh")
    try:
        wait_subscribers(sp, "fresh", 1)
        publish_ok(sp, "fresh", "new")
        assert [e["data"] for e in sse.events(1)] == ["new"]
    finally:
        sse.close()


def test_start_oldest_replays_history(make_sidepush):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: { start: oldest }\n")
    publish_ok(sp, "h", "old")
    sse = CurlSSE(sp.url + "/events/h")
    try:
        assert [e["data"] for e in sse.events(1)] == ["old"]
    finally:
        sse.close()


def test_several_channels_on_one_connection(sp):
    sse = CurlSSE(sp.url + "/events/a,b")
    try:
        wait_subscribers(sp, "a", 1)
        wait_subscribers(sp, "b", 1)
        publish_ok(sp, "a", "to a")
        publish_ok(sp, "b", "to b")
        publish_ok(sp, "c", "to c")
        publish_ok(sp, "a", "again a")
        assert [e["data"] for e in sse.events(3)] == ["to a", "to b", "again a"]
    finally:
        sse.close()


def test_keepalive_comments(make_sidepush):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n"
                       "    subscribe: { sse: { keepalive: 1s } }\n")
    with socket.create_connection(("127.0.0.1", sp.port)) as s:
        s.sendall(b"GET /events/k HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n")
        s.settimeout(5)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b":\n\n") < 2 and time.monotonic() < deadline:
            data += s.recv(4096)
    assert data.count(b":\n\n") >= 2  # comment lines keep idle proxies from cutting the stream


def test_cors_for_allowed_origin_only(sp):
    h = {"Accept": "text/event-stream", "Origin": "http://app.example"}
    r = requests.get(sp.url + "/events/c", headers=h, stream=True, timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert "Last-Event-ID" in r.headers["Access-Control-Expose-Headers"]
    r.close()
    h["Origin"] = "http://evil.example"
    r = requests.get(sp.url + "/events/c", headers=h, stream=True, timeout=5)
    assert "Access-Control-Allow-Origin" not in r.headers
    r.close()
    r = requests.options(sp.url + "/events/c", timeout=5, headers={
        "Origin": "http://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id"})
    assert r.status_code == 204
    assert "Last-Event-ID" in r.headers["Access-Control-Allow-Headers"]


def test_bad_channel_name_is_400(sp):
    r = requests.get(sp.url + "/events/bad%20name", headers={"Accept": "text/event-stream"},
                     timeout=5)
    assert r.status_code == 400


def test_channel_delete_ends_the_stream(sp):
    sse = CurlSSE(sp.url + "/events/del")
    try:
        wait_subscribers(sp, "del", 1)
        r = requests.delete(f"http://127.0.0.1:{sp.publish_port}/channels/del", timeout=5)
        assert r.json()["closed"] == 1
        assert sse.proc.wait(5) == 0  # curl saw a clean end of the chunked stream
    finally:
        sse.close()


def test_many_subscribers_aiohttp_fanout(sp):
    """200 aiohttp clients on one channel; every one gets every message, in order."""
    async def main():
        connector = aiohttp.TCPConnector(limit=0)  # the default caps a session at 100
        async with aiohttp.ClientSession(connector=connector) as session:
            async def reader(n):
                async with session.get(sp.url + "/events/fan",
                                       headers={"Accept": "text/event-stream"}) as resp:
                    raw = b""
                    while raw.count(b"data: ") < n:
                        raw += await resp.content.readany()
                    return [e["data"] for e in parse_sse(raw) if "data" in e]
            tasks = [asyncio.create_task(reader(20)) for _ in range(200)]
            deadline = time.monotonic() + 20
            while channel_info(sp, "fan").status_code != 200 or \
                    channel_info(sp, "fan").json()["subscribers"] < 200:
                assert time.monotonic() < deadline, "subscribers did not all connect"
                await asyncio.sleep(0.05)
            for i in range(20):
                publish_ok(sp, "fan", f"msg {i}")
            return await asyncio.wait_for(asyncio.gather(*tasks), 30)
    results = asyncio.run(main())
    want = [f"msg {i}" for i in range(20)]
    assert all(r == want for r in results)


def test_slow_consumer_is_disconnected_and_others_keep_going(make_sidepush):
    sp = make_sidepush(ROUTES + "limits: { subscriber_max_unsent: 256KiB }\n"
                       "channels: { max_message_size: 64KiB }\n")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", sp.port))
    slow.sendall(b"GET /events/s HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n")
    good = CurlSSE(sp.url + "/events/s")
    try:
        wait_subscribers(sp, "s", 2)
        big = "x" * 60_000
        # ~4 MB: past what the kernel buffers for the stalled socket plus the
        # 256 KiB sidepush allows it.
        for i in range(70):
            publish_ok(sp, "s", f"{i} {big}")
        assert len(good.events(70, timeout=30)) == 70
        deadline = time.monotonic() + 5
        while channel_info(sp, "s").json()["subscribers"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert channel_info(sp, "s").json()["subscribers"] == 1  # the slow one was cut off
    finally:
        good.close()
        slow.close()


def test_stream_opens_with_its_position_as_an_id(sp):
    """Nothing to replay: the opening block carries an id and no data, so a
    client cut before its first message reconnects with Last-Event-ID and gets
    what was published during the cut (start: newest would lose it otherwise)."""
    before = publish_ok(sp, "pos", "before")["id"]
    sse = CurlSSE(sp.url + "/events/pos")
    try:
        wait_subscribers(sp, "pos", 1)
        deadline = time.monotonic() + 5
        while b"\n\n" not in sse.raw and time.monotonic() < deadline:
            time.sleep(0.02)
        opening = sse.raw.split(b"\n\n", 1)[0].decode()
    finally:
        sse.close()
    assert opening == f"retry: 3000\nid: {before}"
    during = publish_ok(sp, "pos", "during the cut")["id"]
    again = CurlSSE(sp.url + "/events/pos", headers=[f"Last-Event-ID: {before}"])
    try:
        assert again.events(1) == [{"id": during, "data": "during the cut"}]
    finally:
        again.close()


@pytest.mark.parametrize("body_headers,body", [
    (b"Content-Length: 5\r\n", b"hello"),
    (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
])
@pytest.mark.parametrize("kind", ["sse", "websocket"])
def test_stream_request_with_a_body_is_400(sp, kind, body_headers, body):
    """Was '500 out of memory': a stream takes the socket over, so a body is
    refused with a clear 400."""
    ask = (b"Accept: text/event-stream\r\n" if kind == "sse" else
           b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    s = socket.create_connection(("127.0.0.1", sp.port), timeout=5)
    s.sendall(b"GET /events/body HTTP/1.1\r\nHost: x\r\n" + ask + body_headers + b"\r\n" + body)
    out = b""
    while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    s.close()
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"carries no body" in out


def test_stream_request_with_content_length_zero_is_fine(sp):
    s = socket.create_connection(("127.0.0.1", sp.port), timeout=5)
    s.sendall(b"GET /events/zero HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
              b"Content-Length: 0\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
    s.close()


def test_racing_publisher_during_a_sliced_fan_out(sp):
    """More subscribers than one flush slice (256) and one publisher POSTing as
    fast as it is answered, while health checks and a proxied request go on:
    the fan-out is written in slices and coalesces, and every subscriber still
    gets every message once, in order; nothing else waits for the fan-out to
    finish (each answer is checked, not timed)."""
    subscribers, messages = 600, 150

    async def main():
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def reader():
                async with session.get(sp.url + "/events/race",
                                       headers={"Accept": "text/event-stream"}) as resp:
                    raw = b""
                    while raw.count(b"data: ") < messages:
                        raw += await resp.content.readany()
                    return [e for e in parse_sse(raw) if "data" in e]
            tasks = [asyncio.create_task(reader()) for _ in range(subscribers)]
            deadline = time.monotonic() + 30
            while channel_info(sp, "race").status_code != 200 or \
                    channel_info(sp, "race").json()["subscribers"] < subscribers:
                assert time.monotonic() < deadline, "subscribers did not all connect"
                await asyncio.sleep(0.05)
            pub = f"http://127.0.0.1:{sp.publish_port}/publish/race"
            side = []
            ids = []
            for i in range(messages):  # one at a time, the next once answered
                async with session.post(pub, data=f"m{i}".encode()) as r:
                    assert r.status == 202
                    ids.append((await r.json())["id"])
                if i % 25 == 0:
                    async with session.get(sp.url + "/healthz") as h:
                        side.append(h.status)
                    async with session.get(sp.url + "/echo/during") as e:
                        side.append(e.status)
            results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
            return ids, side, results

    ids, side, results = asyncio.run(main())
    assert set(side) == {200}
    want = [(ids[i], f"m{i}") for i in range(messages)]
    for events in results:
        assert [(e["id"], e["data"]) for e in events] == want
