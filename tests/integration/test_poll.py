"""Poll routes: sidepush polls the stand-in backend (which counts its requests)
on behalf of many subscribers, once per channel."""
import asyncio
import json
import time
import uuid

import aiohttp
import requests

from pushutil import CurlSSE, parse_sse


def route(extra="", interval="500ms"):
    return ("routes:\n  - path: /live/{name}\n"
            f"    poll: {{ url: '/resource/{{name}}', interval: {interval}, event: change{extra} }}\n")


def set_resource(backend, name, **state):
    requests.put(f"{backend.url}/resource/{name}", json=state, timeout=5).raise_for_status()


def backend_requests(backend, name):
    return backend.hits().get(f"/resource/{name}", 0)


def test_five_hundred_subscribers_cost_one_request_per_interval(make_sidepush, backend):
    sp = make_sidepush(route(interval="500ms") + "limits: { max_connections: 2000 }\n")
    name = "shared-" + uuid.uuid4().hex[:8]
    set_resource(backend, name, body='{"v": 1}')

    async def main():
        got = {"sse": [], "lp": []}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def sse_client(out):
                async with session.get(f"{sp.url}/live/{name}",
                                       headers={"Accept": "text/event-stream"}) as r:
                    raw = b""
                    while raw.count(b"event: change") < 2:
                        raw += await r.content.readany()
                    out.append([json.loads(e["data"]) for e in parse_sse(raw) if "data" in e])

            async def lp_client(out):
                seen, cursor = [], None
                while len(seen) < 2:
                    params = {"cursor": cursor} if cursor else {}
                    async with session.get(f"{sp.url}/live/{name}", params=params) as r:
                        if r.status == 200:
                            body = await r.json()
                            seen += [json.loads(m["data"]) for m in body["messages"]]
                            cursor = body["cursor"]
                        else:
                            cursor = r.headers.get("Sidepush-Cursor", cursor)
                out.append(seen)

            tasks = [asyncio.create_task(sse_client(got["sse"])) for _ in range(250)]
            tasks += [asyncio.create_task(lp_client(got["lp"])) for _ in range(250)]
            started = time.monotonic()
            await asyncio.sleep(3)
            count = backend_requests(backend, name)
            elapsed = time.monotonic() - started
            set_resource(backend, name, body='{"v": 2}')
            await asyncio.wait_for(asyncio.gather(*tasks), 20)
            return got, count, elapsed

    got, count, elapsed = asyncio.run(main())
    intervals = elapsed / 0.5
    print(f"{count} backend requests in {elapsed:.1f}s for 500 subscribers")
    assert count <= intervals + 1
    assert len(got["sse"]) == 250 and len(got["lp"]) == 250
    for seen in got["sse"] + got["lp"]:
        assert seen[:2] == [{"v": 1}, {"v": 2}]  # current state at once, then the change


def sse_events(sse, count, timeout=5):
    return sse.events(count, timeout)


def test_unchanged_answers_publish_nothing(make_sidepush, backend):
    sp = make_sidepush(route(interval="200ms"))
    for etag in (True, False):  # 304s, then equal bodies without validators
        name = f"same-{etag}-" + uuid.uuid4().hex[:6]
        set_resource(backend, name, body='{"v": "x"}', etag=etag)
        sse = CurlSSE(f"{sp.url}/live/{name}")
        try:
            assert len(sse_events(sse, 1)) == 1
            time.sleep(1.2)  # ~6 polls
            assert backend_requests(backend, name) >= 4
            assert len([e for e in parse_sse(sse.raw) if "data" in e]) == 1
        finally:
            sse.close()


def test_errors_back_off_and_send_the_error_event(make_sidepush, backend):
    sp = make_sidepush(route(", error_event: poll-error, max_backoff: 1s", interval="200ms"))
    name = "failing-" + uuid.uuid4().hex[:6]
    set_resource(backend, name, status=500)
    sse = CurlSSE(f"{sp.url}/live/{name}")
    try:
        time.sleep(3)
        count = backend_requests(backend, name)
        # without backoff 3 s / 200 ms = 15 polls; with it 200, 400, 800, 1000... ms
        assert 2 <= count <= 8, count
        events = [e for e in parse_sse(sse.raw) if "data" in e]
        assert [e["event"] for e in events] == ["poll-error"]  # once per failing streak
        set_resource(backend, name, status=200, body='{"v": "back"}')
        got = sse_events(sse, 2, timeout=5)
        assert got[-1]["event"] == "change" and json.loads(got[-1]["data"]) == {"v": "back"}
    finally:
        sse.close()


