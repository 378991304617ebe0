"""The Pusher Channels protocol (issue 24, first part) with the clients apps use:
pusher-js 8 in Node and the `pusher` server SDK (tests/browser/pusher-node.mjs,
pusher-trigger.mjs); Python's websockets for what a well-behaved client never
sends and for each close code sidepush sends; hand-made API requests for every
way a signature can be wrong."""
import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
import websockets

from conftest import ROOT, SIDEPUSH, free_port
from pushutil import metric, publish_ok, wait_metric

APP_ID, KEY, SECRET = "123", "app-key", "app-secret"
CONFIG = (f"pusher: {{ app_id: '{APP_ID}', key: {KEY}, secret: {SECRET}, activity_timeout: 2s,"
          " pong_timeout: 1s }\n"
          "presence: { leave_grace: 300ms }\n"
          "routes:\n  - path: /events/{channel}\n    subscribe: { transports: [sse] }\n")
BROWSER_DIR = ROOT / "tests" / "browser"


def redis_pair(make_sidepush, cfg):
    """Two replicas sharing Redis, each connected (a publish at once could be a 503)."""
    pair = make_sidepush(cfg), make_sidepush(cfg)
    for sp in pair:
        wait_metric(sp.url, "sidepush_redis_up", 1)
    return pair


@pytest.fixture
def sp(make_sidepush):
    return make_sidepush(CONFIG)


def node(script, sp, *args, env_extra=None):
    """Runs a tests/browser Node script against sp; returns its JSON result."""
    assert (BROWSER_DIR / "node_modules" / "pusher-js").exists(), \
        "run `npm ci` in tests/browser (.ci/deps test does)"
    env = dict(os.environ, SIDEPUSH_PORT=str(sp.port), SIDEPUSH_PUBLISH_PORT=str(sp.publish_port),
               PUSHER_APP_ID=APP_ID, PUSHER_KEY=KEY, PUSHER_SECRET=SECRET, **(env_extra or {}))
    out = subprocess.run([shutil.which("node"), script, *args], cwd=BROWSER_DIR, env=env,
                         capture_output=True, text=True, timeout=60)
    print(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    return result


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def app_url(sp, query="protocol=7&client=js&version=8.6.0", key=KEY):
    return f"ws://127.0.0.1:{sp.port}/app/{key}?{query}"


async def recv_event(ws):
    msg = json.loads(await ws.recv())
    data = msg.get("data")
    if isinstance(data, str):
        try:
            msg["data"] = json.loads(data)
        except ValueError:
            pass
    return msg


async def connect(sp):
    ws = await websockets.connect(app_url(sp))
    hello = await recv_event(ws)
    assert hello["event"] == "pusher:connection_established"
    return ws, hello["data"]["socket_id"]


def channel_auth(socket_id, channel, channel_data=None):
    text = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    return KEY + ":" + hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()


# ---- real clients -------------------------------------------------------------------------


def test_pusher_js_and_the_server_sdk(sp):
    """Public, private and presence channels authorized by the SDK, trigger and
    triggerBatch, toOthers() by socket_id, a native publish on the same channel."""
    result = node("pusher-node.mjs", sp)
    assert result["ok"], result


def test_pusher_js_across_two_replicas_with_redis(make_sidepush, redis_server):
    """Alice on one replica, Bob on another: presence, toOthers() and every event
    cross replicas through a real redis-server."""
    a, b = redis_pair(make_sidepush, CONFIG + redis_server.config())
    result = node("pusher-node.mjs", a, env_extra={"SIDEPUSH_PORT_B": str(b.port)})
    assert result["ok"], result


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_laravel_echo_and_pusher_js_in_chromium(make_sidepush):
    """Echo with broadcaster 'pusher' and 'reverb' in one page, the page and its
    /broadcasting/auth from a stand-in app behind sidepush's proxy."""
    app_port = free_port()
    sp = make_sidepush(CONFIG, backend_url=f"http://127.0.0.1:{app_port}")
    result = node("pusher-echo.mjs", sp, env_extra={"APP_PORT": str(app_port)})
    assert result["ok"], result


def test_a_native_sse_subscriber_and_a_pusher_client_share_a_channel(sp):
    async def main():
        ws, _ = await connect(sp)
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}}))
        assert (await recv_event(ws))["event"] == "pusher_internal:subscription_succeeded"
        with requests.get(f"{sp.url}/events/news", stream=True, timeout=10,
                          headers={"Accept": "text/event-stream"}) as sse:
            lines = sse.iter_lines(decode_unicode=True)
            assert sse.status_code == 200
            result = await asyncio.to_thread(node, "pusher-trigger.mjs", sp, "news", "shipped",
                                             '{"order":7}')
            assert result["ok"] and result["status"] == 200, result
            event = await recv_event(ws)
            assert (event["event"], event["channel"], event["data"]) == \
                ("shipped", "news", {"order": 7})
            assert re.match(r"^\w+-\d+$", event["id"]), event  # the position to resume from
            seen = []
            for line in lines:
                seen.append(line)
                if line.startswith("data:"):
                    break
            assert "event: shipped" in seen and 'data: {"order":7}' in seen, seen
        publish_ok(sp, "news", "plain text", event="note")
        event = await recv_event(ws)
        assert (event["event"], event["data"]) == ("note", "plain text")
        publish_ok(sp, "news", "no name")
        assert (await recv_event(ws))["event"] == "message"  # a native message without a name
        await ws.close()
    run(main())


