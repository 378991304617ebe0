"""Long-poll and plain polling with requests (a loop of plain GETs, as fetch() would)."""
import json
import threading
import time

import pytest
import requests

from pushutil import publish_ok, wait_subscribers

ROUTES = ("routes:\n  - path: /events/{channel}\n"
          "    subscribe: { longpoll: { timeout: 2s, max_messages: 3 } }\n")


@pytest.fixture
def sp(make_sidepush):
    return make_sidepush(ROUTES + "channels: { history: 50 }\n"
                         "cors: { allow_origins: ['*'] }\n")


def test_held_request_is_answered_by_a_publish(sp):
    result = {}

    def poll():
        result["r"] = requests.get(sp.url + "/events/lp", timeout=10)

    t = threading.Thread(target=poll)
    t.start()
    wait_subscribers(sp, "lp", 1)
    sent = publish_ok(sp, "lp", "hello", event="greet")
    t.join(10)
    r = result["r"]
    assert r.status_code == 200
    body = r.json()
    assert body["messages"] == [{"id": sent["id"], "channel": "lp", "event": "greet",
                                 "data": "hello"}]
    assert body["cursor"] == sent["id"] == r.headers["Sidepush-Cursor"]
    assert body["missed"] is False


def test_timeout_is_204_with_the_cursor(sp):
    started = time.monotonic()
    r = requests.get(sp.url + "/events/quiet", timeout=10)
    assert r.status_code == 204 and r.headers["Sidepush-Cursor"]
    assert time.monotonic() - started >= 1.5


def test_fetch_loop_neither_misses_nor_repeats(sp):
    """A poller and a publisher race; the poller sees every message exactly once, in order."""
    total = 60
    got = []
    first = requests.get(sp.url + "/events/loop", headers={"Prefer": "wait=0"}, timeout=5)
    assert first.status_code == 304
    cursor = first.headers["Sidepush-Cursor"]

    def publisher():
        for i in range(total):
            publish_ok(sp, "loop", f"m{i}")
            if i % 7 == 0:
                time.sleep(0.01)

    t = threading.Thread(target=publisher)
    t.start()
    session = requests.Session()
    deadline = time.monotonic() + 30
    while len(got) < total and time.monotonic() < deadline:
        r = session.get(sp.url + "/events/loop", params={"cursor": cursor}, timeout=10)
        if r.status_code == 200:
            body = r.json()
            assert len(body["messages"]) <= 3  # max_messages
            got += [m["data"] for m in body["messages"]]
            cursor = body["cursor"]
            assert r.headers["Sidepush-Cursor"] == cursor
        else:
            assert r.status_code == 204
    t.join()
    assert got == [f"m{i}" for i in range(total)]


def test_plain_polling_without_hold(sp):
    r = requests.get(sp.url + "/events/pp?wait=0", timeout=5)
    assert r.status_code == 304
    cursor = r.headers["Sidepush-Cursor"]
    publish_ok(sp, "pp", "one")
    publish_ok(sp, "pp", "two")
    r = requests.get(sp.url + "/events/pp", params={"cursor": cursor, "wait": 0}, timeout=5)
    assert r.status_code == 200 and [m["data"] for m in r.json()["messages"]] == ["one", "two"]
    r = requests.get(sp.url + "/events/pp", params={"cursor": r.json()["cursor"]},
                     headers={"Prefer": "wait=0"}, timeout=5)
    assert r.status_code == 304


def test_history_lost_is_signalled(make_sidepush):
    sp = make_sidepush(ROUTES + "channels: { history: 2 }\n")
    old = publish_ok(sp, "h", "m0")["id"]
    for i in range(1, 5):
        publish_ok(sp, "h", f"m{i}")
    r = requests.get(sp.url + "/events/h", params={"cursor": old}, timeout=5)
    assert r.status_code == 200 and r.headers["Sidepush-Missed"] == "1"
    body = r.json()
    assert body["missed"] is True and [m["data"] for m in body["messages"]] == ["m3", "m4"]
    r = requests.get(sp.url + "/events/h", params={"cursor": "zzzzzzzz-2", "wait": 0}, timeout=5)
    assert r.json()["missed"] is True  # an id from before a restart