def test_retry_after_is_respected(make_sidepush, backend):
    sp = make_sidepush(route(interval="200ms"))
    name = "busy-" + uuid.uuid4().hex[:6]
    set_resource(backend, name, status=503, retry_after="2")
    sse = CurlSSE(f"{sp.url}/live/{name}")
    try:
        time.sleep(1.5)
        assert backend_requests(backend, name) == 1  # told to wait 2 s
    finally:
        sse.close()


def test_poller_stops_after_the_last_subscriber_leaves(make_sidepush, backend):
    sp = make_sidepush(route(", linger: 300ms", interval="200ms"))
    name = "leaving-" + uuid.uuid4().hex[:6]
    sse = CurlSSE(f"{sp.url}/live/{name}")
    assert len(sse_events(sse, 1)) == 1
    sse.close()
    time.sleep(0.8)  # past the linger
    before = backend_requests(backend, name)
    time.sleep(1.0)
    assert backend_requests(backend, name) == before


def test_merge_patch_mode(make_sidepush, backend):
    sp = make_sidepush(route(", diff: true", interval="200ms"))
    name = "diff-" + uuid.uuid4().hex[:6]
    set_resource(backend, name, body='{"a": 1, "b": {"c": 2, "d": 3}, "e": 4}')
    sse = CurlSSE(f"{sp.url}/live/{name}")
    try:
        assert json.loads(sse_events(sse, 1)[0]["data"])["a"] == 1
        set_resource(backend, name, body='{"a": 1, "b": {"c": 5, "d": 3}}')
        patch = json.loads(sse_events(sse, 2)[1]["data"])
        assert patch == {"b": {"c": 5}, "e": None}  # RFC 7396
    finally:
        sse.close()
    # A newcomer gets the whole current state, not a patch.
    late = CurlSSE(f"{sp.url}/live/{name}")
    try:
        assert json.loads(sse_events(late, 1)[0]["data"]) == {"a": 1, "b": {"c": 5, "d": 3}}
    finally:
        late.close()


def test_per_client_polls_carry_credentials_and_are_not_shared(make_sidepush, backend):
    sp = make_sidepush("routes:\n  - path: /mine/{name}\n"
                       "    poll: { url: '/resource/{name}?echo_auth=1', interval: 200ms,"
                       " per_client: true, forward_headers: [Authorization] }\n"
                       "  - path: /shared/{name}\n"
                       "    poll: { url: '/resource/{name}?echo_auth=1', interval: 200ms }\n")
    name = "creds-" + uuid.uuid4().hex[:6]
    alice = CurlSSE(f"{sp.url}/mine/{name}", headers=["Authorization: Bearer alice"])
    bob = CurlSSE(f"{sp.url}/mine/{name}", headers=["Authorization: Bearer bob"])
    shared = CurlSSE(f"{sp.url}/shared/{name}", headers=["Authorization: Bearer carol"])
    try:
        assert json.loads(sse_events(alice, 1)[0]["data"]) == {"auth": "Bearer alice"}
        assert json.loads(sse_events(bob, 1)[0]["data"]) == {"auth": "Bearer bob"}
        assert json.loads(sse_events(shared, 1)[0]["data"]) == {"auth": None}  # no credentials
    finally:
        for s in (alice, bob, shared):
            s.close()


def test_forward_headers_without_per_client_is_a_config_error(tmp_path):
    import subprocess
    from conftest import SIDEPUSH
    f = tmp_path / "c.yaml"
    f.write_text("backend: {url: 'http://x'}\nroutes:\n  - path: /p/{id}\n"
                 "    poll: { url: '/r/{id}', forward_headers: [Cookie] }\n")
    out = subprocess.run([SIDEPUSH, "--check-config", str(f)], capture_output=True, text=True)
    assert out.returncode == 1 and "per_client" in out.stderr