# ---- the connection --------------------------------------------------------------------------


def test_connection_established_names_a_socket_and_the_activity_timeout(sp):
    async def main():
        async with websockets.connect(app_url(sp)) as ws:
            hello = json.loads(await ws.recv())
            assert isinstance(hello["data"], str)  # protocol 7 sends data as a JSON string
            data = json.loads(hello["data"])
            assert re.match(r"^\d+\.\d+$", data["socket_id"]) and data["activity_timeout"] == 2
            await ws.send('{"event":"pusher:ping","data":{}}')
            assert (await recv_event(ws))["event"] == "pusher:pong"
    run(main())


@pytest.mark.parametrize("query,key,code", [
    ("protocol=7", "wrong-key", 4001),
    ("client=js", KEY, 4008),
    ("protocol=4", KEY, 4007),
    ("protocol=seven", KEY, 4006),
])
def test_a_wrong_key_or_protocol_closes_with_pushers_code(sp, query, key, code):
    async def main():
        async with websockets.connect(app_url(sp, query, key)) as ws:
            error = await recv_event(ws)
            assert error["event"] == "pusher:error" and error["data"]["code"] == code
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == code
    run(main())


def test_a_silent_client_is_pinged_then_closed_4201(sp):
    async def main():
        async with websockets.connect(app_url(sp), ping_interval=None) as ws:
            await recv_event(ws)
            ping = await asyncio.wait_for(recv_event(ws), 5)
            assert ping["event"] == "pusher:ping"
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4201
    run(main())


def test_a_client_that_answers_the_ping_stays(sp):
    async def main():
        async with websockets.connect(app_url(sp), ping_interval=None) as ws:
            await recv_event(ws)
            assert (await asyncio.wait_for(recv_event(ws), 5))["event"] == "pusher:ping"
            await ws.send('{"event":"pusher:pong","data":{}}')
            await asyncio.sleep(1.5)  # past pong_timeout
            await ws.send('{"event":"pusher:ping","data":{}}')
            assert (await recv_event(ws))["event"] == "pusher:pong"
    run(main())


def test_binary_frames_close_1003(sp):
    async def main():
        async with websockets.connect(app_url(sp)) as ws:
            await recv_event(ws)
            await ws.send(b"\x00\x01")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1003
    run(main())


def test_drain_closes_4200_so_clients_reconnect_at_once(sp):
    async def main():
        ws, _ = await connect(sp)
        sp.proc.send_signal(15)
        error = await asyncio.wait_for(recv_event(ws), 10)
        assert error["event"] == "pusher:error" and error["data"]["code"] == 4200
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4200
    run(main())


def test_a_reload_that_removes_the_section_closes_pusher_clients_4001(sp):
    async def main():
        ws, sid = await connect(sp)
        text = sp.config.read_text()
        sp.config.write_text(text.replace(text[text.index("pusher:"):text.index("presence:")], ""))
        sp.proc.send_signal(signal.SIGHUP)
        # Until the next tick closes it, what it asks of a section that is gone is ignored.
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {
            "channel": "private-x", "auth": channel_auth(sid, "private-x")}}))
        while True:
            msg = await asyncio.wait_for(recv_event(ws), 5)
            if msg["event"] == "pusher:error":
                break
            assert msg["event"] == "pusher_internal:subscription_succeeded"  # before the reload
        assert msg["data"]["code"] == 4001
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001
        r = signed(sp, f"/apps/{APP_ID}/events", event())
        assert r.status_code != 200  # the API went with the section: the native API answers
    run(main())


# ---- subscriptions -------------------------------------------------------------------------------