def test_bad_cursor_is_400(sp):
    r = requests.get(sp.url + "/events/x", params={"cursor": "not-an-id"}, timeout=5)
    assert r.status_code == 400 and "cursor" in r.json()["error"]


@pytest.mark.parametrize("query", ["cursor=" + "a" * 50 + "-12345",  # 56 characters
                                   "cursor=" + "k" * 300 + "-1", "cursor=abc-1%zz",
                                   "cursor=abc-1%4", "cursor=abc-1%00x",
                                   "last_event_id=" + "9" * 80])
def test_unreadable_cursor_is_400_not_now(sp, query):
    """Was silently ignored (answered from "now"): a cursor too long to be an
    id, or with a bad escape, is not an id."""
    r = requests.get(f"{sp.url}/events/x?wait=0&{query}", timeout=5)
    assert r.status_code == 400 and "cursor" in r.json()["error"], (r.status_code, r.text)


def test_cors_exposes_cursor_headers(sp):
    r = requests.get(sp.url + "/events/c?wait=0", headers={"Origin": "http://other.example"},
                     timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Sidepush-Cursor" in r.headers["Access-Control-Expose-Headers"]


def test_keep_alive_between_polls(sp):
    session = requests.Session()
    r1 = session.get(sp.url + "/events/ka?wait=0", timeout=5)
    r2 = session.get(sp.url + "/events/ka?wait=0", timeout=5)
    assert r1.status_code == r2.status_code == 304
    assert len(session.adapters["http://"].poolmanager.pools) == 1


def test_client_going_away_while_held(sp):
    import socket
    s = socket.create_connection(("127.0.0.1", sp.port))
    s.sendall(b"GET /events/away HTTP/1.1\r\nHost: a\r\n\r\n")
    wait_subscribers(sp, "away", 1)
    s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/away", timeout=5)
        if r.status_code == 404 or r.json()["subscribers"] == 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("held long-poll not released after the client left")
    assert publish_ok(sp, "away", "x")["subscribers"] == 0


def test_delete_answers_held_polls_410(sp):
    result = {}
    t = threading.Thread(target=lambda: result.update(r=requests.get(sp.url + "/events/d",
                                                                     timeout=10)))
    t.start()
    wait_subscribers(sp, "d", 1)
    requests.delete(f"http://127.0.0.1:{sp.publish_port}/channels/d", timeout=5)
    t.join(10)
    assert result["r"].status_code == 410


def test_transport_restricted_to_sse_answers_406(make_sidepush):
    sp = make_sidepush("routes:\n  - path: /s/{channel}\n    subscribe: { transports: [sse] }\n")
    r = requests.get(sp.url + "/s/x", timeout=5)
    assert r.status_code == 406 and "text/event-stream" in r.json()["error"]


def test_woken_polls_answered_in_slices_under_a_racing_publisher(make_sidepush):
    """More held polls than one answer slice (256), a publisher POSTing as fast
    as it is answered: answers go out a slice per loop turn and later ones carry
    several messages, yet every fetch loop sees every message once, in order."""
    import asyncio
    import aiohttp
    clients, messages = 400, 120
    # History enough that a loop left behind by a slow (sanitized) build still
    # resumes, rather than being told it missed messages.
    sp = make_sidepush(ROUTES + "channels: { history: 1000 }\n")

    async def main():
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def loop():
                async with session.get(sp.url + "/events/lprace?wait=0") as r:
                    cursor = r.headers["Sidepush-Cursor"]
                got = []
                while len(got) < messages:
                    async with session.get(sp.url + "/events/lprace",
                                           params={"cursor": cursor}) as r:
                        if r.status == 200:
                            body = await r.json()
                            got += [(m["id"], m["data"]) for m in body["messages"]]
                            cursor = body["cursor"]
                        else:
                            assert r.status == 204, r.status
                return got
            tasks = [asyncio.create_task(loop()) for _ in range(clients)]
            deadline = time.monotonic() + 30
            while True:
                r = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/lprace", timeout=5)
                if r.status_code == 200 and r.json()["subscribers"] >= clients:
                    break
                assert time.monotonic() < deadline, "the polls were not all held"
                await asyncio.sleep(0.05)
            ids = []
            pub = f"http://127.0.0.1:{sp.publish_port}/publish/lprace"
            for i in range(messages):
                async with session.post(pub, data=f"m{i}".encode()) as r:
                    assert r.status == 202
                    ids.append((await r.json())["id"])
            return ids, await asyncio.wait_for(asyncio.gather(*tasks), 60)

    ids, results = asyncio.run(main())
    want = [(ids[i], f"m{i}") for i in range(messages)]
    assert all(got == want for got in results)


def _held(port, head):
    import socket
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head)
    return s


