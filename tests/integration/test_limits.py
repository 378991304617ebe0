"""Malformed and hostile input: clear answers, and no harm to other connections."""
import json
import socket
import threading
import time

import pytest
import requests

from test_proxy import read_responses


def exchange(port, raw: bytes, timeout=5) -> bytes:
    """Sends raw bytes, returns everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(timeout)
        s.sendall(raw)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def status_and_json(data: bytes):
    head, body = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    assert b"application/json" in head
    assert b"connection: close" in head.lower()
    return status, json.loads(body)


@pytest.mark.parametrize("raw,status", [
    (b"this is not http\r\n\r\n", 400),
    (b"GET /echo HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
    (b"GET /echo HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET /echo HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET /echo HTTP/1.1\r\nHost: a\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
    (b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431),
    (b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413),
    (b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_bad_requests_get_clear_json_errors(sidepush, backend, raw, status):
    before = backend.hits()
    data = exchange(sidepush.port, raw)
    got_status, body = status_and_json(data)
    assert got_status == status
    assert body["status"] == status and body["error"]
    after = backend.hits()
    assert after.get("/echo") == before.get("/echo")  # never reached the backend


def test_chunked_body_over_limit_is_413(make_sidepush):
    sp = make_sidepush("limits: { max_body_size: 1KiB }\n")
    raw = (b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
           b"400\r\n" + b"a" * 1024 + b"\r\n" + b"1\r\nb\r\n0\r\n\r\n")
    status, body = status_and_json(exchange(sp.port, raw))
    assert status == 413 and "max_body_size" in body["error"]


def test_body_at_limit_is_accepted(make_sidepush):
    sp = make_sidepush("limits: { max_body_size: 1KiB }\n")
    r = requests.post(sp.url + "/upload", data=b"x" * 1024, timeout=5)
    assert r.json()["count"] == 1024


def test_slowloris_gets_408(make_sidepush):
    sp = make_sidepush("limits: { header_timeout: 1s }\n")
    with socket.create_connection(("127.0.0.1", sp.port)) as s:
        s.settimeout(10)
        started = time.monotonic()
        data = b""
        # One byte every 200ms: each byte is progress, but the head never ends in time.
        for byte in b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 100:
            try:
                s.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
            if time.monotonic() - started > 5:
                break
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    status, body = status_and_json(data)
    assert status == 408
    assert time.monotonic() - started < 5


def test_idle_keepalive_connection_is_closed(make_sidepush):
    sp = make_sidepush("limits: { idle_timeout: 500ms }\n")
    with socket.create_connection(("127.0.0.1", sp.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_responses(s, 1)[0][0] == 200
        s.settimeout(5)
        assert s.recv(100) == b""  # closed after idling, without another response


def test_bad_input_does_not_harm_other_connections(sidepush):
    """A live download continues while other connections send garbage."""
    size = 32 << 20
    result = {}

    def download():
        r = requests.get(sidepush.url + f"/bytes/{size}", timeout=60, stream=True)
        total = 0
        for chunk in r.iter_content(1 << 16):
            total += len(chunk)
            time.sleep(0.0005)
        result["total"] = total

    t = threading.Thread(target=download)
    t.start()
    for raw in [b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nnope\r\n",
                b"GET /echo HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 500 + b"\r\n"]:
        exchange(sidepush.port, raw)
        s = socket.create_connection(("127.0.0.1", sidepush.port))
        s.sendall(b"GET /cut")
        s.close()  # cut off mid-head
    t.join(60)
    assert result.get("total") == size
    assert requests.get(sidepush.url + "/healthz", timeout=5).status_code == 200


def waiting_in_backlog(port, request: bytes):
    """A connection past a listener's cap: it connects (the kernel's backlog)
    but gets no answer while the cap holds. Returns the socket."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.7)
    s.sendall(request)
    with pytest.raises(socket.timeout):
        s.recv(100)
    s.settimeout(5)
    return s


def test_connection_cap_holds_new_connections_until_one_closes(make_sidepush):
    from conftest import free_port
    from pushutil import metric
    admin = free_port()
    sp = make_sidepush("limits: { max_connections: 3 }\n"
                       f"metrics: {{ listen: 127.0.0.1:{admin} }}\n")
    held = [socket.create_connection(("127.0.0.1", sp.port)) for _ in range(3)]
    # All three accepted (by whichever workers) before the fourth is tried.
    deadline = time.monotonic() + 10
    while (metric(f"http://127.0.0.1:{admin}", "sidepush_connections", '{listener="client"}') != 3
           and time.monotonic() < deadline):
        time.sleep(0.02)
    time.sleep(0.2)  # and the paused workers told
    extra = waiting_in_backlog(sp.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    held.pop().close()
    assert extra.recv(100).startswith(b"HTTP/1.1 200")
    extra.close()
    for s in held:
        s.close()


def test_expect_continue_with_oversize_body_is_refused_before_upload(make_sidepush):
    sp = make_sidepush("limits: { max_body_size: 1KiB }\n")
    data = exchange(sp.port, b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n"
                             b"Expect: 100-continue\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413")


def test_clients_at_their_cap_never_starve_publishing_or_probes(make_sidepush):
    """60 clients that sent a long-poll and closed used to hold the client cap
    (each for the 55 s hold) and, through it, the publish listener. Now a held
    request whose client left is released at once, and the publish and admin
    listeners have caps of their own."""
    from conftest import free_port
    admin = free_port()
    sp = make_sidepush("limits: { max_connections: 50 }\n"
                       f"metrics: {{ listen: 127.0.0.1:{admin} }}\n"
                       "routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", sp.port))
        s.sendall(b"GET /events/held HTTP/1.1\r\nHost: a\r\n\r\n")
        s.close()  # held nothing: it left
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        held = requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
        if 'sidepush_subscribers{transport="longpoll"} 0' in held:
            break
        time.sleep(0.05)
    assert 'sidepush_subscribers{transport="longpoll"} 0' in held  # released, not held 55 s
    assert requests.get(f"{sp.url}/healthz", timeout=5).status_code == 200

    # Clients that really fill the cap: publishing and the admin probes go on.
    clients = [socket.create_connection(("127.0.0.1", sp.port)) for _ in range(50)]
    for s in clients:
        s.sendall(b"GET /events/full HTTP/1.1\r\nHost: a\r\n\r\n")  # held long-polls
    time.sleep(0.3)
    late = waiting_in_backlog(sp.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    r = requests.post(f"http://127.0.0.1:{sp.publish_port}/publish/full", data=b"x", timeout=5)
    assert r.status_code == 202 and r.json()["subscribers"] == 50
    assert requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=5).status_code == 200
    assert requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=5).status_code == 200
    for s in clients:
        s.close()
    assert late.recv(100).startswith(b"HTTP/1.1 200")  # served once room was made
    late.close()


def test_publish_listener_has_its_own_cap(make_sidepush):
    sp = make_sidepush("publish: { max_connections: 2 }\n")
    held = [socket.create_connection(("127.0.0.1", sp.publish_port)) for _ in range(2)]
    time.sleep(0.2)
    extra = waiting_in_backlog(sp.publish_port,
                               b"POST /publish/c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
    assert requests.get(f"{sp.url}/healthz", timeout=5).status_code == 200  # clients unaffected
    held.pop().close()
    assert extra.recv(100).startswith(b"HTTP/1.1 202")
    extra.close()
    for s in held:
        s.close()
