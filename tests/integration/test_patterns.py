"""Channel patterns (subscribe.patterns, issue 25): "orders.42.*" receives
what is published to every channel under "orders.42.", channels made after
the subscription among them, over every worker; resume by Last-Event-ID from
the histories of the channels it matches; authorization of the pattern
string by a token's claim or the backend. Clients: curl, websockets."""
import asyncio
import uuid

import pytest
import requests
import websockets
import websockets.exceptions

from pushutil import CurlSSE, publish, publish_ok, wait_subscribers
from test_tokens import issuer  # noqa: F401 (a fixture)

ROUTES = ("routes:\n"
          "  - path: /events/{channel}\n    subscribe: { patterns: true }\n"
          "  - path: /plain/{channel}\n    subscribe: {}\n")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def prefix():
    return "o" + uuid.uuid4().hex[:8]


def datas(events):
    return [e["data"] for e in events]


def test_a_pattern_gets_every_channel_under_it_on_every_worker(make_sidepush):
    sp = make_sidepush(ROUTES + "workers: 2\nchannels: { history: 20 }\n")
    p = prefix()
    # Several of each, so that both workers hold some (the kernel spreads them).
    sse = [CurlSSE(f"{sp.url}/events/{p}.42.*") for _ in range(4)]
    try:
        wait_subscribers(sp, f"{p}.42.*", 4)

        async def main():
            sockets = [await websockets.connect(f"ws://127.0.0.1:{sp.port}/events/{p}.42.*")
                       for _ in range(4)]
            wait_subscribers(sp, f"{p}.42.*", 8)
            # Channels that never existed before, a deeper one, and ones not under it.
            for channel, data in [(f"{p}.42.paid", "1"), (f"{p}.42", "no: the prefix itself"),
                                  (f"{p}.43.paid", "no: a sibling"), (f"{p}.42.items.7", "2"),
                                  (f"{p}.420", "no: not a segment"), (f"{p}.42.paid", "3")]:
                publish_ok(sp, channel, data)
            got = [[await ws.recv() for _ in range(3)] for ws in sockets]
            for ws in sockets:
                await ws.close()
            return got
        for frames in run(main()):
            assert frames == ["1", "2", "3"]
        for s in sse:
            events = s.events(3)
            assert datas(events) == ["1", "2", "3"]
            # Each event says which channel it came from through its id's order only;
            # the ids are the channels' own and increase.
            ids = [e["id"] for e in events]
            assert ids == sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1]))
    finally:
        for s in sse:
            s.close()


def test_the_publish_counts_pattern_subscribers(make_sidepush):
    sp = make_sidepush(ROUTES)
    p = prefix()
    s = CurlSSE(f"{sp.url}/events/{p}:*")
    try:
        wait_subscribers(sp, f"{p}:*", 1)
        assert publish_ok(sp, f"{p}:x", "a")["subscribers"] == 1
        assert publish_ok(sp, f"{p}-x", "b")["subscribers"] == 0
        assert datas(s.events(1)) == ["a"]
    finally:
        s.close()


def test_resume_by_last_event_id_from_every_matching_channel(make_sidepush):
    sp = make_sidepush(ROUTES + "channels: { history: 3 }\n")
    p = prefix()
    ids = [publish_ok(sp, f"{p}.{i % 3}", f"m{i}")["id"] for i in range(6)]
    publish_ok(sp, f"{p}x.0", "not under it")
    # From after m1: m2..m5, from three channels, in order, nothing missed.
    s = CurlSSE(f"{sp.url}/events/{p}.*", headers=[f"Last-Event-ID: {ids[1]}"])
    try:
        events = s.events(4)
        assert datas(events) == ["m2", "m3", "m4", "m5"]
        assert [e["id"] for e in events] == ids[2:]
        assert "sidepush-missed" not in s.raw.decode()
        wait_subscribers(sp, f"{p}.*", 1)
        publish_ok(sp, f"{p}.new", "m6")  # a channel made after the resume
        assert datas(s.events(5))[4] == "m6"
    finally:
        s.close()
    # Channel 0 holds m0 and m3 only if history were larger: evict from it.
    for i in range(3):
        publish_ok(sp, f"{p}.0", f"n{i}")
    s = CurlSSE(f"{sp.url}/events/{p}.*", headers=[f"Last-Event-ID: {ids[0]}"])
    try:
        events = [e for e in s.events(7) if e.get("event") != "sidepush-missed"]
        assert "event: sidepush-missed" in s.raw.decode(), "m3 was evicted after the cursor"
        assert datas(events)[:2] == ["m1", "m2"]
    finally:
        s.close()


