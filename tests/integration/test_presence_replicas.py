"""Presence and occupancy across replicas sharing a real redis-server: members
are the deployment's (a user on two replicas is one member, listed and told
once), every occupancy and member event reaches the backend once for the
deployment, and a replica killed with SIGKILL has its members removed by the
others after redis.replica_timeout."""
import json
import time
import uuid

import requests
import websockets
import asyncio

import pushutil
from pushutil import CurlSSE, parse_sse
from test_webhooks import SECRET, events_of, received, verify


def config(redis_server, key):
    return (redis_server.config(replica_timeout="1s")
            + f"webhooks: {{ url: '/hooks/{key}', secret: '{SECRET}', batch: 100ms, "
              "vacated_grace: 500ms }\n"
            "presence: { leave_grace: 300ms }\n"
            "routes:\n  - path: /room/{channel}\n    subscribe: { presence: true }\n"
            "    authorize: { url: '/auth/{channel}', cache: 0s }\n")


def replicas(make_sidepush, redis_server, key, n=3):
    sps = [make_sidepush(config(redis_server, key)) for _ in range(n)]
    for sp in sps:
        pushutil.wait_metric(sp.url, "sidepush_redis_up", 1)
    return sps


def presence(sp, channel):
    r = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/{channel}/presence", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def wait_members(sps, channel, users, timeout=8):
    """Until every replica lists exactly users."""
    deadline = time.monotonic() + timeout
    while True:
        got = [sorted(m["user_id"] for m in presence(sp, channel)["members"]) for sp in sps]
        if all(g == sorted(users) for g in got):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"members of {channel}: {got}, not {sorted(users)}")
        time.sleep(0.05)


def sse_events(stream, name):
    return [json.loads(e["data"]) for e in parse_sse(stream.raw) if e.get("event") == name]


def wait_until(what, timeout=8):
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def kill(sp):
    """SIGKILL: nothing is let go of; the others must notice the silence."""
    sp.proc.kill()
    sp.proc.wait()
    sp.log.close()
    sp.output = ""
    sp.stop = lambda: 0  # killed on purpose: not a failed exit for the fixture


def test_members_are_the_deployments_and_told_once(make_sidepush, redis_server, backend):
    key = uuid.uuid4().hex
    a, b, c = replicas(make_sidepush, redis_server, key)
    room = f"lobby{redis_server.port}"
    watcher = CurlSSE(f"{c.url}/room/{room}", headers=["Authorization: Bearer user:watcher"])
    wait_until(lambda: sse_events(watcher, "sidepush-members"))  # its stream is open
    alice = [CurlSSE(f"{sp.url}/room/{room}", headers=["Authorization: Bearer user:alice"])
             for sp in (a, b)]
    bob = CurlSSE(f"{b.url}/room/{room}", headers=["Authorization: Bearer body:bob"])
    try:
        wait_members([a, b, c], room, ["watcher", "alice", "bob"])
        listed = {m["user_id"]: m for m in presence(a, room)["members"]}
        assert listed["alice"]["connections"] == 2, listed
        assert listed["alice"]["user_info"] == {"name": "alice"}
        info = requests.get(f"http://127.0.0.1:{a.publish_port}/channels/{room}", timeout=5).json()
        assert info["members"] == 3, info
        # A new subscriber on a replica with nobody else starts with the whole list.
        late = CurlSSE(f"{a.url}/room/{room}", headers=["Authorization: Bearer user:late"])
        wait_until(lambda: sse_events(late, "sidepush-members"))
        (first,) = sse_events(late, "sidepush-members")
        assert {"watcher", "alice", "bob"} <= {m["user_id"] for m in first["members"]}, first
        late.close()
        # alice leaves one replica: still a member; then the other: one leave.
        alice[0].close()
        time.sleep(0.8)
        wait_members([a, b, c], room, ["watcher", "alice", "bob"])
        alice[1].close()
        wait_members([a, b, c], room, ["watcher", "bob"])
        bob.close()
        wait_members([a, b, c], room, ["watcher"])
        time.sleep(0.3)
        joins = sorted(e["user_id"] for e in sse_events(watcher, "sidepush-join"))
        leaves = sorted(e["user_id"] for e in sse_events(watcher, "sidepush-leave"))
        assert joins == ["alice", "bob", "late", "watcher"], joins
        assert leaves == ["alice", "bob", "late"], leaves
    finally:
        watcher.close()
        for s in alice + [bob]:
            s.close()
    # The backend heard of everything once, whichever replica told it.
    want = {("channel_occupied", room, None), ("channel_vacated", room, None)}
    want |= {(n, room, u) for u in ("watcher", "alice", "bob", "late")
             for n in ("member_added", "member_removed")}
    wait_until(lambda: len(events_of(received(backend, key))) >= len(want), timeout=10)
    time.sleep(0.5)
    hooks = received(backend, key)
    got = events_of(hooks)
    assert sorted(got, key=str) == sorted(want, key=str), got
    assert got[0] == ("channel_occupied", room, None) and got[-1] == ("channel_vacated", room, None)
    verify(hooks)


