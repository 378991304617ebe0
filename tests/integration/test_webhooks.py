"""Webhooks to the backend: channel_occupied / channel_vacated and
member_added / member_removed in Pusher's body shape, batched, signed with
Standard Webhooks headers and verified here by an independent implementation
(npm standardwebhooks), retried with the same webhook-id while the backend
fails, with a grace against flapping and a bounded, counted queue."""
import json
import subprocess
import time
import uuid

import pytest
import requests

from conftest import ROOT
from pushutil import CurlSSE, metric, wait_subscribers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VERIFY = ROOT / "tests" / "browser" / "verify-webhooks.mjs"


def config(key, extra=""):
    return (f"webhooks: {{ url: '/hooks/{key}', secret: '{SECRET}', batch: 200ms, "
            f"vacated_grace: 1s, max_backoff: 400ms{extra} }}\n"
            "presence: { leave_grace: 300ms }\n"
            "routes:\n  - path: /room/{channel}\n    subscribe: { presence: true }\n"
            "    authorize: { url: '/auth/{channel}', cache: 0s }\n"
            "  - path: /events/{channel}\n    subscribe: {}\n")


def received(backend, key):
    return requests.get(f"{backend.url}/hooks-log/{key}", timeout=5).json()


def events_of(hooks):
    return [(e["name"], e["channel"], e.get("user_id")) for h in hooks
            for e in json.loads(h["body"])["events"]]


