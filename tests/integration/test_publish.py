"""The publish API on publish_listen, with requests as the publisher."""
import base64
import hashlib
import hmac
import json
import time

import pytest
import requests

from pushutil import channel_info, publish, publish_ok

SECRET_B64 = base64.b64encode(b"sidepush test webhook key 32 by!").decode()


def pub_url(sp, path):
    return f"http://127.0.0.1:{sp.publish_port}{path}"


def test_publish_raw_answers_202_with_id(sidepush):
    r = publish(sidepush, "orders", "order 42 changed")
    assert r.status_code == 202
    body = r.json()
    assert body["channel"] == "orders" and body["subscribers"] == 0 and body["id"]
    info = channel_info(sidepush, "orders").json()
    assert info["messages"] == 1 and info["last_id"] == body["id"]


def test_ids_increase_within_a_channel(sidepush):
    ids = [publish_ok(sidepush, "seq", f"m{i}")["id"] for i in range(5)]
    epochs = {i.rsplit("-", 1)[0] for i in ids}
    seqs = [int(i.rsplit("-", 1)[1]) for i in ids]
    assert len(epochs) == 1 and seqs == sorted(seqs) and len(set(seqs)) == 5


def test_json_single_and_batch(sidepush):
    r = requests.post(pub_url(sidepush, "/publish"), timeout=5,
                      json={"channel": "a", "event": "e", "data": {"x": 1}, "id": "d1"})
    assert r.status_code == 202 and r.json()["channel"] == "a"
    r = requests.post(pub_url(sidepush, "/publish"), timeout=5, json={"items": [
        {"channel": "a", "data": "one"},
        {"channel": "b", "data_base64": base64.b64encode(b"\x00\xff").decode()},
    ]})
    assert r.status_code == 202
    items = r.json()["items"]
    assert [i["channel"] for i in items] == ["a", "b"]
    assert channel_info(sidepush, "b").json()["messages"] == 1


@pytest.mark.parametrize("body,fragment", [
    ("not json", "invalid JSON"),
    ('{"data": "x"}', '"channel" is required'),
    ('{"channel": "a"}', 'exactly one of "data"'),
    ('{"channel": 5, "data": "x"}', '"channel" must be a string'),
    ('{"channel": "a", "data": "x", "extra": 1}', 'unknown key "extra"'),
    ('{"items": []}', '"items" must hold'),
    ('{"items": [{"channel": "a", "data": "x"}, {"channel": "bad name", "data": "x"}]}',
     "items[1]: invalid channel name"),
    ('{"channel": "a", "data_base64": "***"}', "not base64"),
    ('{"channel": "a", "data": "x", "channel": "b"}', "invalid JSON"),
])
def test_json_errors_are_400_and_publish_nothing(sidepush, body, fragment):
    r = requests.post(pub_url(sidepush, "/publish"), data=body, timeout=5)
    assert r.status_code == 400
    assert fragment in r.json()["error"], r.json()
    assert channel_info(sidepush, "a").status_code == 404  # nothing stored


def test_bad_channel_names(sidepush):
    for name in ["with%20space", "a/b", "x" * 257, "%E2%82%AC"]:
        r = publish(sidepush, name, "x")
        assert r.status_code in (400, 404), name
        if r.status_code == 400:
            assert "channel" in r.json()["error"]


def test_oversize_message_is_413(make_sidepush):
    sp = make_sidepush("channels: { max_message_size: 1KiB }\n")
    assert publish(sp, "c", "x" * 1024).status_code == 202
    r = publish(sp, "c", "x" * 1025)
    assert r.status_code == 413 and "max_message_size" in r.json()["error"]
    r = requests.post(pub_url(sp, "/publish"), json={"channel": "c", "data": "x" * 2000},
                      timeout=5)
    assert r.status_code == 413


def test_bad_event_name(sidepush):
    r = publish(sidepush, "c", "x", event="has:colon")
    assert r.status_code == 400 and "event" in r.json()["error"]


def test_deduplication(sidepush):
    first = publish_ok(sidepush, "d", "once", headers={"Idempotency-Key": "k1"})
    again = publish_ok(sidepush, "d", "once", headers={"Idempotency-Key": "k1"})
    assert again["id"] == first["id"] and again.get("duplicate") is True
    assert channel_info(sidepush, "d").json()["messages"] == 1
    other = publish_ok(sidepush, "d", "twice", headers={"Idempotency-Key": "k2"})
    assert other["id"] != first["id"]


