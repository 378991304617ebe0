"""Several sidepush replicas sharing a real redis-server: fan-out to every
transport on every replica, resume on another replica, de-duplication,
Redis going away and coming back, and poll leases."""
import asyncio
import signal
import subprocess
import threading
import time

import pytest
import requests
import websockets

from conftest import SIDEPUSH, RedisServer
import pushutil
from pushutil import CurlSSE, publish, publish_ok, wait_subscribers

ROUTES = ("routes:\n  - path: /events/{channel}\n    subscribe: {}\n"
          "channels: { history: 50 }\n")


def replicas(make_sidepush, redis, n, extra="", **redis_keys):
    sps = [make_sidepush(ROUTES + redis.config(**redis_keys) + extra) for _ in range(n)]
    for sp in sps:
        wait_redis_up(sp)
    return sps


def metric(sp, name, labels=""):
    return pushutil.metric(sp.url, name, labels)


def wait_redis_up(sp, up=1):
    pushutil.wait_metric(sp.url, "sidepush_redis_up", up)


def wait_synced(sp, count):
    """Until sp follows count channels in Redis (its subscribers are ready)."""
    pushutil.wait_metric(sp.url, "sidepush_redis_channels", count)


def sse(sp, channel, last_id=None):
    headers = [f"Last-Event-ID: {last_id}"] if last_id else []
    return CurlSSE(f"{sp.url}/events/{channel}", headers)


async def ws_collect(url, count, out, ready):
    async with websockets.connect(url) as ws:
        ready.set()
        while len(out) < count:
            out.append(await asyncio.wait_for(ws.recv(), 10))


def test_a_publish_reaches_sse_websocket_and_longpoll_on_every_replica(make_sidepush,
                                                                         redis_server):
    sps = replicas(make_sidepush, redis_server, 3)
    streams = [sse(sp, "news") for sp in sps]
    lp_cursor = requests.get(f"{sps[2].url}/events/news?wait=0", timeout=5)
    assert lp_cursor.status_code == 304
    cursor = lp_cursor.headers["Sidepush-Cursor"]
    for sp in sps:  # each replica's SSE subscriber is in (the long-poll has left)
        wait_subscribers(sp, "news", 1)

    async def main():
        got = [[] for _ in sps]
        ready = [asyncio.Event() for _ in sps]
        tasks = [asyncio.create_task(ws_collect(f"ws://127.0.0.1:{sp.port}/events/news", 6,
                                                got[i], ready[i]))
                 for i, sp in enumerate(sps)]
        for r in ready:
            await r.wait()
        await asyncio.sleep(0.2)
        # Publishes alternate between replicas: every subscriber still sees one order.
        sent = []
        for i in range(6):
            sent.append(await asyncio.to_thread(publish_ok, sps[i % 3], "news", f"m{i}"))
        await asyncio.gather(*tasks)
        return got, sent

    got, sent = asyncio.run(asyncio.wait_for(main(), 30))
    assert [s["replicas"] for s in sent] == [3] * 6
    ids = [s["id"] for s in sent]
    for frames in got:
        assert frames == [f"m{i}" for i in range(6)]
    for stream in streams:
        events = stream.events(6)
        assert [e["data"] for e in events] == [f"m{i}" for i in range(6)]
        assert [e["id"] for e in events] == ids
        stream.close()
    r = requests.get(f"{sps[2].url}/events/news", params={"cursor": cursor}, timeout=10)
    body = r.json()
    assert [m["data"] for m in body["messages"]] == [f"m{i}" for i in range(6)]
    assert body["cursor"] == ids[-1]


def test_a_client_resumes_on_another_replica_without_loss_or_repeat(make_sidepush, redis_server):
    a, b, c = replicas(make_sidepush, redis_server, 3)
    first = sse(a, "orders")
    wait_subscribers(a, "orders", 1)
    sent = [publish_ok(b, "orders", f"before-{i}") for i in range(3)]
    events = first.events(3)
    assert [e["data"] for e in events] == ["before-0", "before-1", "before-2"]
    first.close()
    # Published while the client is away (c has never seen the channel).
    sent += [publish_ok(a, "orders", f"away-{i}") for i in range(2)]
    again = sse(c, "orders", last_id=events[-1]["id"])
    got = again.events(2)
    assert [e["data"] for e in got] == ["away-0", "away-1"]
    assert [e["id"] for e in got] == [s["id"] for s in sent[3:]]
    assert "sidepush-missed" not in again.raw.decode()
    time.sleep(0.3)
    assert len(again.events(3, timeout=0.3)) == 2  # nothing repeated
    # A long-poll cursor from one replica is good on another.
    r = requests.get(f"{b.url}/events/orders", params={"cursor": sent[2]["id"]}, timeout=10)
    assert [m["data"] for m in r.json()["messages"]] == ["away-0", "away-1"]
    again.close()


