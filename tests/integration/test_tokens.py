"""Signed subscriber tokens (subscribe.token, issue 25): tokens minted by npm
`jose` (tests/browser/token-issuer.mjs: HS256, RS256, ES256, and a JWK Set
it serves, with a key rotated in mid-test) brought by curl in a header, by
websockets in the query and a cookie, by Chromium's WebSocket in the query
and a cookie (tests/browser/token-websocket.mjs), and by Chromium's
EventSource, which renews its token when the stream tells it expired
(tests/browser/token-expiry.mjs).
Every refusal: expired, not yet valid, wrong audience and issuer, a foreign
key, alg none, HS/RS confusion, a channel outside the claim."""
import asyncio
import json
import os
import shutil
import subprocess
import time

import pytest
import requests
import websockets
import websockets.exceptions

from conftest import ROOT, free_port
from pushutil import CurlSSE, metric, publish_ok, wait_subscribers

BROWSER_DIR = ROOT / "tests" / "browser"


@pytest.fixture
def issuer():
    """token-issuer.mjs: its keys (first line), and a way to mint."""
    assert (BROWSER_DIR / "node_modules" / "jose").exists(), "run `npm ci` in tests/browser"
    port = free_port()
    proc = subprocess.Popen([shutil.which("node"), "token-issuer.mjs"], cwd=BROWSER_DIR,
                            env=dict(os.environ, ISSUER_PORT=str(port)), stdout=subprocess.PIPE,
                            text=True)
    keys = json.loads(proc.stdout.readline())
    url = f"http://127.0.0.1:{port}"

    class Issuer:
        pass
    it = Issuer()
    it.url, it.port, it.keys = url, port, keys

    def mint(key="hs", **claims):
        kid = claims.pop("kid", None)
        body = {"key": key, "claims": claims} | ({"kid": kid} if kid else {})
        return requests.post(f"{url}/mint", json=body, timeout=10).json()["token"]
    it.mint = mint
    it.rotate = lambda: requests.post(f"{url}/rotate", timeout=5)
    yield it
    proc.terminate()
    proc.wait(10)


def yaml_block(text):
    return "|\n" + "".join("        " + line + "\n" for line in text.strip().splitlines())


def route(token_keys, extra_route=""):
    return ("routes:\n  - path: /events/{channel}\n    subscribe:\n"
            f"      token: {{ {token_keys} }}\n" + extra_route)


def sse_status(sp, channel, token=None, headers=None):
    url = f"{sp.url}/events/{channel}" + (f"?token={token}" if token else "")
    r = requests.get(url, headers={"Accept": "text/event-stream"} | (headers or {}),
                     stream=True, timeout=5)
    body = r.json() if r.status_code >= 400 else None
    r.close()
    return r.status_code, body


def test_hs256_rs256_es256_from_header_query_and_cookie(make_sidepush, issuer, tmp_path):
    pem = tmp_path / "keys.pem"
    pem.write_text(issuer.keys["rsaPem"] + issuer.keys["ecPem"])
    sp = make_sidepush(route(f"secret: '{issuer.keys['secret']}', public_keys: '${{file:{pem}}}',"
                             " cookie: sp_token, audience: app, issuer: auth"))
    claims = {"channels": ["news", "orders.*"], "aud": "app", "iss": "auth"}
    for key in ("hs", "rsa", "ec"):
        token = issuer.mint(key, **claims)
        curl = CurlSSE(f"{sp.url}/events/orders.42", headers=[f"Authorization: Bearer {token}"])
        try:
            wait_subscribers(sp, "orders.42", 1)
            publish_ok(sp, "orders.42", f"via {key}")
            assert [e["data"] for e in curl.events(1)] == [f"via {key}"]
        finally:
            curl.close()

    async def ws_clients():
        token = issuer.mint("ec", **claims)
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/events/news?token={token}") as q, \
                websockets.connect(f"ws://127.0.0.1:{sp.port}/events/news",
                                   extra_headers={"Cookie": f"a=b; sp_token={token}"}) as c:
            wait_subscribers(sp, "news", 2)
            publish_ok(sp, "news", "both")
            assert await asyncio.wait_for(q.recv(), 5) == "both"
            assert await asyncio.wait_for(c.recv(), 5) == "both"
    asyncio.run(ws_clients())
    assert metric(sp.url, "sidepush_tokens_accepted_total") == 5


def test_every_refusal(make_sidepush, issuer):
    sp = make_sidepush(route(f"secret: '{issuer.keys['secret']}', public_keys: "
                             + json.dumps(issuer.keys["rsaPem"]) + ", audience: app, leeway: 5s"))
    now = int(time.time())
    ok = {"channels": ["c"], "aud": "app"}
    cases = [
        ("expired", issuer.mint("hs", **ok, exp=now - 10), 401, "token expired"),
        ("not yet", issuer.mint("hs", **ok, nbf=now + 60), 401, "invalid token"),
        ("audience", issuer.mint("hs", channels=["c"], aud="other"), 401, "invalid token"),
        ("foreign key", issuer.mint("ec", **ok), 401, "invalid token"),
        ("alg none", issuer.mint("none", **ok), 401, "invalid token"),
        ("HS256 keyed with the RSA PEM", issuer.mint("confused", **ok), 401, "invalid token"),
        ("garbage", "not.a.token", 401, "invalid token"),
        ("channel outside the claim", issuer.mint("hs", channels=["d", "c.*"], aud="app"), 403,
         "the token does not allow these channels"),
    ]
    for what, token, status, error in cases:
        got = sse_status(sp, "c", token)
        assert got == (status, {"error": error, "status": status}), what
    assert sse_status(sp, "c")[0] == 401  # no token, no authorize section: refused
    assert sse_status(sp, "c", issuer.mint("rsa", **ok))[0] == 200
    assert sse_status(sp, "c", issuer.mint("hs", **ok, exp=now - 3))[0] == 200  # within the leeway
    refused = {r: metric(sp.url, "sidepush_tokens_refused_total", f'{{reason="{r}"}}')
               for r in ("expired", "not_yet_valid", "audience", "algorithm", "channels")}
    assert refused == {"expired": 1, "not_yet_valid": 1, "audience": 1, "algorithm": 1,
                       "channels": 1}, refused