def test_channel_info_and_delete(sidepush):
    assert channel_info(sidepush, "gone").status_code == 404
    publish_ok(sidepush, "gone", "x")
    r = requests.delete(pub_url(sidepush, "/channels/gone"), timeout=5)
    assert r.status_code == 200 and r.json() == {"channel": "gone", "closed": 0}
    assert channel_info(sidepush, "gone").status_code == 404
    assert requests.delete(pub_url(sidepush, "/channels/gone"), timeout=5).status_code == 404


def test_wrong_methods_and_paths(sidepush):
    r = requests.get(pub_url(sidepush, "/publish/c"), timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.put(pub_url(sidepush, "/channels/c"), timeout=5)
    assert r.status_code == 405
    r = requests.get(pub_url(sidepush, "/elsewhere"), timeout=5)
    assert r.status_code == 404 and r.json()["error"]


def test_bearer_token(make_sidepush, monkeypatch):
    monkeypatch.setenv("SP_TEST_TOKEN", "s3cret-token")
    sp = make_sidepush('publish: { auth: { bearer_token: "${SP_TEST_TOKEN}" } }\n')
    r = publish(sp, "c", "x")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert publish(sp, "c", "x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert publish(sp, "c", "x", headers={"Authorization": "Bearer s3cret-token"}).status_code == 202
    assert channel_info(sp, "c").status_code == 401
    r = requests.get(pub_url(sp, "/channels/c"), timeout=5,
                     headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 200


def sign(secret_b64, msg_id, ts, body: bytes):
    key = base64.b64decode(secret_b64)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_standard_webhooks_signatures(make_sidepush):
    sp = make_sidepush(f'publish: {{ auth: {{ hmac_secret: "whsec_{SECRET_B64}" }} }}\n')
    body = b'{"order": 42}'
    now = int(time.time())

    def send(msg_id, ts, sig, data=body):
        return publish(sp, "orders", data, headers={
            "webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig})

    assert publish(sp, "orders", body).status_code == 401  # unsigned
    assert send("msg_1", now, sign(SECRET_B64, "msg_1", now, body)).status_code == 202
    r = send("msg_2", now, sign(SECRET_B64, "msg_2", now, body), data=b'{"order": 43}')
    assert r.status_code == 401 and "does not match" in r.json()["error"]  # body changed
    old = now - 600
    r = send("msg_3", old, sign(SECRET_B64, "msg_3", old, body))
    assert r.status_code == 401 and "timestamp" in r.json()["error"]
    rotated = f"v1,{base64.b64encode(b'x' * 32).decode()} " + sign(SECRET_B64, "msg_4", now, body)
    assert send("msg_4", now, rotated).status_code == 202  # one of several matches
    # A retried webhook (same webhook-id) is stored once.
    again = send("msg_1", now, sign(SECRET_B64, "msg_1", now, body))
    assert again.status_code == 202 and again.json().get("duplicate") is True
    assert channel_info(sp, "orders").status_code == 401  # reading needs a signature too
    assert requests.get(pub_url(sp, "/channels/orders"), timeout=5, headers={
        "webhook-id": "msg_5", "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET_B64, "msg_5", now, b"")}).json()["messages"] == 2


def test_bad_hmac_secret_is_a_config_error(tmp_path):
    import subprocess
    from conftest import SIDEPUSH
    f = tmp_path / "c.yaml"
    f.write_text('backend: {url: http://x}\npublish: {auth: {hmac_secret: "whsec_!!"}}\n')
    out = subprocess.run([SIDEPUSH, "--check-config", str(f)], capture_output=True, text=True)
    assert out.returncode == 1 and "hmac_secret must be base64" in out.stderr


def test_extreme_webhook_timestamps_are_refused_not_overflowed(make_sidepush):
    """INT64_MIN in webhook-timestamp made the UBSan build abort before any
    authentication; now it is a stale timestamp like any other."""
    sp = make_sidepush(f'publish: {{ auth: {{ hmac_secret: "whsec_{SECRET_B64}" }} }}\n')
    for ts in ("-9223372036854775808", "9223372036854775807", "18446744073709551616", "+1", "1e9"):
        r = publish(sp, "orders", b"x", headers={
            "webhook-id": "msg_x", "webhook-timestamp": ts,
            "webhook-signature": sign(SECRET_B64, "msg_x", ts, b"x")})
        assert r.status_code == 401 and "timestamp" in r.json()["error"], ts
    now = int(time.time())
    assert publish(sp, "orders", b"x", headers={
        "webhook-id": "msg_y", "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET_B64, "msg_y", now, b"x")}).status_code == 202


@pytest.mark.parametrize("how", ["header", "json"])
def test_long_dedup_ids_count_whole(sidepush, how):
    """Two ids longer than the old 760-byte key buffer that share a prefix are
    different ids: the second message is stored, not dropped as a duplicate."""
    prefix = "p" * 5000

    def send(dedup_id, data):
        if how == "header":
            return publish(sidepush, "long-ids", data, headers={"Sidepush-Id": dedup_id})
        return requests.post(pub_url(sidepush, "/publish"), timeout=5, json={
            "channel": "long-ids", "data": data, "id": dedup_id})

    first, second = send(prefix + "-a", "one"), send(prefix + "-b", "two")
    assert first.status_code == 202 and second.status_code == 202
    assert not second.json().get("duplicate") and second.json()["id"] != first.json()["id"]
    again = send(prefix + "-a", "one")
    assert again.json().get("duplicate") is True and again.json()["id"] == first.json()["id"]


def test_signed_webhooks_cannot_be_replayed(make_sidepush):
    """Standard Webhooks: a verified webhook-id is used once, whatever the path
    or method; an exact retry of a publish is a duplicate of the first."""
    sp = make_sidepush(f'publish: {{ auth: {{ hmac_secret: "whsec_{SECRET_B64}" }} }}\n')
    now = int(time.time())
    body = b"pay 100 to mallory"

    def signed(msg_id, data=body):
        return {"webhook-id": msg_id, "webhook-timestamp": str(now),
                "webhook-signature": sign(SECRET_B64, msg_id, now, data)}

    first = publish(sp, "victim", body, headers=signed("msg_a"))
    assert first.status_code == 202 and not first.json().get("duplicate")
    # The unsigned Sidepush-Id / Idempotency-Key no longer decide: the signed id does.
    for extra in ({"Sidepush-Id": "fresh-1"}, {"Idempotency-Key": "fresh-2"}):
        again = publish(sp, "victim", body, headers={**signed("msg_a"), **extra})
        assert again.status_code == 202 and again.json()["duplicate"] is True
        assert again.json()["id"] == first.json()["id"]
    # The same signed request sent to another channel is a replay.
    r = publish(sp, "other", body, headers=signed("msg_a"))
    assert r.status_code == 409 and "already used" in r.json()["error"]
    # The signed headers of a GET do not authorize a DELETE.
    get = signed("msg_get", b"")
    assert requests.get(pub_url(sp, "/channels/x"), headers=get, timeout=5).status_code == 404
    r = requests.delete(pub_url(sp, "/channels/victim"), headers=get, timeout=5)
    assert r.status_code == 409
    info = requests.get(pub_url(sp, "/channels/victim"), headers=signed("msg_info", b""),
                        timeout=5).json()
    assert info["messages"] == 1  # the victim's history is intact
    # A DELETE is not repeated, even exactly.
    dele = signed("msg_del", b"")
    assert requests.delete(pub_url(sp, "/channels/victim"), headers=dele, timeout=5).status_code == 200
    publish_signed = publish(sp, "victim", b"new", headers=signed("msg_new", b"new"))
    assert publish_signed.status_code == 202
    assert requests.delete(pub_url(sp, "/channels/victim"), headers=dele, timeout=5).status_code == 409
    # A signed JSON batch is stored once however often it is sent.
    batch = json.dumps({"items": [{"channel": "b1", "data": "x"},
                                  {"channel": "b2", "data": "y"}]}).encode()
    for _ in range(2):
        r = requests.post(pub_url(sp, "/publish"), data=batch, headers=signed("msg_b", batch),
                          timeout=5)
        assert r.status_code == 202
    assert [i.get("duplicate") for i in r.json()["items"]] == [True, True]