def test_an_old_cursor_beyond_history_is_reported_missed_on_any_replica(make_sidepush,
                                                                       redis_server):
    a, b = replicas(make_sidepush, redis_server, 2)
    sent = [publish_ok(a, "tiny", f"x{i}") for i in range(60)]  # history is 50
    r = requests.get(f"{b.url}/events/tiny", params={"cursor": sent[0]["id"]}, timeout=10)
    body = r.json()
    assert body["missed"] is True
    assert [m["data"] for m in body["messages"]][0] == "x10"
    info = requests.get(f"http://127.0.0.1:{b.publish_port}/channels/tiny", timeout=5).json()
    assert info["messages"] == 50 and info["last_id"] == sent[-1]["id"]


def test_deduplication_works_across_replicas(make_sidepush, redis_server):
    a, b = replicas(make_sidepush, redis_server, 2)
    stream = sse(b, "pay")
    wait_subscribers(b, "pay", 1)
    one = publish_ok(a, "pay", "charged", headers={"Sidepush-Id": "evt-1"})
    two = publish_ok(b, "pay", "charged", headers={"Sidepush-Id": "evt-1"})
    assert two["duplicate"] is True and two["id"] == one["id"]
    publish_ok(b, "pay", "next")
    assert [e["data"] for e in stream.events(2)] == ["charged", "next"]
    stream.close()


def test_deleting_a_channel_closes_its_subscribers_on_every_replica(make_sidepush, redis_server):
    a, b = replicas(make_sidepush, redis_server, 2)
    stream = sse(b, "gone")
    wait_subscribers(b, "gone", 1)
    publish_ok(a, "gone", "x")
    stream.events(1)
    r = requests.delete(f"http://127.0.0.1:{a.publish_port}/channels/gone", timeout=5)
    assert r.status_code == 200 and r.json()["replicas"] == 1
    stream.proc.wait(5)  # the stream ended
    stream.close()
    r = requests.delete(f"http://127.0.0.1:{a.publish_port}/channels/never", timeout=5)
    assert r.status_code == 404


def run_publisher(sp, channel, count, pause=0.01):
    """Publishes count numbered messages; returns {n: id} of those answered 202."""
    acked, refused = {}, 0
    for n in range(count):
        try:
            r = publish(sp, channel, f"n{n}")
        except requests.RequestException:
            continue
        if r.status_code == 202:
            acked[n] = r.json()["id"]
        else:
            assert r.status_code == 503, r.text
            assert "unavailable" in r.json()["error"]
            refused += 1
        time.sleep(pause)
    return acked, refused


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_redis_restarting_mid_stream_loses_nothing_acknowledged(make_sidepush, tmp_path,
                                                                persistent):
    redis = RedisServer(tmp_path, persistent=persistent)
    try:
        a, b = replicas(make_sidepush, redis, 2, reconnect_max="200ms")
        stream = sse(b, "live")
        ws_got = []

        async def ws_reader(stop):
            async with websockets.connect(f"ws://127.0.0.1:{b.port}/events/live") as ws:
                while not stop.is_set():
                    try:
                        ws_got.append(await asyncio.wait_for(ws.recv(), 0.2))
                    except asyncio.TimeoutError:
                        pass

        async def main():
            stop = asyncio.Event()
            reader = asyncio.create_task(ws_reader(stop))
            await asyncio.to_thread(wait_subscribers, b, "live", 2)  # SSE and WebSocket
            first = await asyncio.to_thread(run_publisher, a, "live", 30)
            redis.stop()
            during = await asyncio.to_thread(run_publisher, a, "live", 10)
            redis.start()
            await asyncio.to_thread(wait_redis_up, a)
            await asyncio.to_thread(wait_redis_up, b)
            await asyncio.to_thread(wait_synced, b, 1)
            after = await asyncio.to_thread(run_publisher, a, "live", 30)
            await asyncio.sleep(0.5)
            stop.set()
            await reader
            return first, during, after

        first, during, after = asyncio.run(asyncio.wait_for(main(), 60))
        assert len(first[0]) == 30 and len(during[0]) == 0 and during[1] == 10
        assert len(after[0]) == 30
        expected = [f"n{n}" for n in sorted(first[0])] + [f"n{n}" for n in sorted(after[0])]
        events = stream.events(len(expected))
        # Every acknowledged message arrived, once, in order, and the client stayed connected.
        assert [e["data"] for e in events] == expected
        assert ws_got == expected
        assert stream.proc.poll() is None
        stream.close()
        assert metric(b, "sidepush_redis_transitions_total", '{to="down"}') >= 1
        assert metric(a, "sidepush_redis_publish_failures_total") >= 10
    finally:
        redis.stop()
    for sp in (a, b):
        sp.stop()
        assert '"redis_down"' in sp.output  # the transition is logged (redis_up is at info)