def test_a_killed_replicas_members_are_removed_after_the_timeout(make_sidepush, redis_server,
                                                                backend):
    key = uuid.uuid4().hex
    a, b, c = replicas(make_sidepush, redis_server, key)
    room = f"kill{redis_server.port}"
    watcher = CurlSSE(f"{a.url}/room/{room}", headers=["Authorization: Bearer user:watcher"])
    wait_until(lambda: sse_events(watcher, "sidepush-members"))
    carol = CurlSSE(f"{c.url}/room/{room}", headers=["Authorization: Bearer user:carol"])

    async def on_b():
        # bob on the replica about to die, over WebSocket; carol there too.
        async with websockets.connect(f"ws://127.0.0.1:{b.port}/room/{room}",
                                      subprotocols=["sidepush-envelope"],
                                      extra_headers={"Authorization": "Bearer user:bob"}) as bob, \
                websockets.connect(f"ws://127.0.0.1:{b.port}/room/{room}",
                                   subprotocols=["sidepush-envelope"],
                                   extra_headers={"Authorization": "Bearer user:carol"}):
            notices = []
            while not any(n.get("event") == "sidepush-members" for n in notices):
                notices.append(json.loads(await asyncio.wait_for(bob.recv(), 5)))
            (listed,) = [n for n in notices if n.get("event") == "sidepush-members"]
            assert {"watcher", "carol"} <= {m["user_id"] for m in listed["members"]}, listed
            wait_members([a, b, c], room, ["watcher", "carol", "bob"])
            # (what b has queued for the backend dies with it: best effort)
            wait_until(lambda: ("member_added", room, "bob") in events_of(received(backend, key)))
            kill(b)
    try:
        wait_members([a, c], room, ["watcher", "carol"])
        asyncio.run(on_b())
        # Right after the kill bob is still listed (nobody said he left) ...
        assert "bob" in [m["user_id"] for m in presence(a, room)["members"]]
        # ... and within the timeout (1 s) plus a heartbeat (1/3 s) he is gone;
        # carol, still on c, stays.
        t0 = time.monotonic()
        wait_members([a, c], room, ["watcher", "carol"], timeout=6)
        assert time.monotonic() - t0 > 0.3
        listed = {m["user_id"]: m for m in presence(c, room)["members"]}
        assert listed["carol"]["connections"] == 1, listed  # b's connection no longer counted
        wait_until(lambda: [e["user_id"] for e in sse_events(watcher, "sidepush-leave")] == ["bob"])
        wait_until(lambda: ("member_removed", room, "bob") in events_of(received(backend, key)))
    finally:
        watcher.close()
        carol.close()
    wait_until(lambda: ("channel_vacated", room, None) in events_of(received(backend, key)), 10)
    got = events_of(received(backend, key))
    for event in got:
        assert got.count(event) == 1, got
    assert sorted(u for n, _, u in got if n == "member_removed") == ["bob", "carol", "watcher"], got


def test_a_replica_reaped_while_alive_sends_its_members_again(make_sidepush, redis_server,
                                                              backend):
    """A replica cut off from Redis for longer than the timeout is reaped by
    the others; when it is heard again it learns so and puts back all it holds."""
    import subprocess
    key = uuid.uuid4().hex
    a, b = replicas(make_sidepush, redis_server, key, n=2)
    room = f"reap{redis_server.port}"
    dave = CurlSSE(f"{b.url}/room/{room}", headers=["Authorization: Bearer user:dave"])
    try:
        wait_members([a, b], room, ["dave"])
        cli = ["redis-cli", "-p", str(redis_server.port)]
        ids = subprocess.run(cli + ["ZRANGE", "test:replicas", "0", "-1"], capture_output=True,
                             text=True, check=True).stdout.split()
        assert len(ids) == 2, ids
        for rid in ids:  # as if both had been silent: whichever speaks first reaps the other
            subprocess.run(cli + ["ZADD", "test:replicas", "0", rid], check=True,
                           capture_output=True)
        wait_until(lambda: ("member_removed", room, "dave") in events_of(received(backend, key)))
        # ... and dave, still connected to b, is a member again.
        wait_members([a, b], room, ["dave"])
        wait_until(lambda: events_of(received(backend, key)).count(("member_added", room, "dave")) == 2)
    finally:
        dave.close()


def test_a_large_channel_lists_at_most_max_members_and_counts_all(make_sidepush, redis_server):
    sps = [make_sidepush(redis_server.config() + "presence: { max_members: 2 }\n"
                         "routes:\n  - path: /room/{channel}\n    subscribe: { presence: true }\n"
                         "    authorize: { url: '/auth/{channel}', cache: 0s }\n")
           for _ in range(2)]
    for sp in sps:
        pushutil.wait_metric(sp.url, "sidepush_redis_up", 1)
    room = f"big{redis_server.port}"
    streams = [CurlSSE(f"{sps[i % 2].url}/room/{room}", headers=[f"Authorization: Bearer user:u{i}"])
               for i in range(5)]
    try:
        wait_until(lambda: presence(sps[1], room)["count"] == 5)
        doc = presence(sps[0], room)
        assert doc["count"] == 5 and len(doc["members"]) == 2, doc
        assert {m["user_id"] for m in doc["members"]} <= {f"u{i}" for i in range(5)}
        late = CurlSSE(f"{sps[0].url}/room/{room}", headers=["Authorization: Bearer user:late"])
        wait_until(lambda: sse_events(late, "sidepush-members"))
        (first,) = sse_events(late, "sidepush-members")
        assert first["count"] >= 5 and len(first["members"]) == 2, first
        late.close()
    finally:
        for s in streams:
            s.close()