def test_one_connection_on_a_channel_and_its_pattern_gets_each_message_once(make_sidepush):
    sp = make_sidepush(ROUTES + "channels: { history: 10 }\n")
    p = prefix()

    async def main():
        async with websockets.connect(
                f"ws://127.0.0.1:{sp.port}/events/{p}.a,{p}.*") as ws:
            wait_subscribers(sp, f"{p}.*", 1)
            for i in range(5):
                publish_ok(sp, f"{p}.a" if i % 2 else f"{p}.b", str(i))
            got = [await ws.recv() for _ in range(5)]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
            return got
    assert run(main()) == ["0", "1", "2", "3", "4"]


def test_patterns_are_refused_where_they_do_not_belong(make_sidepush):
    sp = make_sidepush(ROUTES)
    p = prefix()
    r = requests.get(f"{sp.url}/plain/{p}.*", timeout=5)
    assert r.status_code == 400 and "subscribe.patterns" in r.json()["error"]
    for bad in (f"{p}*", "*", f"{p}.*.x", f"{p}.**"):
        r = requests.get(f"{sp.url}/events/{bad}", headers={"Accept": "text/event-stream"},
                         timeout=5)
        assert r.status_code == 400, bad
    r = publish(sp, f"{p}.*", "x")
    assert r.status_code == 400 and "channel" in r.json()["error"]
    r = requests.delete(f"http://127.0.0.1:{sp.publish_port}/channels/{p}.*", timeout=5)
    assert r.status_code == 400