def test_private_channels_need_the_apps_signature_for_this_socket(sp):
    async def main():
        ws, sid = await connect(sp)
        other, other_sid = await connect(sp)
        bad = [channel_auth(other_sid, "private-x"),  # signed for another socket: replayed
               channel_auth(sid, "private-y"),  # for another channel
               KEY + ":" + "0" * 64, "other-key:" + channel_auth(sid, "private-x").split(":")[1],
               None]
        for auth in bad:
            data = {"channel": "private-x"} | ({"auth": auth} if auth else {})
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
            error = await recv_event(ws)
            assert error["event"] == "pusher:error" and error["data"]["code"] == 4009, (auth, error)
        await ws.send(json.dumps({"event": "pusher:subscribe",
                                  "data": {"channel": "private-x",
                                           "auth": channel_auth(sid, "private-x")}}))
        ok = await recv_event(ws)
        assert ok["event"] == "pusher_internal:subscription_succeeded" and ok["channel"] == "private-x"
        publish_ok(sp, "private-x", "secret")
        assert (await recv_event(ws))["data"] == "secret"
        await ws.close()
        await other.close()
    run(main())
    assert metric(sp.url, "sidepush_pusher_auth_failures_total") == 5


def test_presence_channels_list_members_and_tell_joins(sp):
    async def main():
        a, sid_a = await connect(sp)
        b, sid_b = await connect(sp)
        for ws, sid, user in ((a, sid_a, 1), (b, sid_b, "bee")):
            data = json.dumps({"user_id": user, "user_info": {"n": str(user)}})
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {
                "channel": "presence-room", "auth": channel_auth(sid, "presence-room", data),
                "channel_data": data}}))
            ok = await recv_event(ws)
            assert ok["event"] == "pusher_internal:subscription_succeeded", ok
            if user == 1:
                assert ok["data"]["presence"] == {"ids": ["1"], "hash": {"1": {"n": "1"}},
                                                  "count": 1}
        added = await recv_event(a)
        assert added["event"] == "pusher_internal:member_added"
        assert added["data"] == {"user_id": "bee", "user_info": {"n": "bee"}}
        # channel_data that is not the signed one is refused
        forged = json.dumps({"user_id": "admin"})
        await a.send(json.dumps({"event": "pusher:subscribe", "data": {
            "channel": "presence-other", "auth": channel_auth(sid_a, "presence-other", "{}"),
            "channel_data": forged}}))
        assert (await recv_event(a))["data"]["code"] == 4009
        await b.close()
        removed = await asyncio.wait_for(recv_event(a), 5)
        assert removed["event"] == "pusher_internal:member_removed"
        assert removed["data"]["user_id"] == "bee"
        await a.close()
    run(main())


def test_a_connection_subscribes_to_at_most_max_channels_per_connection(make_sidepush):
    sp = make_sidepush(CONFIG.replace("pong_timeout: 1s", "pong_timeout: 1s,"
                                      " max_channels_per_connection: 2"))

    async def main():
        ws, _ = await connect(sp)
        for name in ("one", "two", "three"):
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": name}}))
            reply = await recv_event(ws)
            if name == "three":
                assert reply["event"] == "pusher:error", reply
                assert "max_channels_per_connection" in reply["data"]["message"]
            else:
                assert reply["event"] == "pusher_internal:subscription_succeeded", reply
        await ws.send('{"event":"pusher:unsubscribe","data":{"channel":"one"}}')
        await ws.send('{"event":"pusher:subscribe","data":{"channel":"three"}}')
        assert (await recv_event(ws))["event"] == "pusher_internal:subscription_succeeded"
        await ws.close()
    run(main())


def test_bad_subscriptions_are_told_and_the_connection_stays(sp):
    async def main():
        ws, _ = await connect(sp)
        for data in ({"channel": "bad channel"}, {"channel": "x" * 165}, {"nochannel": 1}):
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
            error = await recv_event(ws)
            assert error["event"] == "pusher:error", error
        await ws.send('{"event":"client-typing","channel":"news","data":"{}"}')
        error = await recv_event(ws)
        assert error["event"] == "pusher:error" and "client events" in error["data"]["message"]
        await ws.send("not json")
        assert (await recv_event(ws))["event"] == "pusher:error"
        await ws.send('{"event":"pusher:subscribe","data":{"channel":"fine"}}')
        assert (await recv_event(ws))["event"] == "pusher_internal:subscription_succeeded"
        await ws.send('{"event":"pusher:unsubscribe","data":{"channel":"fine"}}')
        await ws.send('{"event":"pusher:ping","data":{}}')
        assert (await recv_event(ws))["event"] == "pusher:pong"
        publish_ok(sp, "fine", "after unsubscribing")
        await ws.send('{"event":"pusher:ping","data":{}}')
        assert (await recv_event(ws))["event"] == "pusher:pong"  # and nothing before it
        await ws.close()
    run(main())


