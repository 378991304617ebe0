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


def test_backend_down_is_503(make_sidepush, refused_port):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n"
                       "    authorize: { url: '/auth/{channel}' }\n",
                       backend_url=f"http://127.0.0.1:{refused_port}")
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


def test_cache_is_keyed_on_the_whole_request_target(sp, backend):
    """A token in the query string (all an EventSource can send) is part of
    what the backend decided on, so it is part of the cache key."""
    ch = "q" + uuid.uuid4().hex[:8]

    def get(query):
        return requests.get(f"{sp.url}/events/{ch}?wait=0{query}", timeout=10).status_code

    assert get("&token=good") == 304
    assert get("") == 401            # no token: not the allowed verdict from the cache
    assert get("&token=wrong") == 403
    assert get("&token=good") == 304  # the denial is not reused for the good token
    assert get("&token=wrong") == 403
    uris = [e["uri"] for e in auth_log(backend) if e["channels"] == ch]
    assert sorted(uris) == sorted([f"/events/{ch}?wait=0&token=good", f"/events/{ch}?wait=0",
                                   f"/events/{ch}?wait=0&token=wrong"])  # each asked once


def test_every_credential_field_is_forwarded_and_keyed(sp, backend):
    """Two Cookie fields are one cookie list to the backend: both go along, and a
    request with another second cookie is asked about again."""
    import http.client
    ch = "k" + uuid.uuid4().hex[:8]

    def get(cookies):
        c = http.client.HTTPConnection("127.0.0.1", sp.port, timeout=10)
        c.putrequest("GET", f"/events/{ch}?wait=0")
        for cookie in cookies:
            c.putheader("Cookie", cookie)
        c.endheaders()
        status = c.getresponse().status
        c.close()
        return status

    assert get(["session=ok-1", "theme=dark"]) == 304
    assert get(["session=ok-1", "theme=light"]) == 304
    cookies = [e["cookie"] for e in auth_log(backend) if e["channels"] == ch]
    assert cookies == ["session=ok-1; theme=dark", "session=ok-1; theme=light"]


def test_backend_cache_control_decides_per_verdict(sp, backend):
    ch = "n" + uuid.uuid4().hex[:8]
    for _ in range(3):
        assert poll(sp, ch, "Bearer no-store").status_code == 304
    assert len([e for e in auth_log(backend) if e["auth"] == "Bearer no-store"
                and e["channels"] == ch]) == 3  # no-store: asked every time

    import time
    assert poll(sp, ch, "Bearer max-age-1").status_code == 304
    assert poll(sp, ch, "Bearer max-age-1").status_code == 304
    asked = lambda: len([e for e in auth_log(backend) if e["auth"] == "Bearer max-age-1"
                         and e["channels"] == ch])
    assert asked() == 1  # max-age=1 (and private): reused meanwhile
    time.sleep(1.2)
    assert poll(sp, ch, "Bearer max-age-1").status_code == 304
    assert asked() == 2  # then asked again, though authorize.cache is 30 s
