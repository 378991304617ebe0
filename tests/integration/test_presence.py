"""Presence: members named by the backend's forward-auth answers, their joins
and leaves told to subscribers (SSE with curl, WebSocket with websockets),
the member list a new subscriber starts with, the grace that keeps a
reconnect from flapping, and the publish listener's presence endpoint."""
import asyncio
import json
import time

import pytest
import requests
import websockets

from pushutil import CurlSSE, wait_subscribers

ROUTES = ("routes:\n  - path: /room/{channel}\n    subscribe: { presence: true }\n"
          "    authorize: { url: '/auth/{channel}', cache: 0s }\n"
          "  - path: /plain/{channel}\n    subscribe: {}\n"
          "    authorize: { url: '/auth/{channel}' }\n")


def presence(sp, channel):
    r = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/{channel}/presence", timeout=5)
    assert r.status_code == 200
    return r.json()


def wait_members(sp, channel, users, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sorted(m["user_id"] for m in presence(sp, channel)["members"])
        if got == sorted(users):
            return
        time.sleep(0.05)
    raise AssertionError(f"members of {channel}: {got}, not {users}")


def events(sse, name):
    from pushutil import parse_sse
    return [json.loads(e["data"]) for e in parse_sse(sse.raw) if e.get("event") == name]


def test_members_join_once_leave_after_the_grace_and_are_listed(make_sidepush):
    sp = make_sidepush("presence: { leave_grace: 1s }\n" + ROUTES)
    watcher = CurlSSE(f"{sp.url}/room/lobby", headers=["Authorization: Bearer user:watcher"])
    try:
        wait_members(sp, "lobby", ["watcher"])
        first = events(watcher, "sidepush-members")
        assert len(first) == 1 and first[0]["channel"] == "lobby"
        # alice in two tabs: one join; bob's identity from a JSON body, an integer id.
        tabs = [CurlSSE(f"{sp.url}/room/lobby", headers=["Authorization: Bearer user:alice"])
                for _ in range(2)]
        bob = CurlSSE(f"{sp.url}/room/lobby", headers=["Authorization: Bearer body:42"])
        wait_members(sp, "lobby", ["watcher", "alice", "42"])
        listed = {m["user_id"]: m for m in presence(sp, "lobby")["members"]}
        assert listed["alice"]["connections"] == 2 and listed["alice"]["user_info"] == {"name": "alice"}
        assert listed["42"]["user_info"] == {"name": "42"}
        # A later subscriber starts with the list.
        late = CurlSSE(f"{sp.url}/room/lobby", headers=["Authorization: Bearer user:late"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not events(late, "sidepush-members"):
            time.sleep(0.05)
        (members,) = events(late, "sidepush-members")
        assert {"watcher", "alice", "42"} <= {m["user_id"] for m in members["members"]}
        late.close()
        # One tab closes, then the other: alice leaves once, after the grace.
        tabs[0].close()
        time.sleep(0.3)
        tabs[1].close()
        time.sleep(0.4)
        assert "alice" in [m["user_id"] for m in presence(sp, "lobby")["members"]]  # grace
        wait_members(sp, "lobby", ["watcher", "42"], timeout=3)
        bob.close()
        wait_members(sp, "lobby", ["watcher"], timeout=3)
        time.sleep(0.2)
        joins = [e["user_id"] for e in events(watcher, "sidepush-join")]
        leaves = [e["user_id"] for e in events(watcher, "sidepush-leave")]
        assert sorted(joins) == sorted(["watcher", "alice", "42", "late"])
        assert sorted(leaves) == sorted(["alice", "42", "late"])
        info = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/lobby", timeout=5).json()
        assert info["members"] == 1 and info["subscribers"] == 1
    finally:
        watcher.close()


def test_a_reconnect_within_the_grace_does_not_flap(make_sidepush):
    sp = make_sidepush("presence: { leave_grace: 2s }\n" + ROUTES)
    watcher = CurlSSE(f"{sp.url}/room/r", headers=["Authorization: Bearer user:watcher"])
    try:
        wait_members(sp, "r", ["watcher"])
        a = CurlSSE(f"{sp.url}/room/r", headers=["Authorization: Bearer user:carol"])
        wait_members(sp, "r", ["watcher", "carol"])
        a.close()  # cut, and back within the grace
        time.sleep(0.3)
        b = CurlSSE(f"{sp.url}/room/r", headers=["Authorization: Bearer user:carol"])
        time.sleep(2.5)
        assert [e["user_id"] for e in events(watcher, "sidepush-leave")] == []
        assert [e["user_id"] for e in events(watcher, "sidepush-join")].count("carol") == 1
        b.close()
    finally:
        watcher.close()


def test_websocket_members_and_events(make_sidepush):
    sp = make_sidepush("presence: { leave_grace: 0s }\n" + ROUTES)

    async def scenario():
        headers = {"Authorization": "Bearer user:ws1"}
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/room/w", subprotocols=["sidepush-envelope"],
                                      extra_headers=headers) as ws1:
            opening = json.loads(await asyncio.wait_for(ws1.recv(), 5))
            assert opening["event"] == "sidepush-open"
            # The member list is made on the shared loop after ws1's own join, so it
            # names ws1, and ws1's own join message may come before it.
            seen = []
            while True:
                m = json.loads(await asyncio.wait_for(ws1.recv(), 5))
                if m.get("event") == "sidepush-members":
                    break
                seen.append(m)
            assert m["channel"] == "w" and [x["user_id"] for x in m["members"]] == ["ws1"], m
            async with websockets.connect(f"ws://127.0.0.1:{sp.port}/room/w",
                                          extra_headers={"Authorization": "Bearer user:ws2"}):
                while len([m for m in seen if m.get("event") == "sidepush-join"]) < 2:
                    seen.append(json.loads(await asyncio.wait_for(ws1.recv(), 5)))
            while True:
                m = json.loads(await asyncio.wait_for(ws1.recv(), 5))
                if m.get("event") == "sidepush-leave":
                    return seen, m
    seen, left = asyncio.run(scenario())
    joins = [json.loads(m["data"])["user_id"] for m in seen if m.get("event") == "sidepush-join"]
    assert joins == ["ws1", "ws2"]
    assert json.loads(left["data"]) == {"user_id": "ws2", "user_info": {"name": "ws2"}}


def test_routes_without_presence_and_bad_identities(make_sidepush):
    sp = make_sidepush(ROUTES)
    plain = CurlSSE(f"{sp.url}/plain/p", headers=["Authorization: Bearer user:nobody"])
    try:
        wait_subscribers(sp, "p", 1)
        assert presence(sp, "p")["members"] == []  # not a presence route
    finally:
        plain.close()
    for token in ("bad-user", "bad-info"):
        r = requests.get(f"{sp.url}/room/x?wait=0", headers={"Authorization": f"Bearer {token}"},
                         timeout=5)
        assert r.status_code == 503, token
    sp.stop()
    assert sp.output.count("authorize_identity_invalid") == 2


def test_presence_needs_authorize(make_sidepush, tmp_path):
    import subprocess
    from conftest import SIDEPUSH
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: { url: 'http://127.0.0.1:1' }\nroutes:\n  - path: /r/{channel}\n"
                   "    subscribe: { presence: true }\n")
    out = subprocess.run([SIDEPUSH, "--check-config", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and "bad.yaml:3:5:" in out.stdout + out.stderr
    assert "presence needs authorize" in out.stdout + out.stderr


def test_chromium_tabs_join_once_and_leave_once(make_sidepush):
    import os
    import pytest
    from test_browser import run_browser_script
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("needs Debian's chromium")
    sp = make_sidepush("presence: { leave_grace: 1s }\n" + ROUTES)
    env = dict(os.environ, SIDEPUSH_PORT=str(sp.port), LEAVE_GRACE_MS="1000")
    result = run_browser_script("presence.mjs", env)
    assert result["end"]["joins"].count("alice") == 1


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
def test_joins_beyond_the_announce_limit_are_not_told(make_sidepush, tmp_path, shared):
    """Every join told to every subscriber is N^2 deliveries: beyond
    presence.announce_limit members only the list (and webhooks) tell."""
    redis = None
    if shared:
        from conftest import RedisServer
        redis = RedisServer(tmp_path)
    try:
        sp = make_sidepush((redis.config() if redis else "")
                           + "presence: { leave_grace: 0s, announce_limit: 2 }\n" + ROUTES)
        if redis:
            from pushutil import wait_metric
            wait_metric(sp.url, "sidepush_redis_up", 1)
        watcher = CurlSSE(f"{sp.url}/room/cap", headers=["Authorization: Bearer user:watcher"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not events(watcher, "sidepush-members"):
            time.sleep(0.05)
        alice = CurlSSE(f"{sp.url}/room/cap", headers=["Authorization: Bearer user:alice"])
        wait_members(sp, "cap", ["watcher", "alice"])
        bob = CurlSSE(f"{sp.url}/room/cap", headers=["Authorization: Bearer user:bob"])
        wait_members(sp, "cap", ["watcher", "alice", "bob"])  # listed, though not told
        bob.close()
        wait_members(sp, "cap", ["watcher", "alice"])
        alice.close()
        wait_members(sp, "cap", ["watcher"])
        time.sleep(0.3)
        watcher.close()
        assert sorted(e["user_id"] for e in events(watcher, "sidepush-join")) == ["alice", "watcher"]
        assert [e["user_id"] for e in events(watcher, "sidepush-leave")] == ["alice"]
    finally:
        if redis:
            redis.stop()