def with_options(options):
    return CONFIG.replace("pong_timeout: 1s", "pong_timeout: 1s, " + options)


async def join_presence(ws, sid, channel, user, info=None):
    data = json.dumps({"user_id": user, "user_info": info or {}})
    await ws.send(json.dumps({"event": "pusher:subscribe", "data": {
        "channel": channel, "auth": channel_auth(sid, channel, data), "channel_data": data}}))
    return await recv_event(ws)


def test_a_presence_channel_holds_at_most_max_presence_members_users(make_sidepush):
    sp = make_sidepush(with_options("max_presence_members: 2, max_user_info: 64"))

    async def main():
        a, sid_a = await connect(sp)
        b, sid_b = await connect(sp)
        c, sid_c = await connect(sp)
        assert (await join_presence(a, sid_a, "presence-full", "u1"))["event"] == \
            "pusher_internal:subscription_succeeded"
        assert (await join_presence(b, sid_b, "presence-full", "u2"))["event"] == \
            "pusher_internal:subscription_succeeded"
        assert (await recv_event(a))["event"] == "pusher_internal:member_added"
        # A third user is refused on the channel (pusher-js and Echo hand this to
        # the channel's error callback); a second connection of u1 is not a new user.
        refused = await join_presence(c, sid_c, "presence-full", "u3")
        assert refused["event"] == "pusher:subscription_error", refused
        assert refused["channel"] == "presence-full" and refused["data"]["status"] == 403
        # a sees u3 come and go (its join was counted before the list said full;
        # it leaves after presence.leave_grace, like any member)
        seen = [(await asyncio.wait_for(recv_event(a), 5))["event"] for _ in range(2)]
        assert seen == ["pusher_internal:member_added", "pusher_internal:member_removed"]
        again = await join_presence(c, sid_c, "presence-full", "u1")
        assert again["event"] == "pusher_internal:subscription_succeeded", again
        assert again["data"]["presence"]["count"] == 2
        # user_info over pusher.max_user_info is refused before anyone hears of it
        big = await join_presence(c, sid_c, "presence-big", "u4", {"bio": "x" * 100})
        assert big["event"] == "pusher:error" and "max_user_info" in big["data"]["message"]
        for ws in (a, b, c):
            await ws.close()
    run(main())


def test_past_max_connections_a_client_is_closed_4100_to_back_off(make_sidepush):
    sp = make_sidepush(with_options("max_connections: 2"))

    async def main():
        a, _ = await connect(sp)
        b, _ = await connect(sp)
        async with websockets.connect(app_url(sp)) as c:
            error = await recv_event(c)
            assert error["event"] == "pusher:error" and error["data"]["code"] == 4100
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 4100
        await a.close()
        await asyncio.sleep(0.2)
        c, _ = await connect(sp)  # room again
        await c.close()
        await b.close()
    run(main())


async def subscribe_private(ws, sid, channel):
    await ws.send(json.dumps({"event": "pusher:subscribe", "data": {
        "channel": channel, "auth": channel_auth(sid, channel)}}))
    ok = await recv_event(ws)
    assert ok["event"] == "pusher_internal:subscription_succeeded", ok