def _read_answer(s, head_only=False):
    """One HTTP answer off a raw socket: (status line, headers, body)."""
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"{name} twice"
        headers[name.lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while not head_only and len(body) < length:
        chunk = s.recv(65536)
        assert chunk
        body += chunk
    return lines[0], headers, body


def test_one_rendered_answer_each_client_its_own_framing(make_sidepush):
    """Held clients that get the same message share one rendering; what differs
    per client (CORS, HTTP version, keep-alive, the channels it follows) is
    still its own."""
    sp = make_sidepush(ROUTES + "channels: { history: 50 }\n"
                       "cors: { allow_origins: ['http://app.example'] }\n")
    first = publish_ok(sp, "sh", "before")
    cur = first["id"]
    clients = {
        "origin": _held(sp.port, f"GET /events/sh?cursor={cur} HTTP/1.1\r\nHost: a\r\n"
                        "Origin: http://app.example\r\n\r\n".encode()),
        "plain": _held(sp.port, f"GET /events/sh?cursor={cur} HTTP/1.1\r\nHost: a\r\n\r\n"
                       .encode()),
        "http10": _held(sp.port, f"GET /events/sh?cursor={cur} HTTP/1.0\r\n"
                        "Connection: keep-alive\r\n\r\n".encode()),
        "close": _held(sp.port, f"GET /events/sh?cursor={cur} HTTP/1.1\r\nHost: a\r\n"
                       "Connection: close\r\n\r\n".encode()),
        "two": _held(sp.port, f"GET /events/sh,other?cursor={cur} HTTP/1.1\r\nHost: a\r\n\r\n"
                     .encode()),
    }
    wait_subscribers(sp, "sh", len(clients))
    sent = publish_ok(sp, "sh", "shared")
    got = {name: _read_answer(s) for name, s in clients.items()}
    bodies = {got[n][2] for n in ("origin", "plain", "http10", "close", "two")}
    assert len(bodies) == 1
    body = json.loads(bodies.pop())
    assert body["cursor"] == sent["id"] and body["missed"] is False
    assert [m["data"] for m in body["messages"]] == ["shared"]
    for name, (status, headers, _) in got.items():
        assert status.endswith(" 200 OK"), (name, status)
        assert headers["sidepush-cursor"] == sent["id"] and headers["etag"] == f'"{sent["id"]}"'
        assert int(headers["content-length"]) == len(got["plain"][2])
        assert ("access-control-allow-origin" in headers) == (name == "origin"), name
    assert got["origin"][1]["access-control-allow-origin"] == "http://app.example"
    assert got["http10"][0].startswith("HTTP/1.0 ")
    assert got["http10"][1]["connection"] == "keep-alive"
    assert got["close"][1]["connection"] == "close"
    # A client on two channels gets what only it follows: not another's shared answer.
    other = publish_ok(sp, "other", "only-two")
    clients["plain"].sendall(f"GET /events/sh?cursor={sent['id']}&wait=0 HTTP/1.1\r\n"
                             "Host: a\r\n\r\n".encode())
    clients["two"].sendall(f"GET /events/sh,other?cursor={sent['id']}&wait=0 HTTP/1.1\r\n"
                           "Host: a\r\n\r\n".encode())
    assert _read_answer(clients["plain"])[0].endswith(" 304 Not Modified")
    two = json.loads(_read_answer(clients["two"])[2])
    assert [m["id"] for m in two["messages"]] == [other["id"]]
    for s in clients.values():
        s.close()


def test_subscribe_with_another_method_is_405_with_allow(sp):
    r = requests.head(sp.url + "/events/m", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, OPTIONS"
    r = requests.post(sp.url + "/events/m", data=b"x", timeout=5)
    assert r.status_code == 405 and r.json()["error"] == "subscribe with GET"