def test_patterns_with_presence_or_poll_are_a_config_error(make_sidepush, tmp_path):
    import subprocess
    from conftest import SIDEPUSH
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("backend: { url: 'http://127.0.0.1:9' }\nroutes:\n"
                   "  - path: /e/{channel}\n"
                   "    authorize: { url: /auth }\n"
                   "    subscribe: { patterns: true, presence: true }\n")
    r = subprocess.run([SIDEPUSH, "--check-config", str(cfg)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0 and "subscribe.patterns" in r.stderr and "bad.yaml:3:5:" in r.stderr


def test_a_token_claim_covers_a_pattern_under_it(make_sidepush, issuer):  # noqa: F811
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe:\n"
                       f"      patterns: true\n      token: {{ secret: '{issuer.keys['secret']}' }}\n")
    p = prefix()

    def status(channel, claims):
        token = issuer.mint("hs", channels=claims)
        r = requests.get(f"{sp.url}/events/{channel}?token={token}",
                         headers={"Accept": "text/event-stream"}, stream=True, timeout=5)
        r.close()
        return r.status_code

    assert status(f"{p}.42.*", [f"{p}.*"]) == 200
    assert status(f"{p}.42.*", [f"{p}.42.*"]) == 200
    assert status(f"{p}.42.*", [f"{p}.42"]) == 403  # a channel does not cover its pattern
    assert status(f"{p}.*", [f"{p}.42.*"]) == 403   # nor a narrower pattern a wider one


def test_the_backend_authorizes_the_pattern_string(make_sidepush, backend):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n"
                       "    authorize: { url: '/auth/{channel}' }\n"
                       "    subscribe: { patterns: true }\n")
    p = prefix()
    r = requests.get(f"{sp.url}/events/{p}.*", headers={"Accept": "text/event-stream",
                                                        "Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 403
    log = requests.get(f"{backend.url}/auth-log", timeout=5).json()
    assert any(e["channels"] == f"{p}.*" for e in log)
    s = CurlSSE(f"{sp.url}/events/{p}.*", headers=["Authorization: Bearer good"])
    try:
        wait_subscribers(sp, f"{p}.*", 1)
        publish_ok(sp, f"{p}.x", "yes")
        assert datas(s.events(1)) == ["yes"]
    finally:
        s.close()


# ---- across replicas, through a real redis-server ---------------------------------------------

def redis_replicas(make_sidepush, redis, n, extra=""):
    from pushutil import wait_metric
    sps = [make_sidepush(ROUTES + redis.config(reconnect_max="200ms") + "workers: 2\n"
                         "channels: { history: 50 }\n" + extra) for _ in range(n)]
    for sp in sps:
        wait_metric(sp.url, "sidepush_redis_up", 1)
    return sps


def test_patterns_across_two_replicas_and_two_workers(make_sidepush, redis_server):
    a, b = redis_replicas(make_sidepush, redis_server, 2)
    p = prefix()
    publish_ok(a, f"{p}.old", "before")  # a channel that exists before the subscription
    streams = [CurlSSE(f"{sp.url}/events/{p}.*") for sp in (a, b) for _ in range(3)]
    # One replica also follows one channel by name: each message still arrives once.
    named = CurlSSE(f"{b.url}/events/{p}.x,{p}.*")
    try:
        wait_subscribers(a, f"{p}.*", 3)
        wait_subscribers(b, f"{p}.*", 4)
        wait_subscribers(b, f"{p}.x", 1)
        sent = []
        for i in range(12):
            sp = (a, b)[i % 2]
            channel = [f"{p}.x", f"{p}.new{i % 3}", f"{p}.old", f"{p}x.no"][i % 4]
            body = publish_ok(sp, channel, f"m{i}")
            if channel != f"{p}x.no":
                sent.append((body["id"], f"m{i}"))
        for s in streams + [named]:
            events = s.events(len(sent))
            assert [(e["id"], e["data"]) for e in events] == sent
    finally:
        for s in streams + [named]:
            s.close()


def test_a_pattern_resumes_on_another_replica_from_every_channel(make_sidepush, redis_server):
    a, b, c = redis_replicas(make_sidepush, redis_server, 3)
    p = prefix()
    first = CurlSSE(f"{b.url}/events/{p}.*")
    try:
        wait_subscribers(b, f"{p}.*", 1)
        publish_ok(a, f"{p}.1", "a0")
        seen = first.events(1)
    finally:
        first.close()
    # Published while the client is away, through every replica, to old and new channels.
    ids = [publish_ok(sp, ch, d)["id"] for sp, ch, d in
           [(a, f"{p}.1", "a1"), (b, f"{p}.2", "b0"), (c, f"{p}.3.deep", "c0"),
            (a, f"{p}x.1", "not under it"), (b, f"{p}.1", "a2")]]
    again = CurlSSE(f"{c.url}/events/{p}.*", headers=[f"Last-Event-ID: {seen[0]['id']}"])
    try:
        events = again.events(4)
        assert [e["data"] for e in events] == ["a1", "b0", "c0", "a2"]
        assert [e["id"] for e in events] == ids[:3] + ids[4:]
        assert "sidepush-missed" not in again.raw.decode()
        # And live from here, from a channel made after the resume.
        wait_subscribers(c, f"{p}.*", 1)
        publish_ok(a, f"{p}.4", "live")
        assert [e["data"] for e in again.events(5)][4] == "live"
    finally:
        again.close()


def test_a_lost_pubsub_connection_resyncs_a_pattern(make_sidepush, redis_server):
    import threading
    import time
    a, b = redis_replicas(make_sidepush, redis_server, 2)
    p = prefix()
    stream = CurlSSE(f"{b.url}/events/{p}.*")
    try:
        wait_subscribers(b, f"{p}.*", 1)
        acked = []

        def publisher():
            for n in range(120):
                acked.append(publish_ok(a, f"{p}.{n % 5}", f"n{n}")["id"])
                time.sleep(0.01)
        t = threading.Thread(target=publisher)
        t.start()
        redis_server.kill_pubsub()
        t.join()
        events = stream.events(120, timeout=15)
        assert [e["data"] for e in events] == [f"n{n}" for n in range(120)]
        assert [e["id"] for e in events] == acked
    finally:
        stream.close()