def test_client_events_reach_the_others_not_the_sender(make_sidepush):
    sp = make_sidepush(with_options("client_events: true, client_event_rate: 5"))

    async def main():
        a, sid_a = await connect(sp)
        b, sid_b = await connect(sp)
        await subscribe_private(a, sid_a, "private-chat")
        await subscribe_private(b, sid_b, "private-chat")
        with requests.get(f"{sp.url}/events/private-chat", stream=True, timeout=10) as refused:
            # a native route without authorize must not be a way around the signature
            assert refused.status_code == 403 and "authorize" in refused.json()["error"]
        await a.send(json.dumps({"event": "client-typing", "channel": "private-chat",
                                 "data": {"who": "a"}}))
        got = await recv_event(b)
        assert got == {"event": "client-typing", "channel": "private-chat",
                       "data": {"who": "a"}, "id": got["id"]}
        # the sender hears nothing of its own event: its next frame is the pong
        await a.send('{"event":"pusher:ping","data":{}}')
        assert (await recv_event(a))["event"] == "pusher:pong"
        # public channels, channels not subscribed, encrypted ones: refused
        await a.send('{"event":"pusher:subscribe","data":{"channel":"public"}}')
        assert (await recv_event(a))["event"] == "pusher_internal:subscription_succeeded"
        for channel in ("public", "private-other", "private-encrypted-x"):
            await a.send(json.dumps({"event": "client-x", "channel": channel, "data": "{}"}))
            error = await recv_event(a)
            assert error["event"] == "pusher:error" and error["data"]["code"] is None, error
        # over client_event_rate a second: 4301, the connection stays
        for i in range(8):
            await a.send(json.dumps({"event": "client-n", "channel": "private-chat",
                                     "data": str(i)}))
        await a.send('{"event":"pusher:ping","data":{}}')
        replies = []
        while not replies or replies[-1]["event"] != "pusher:pong":
            replies.append(await recv_event(a))
        codes = [r["data"]["code"] for r in replies if r["event"] == "pusher:error"]
        assert 1 <= len(codes) <= 4 and set(codes) == {4301}, replies  # 5 a second pass
        got = []
        while len(got) < 8 - len(codes):
            got.append((await recv_event(b))["data"])
        assert [str(g) for g in got] == [str(i) for i in range(len(got))]
        # what /metrics counts (summed over the workers)
        assert metric(sp.url, "sidepush_pusher_connections") == 2
        assert metric(sp.url, "sidepush_pusher_subscriptions") == 3
        events = {r: metric(sp.url, "sidepush_pusher_client_events_total", f'{{result="{r}"}}')
                  for r in ("relayed", "rate_limited", "refused")}
        assert events == {"relayed": 9 - len(codes), "rate_limited": len(codes), "refused": 3}
        for ws in (a, b):
            await ws.close()
    run(main())
    wait_metric(sp.url, "sidepush_pusher_subscriptions", 0)


# ---- the HTTP API ---------------------------------------------------------------------------------


def signed(sp, path, body, method="POST", timestamp=None, secret=SECRET, key=KEY, md5=None,
           extra=""):
    params = {"auth_key": key, "auth_timestamp": str(timestamp or int(time.time())),
              "auth_version": "1.0"}
    if body:
        params["body_md5"] = md5 or hashlib.md5(body.encode()).hexdigest()
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items())) + extra
    sig = hmac.new(secret.encode(), f"{method}\n{path}\n{query}".encode(),
                   hashlib.sha256).hexdigest()
    return requests.request(method, f"http://127.0.0.1:{sp.publish_port}{path}?{query}"
                            f"&auth_signature={sig}", data=body, timeout=5)


def event(**kw):
    return json.dumps({"name": "e", "data": "{}", "channel": "c"} | kw)


@pytest.mark.parametrize("kw,status", [
    ({}, 200),
    ({"secret": "wrong"}, 401),
    ({"key": "other"}, 401),
    ({"skew": -700}, 401),
    ({"skew": 700}, 401),
    ({"skew": -500}, 200),
    ({"md5": "0" * 32}, 401),
    ({"extra": "&auth_key=again"}, 400),
])
def test_api_requests_are_signed_as_pusher_signs_them(sp, kw, status):
    kw = dict(kw)
    if "skew" in kw:  # from the time the test runs, not when it was collected
        kw["timestamp"] = int(time.time()) + kw.pop("skew")
    r = signed(sp, f"/apps/{APP_ID}/events", event(), **kw)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json() == {}


def test_api_refuses_what_pusher_refuses(sp):
    path = f"/apps/{APP_ID}/events"
    assert signed(sp, path, event(data="x" * 10241)).status_code == 413
    assert signed(sp, path, event(channel=None, channels=[f"c{i}" for i in range(101)])) \
        .status_code == 400
    assert signed(sp, path, event(data={"not": "a string"})).status_code == 400
    assert signed(sp, path, event(name="")).status_code == 400
    assert signed(sp, path, event(channel="bad channel")).status_code == 400
    assert signed(sp, path, event(socket_id="abc")).status_code == 400
    assert signed(sp, path, event(channel=None, channels=["private-encrypted-a", "b"])) \
        .status_code == 400
    assert signed(sp, path, "not json").status_code == 400
    batch = json.dumps({"batch": [{"name": "e", "data": "1", "channel": "c"}] * 11})
    assert signed(sp, f"/apps/{APP_ID}/batch_events", batch).status_code == 400
    assert signed(sp, "/apps/999/events", event()).status_code == 404
    assert signed(sp, f"/apps/{APP_ID}/events", "", method="GET").status_code == 405
    unsigned = requests.post(f"http://127.0.0.1:{sp.publish_port}{path}", data=event(), timeout=5)
    assert unsigned.status_code == 401
    # none of those published anything: the channel does not even exist
    r = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/c", timeout=5)
    assert r.status_code == 404, r.text


