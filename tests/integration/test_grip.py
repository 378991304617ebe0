"""GRIP (Pushpin's protocol): a proxied backend answers with Grip-Hold and is
published to in Pushpin's item format; the backend code is Pushpin's, unchanged."""
import base64
import socket
import threading
import time
import uuid

import requests

from pushutil import CurlSSE, wait_subscribers


def pushpin_publish(sp, items):
    r = requests.post(f"http://127.0.0.1:{sp.publish_port}/publish/", json={"items": items},
                      timeout=5)
    assert r.status_code == 202, r.text
    return r.json()


def test_stream_hold_with_curl(sidepush):
    ch = "g" + uuid.uuid4().hex[:8]
    sse = CurlSSE(f"{sidepush.url}/grip/stream/{ch}")
    try:
        wait_subscribers(sidepush, ch, 1)
        pushpin_publish(sidepush, [{"channel": ch, "id": "1", "prev-id": "0", "formats": {
            "http-stream": {"content": "event: update\ndata: hello\n\n"}}}])
        pushpin_publish(sidepush, [{"channel": ch, "formats": {
            "http-stream": {"content-bin": base64.b64encode(b"data: binary ok\n\n").decode()}}}])
        events = sse.events(2)
        assert [(e.get("event"), e["data"]) for e in events] == [("update", "hello"),
                                                                 (None, "binary ok")]
        assert b": welcome" in sse.raw  # the backend's own first content
        before = len(sse.raw)
        time.sleep(2.6)  # Grip-Keep-Alive: "\n" after 1 s of silence (checked every second)
        assert len(sse.raw) > before and sse.raw[before:].strip(b"\n") == b""
    finally:
        sse.close()


def test_stream_hold_over_http_1_0_is_unframed(sidepush):
    """An HTTP/1.0 client gets the held stream without chunks, ended by the close:
    the content exactly as published, text and bytes alike."""
    ch = "h" + uuid.uuid4().hex[:8]
    with socket.create_connection(("127.0.0.1", sidepush.port), timeout=10) as s:
        s.sendall(f"GET /grip/stream/{ch} HTTP/1.0\r\nHost: a\r\n\r\n".encode())
        wait_subscribers(sidepush, ch, 1)
        pushpin_publish(sidepush, [{"channel": ch, "formats": {
            "http-stream": {"content": "data: one\n\n"}}}])
        pushpin_publish(sidepush, [{"channel": ch, "formats": {
            "http-stream": {"content-bin": base64.b64encode(b"data: \xff two\n\n").decode()}}}])
        got = b""
        while b"two" not in got:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower()
    assert body.endswith(b"data: one\n\ndata: \xff two\n\n"), body


def test_response_hold_answered_by_publish(sidepush):
    ch = "r" + uuid.uuid4().hex[:8]
    result = {}
    t = threading.Thread(target=lambda: result.update(
        r=requests.get(f"{sidepush.url}/grip/response/{ch}", timeout=10)))
    t.start()
    wait_subscribers(sidepush, ch, 1)
    pushpin_publish(sidepush, [{"channel": ch, "formats": {"http-response": {
        "code": 200, "headers": {"Content-Type": "application/json", "X-From": "publish"},
        "body": '{"items": [{"n": 1}]}'}}}])
    t.join(10)
    r = result["r"]
    assert r.status_code == 200 and r.json() == {"items": [{"n": 1}]}
    assert r.headers["X-From"] == "publish"
    assert not any(h.lower().startswith("grip-") for h in r.headers)


def test_response_hold_times_out_with_the_backend_answer(sidepush):
    ch = "t" + uuid.uuid4().hex[:8]
    started = time.monotonic()
    r = requests.get(f"{sidepush.url}/grip/response/{ch}", timeout=10)
    assert r.status_code == 200 and r.json() == {"items": []}
    assert r.headers["X-Backend"] == "legacy"
    assert time.monotonic() - started >= 1.8  # Grip-Timeout: 2


def test_native_subscribers_get_grip_publishes_too(make_sidepush):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    ch = "n" + uuid.uuid4().hex[:8]
    sse = CurlSSE(f"{sp.url}/events/{ch}")
    try:
        wait_subscribers(sp, ch, 1)
        pushpin_publish(sp, [{"channel": ch, "formats": {"ws-message": {"content": "hi ws"}}}])
        assert sse.events(1)[0]["data"] == "hi ws"
    finally:
        sse.close()


def test_bad_grip_publish_is_400(sidepush):
    r = requests.post(f"http://127.0.0.1:{sidepush.publish_port}/publish/", timeout=5,
                      json={"items": [{"channel": "x", "formats": {"carrier-pigeon": {}}}]})
    assert r.status_code == 400 and "unsupported GRIP format" in r.json()["error"]


def test_grip_answers_that_cannot_hold(make_sidepush):
    """The backend's Grip-* headers never reach the client; a hold without a channel, or
    with a body over 1 MiB, is a 502 with a JSON reason; Grip-* without Grip-Hold passes
    the response through."""
    from scripted import ScriptedBackend, ok
    big = b"x" * (1024 * 1024 + 1)
    backend = ScriptedBackend({
        "/nochannel": [("send", ok(b"held?", b"Grip-Hold: response\r\n"))],
        "/toobig": [("send", ok(big, b"Grip-Hold: stream\r\nGrip-Channel: c\r\n"))],
        "/nohold": [("send", ok(b"plain", b"Grip-Channel: c\r\nGrip-Timeout: 5\r\n"))],
    })
    sp = make_sidepush(backend_url=backend.url)
    r = requests.get(sp.url + "/nochannel", timeout=10)
    assert r.status_code == 502 and "Grip-Channel" in r.json()["error"]
    r = requests.get(sp.url + "/toobig", timeout=10)
    assert r.status_code == 502 and "1 MiB" in r.json()["error"]
    r = requests.get(sp.url + "/nohold", timeout=10)
    assert r.status_code == 200 and r.content == b"plain"
    assert not any(k.lower().startswith("grip-") for k in r.headers)