def test_a_jwk_set_and_a_key_rotated_in(make_sidepush, issuer):
    sp = make_sidepush(route(f"jwks_url: '{issuer.url}/jwks'"))
    assert sse_status(sp, "c", issuer.mint("ec", channels=["c"]))[0] == 200
    assert sse_status(sp, "c", issuer.mint("rsa", channels=["c"], kid="r1"))[0] == 200
    issuer.rotate()  # e2 is in the set now; sidepush has not fetched it since
    # An unknown kid fetches the set again, but at most every 10 s per worker (a
    # client making up kids must not make sidepush hammer the issuer): e2 is
    # taken within that, without waiting for jwks_refresh (5 minutes).
    token = issuer.mint("ec2", channels=["c"])
    deadline = time.monotonic() + 12
    while sse_status(sp, "c", token)[0] != 200:
        assert time.monotonic() < deadline, "the rotated key was never taken"
        time.sleep(0.5)
    assert sse_status(sp, "c", issuer.mint("ec", channels=["c"], kid="e9"))[0] == 401
    fetched = metric(sp.url, "sidepush_jwks_fetches_total", '{result="ok"}')
    assert 2 <= fetched <= 2 * int(os.environ.get("SIDEPUSH_TEST_WORKERS", "1")) + 1


def test_the_token_names_the_presence_member(make_sidepush, issuer):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe:\n"
                       "      presence: true\n"
                       f"      token: {{ secret: '{issuer.keys['secret']}' }}\n")
    token = issuer.mint("hs", channels=["room"], sub="alice", info={"name": "Alice"})
    curl = CurlSSE(f"{sp.url}/events/room?token={token}")
    try:
        wait_subscribers(sp, "room", 1)
        r = requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/room/presence", timeout=5)
        assert r.json()["members"] == [{"user_id": "alice", "user_info": {"name": "Alice"},
                                        "connections": 1}]
    finally:
        curl.close()


def test_at_expiry_each_transport_ends_as_its_client_can_act_on(make_sidepush, issuer):
    sp = make_sidepush(route(f"secret: '{issuer.keys['secret']}', leeway: 0s"))
    exp = int(time.time()) + 2
    token = issuer.mint("hs", channels=["c"], exp=exp)
    sse = CurlSSE(f"{sp.url}/events/c?token={token}")

    async def ws():
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/events/c?token={token}") as w:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(w.recv(), 10)
            return closed.value.rcvd.code, closed.value.rcvd.reason

    try:
        assert asyncio.run(ws()) == (4401, "token expired")
        assert sse.proc.wait(5) == 0
        sse.thread.join(5)
        assert b"event: sidepush-token-expired" in sse.raw
    finally:
        sse.close()
    # A long-poll held past the token's exp is answered 401.
    token = issuer.mint("hs", channels=["c"], exp=int(time.time()) + 2)
    r = requests.get(f"{sp.url}/events/c?token={token}", timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "token expired"


def browser(sp, script):
    """Runs a Chromium script of tests/browser against sp; it must end {ok: true}."""
    out = subprocess.run([shutil.which("node"), script], cwd=BROWSER_DIR,
                         env=dict(os.environ, SIDEPUSH_PORT=str(sp.port),
                                  SIDEPUSH_PUBLISH_PORT=str(sp.publish_port)),
                         capture_output=True, text=True, timeout=120)
    print(out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"], result


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_an_eventsource_page_renews_its_token_and_misses_nothing(make_sidepush, issuer):
    sp = make_sidepush(route(f"secret: '{issuer.keys['secret']}', leeway: 0s"),
                       backend_url=issuer.url)
    browser(sp, "token-expiry.mjs")


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_chromium_websockets_bring_a_token_in_the_query_and_in_a_cookie(make_sidepush, issuer):
    sp = make_sidepush(route(f"secret: '{issuer.keys['secret']}', cookie: sp_token"),
                       backend_url=issuer.url)
    browser(sp, "token-websocket.mjs")


def test_a_user_holds_at_most_max_connections_per_user(make_sidepush, issuer):
    sp = make_sidepush("limits: { max_connections_per_user: 2 }\n"
                       + route(f"secret: '{issuer.keys['secret']}'"))
    alice = issuer.mint("hs", channels=["*"], sub="alice")
    held = [CurlSSE(f"{sp.url}/events/c{i}?token={alice}") for i in range(2)]
    try:
        wait_subscribers(sp, "c1", 1)
        assert sse_status(sp, "c2", alice) == (429, {
            "error": "too many connections for this user (limits.max_connections_per_user)",
            "status": 429})
        async def ws_refused():
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
                await websockets.connect(f"ws://127.0.0.1:{sp.port}/events/c3?token={alice}")
            return refused.value.status_code
        assert asyncio.run(ws_refused()) == 429
        assert sse_status(sp, "c2", issuer.mint("hs", channels=["*"], sub="bob"))[0] == 200
        assert sse_status(sp, "c2", issuer.mint("hs", channels=["*"]))[0] == 200  # nobody's
        held.pop().close()
        deadline = time.monotonic() + 5
        while sse_status(sp, "c2", alice)[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert metric(sp.url, "sidepush_user_connections_refused_total") >= 2
    finally:
        for c in held:
            c.close()