def test_readiness_follows_redis_when_configured(make_sidepush, redis_server):
    (sp,) = replicas(make_sidepush, redis_server, 1, required_for_ready="true",
                     reconnect_max="200ms")
    assert requests.get(sp.url + "/readyz", timeout=5).status_code == 200
    redis_server.stop()
    wait_redis_up(sp, 0)
    assert requests.get(sp.url + "/readyz", timeout=5).status_code == 503
    assert requests.get(sp.url + "/healthz", timeout=5).status_code == 200
    redis_server.start()
    wait_redis_up(sp, 1)
    assert requests.get(sp.url + "/readyz", timeout=5).status_code == 200


def test_new_subscribers_wait_for_redis_then_get_a_clear_answer(make_sidepush, redis_server):
    (sp,) = replicas(make_sidepush, redis_server, 1, subscribe_wait="300ms")
    redis_server.stop()
    wait_redis_up(sp, 0)
    r = requests.get(sp.url + "/events/x", timeout=5)  # long-poll
    assert r.status_code == 503 and "unavailable" in r.json()["error"]
    r = requests.get(sp.url + "/events/x", headers={"Accept": "text/event-stream"}, timeout=5)
    # EventSource gives up for good on a non-200: it is told when to come back instead.
    assert r.status_code == 200 and r.text.startswith("retry:")


def test_without_redis_at_start_sidepush_runs_and_connects_later(make_sidepush, tmp_path):
    redis = RedisServer(tmp_path)
    redis.stop()
    sp = make_sidepush(ROUTES + redis.config(reconnect_max="200ms"))
    assert requests.get(sp.url + "/healthz", timeout=5).status_code == 200
    assert publish(sp, "a", "x").status_code == 503
    redis.start()
    try:
        wait_redis_up(sp)
        assert publish(sp, "a", "x").status_code == 202
    finally:
        redis.stop()


POLL = ("routes:\n  - path: /live/{name}\n"
        "    poll: { url: '/resource/{name}', interval: 200ms, event: change, linger: 5s }\n")


def leases(sps):
    return [metric(sp, "sidepush_poll_leases") or 0 for sp in sps]