def test_the_native_publish_api_is_still_there_beside_it(sp):
    assert publish_ok(sp, "c", "native")["id"]


def test_users_sign_in_hear_send_to_user_and_are_terminated(sp):
    """pusher-js signin() and the SDK's sendToUser, get of channels and users, and
    terminateUserConnections (tests/browser/pusher-users.mjs)."""
    result = node("pusher-users.mjs", sp)
    assert result["ok"], result


def test_users_across_two_replicas_with_redis(make_sidepush, redis_server):
    """The user's second connection on another replica hears sendToUser and is
    terminated too; the users of a presence channel are the deployment's."""
    a, b = redis_pair(make_sidepush, CONFIG + redis_server.config())
    result = node("pusher-users.mjs", a, env_extra={"SIDEPUSH_PORT_B": str(b.port)})
    assert result["ok"], result


def test_a_users_channel_is_only_for_that_signed_in_user(sp):
    async def main():
        ws, sid = await connect(sp)
        await ws.send('{"event":"pusher:subscribe","data":{"channel":"#server-to-user-bob"}}')
        error = await recv_event(ws)
        assert error["event"] == "pusher:error" and error["data"]["code"] == 4009
        user_data = json.dumps({"id": "alice"})
        sig = hmac.new(SECRET.encode(), f"{sid}::user::{user_data}".encode(),
                       hashlib.sha256).hexdigest()
        wrong_last = f"{KEY}:{sig[:-1]}{'1' if sig.endswith('0') else '0'}"
        for auth in (f"{KEY}:{'0' * 64}", wrong_last):
            await ws.send(json.dumps({"event": "pusher:signin",
                                      "data": {"auth": auth, "user_data": user_data}}))
            assert (await recv_event(ws))["data"]["code"] == 4009
        await ws.send(json.dumps({"event": "pusher:signin",
                                  "data": {"auth": f"{KEY}:{sig}", "user_data": user_data}}))
        ok = await recv_event(ws)
        assert ok["event"] == "pusher:signin_success", ok
        assert metric(sp.url, "sidepush_pusher_signins_total") == 1
        assert metric(sp.url, "sidepush_pusher_auth_failures_total") == 2
        await ws.send('{"event":"pusher:subscribe","data":{"channel":"#server-to-user-bob"}}')
        assert (await recv_event(ws))["data"]["code"] == 4009  # signed in, as someone else
        await ws.send('{"event":"pusher:subscribe","data":{"channel":"#server-to-user-alice"}}')
        assert (await recv_event(ws))["event"] == "pusher_internal:subscription_succeeded"
        # a native route cannot reach a user's channel either
        r = requests.get(f"{sp.url}/events/%23server-to-user-alice", timeout=5,
                         headers={"Accept": "text/event-stream"})
        assert r.status_code in (400, 403), r.text
        r = signed(sp, f"/apps/{APP_ID}/users/alice/terminate_connections", "{}")
        assert r.status_code == 200 and r.json() == {}
        error = await recv_event(ws)
        assert error["event"] == "pusher:error" and error["data"]["code"] == 4009
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4009
    run(main())


def test_api_queries_are_signed_and_refused_as_pusher_refuses(sp):
    base = f"/apps/{APP_ID}"
    assert signed(sp, f"{base}/channels", "", method="GET").json() == {"channels": {}}
    r = signed(sp, f"{base}/channels", "", method="GET", extra="&info=user_count")
    assert r.status_code == 400 and "presence-" in r.json()["error"]
    r = signed(sp, f"{base}/channels/news", "", method="GET")
    assert r.status_code == 200 and r.json() == {"occupied": False}
    assert signed(sp, f"{base}/channels/news/users", "", method="GET").status_code == 400
    assert signed(sp, f"{base}/channels/news/other", "", method="GET").status_code == 404
    assert signed(sp, f"{base}/channels", "", method="POST").status_code == 405
    assert signed(sp, f"{base}/users/alice/terminate_connections", "",
                  method="GET").status_code == 405
    assert signed(sp, f"{base}/users/a%20b/terminate_connections", "{}").status_code == 400
    r = requests.get(f"http://127.0.0.1:{sp.publish_port}{base}/channels", timeout=5)
    assert r.status_code == 401