def wait_events(backend, key, count, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = events_of(received(backend, key))
        if len(got) >= count:
            return got
        time.sleep(0.1)
    return events_of(received(backend, key))


def verify(hooks):
    if not (ROOT / "tests" / "browser" / "node_modules" / "standardwebhooks").is_dir():
        pytest.fail("tests/browser/node_modules/standardwebhooks is missing: .ci/deps test installs it")
    out = subprocess.run(["node", str(VERIFY), SECRET], input=json.dumps(hooks),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_occupancy_and_members_signed_batched_in_order(make_sidepush, backend):
    key = uuid.uuid4().hex
    sp = make_sidepush(config(key))
    alice = CurlSSE(f"{sp.url}/room/w1", headers=["Authorization: Bearer user:alice"])
    bob = CurlSSE(f"{sp.url}/room/w1", headers=["Authorization: Bearer user:bob"])
    plain = CurlSSE(f"{sp.url}/events/plain1")
    wait_subscribers(sp, "w1", 2)
    wait_subscribers(sp, "plain1", 1)
    time.sleep(0.5)
    bob.close()
    time.sleep(0.6)  # bob's leave grace
    alice.close()
    plain.close()
    got = wait_events(backend, key, 7)
    w1 = [e for e in got if e[1] == "w1"]
    assert w1[0] == ("channel_occupied", "w1", None)
    assert sorted(w1[1:3]) == [("member_added", "w1", "alice"), ("member_added", "w1", "bob")]
    assert w1[3] == ("member_removed", "w1", "bob")
    assert w1[4:] == [("member_removed", "w1", "alice"), ("channel_vacated", "w1", None)]
    assert [e for e in got if e[1] == "plain1"] == [("channel_occupied", "plain1", None),
                                                    ("channel_vacated", "plain1", None)]
    hooks = received(backend, key)
    assert len(hooks) < len(got)  # batched: fewer POSTs than events
    verify(hooks)
    for h in hooks:
        body = json.loads(h["body"])
        assert isinstance(body["time_ms"], int) and h["headers"]["Content-Type"] == "application/json"
        assert h["headers"]["webhook-id"].startswith("msg_")
    assert len({h["headers"]["webhook-id"] for h in hooks}) == len(hooks)
    # A forged or tampered webhook fails the same verification.
    tampered = dict(hooks[0], body=hooks[0]["body"].replace("w1", "w2"))
    out = subprocess.run(["node", str(VERIFY), SECRET], input=json.dumps([tampered]),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "FAILED" in out.stdout


def test_a_channel_occupied_again_within_the_grace_is_not_told(make_sidepush, backend):
    key = uuid.uuid4().hex
    sp = make_sidepush(config(key))
    first = CurlSSE(f"{sp.url}/events/flap")
    wait_subscribers(sp, "flap", 1)
    first.close()
    time.sleep(0.3)
    again = CurlSSE(f"{sp.url}/events/flap")
    wait_subscribers(sp, "flap", 1)
    time.sleep(1.5)
    assert events_of(received(backend, key)) == [("channel_occupied", "flap", None)]
    again.close()
    assert wait_events(backend, key, 2)[-1] == ("channel_vacated", "flap", None)


def test_a_failing_backend_gets_the_same_webhook_again(make_sidepush, backend):
    key = uuid.uuid4().hex
    requests.post(f"{backend.url}/hooks-fail/{key}?n=3", timeout=5)
    sp = make_sidepush(config(key))
    s = CurlSSE(f"{sp.url}/events/retry")
    try:
        got = wait_events(backend, key, 1, timeout=15)
        assert got == [("channel_occupied", "retry", None)]
        failed = received(backend, key + ":failed")
        delivered = received(backend, key)
        assert len(failed) == 3
        ids = {h["headers"]["webhook-id"] for h in failed + delivered}
        assert len(ids) == 1  # a retry is the same webhook: the backend can drop repeats
        verify(failed + delivered)
        assert metric(sp.url, "sidepush_webhook_posts_total", '{result="failed"}') == 3
        assert metric(sp.url, "sidepush_webhook_posts_total", '{result="ok"}') == 1
    finally:
        s.close()
    sp.stop()
    assert sp.output.count("webhook_failed") == 3


def test_the_queue_is_bounded_and_its_overflow_counted(make_sidepush, backend):
    key = uuid.uuid4().hex
    requests.post(f"{backend.url}/hooks-fail/{key}?n=1000000", timeout=5)
    sp = make_sidepush(config(key, ", max_queue: 5") + "log: { level: warn }\n")
    streams = [CurlSSE(f"{sp.url}/events/q{i}") for i in range(10)]
    try:
        for i in range(10):
            wait_subscribers(sp, f"q{i}", 1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (metric(sp.url, "sidepush_webhook_events_total",
                                                      '{result="dropped"}') or 0) < 5:
            time.sleep(0.1)
        assert metric(sp.url, "sidepush_webhook_events_total", '{result="dropped"}') == 5
        assert metric(sp.url, "sidepush_webhook_queue") == 5
        requests.post(f"{backend.url}/hooks-fail/{key}?n=0", timeout=5)  # the backend is back
        got = wait_events(backend, key, 5)
        assert len(got) == 5 and len(set(got)) == 5  # the five kept, each once
        assert all(name == "channel_occupied" and ch.startswith("q") for name, ch, _ in got)
    finally:
        for s in streams:
            s.close()
    sp.stop()
    assert "webhook_queue_full" in sp.output


def test_every_attempt_is_signed_with_its_own_time_and_the_secret_of_now(make_sidepush, backend):
    """Issue 22 item 6: a retry carried its first webhook-timestamp and signature
    forever: refused as too old after an outage past the receiver's tolerance,
    and after a secret rotation. Each attempt is signed anew; the id stays."""
    key = uuid.uuid4().hex
    requests.post(f"{backend.url}/hooks-fail/{key}?n=4", timeout=5)
    sp = make_sidepush(config(key).replace("max_backoff: 400ms", "max_backoff: 1500ms"))
    s = CurlSSE(f"{sp.url}/events/rot")
    try:
        deadline = time.monotonic() + 10
        while len(received(backend, key + ":failed")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The secret rotates while the batch is failing.
        new = "whsec_" + __import__("base64").b64encode(b"n" * 24).decode()
        sp.config.write_text(sp.config.read_text().replace(SECRET, new))
        sp.proc.send_signal(__import__("signal").SIGHUP)
        got = wait_events(backend, key, 1, timeout=20)
        assert got == [("channel_occupied", "rot", None)]
        failed, delivered = received(backend, key + ":failed"), received(backend, key)
        attempts = failed + delivered
        assert len({h["headers"]["webhook-id"] for h in attempts}) == 1
        stamps = [int(h["headers"]["webhook-timestamp"]) for h in attempts]
        assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # not the first one's forever
        assert abs(time.time() - stamps[-1]) < 5
        out = subprocess.run(["node", str(VERIFY), new], input=json.dumps(delivered),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout  # the delivered one carries the new secret
    finally:
        s.close()


def test_a_batch_refused_max_attempts_times_is_given_up(make_sidepush, backend):
    """Item 6: one refused batch cannot block the queue: after
    webhooks.max_attempts it is dropped and counted, and the next goes."""
    key = uuid.uuid4().hex
    requests.post(f"{backend.url}/hooks-fail/{key}?n=3", timeout=5)
    sp = make_sidepush(config(key, ", max_attempts: 3") + "log: { level: warn }\n")
    first = CurlSSE(f"{sp.url}/events/lost")
    try:
        deadline = time.monotonic() + 10
        while (metric(sp.url, "sidepush_webhook_events_total", '{result="given_up"}') or 0) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = CurlSSE(f"{sp.url}/events/next")
        got = wait_events(backend, key, 1)
        second.close()
        assert got[0] == ("channel_occupied", "next", None)
        assert len(received(backend, key + ":failed")) == 3
    finally:
        first.close()
    sp.stop()
    assert "webhook_given_up" in sp.output


def test_anonymous_occupancy_churn_never_crowds_out_members(make_sidepush, backend):
    """Item 10: one unauthenticated client pipelining long-polls over invented
    channels filled the queue, and a real user's member_added was dropped.
    Members have a budget of their own; webhooks.events can leave occupancy out."""
    import socket
    key = uuid.uuid4().hex
    requests.post(f"{backend.url}/hooks-fail/{key}?n=1000000", timeout=5)  # the backend is down
    sp = make_sidepush(config(key, ", max_queue: 20") + "log: { level: warn }\n")
    flood = []
    for c in range(20):  # held long-polls, each naming 16 invented channels
        names = ",".join(f"junk{c}x{i}" for i in range(16))
        sock = socket.create_connection(("127.0.0.1", sp.port))
        sock.sendall(f"GET /events/{names} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        flood.append(sock)
    deadline = time.monotonic() + 10
    while (metric(sp.url, "sidepush_webhook_events_total", '{result="dropped"}') or 0) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    alice = CurlSSE(f"{sp.url}/room/real", headers=["Authorization: Bearer user:alice"])
    try:
        wait_subscribers(sp, "real", 1)
        requests.post(f"{backend.url}/hooks-fail/{key}?n=0", timeout=5)  # back
        deadline = time.monotonic() + 20
        while ("member_added", "real", "alice") not in events_of(received(backend, key)):
            assert time.monotonic() < deadline, "member_added was dropped"
            time.sleep(0.1)
    finally:
        alice.close()
        for sock in flood:
            sock.close()

    only = uuid.uuid4().hex
    sp2 = make_sidepush(config(only, ", events: [member_added, member_removed]"))
    plain = CurlSSE(f"{sp2.url}/events/quiet")
    bob = CurlSSE(f"{sp2.url}/room/r2", headers=["Authorization: Bearer user:bob"])
    try:
        got = wait_events(backend, only, 1)
        time.sleep(0.5)
        assert events_of(received(backend, only)) == [("member_added", "r2", "bob")]
    finally:
        plain.close()
        bob.close()