def wait_one_leader(sps, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = leases(sps)
        if sum(held) == 1:
            return held.index(1)
        time.sleep(0.05)
    raise AssertionError(f"leases never settled on one replica: {leases(sps)}")


def test_only_one_replica_polls_and_another_takes_over_when_it_dies(make_sidepush, redis_server,
                                                                    backend):
    name = f"lease{redis_server.port}"
    requests.put(f"{backend.url}/resource/{name}", json={"body": '{"v": 1}'}, timeout=5)
    sps = [make_sidepush(POLL + redis_server.config(poll_lease="600ms")) for _ in range(3)]
    for sp in sps:
        wait_redis_up(sp)
    streams = [CurlSSE(f"{sp.url}/live/{name}") for sp in sps]
    leader = wait_one_leader(sps)
    before = backend.hits().get(f"/resource/{name}", 0)
    time.sleep(2)
    polls = backend.hits().get(f"/resource/{name}", 0) - before
    # One poller at 200 ms: about 10 requests in 2 s; three would make about 30.
    assert 5 <= polls <= 14, polls
    requests.put(f"{backend.url}/resource/{name}", json={"body": '{"v": 2}'}, timeout=5)
    for s in streams:
        assert any(e["data"] == '{"v": 2}' for e in s.events(2))
    # The leader dies (SIGKILL: no release of its lease): another replica takes over
    # within about one lease period, once the lease has expired.
    dead = sps[leader]
    dead.proc.kill()
    dead.proc.wait()
    dead.log.close()
    dead.output = ""
    dead.stop = lambda: 0  # killed on purpose: not a failed exit for the fixture
    rest = [sp for i, sp in enumerate(sps) if i != leader]
    t0 = time.monotonic()
    wait_one_leader(rest)
    assert time.monotonic() - t0 < 3
    requests.put(f"{backend.url}/resource/{name}", json={"body": '{"v": 3}'}, timeout=5)
    for i, s in enumerate(streams):
        if i == leader:
            continue
        got = [e["data"] for e in s.events(3)]
        # The new poller started from the last holder's state: v2 is not sent twice.
        assert got[-2:] == ['{"v": 2}', '{"v": 3}'] and got.count('{"v": 2}') == 1, got
    for s in streams:
        s.close()


def test_bad_redis_urls_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: { url: 'http://127.0.0.1:1' }\n"
                   "redis:\n  url: 'http://example.com'\n  database: 99999\n")
    out = subprocess.run([SIDEPUSH, "--check-config", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0
    assert f"{bad}:3:8: redis.url 'http://example.com': only redis:// and rediss:// (TLS) URLs" in out.stderr
    assert f"{bad}:4:13:" in out.stderr


def test_a_subscriber_waiting_through_an_outage_is_served_when_redis_returns(make_sidepush,
                                                                               redis_server):
    a, b = replicas(make_sidepush, redis_server, 2, reconnect_max="200ms",
                    subscribe_wait="10s")
    redis_server.stop()
    wait_redis_up(b, 0)
    sent = []

    def later():
        time.sleep(0.5)
        redis_server.start()
        wait_redis_up(a)
        wait_synced(b, 1)
        sent.append(publish_ok(a, "slow", "first after the outage"))

    t = threading.Thread(target=later)
    t.start()
    r = requests.get(f"{b.url}/events/slow", timeout=15)  # held while Redis is away
    t.join()
    assert r.status_code == 200, r.text
    assert [m["data"] for m in r.json()["messages"]] == ["first after the outage"]


def test_a_lost_pubsub_connection_resyncs_from_the_stream(make_sidepush, redis_server):
    """Only the subscribed connection drops (CLIENT KILL TYPE pubsub) while another replica
    keeps publishing: what was published meanwhile comes from the stream, once, in order."""
    a, b = replicas(make_sidepush, redis_server, 2, reconnect_max="200ms")
    stream = sse(b, "feed")
    wait_subscribers(b, "feed", 1)
    result = {}
    t = threading.Thread(target=lambda: result.update(acked=run_publisher(a, "feed", 150)[0]))
    t.start()
    redis_server.kill_pubsub()
    t.join()
    acked = result["acked"]
    assert len(acked) == 150  # the command connections never dropped
    events = stream.events(150)
    assert [e["data"] for e in events] == [f"n{n}" for n in range(150)]
    assert [e["id"] for e in events] == [acked[n] for n in range(150)]
    assert metric(b, "sidepush_redis_channel_loads_total", '{reason="resync"}') >= 1
    stream.close()


def test_pubsub_lag_gaps_and_the_primary_are_in_the_metrics(make_sidepush, redis_server):
    """A message published while a replica's subscription connection is away
    reaches it from the stream: the gap and what filled it are counted, and
    every message arrives once, in order. The lag histogram counts what came
    by pub/sub; the primary written to is a label."""
    a, b = replicas(make_sidepush, redis_server, 2)
    assert metric(b, "sidepush_redis_primary_info",
                  f'{{mode="single",address="127.0.0.1:{redis_server.port}"}}') == 1
    stream = sse(b, "gap")
    wait_synced(b, 1)
    publish_ok(a, "gap", "live")
    stream.events(1)
    assert metric(b, "sidepush_redis_pubsub_lag_seconds_count") >= 1
    assert metric(b, "sidepush_redis_gaps_filled_total") == 0
    sent = ["live"]
    for n in range(20):  # the replica reconnects within 100 ms: publish inside that window
        subprocess.run(["redis-cli", "-p", str(redis_server.port), "CLIENT", "KILL", "TYPE",
                        "pubsub"], check=True, capture_output=True)
        publish_ok(a, "gap", f"n{n}")
        sent.append(f"n{n}")
        wait_synced(b, 1)
        if metric(b, "sidepush_redis_gaps_filled_total"):
            break
    assert metric(b, "sidepush_redis_gaps_filled_total") >= 1
    assert metric(b, "sidepush_redis_backfilled_messages_total") >= 1
    assert [e["data"] for e in stream.events(len(sent))] == sent
    stream.close()


def test_one_cursor_resumes_several_channels_on_another_replica(make_sidepush, redis_server):
    """Ids come from one sequence for all channels, so a connection's single cursor covers
    every channel it follows, on any replica."""
    a, b, c = replicas(make_sidepush, redis_server, 3)
    first = sse(b, "x,y")
    wait_subscribers(b, "x", 1)
    publish_ok(a, "x", "x0")
    publish_ok(a, "y", "y0")
    seen = first.events(2)
    first.close()
    publish_ok(b, "y", "y1")
    publish_ok(c, "x", "x1")
    publish_ok(a, "y", "y2")
    again = sse(c, "x,y", last_id=seen[-1]["id"])
    assert [e["data"] for e in again.events(3)] == ["y1", "x1", "y2"]
    assert "sidepush-missed" not in again.raw.decode()
    again.close()


def test_a_reload_keeps_redis_and_warns_about_changes_to_it(make_sidepush, redis_server):
    (sp,) = replicas(make_sidepush, redis_server, 1)
    text = sp.config.read_text()
    sp.config.write_text(text.replace("key_prefix: 'test:'", "key_prefix: 'other:'")
                         .replace("log: { level: warn }", "log: { level: info }"))
    sp.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "changes to the redis section" not in sp.config.with_suffix(".log").read_text():
        assert time.monotonic() < deadline, "no warning about the redis section"
        time.sleep(0.05)
    assert publish_ok(sp, "after", "x")["replicas"] == 0  # still publishing through Redis


def test_messages_past_history_ttl_are_missed_history_on_another_replica(make_sidepush,
                                                                        redis_server):
    conf = ROUTES.replace("history: 50", "history: 50, history_ttl: 1s") + redis_server.config()
    a, b = (make_sidepush(conf) for _ in range(2))
    for sp in (a, b):
        wait_redis_up(sp)
    old = publish_ok(a, "aging", "x0")
    publish_ok(a, "aging", "x1")
    time.sleep(1.3)
    publish_ok(a, "aging", "x2")
    r = requests.get(f"{b.url}/events/aging", params={"cursor": old["id"]}, timeout=10)
    body = r.json()
    assert body["missed"] is True  # x1 expired before the client came back
    assert [m["data"] for m in body["messages"]] == ["x2"]


def test_auth_and_database_from_the_url_and_a_wrong_password(make_sidepush, tmp_path):
    redis = RedisServer(tmp_path, password="s3cret")
    try:
        good = make_sidepush(ROUTES + redis.config(
            url=f"'redis://:s3cret@127.0.0.1:{redis.port}/3'"))
        wait_redis_up(good)
        publish_ok(good, "authed", "x")
        keys = subprocess.run(["redis-cli", "-p", str(redis.port), "-a", "s3cret",
                               "--no-auth-warning", "-n", "3", "EXISTS", "test:s:authed"],
                              capture_output=True, text=True, check=True).stdout
        assert keys.strip() == "1"  # AUTH, then SELECT 3
        bad = make_sidepush(ROUTES + redis.config(password="wrong", reconnect_max="200ms"))
        time.sleep(0.5)
        assert metric(bad, "sidepush_redis_up") == 0
        r = publish(bad, "authed", "y")
        assert r.status_code == 503
        bad.stop()
        assert "Redis refused the handshake" in bad.output
    finally:
        redis.stop()


def test_an_acl_user_kept_to_its_keys_and_a_rotated_password(make_sidepush, redis_server,
                                                            tmp_path):
    """An ACL user allowed only keys and channels under sidepush's prefix, its password
    read with ${file:}: the password rotated in Redis and in the file (as a Kubernetes
    Secret is) is used when the connections are next made, without a restart; the same
    user with another key prefix is refused."""
    def cli(*args):
        return subprocess.run(["redis-cli", "-p", str(redis_server.port), *args],
                              capture_output=True, text=True, check=True).stdout.strip()
    cli("ACL", "SETUSER", "sp", "on", ">first-password", "~test:*", "&test:*", "+@all")
    secret = tmp_path / "redis-password"
    secret.write_text("first-password")
    keys = {"username": "sp", "password": f"'${{file:{secret}}}'", "reconnect_max": "200ms"}
    sp = make_sidepush(ROUTES + redis_server.config(**keys))
    wait_redis_up(sp)
    stream = sse(sp, "acl")
    wait_subscribers(sp, "acl", 1)
    publish_ok(sp, "acl", "one")
    assert [e["data"] for e in stream.events(1)] == ["one"]
    cli("ACL", "SETUSER", "sp", "resetpass", ">second-password")
    secret.write_text("second-password")
    time.sleep(1.5)  # watch_config reloads the file it reads
    cli("CLIENT", "KILL", "USER", "sp")
    deadline = time.monotonic() + 10
    while metric(sp, "sidepush_redis_up") != 1 or publish(sp, "acl", "two").status_code != 202:
        assert time.monotonic() < deadline, "never back with the new password"
        time.sleep(0.1)
    assert [e["data"] for e in stream.events(2)][1] == "two"
    stream.close()
    # The user may not reach keys outside test:*: another prefix never gets ready.
    other = make_sidepush(ROUTES + redis_server.config(
        key_prefix="'other:'", username="sp", password="second-password"))
    time.sleep(1)
    assert metric(other, "sidepush_redis_up") == 0
    assert publish(other, "acl", "x").status_code == 503

def test_signed_webhook_ids_are_used_once_across_replicas(make_sidepush, redis_server):
    """The replay store is shared through Redis: a signed request captured on
    one replica cannot be replayed on another."""
    from test_publish import SECRET_B64, sign
    auth = f'publish: {{ auth: {{ hmac_secret: "whsec_{SECRET_B64}" }} }}\n'
    a, b = replicas(make_sidepush, redis_server, 2, extra=auth)
    now = int(time.time())
    headers = {"webhook-id": "msg_r", "webhook-timestamp": str(now),
               "webhook-signature": sign(SECRET_B64, "msg_r", now, b"hello")}
    first = publish(a, "orders", b"hello", headers=headers)
    assert first.status_code == 202
    retry = publish(b, "orders", b"hello", headers={**headers, "Sidepush-Id": "fresh"})
    assert retry.status_code == 202 and retry.json()["duplicate"] is True
    assert retry.json()["id"] == first.json()["id"]
    assert publish(b, "elsewhere", b"hello", headers=headers).status_code == 409
    key = subprocess.run(["redis-cli", "-p", str(redis_server.port), "--scan", "--pattern",
                          "test:w:*"], capture_output=True, text=True).stdout.split()
    assert len(key) == 1
    ttl = int(subprocess.run(["redis-cli", "-p", str(redis_server.port), "PTTL", key[0]],
                             capture_output=True, text=True).stdout)
    assert 0 < ttl <= 600_000  # twice the 5 m tolerance
    redis_server.stop()
    wait_redis_up(b, 0)
    headers2 = {"webhook-id": "msg_s", "webhook-timestamp": str(now),
                "webhook-signature": sign(SECRET_B64, "msg_s", now, b"x")}
    assert publish(b, "orders", b"x", headers=headers2).status_code == 503


def test_every_lua_script_loads_in_redis(redis_server):
    """The engine's scripts are files (lib/engine/lua/) that Redis itself compiles."""
    from conftest import ROOT
    scripts = sorted((ROOT / "lib" / "engine" / "lua").glob("*.lua"))
    assert len(scripts) == 10
    for script in scripts:
        out = subprocess.run(["redis-cli", "-p", str(redis_server.port), "SCRIPT", "LOAD",
                              script.read_text()], capture_output=True, text=True)
        assert len(out.stdout.strip()) == 40 and "ERR" not in out.stdout, (script.name, out)