def test_webhooks_signed_as_pusher_signs_them(make_sidepush):
    """The app checks every webhook with the SDK's webhook().isValid(); a client
    event (pusher-js trigger, Echo's whisper) comes as client_event with its
    sender's socket_id and user_id."""
    app_port = free_port()
    sp = make_sidepush(
        with_options("client_events: true")
        + "webhooks: { url: /hooks, pusher_signature: true, batch: 50ms, vacated_grace: 100ms,"
          " events: [channel_occupied, channel_vacated, member_added, member_removed,"
          " client_event] }\n",
        backend_url=f"http://127.0.0.1:{app_port}")
    result = node("pusher-webhooks.mjs", sp, env_extra={"APP_PORT": str(app_port)})
    assert result["ok"], result


def test_pusher_signature_needs_the_pusher_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backend: { url: 'http://127.0.0.1:9' }\n"
                    "webhooks: { url: /hooks, pusher_signature: true }\n")
    out = subprocess.run([SIDEPUSH, "--check-config", str(path)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and "pusher_signature" in out.stderr, out.stderr


def test_with_redis_nothing_published_after_subscription_succeeded_is_missed(make_sidepush,
                                                                             redis_server):
    """subscription_succeeded comes once the channel is subscribed in Redis: an
    event published through another replica right after it arrives, every time."""
    a, b = redis_pair(make_sidepush, CONFIG + redis_server.config())

    async def main():
        ws, _ = await connect(b)
        for i in range(20):
            channel = f"fresh-{i}"
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
            assert (await recv_event(ws))["event"] == "pusher_internal:subscription_succeeded"
            r = signed(a, f"/apps/{APP_ID}/events", event(channel=channel, data=str(i)))
            assert r.status_code == 200, r.text
            got = await asyncio.wait_for(recv_event(ws), 5)
            assert got["channel"] == channel and str(got["data"]) == str(i), got
        await ws.close()
    run(main())


def test_resume_from_history_with_stock_pusher_js(sp):
    """The "since" field on pusher:subscribe, added by lib/push/pusher.md's
    snippet around stock pusher-js (tests/browser/pusher-resume.mjs)."""
    result = node("pusher-resume.mjs", sp)
    assert result["ok"], result


async def subscribe(ws, channel, **extra):
    await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel} | extra}))
    ok = await recv_event(ws)
    assert ok["event"] == "pusher_internal:subscription_succeeded", ok


def test_resume_across_replicas_and_a_cursor_too_old(make_sidepush, redis_server):
    cfg = CONFIG + "channels: { history: 3 }\n" + redis_server.config()
    a, b = redis_pair(make_sidepush, cfg)

    async def main():
        ws, _ = await connect(a)
        await subscribe(ws, "log")
        first = signed(b, f"/apps/{APP_ID}/events", event(channel="log", name="line", data="1"))
        assert first.status_code == 200
        seen = await recv_event(ws)
        await ws.close()
        for n in (2, 3):
            signed(b, f"/apps/{APP_ID}/events", event(channel="log", name="line", data=str(n)))
        again, _ = await connect(b)  # the other replica, from the shared history
        await subscribe(again, "log", since=seen["id"])
        assert [str((await recv_event(again))["data"]) for _ in range(2)] == ["2", "3"]
        for n in (4, 5, 6):
            signed(a, f"/apps/{APP_ID}/events", event(channel="log", name="line", data=str(n)))
        await asyncio.sleep(0.3)
        late, _ = await connect(a)
        await subscribe(late, "log", since=seen["id"])  # 2 is gone: history holds 3
        missed = await recv_event(late)
        assert missed["event"] == "sidepush-missed" and missed["channel"] == "log", missed
        assert [str((await recv_event(late))["data"]) for _ in range(3)] == ["4", "5", "6"]
        for ws_ in (again, late):
            await ws_.close()
    run(main())


