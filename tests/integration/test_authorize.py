"""Subscriber authorization against the stand-in backend's /auth endpoint."""
import uuid

import pytest
import requests

from pushutil import CurlSSE


def auth_log(backend):
    return requests.get(f"{backend.url}/auth-log", timeout=5).json()


@pytest.fixture
def sp(make_sidepush):
    return make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n"
                         "    authorize: { url: '/auth/{channel}', cache: 30s }\n")


def poll(sp, channel, auth=None, cookie=None):
    headers = {}
    if auth:
        headers["Authorization"] = auth
    if cookie:
        headers["Cookie"] = cookie
    return requests.get(f"{sp.url}/events/{channel}?wait=0", headers=headers, timeout=10)


def test_allow_and_deny(sp, backend):
    ch = "a" + uuid.uuid4().hex[:8]
    assert poll(sp, ch, "Bearer good").status_code == 304   # allowed: a plain poll's answer
    assert poll(sp, ch).status_code == 401                  # no credentials
    assert poll(sp, ch, "Bearer nope").status_code == 403   # refused
    assert poll(sp, ch, cookie="session=ok-1").status_code == 304
    entry = [e for e in auth_log(backend) if e["channels"] == ch][0]
    assert entry["uri"] == f"/events/{ch}?wait=0"


def test_backend_trouble_is_503(sp):
    ch = "b" + uuid.uuid4().hex[:8]
    assert poll(sp, ch, "Bearer broken").status_code == 503
    assert poll(sp, ch, "Bearer slow").status_code == 503  # backend.timeout is 2 s here


def test_backend_down_is_503(make_sidepush):
    from conftest import free_port
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n"
                       "    authorize: { url: '/auth/{channel}' }\n",
                       backend_url=f"http://127.0.0.1:{free_port()}")
    assert poll(sp, "x", "Bearer good").status_code == 503


def test_answers_are_cached_per_credentials_and_channel(sp, backend):
    ch = "c" + uuid.uuid4().hex[:8]
    for _ in range(3):
        assert poll(sp, ch, "Bearer good").status_code == 304
        assert poll(sp, ch, "Bearer nope").status_code == 403
    asked = [e for e in auth_log(backend) if e["channels"] == ch]
    assert sorted(e["auth"] for e in asked) == ["Bearer good", "Bearer nope"]  # once each
    other = "d" + uuid.uuid4().hex[:8]
    assert poll(sp, other, "Bearer nope").status_code == 403  # another channel: asked again
    assert len([e for e in auth_log(backend) if e["channels"] == other]) == 1


def test_failures_are_not_cached(sp, backend):
    ch = "e" + uuid.uuid4().hex[:8]
    assert poll(sp, ch, "Bearer broken").status_code == 503
    assert poll(sp, ch, "Bearer broken").status_code == 503
    assert len([e for e in auth_log(backend) if e["channels"] == ch]) == 2


def test_sse_subscription_is_authorized(sp, backend):
    ch = "f" + uuid.uuid4().hex[:8]
    ok = CurlSSE(f"{sp.url}/events/{ch}", headers=["Authorization: Bearer good"])
    try:
        from pushutil import publish_ok, wait_subscribers
        wait_subscribers(sp, ch, 1)
        publish_ok(sp, ch, "hi")
        assert [e["data"] for e in ok.events(1)] == ["hi"]
    finally:
        ok.close()
    r = requests.get(f"{sp.url}/events/{ch}", headers={"Accept": "text/event-stream",
                                                      "Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 403 and r.json()["error"]
