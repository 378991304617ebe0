"""Per-route channel options (subscribe.channels, issue 25): a last-value
route whose late subscriber gets the newest value once (curl SSE,
websockets, a long-poll without a cursor), never a missed-history signal,
and nothing once it expired; history sizes and message size limits per
route; the first route that makes a name owns it, and --check-config warns
of routes that overlap; with Redis, each channel's stream trimmed and
expired by its own options, read on another replica."""
import asyncio
import subprocess
import time
import uuid

import requests
import websockets

from conftest import SIDEPUSH
from pushutil import CurlSSE, publish, publish_ok, wait_metric, wait_subscribers

ROUTES = """routes:
  - path: /prices/{sym}
    subscribe: { channel: 'price.{sym}', patterns: true,
                 channels: { mode: last_value, history_ttl: 2s } }
  - path: /short/{c}
    subscribe: { channel: 'short.{c}', start: oldest, channels: { history: 2, max_message_size: 100 } }
  - path: /events/{channel}
    subscribe: { start: oldest }
channels: { history: 5 }
"""


def name():
    return uuid.uuid4().hex[:10]


def test_a_late_subscriber_gets_the_newest_value_once(make_sidepush):
    sp = make_sidepush(ROUTES)
    sym = name()
    ids = [publish_ok(sp, f"price.{sym}", f"v{i}")["id"] for i in range(3)]
    s = CurlSSE(f"{sp.url}/prices/{sym}")
    try:
        assert [e["data"] for e in s.events(1)] == ["v2"]
        wait_subscribers(sp, f"price.{sym}", 1)
        publish_ok(sp, f"price.{sym}", "v3")
        assert [e["data"] for e in s.events(2)] == ["v2", "v3"]
    finally:
        s.close()

    async def ws():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/prices/{sym}") as w:
            first = await asyncio.wait_for(w.recv(), 5)
            try:
                await asyncio.wait_for(w.recv(), 0.5)
                return [first, "a second one"]
            except asyncio.TimeoutError:
                return [first]
    assert asyncio.run(ws()) == ["v3"]
    # A long-poll without a cursor: the value at once, then held from it.
    r = requests.get(f"{sp.url}/prices/{sym}", timeout=5)
    assert r.status_code == 200 and [m["data"] for m in r.json()["messages"]] == ["v3"]
    r = requests.get(f"{sp.url}/prices/{sym}?cursor={r.json()['cursor']}&wait=0", timeout=5)
    assert r.status_code == 304
    # A resume from an old id: the value, and no missed history (it replaced the rest).
    s = CurlSSE(f"{sp.url}/prices/{sym}", headers=[f"Last-Event-ID: {ids[0]}"])
    try:
        assert [e["data"] for e in s.events(1)] == ["v3"]
        time.sleep(0.3)
        assert "sidepush-missed" not in s.raw.decode()
    finally:
        s.close()


def test_a_pattern_starts_with_the_values_under_it(make_sidepush):
    sp = make_sidepush(ROUTES)
    p = name()
    for sym, values in (("a", ["a0", "a1"]), ("b", ["b0"]), ("c.deep", ["c0", "c1", "c2"])):
        for v in values:
            publish_ok(sp, f"price.{p}.{sym}", v)
    s = CurlSSE(f"{sp.url}/prices/{p}.*")
    try:
        assert [e["data"] for e in s.events(3)] == ["a1", "b0", "c2"]  # in id order
        wait_subscribers(sp, f"price.{p}.*", 1)
        publish_ok(sp, f"price.{p}.b", "b1")
        assert [e["data"] for e in s.events(4)][3] == "b1"
    finally:
        s.close()


def test_a_last_value_expires_after_its_history_ttl(make_sidepush):
    sp = make_sidepush(ROUTES)
    sym = name()
    publish_ok(sp, f"price.{sym}", "old")
    time.sleep(3.5)  # history_ttl 2s, swept each second
    r = requests.get(f"{sp.url}/prices/{sym}?wait=0", timeout=5)
    assert r.status_code == 304


def test_history_and_message_size_per_route(make_sidepush):
    sp = make_sidepush(ROUTES)
    c = name()
    for i in range(6):
        publish_ok(sp, f"short.{c}", f"s{i}")
        publish_ok(sp, f"events-{c}", f"e{i}")
    short = requests.get(f"{sp.url}/short/{c}", timeout=5).json()["messages"]
    assert [m["data"] for m in short] == ["s4", "s5"]  # its own history: 2
    other = requests.get(f"{sp.url}/events/events-{c}", timeout=5).json()["messages"]
    assert [m["data"] for m in other] == ["e1", "e2", "e3", "e4", "e5"]  # the section's: 5
    r = publish(sp, f"short.{c}", "x" * 101)
    assert r.status_code == 413 and "max_message_size" in r.json()["error"]
    assert publish(sp, f"events-{c}", "x" * 101).status_code == 202


def test_the_first_route_that_makes_a_name_owns_it(make_sidepush):
    # "{channel}" first makes every name: the later route's options never apply.
    sp = make_sidepush("routes:\n  - path: /all/{channel}\n    subscribe: { start: oldest }\n"
                       + ROUTES.split("\n", 1)[1])
    c = name()
    for i in range(4):
        publish_ok(sp, f"short.{c}", f"s{i}")
    short = requests.get(f"{sp.url}/short/{c}", timeout=5).json()["messages"]
    assert len(short) == 4  # the section's history (5), not the route's 2


def test_check_config_warns_of_overlapping_routes(tmp_path):
    cfg = tmp_path / "overlap.yaml"
    cfg.write_text("backend: { url: 'http://127.0.0.1:9' }\n"
                   "routes:\n  - path: /all/{channel}\n    subscribe: {}\n"
                   + ROUTES.split("\n", 1)[1])
    r = subprocess.run([SIDEPUSH, "--check-config", str(cfg)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 2, r.stderr  # /prices and /short, both under /events/{channel}
    assert warnings[0].startswith(f"{cfg}:5:5: warning:") and "line 3" in warnings[0]
    ok = tmp_path / "ok.yaml"
    ok.write_text("backend: { url: 'http://127.0.0.1:9' }\n" + ROUTES)
    r = subprocess.run([SIDEPUSH, "--check-config", str(ok)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_options_apply_in_redis_too(make_sidepush, redis_server):
    a, b = (make_sidepush(ROUTES + redis_server.config()) for _ in range(2))
    for sp in (a, b):
        wait_metric(sp.url, "sidepush_redis_up", 1)
    c = name()
    for i in range(6):
        publish_ok(a, f"short.{c}", f"s{i}")
        publish_ok(a, f"events-{c}", f"e{i}")
        publish_ok(a, f"price.{c}", f"v{i}")

    def redis(*args):
        return subprocess.run(["redis-cli", "-p", str(redis_server.port), *args],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert redis("XLEN", f"test:s:short.{c}") == "2"
    assert redis("XLEN", f"test:s:events-{c}") == "5"
    assert redis("XLEN", f"test:s:price.{c}") == "1"
    assert 0 < int(redis("PTTL", f"test:s:price.{c}")) <= 2000
    assert int(redis("PTTL", f"test:s:events-{c}")) > 2000
    # The other replica reads the value and the short history from Redis.
    s = CurlSSE(f"{b.url}/prices/{c}")
    try:
        assert [e["data"] for e in s.events(1)] == ["v5"]
    finally:
        s.close()
    short = requests.get(f"{b.url}/short/{c}", timeout=5).json()["messages"]
    assert [m["data"] for m in short] == ["s4", "s5"]