def test_cache_channels_give_the_last_event_or_a_cache_miss(make_sidepush):
    app = free_port()
    sp = make_sidepush(with_options("cache_ttl: 1s")
                       + "webhooks: { url: /hooks, batch: 50ms, events: [cache_miss] }\n",
                       backend_url=f"http://127.0.0.1:{app}")
    hooks = []

    import http.server
    import threading

    class Hooks(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hooks.extend(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", app), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def main():
        for n in (1, 2):
            signed(sp, f"/apps/{APP_ID}/events", event(channel="cache-price", name="p", data=str(n)))
        ws, _ = await connect(sp)
        await subscribe(ws, "cache-price")
        got = await recv_event(ws)
        assert got["event"] == "p" and str(got["data"]) == "2", got  # the last one only
        for name in ("cache-empty", "cache-empty2"):
            other, _ = await connect(sp)
            await subscribe(other, name)
            miss = await recv_event(other)
            assert miss == {"event": "pusher:cache_miss", "channel": name}, miss
            await other.close()
        again, _ = await connect(sp)  # a second miss of the same channel: told once
        await subscribe(again, "cache-empty")
        assert (await recv_event(again))["event"] == "pusher:cache_miss"
        await asyncio.sleep(1.2)  # past pusher.cache_ttl
        late, _ = await connect(sp)
        await subscribe(late, "cache-price")
        assert (await recv_event(late))["event"] == "pusher:cache_miss"
        await asyncio.sleep(0.5)
        for w in (ws, again, late):
            await w.close()
    try:
        run(main())
    finally:
        server.shutdown()
    assert sorted(h["channel"] for h in hooks) == ["cache-empty", "cache-empty2", "cache-price"]
    assert all(h["name"] == "cache_miss" for h in hooks)


def test_subscription_count_is_told_as_it_changes(make_sidepush):
    sp = make_sidepush(with_options("subscription_count: true"))

    async def next_count(ws):
        while True:
            m = await asyncio.wait_for(recv_event(ws), 5)
            if m["event"] == "pusher_internal:subscription_count":
                return m["channel"], m["data"]["subscription_count"]

    async def main():
        a, _ = await connect(sp)
        b, _ = await connect(sp)
        await subscribe(a, "room")
        assert await next_count(a) == ("room", 1)
        await subscribe(b, "room")
        assert await next_count(a) == ("room", 2)
        assert await next_count(b) == ("room", 2)
        await b.close()
        assert await next_count(a) == ("room", 1)
        await a.close()
    run(main())


def test_encrypted_channels_are_relayed_for_the_sdks_to_decrypt(sp):
    """tests/browser/pusher-encrypted.mjs: the SDK encrypts, pusher-js decrypts."""
    result = node("pusher-encrypted.mjs", sp)
    assert result["ok"], result


def test_client_events_and_cache_channels_across_replicas(make_sidepush, redis_server):
    cfg = with_options("client_events: true") + redis_server.config()
    a, b = redis_pair(make_sidepush, cfg)

    async def main():
        alice, sid_a = await connect(a)
        bob, sid_b = await connect(b)
        await subscribe_private(alice, sid_a, "private-room")
        await subscribe_private(bob, sid_b, "private-room")
        await alice.send(json.dumps({"event": "client-hello", "channel": "private-room",
                                     "data": {"from": "a"}}))
        got = await asyncio.wait_for(recv_event(bob), 5)
        assert got["event"] == "client-hello" and got["data"] == {"from": "a"}, got
        await alice.send('{"event":"pusher:ping","data":{}}')
        assert (await recv_event(alice))["event"] == "pusher:pong"  # not its own event
        # a cache channel's last event, published through one replica, from the other
        r = signed(a, f"/apps/{APP_ID}/events", event(channel="cache-rate", name="r", data="7"))
        assert r.status_code == 200
        await subscribe(bob, "cache-rate")
        cached = await asyncio.wait_for(recv_event(bob), 5)
        assert cached["event"] == "r" and str(cached["data"]) == "7", cached
        for ws in (alice, bob):
            await ws.close()
    run(main())


# ---- permessage-deflate ---------------------------------------------------------------------

def test_compressed_and_plain_pusher_clients_get_the_same_events(sp):
    """Pusher's endpoint negotiates permessage-deflate too (pusher-js in a
    browser gets it from the browser): a compressing and a plain client on one
    channel get identical events, large and small."""
    big = json.dumps({"rows": [{"order": i, "status": "shipped", "carrier": "DHL"}
                               for i in range(100)]})

    async def main():
        zipped = await websockets.connect(app_url(sp))
        plain = await websockets.connect(app_url(sp), compression=None)
        assert zipped.response_headers["Sec-WebSocket-Extensions"] == \
            "permessage-deflate; server_no_context_takeover"
        assert "Sec-WebSocket-Extensions" not in plain.response_headers
        for ws in (zipped, plain):
            assert (await recv_event(ws))["event"] == "pusher:connection_established"
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "zip"}}))
            assert (await recv_event(ws))["event"] == "pusher_internal:subscription_succeeded"
        publish_ok(sp, "zip", big, event="orders")
        publish_ok(sp, "zip", "small", event="tick")
        got = [[await recv_event(ws) for _ in range(2)] for ws in (zipped, plain)]
        for ws in (zipped, plain):
            await ws.close()
        return got
    zipped, plain = run(main())
    assert zipped == plain and zipped[0]["data"] == json.loads(big)
    assert metric(sp.url, "sidepush_websocket_deflated_messages_total") == 1  # "small" went raw
