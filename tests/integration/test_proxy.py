"""Reverse proxying through sidepush, with real clients (requests, curl, http.client)."""
import hashlib
import http.client
import json
import select
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import SANITIZED
from scripted import ScriptedBackend


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_and_bodies_pass_through(sidepush, method):
    body = b"" if method in ("GET", "OPTIONS") else f"payload for {method}".encode()
    r = requests.request(method, sidepush.url + "/echo/x?a=1&b=two", data=body, timeout=5)
    assert r.status_code == 200
    got = r.json()
    assert got["method"] == method
    assert got["path_qs"] == "/echo/x?a=1&b=two"
    assert got["body"] == body.decode()


def test_head_has_headers_and_no_body(sidepush):
    r = requests.head(sidepush.url + "/bytes/1000?cl=1", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "1000"
    assert r.content == b""


def test_post_with_empty_body_sends_content_length_zero(sidepush):
    r = requests.post(sidepush.url + "/echo", data=b"", timeout=5)
    headers = {k.lower(): v for k, v in r.json()["headers"]}
    assert headers.get("content-length") == "0"


def test_request_headers_forwarded_and_hop_headers_removed(sidepush):
    r = requests.get(sidepush.url + "/echo", timeout=5, headers={
        "X-Custom": "kept",
        "Connection": "keep-alive, X-Private",
        "X-Private": "dropped",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic eA==",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "spoofed",
        "Host": "app.example:8443",
    })
    headers = r.json()["headers"]
    names = [k.lower() for k, _ in headers]
    values = {k.lower(): v for k, v in headers}
    assert values["x-custom"] == "kept"
    for hop in ("x-private", "keep-alive", "te", "proxy-authorization"):
        assert hop not in names, hop
    assert values["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert values["x-forwarded-proto"] == "http"
    assert values["x-forwarded-host"] == "app.example:8443"
    assert values["host"] == "app.example:8443"  # preserve_host defaults to true
    assert names.count("x-forwarded-proto") == 1


def test_repeated_request_headers_kept_in_order(sidepush):
    conn = http.client.HTTPConnection("127.0.0.1", sidepush.port, timeout=5)
    conn.putrequest("GET", "/echo")
    conn.putheader("X-Rep", "one")
    conn.putheader("X-Rep", "two")
    conn.endheaders()
    body = json.loads(conn.getresponse().read())
    reps = [v for k, v in body["headers"] if k.lower() == "x-rep"]
    assert reps == ["one", "two"]


def test_repeated_response_headers_and_hop_headers(sidepush):
    conn = http.client.HTTPConnection("127.0.0.1", sidepush.port, timeout=5)
    conn.request("GET", "/cookies")
    resp = conn.getresponse()
    assert resp.read() == b"cookies\n"
    assert resp.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert resp.headers.get_all("X-Multi") == ["one", "two"]
    assert resp.headers.get("Connection") is None  # hop-by-hop, the backend's own


@pytest.mark.parametrize("code", [200, 201, 204, 301, 304, 400, 404, 418, 500, 503])
def test_status_codes_pass_through(sidepush, code):
    r = requests.get(sidepush.url + f"/status/{code}", timeout=5, allow_redirects=False)
    assert r.status_code == code
    if code not in (204, 304):
        assert r.text == f"status {code}\n"


def test_reason_phrase_passes_through(sidepush):
    conn = http.client.HTTPConnection("127.0.0.1", sidepush.port, timeout=5)
    conn.request("GET", "/status/299?reason=Quite%20Fine")
    resp = conn.getresponse()
    assert (resp.status, resp.reason) == (299, "Quite Fine")


def test_large_download_streams_without_growing_memory(sidepush):
    """1 GiB through sidepush: its RSS must not grow with the body."""
    size = 1 << 30
    before = sidepush.rss_kib()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sidepush.rss_kib())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                              sidepush.url + f"/bytes/{size}"], capture_output=True, text=True,
                             timeout=300)
    finally:
        done.set()
        sampler.join()
    assert out.stdout == f"200 {size}"
    grown_mib = (peak[0] - before) / 1024
    print(f"RSS before {before} KiB, peak {peak[0]} KiB (+{grown_mib:.1f} MiB) for 1 GiB")
    if not SANITIZED:
        assert grown_mib < 64


def test_slow_client_applies_backpressure(sidepush):
    """A client that does not read: sidepush buffers about proxy_buffer_size, not the body."""
    size = 256 << 20
    before = sidepush.rss_kib()
    with socket.create_connection(("127.0.0.1", sidepush.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(f"GET /bytes/{size}?cl=1 HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        time.sleep(1.5)  # backend would send 256 MiB in far less if nothing pushed back
        stalled = sidepush.rss_kib()
        total = 0
        s.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        total = len(head.split(b"\r\n\r\n", 1)[1])
        while total < size:
            chunk = s.recv(1 << 20)
            assert chunk, "connection closed early"
            total += len(chunk)
    assert total == size
    grown_mib = (stalled - before) / 1024
    print(f"RSS while client stalled: +{grown_mib:.1f} MiB")
    if not SANITIZED:
        assert grown_mib < 32


def gen_chunks(total, piece=1 << 20):
    block = bytes(range(256)) * (piece // 256)
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        yield block[:n]
        sent += n


def test_large_chunked_upload_streams(make_sidepush):
    sp = make_sidepush("limits: { max_body_size: 1GiB }\n")
    size = 200 << 20
    expected = hashlib.sha256()
    for c in gen_chunks(size):
        expected.update(c)
    before = sp.rss_kib()
    r = requests.post(sp.url + "/upload", data=gen_chunks(size), timeout=120)
    after = sp.rss_kib()
    assert r.status_code == 200
    got = r.json()
    assert got["count"] == size and got["sha256"] == expected.hexdigest()
    if not SANITIZED:
        assert (after - before) / 1024 < 64


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_upload_to_a_backend_that_stops_reading_is_held_back(make_sidepush, framing):
    """The client's body waits in the sockets, not in sidepush: while the backend reads
    nothing, sidepush takes about limits.proxy_buffer_size plus the kernel's buffers of
    the upload, however fast the client sends (it once took all of it)."""
    backend = ScriptedBackend({"/stall": [("sleep", 6), ("close",)]})
    sp = make_sidepush("limits: { max_body_size: 1GiB }\n", backend_url=backend.url)
    size, limit = 256 << 20, 1.2  # under backend.timeout (2 s): then the exchange ends
    block = bytes(range(256)) * 4096  # 1 MiB
    framed = (b"%x\r\n" % len(block)) + block + b"\r\n" if framing == "chunked" else block
    head = "Content-Length: %d" % size if framing == "length" else "Transfer-Encoding: chunked"
    before = sp.rss_kib()
    accepted = 0
    with socket.create_connection(("127.0.0.1", sp.port)) as s:
        s.sendall(f"POST /stall HTTP/1.1\r\nHost: a\r\n{head}\r\n\r\n".encode())
        s.setblocking(False)
        view, deadline = memoryview(framed), time.monotonic() + limit
        while accepted < size and time.monotonic() < deadline:
            _, writable, _ = select.select([], [s], [], 0.1)
            if not writable:
                continue
            try:
                n = s.send(view)
            except BlockingIOError:
                continue
            accepted += n
            view = view[n:] if n < len(view) else memoryview(framed)
        grown_mib = (sp.rss_kib() - before) / 1024
        s.setblocking(True)
        s.settimeout(10)
        answer = s.recv(65536)
    print(f"{framing}: accepted {accepted >> 20} MiB, RSS +{grown_mib:.1f} MiB in {limit} s")
    # A backend that reads nothing for backend.timeout is a timeout, as nginx's
    # proxy_send_timeout.
    assert answer.startswith(b"HTTP/1.1 504 "), answer
    # Kernel buffers on loopback take some tens of MiB at most; the old main took it all.
    assert accepted < 96 << 20
    if not SANITIZED:
        assert grown_mib < 16


def test_content_length_upload_with_expect_continue(sidepush):
    data = bytes(range(256)) * 8192  # 2 MiB: curl sends Expect: 100-continue
    out = subprocess.run(["curl", "-s", "-H", "Content-Type: application/octet-stream",
                          "--data-binary", "@-", sidepush.url + "/upload"],
                         input=data, capture_output=True, timeout=30)
    got = json.loads(out.stdout)
    assert got["count"] == len(data)
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["content_length"] == str(len(data))


def test_backend_down_is_502(backend, make_sidepush, refused_port):
    sp = make_sidepush(backend_url=f"http://127.0.0.1:{refused_port}")
    r = requests.get(sp.url + "/anything", timeout=5)
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["status"] == 502 and r.json()["error"]


def test_backend_timeout_is_504(sidepush):
    r = requests.get(sidepush.url + "/slow/4000", timeout=10)  # backend.timeout is 2s here
    assert r.status_code == 504
    assert "backend.timeout" in r.json()["error"]


def test_keep_alive_reuses_one_connection(sidepush):
    conn = http.client.HTTPConnection("127.0.0.1", sidepush.port, timeout=5)
    ports = set()
    for i in range(5):
        conn.request("GET", f"/echo?i={i}")
        resp = conn.getresponse()
        assert json.loads(resp.read())["path_qs"] == f"/echo?i={i}"
        ports.add(conn.sock.getsockname()[1])
    assert len(ports) == 1


def read_responses(sock, count, timeout=10):
    """Reads count responses off one socket (Content-Length or chunked bodies)."""
    sock.settimeout(timeout)
    f = sock.makefile("rb")
    out = []
    for _ in range(count):
        status = int(f.readline().split()[1])
        headers = {}
        while (line := f.readline()) not in (b"\r\n", b""):
            name, value = line.decode().split(":", 1)
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while (size := int(f.readline().split(b";")[0], 16)) > 0:
                body += f.read(size)
                f.readline()
            f.readline()
        else:
            body = f.read(int(headers.get("content-length", 0)))
        out.append((status, body))
    return out


def test_pipelined_requests_answered_in_order(sidepush):
    reqs = b"".join(f"GET /slow/{ms} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for ms in (300, 0)) + \
        b"GET /echo?third HTTP/1.1\r\nHost: a\r\n\r\n" + \
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" + \
        b"POST /echo?fifth HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    with socket.create_connection(("127.0.0.1", sidepush.port)) as s:
        s.sendall(reqs)
        got = read_responses(s, 5)
    assert [status for status, _ in got] == [200] * 5
    assert got[0][1] == b"slow\n" and got[1][1] == b"slow\n"
    assert json.loads(got[2][1])["path_qs"] == "/echo?third"
    assert json.loads(got[3][1]) == {"status": "ok"}
    assert json.loads(got[4][1])["body"] == "hello"


def test_http10_client(sidepush):
    with socket.create_connection(("127.0.0.1", sidepush.port)) as s:
        s.sendall(b"GET /bytes/1000 HTTP/1.0\r\n\r\n")
        data = b""
        s.settimeout(5)
        while chunk := s.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200")
    assert b"chunked" not in head.lower()
    assert len(body) == 1000


def test_pipelined_past_the_read_cap_all_answered_in_order(sidepush):
    """More pipelined requests than the input may hold (a head's worth past
    what is served): reading pauses at the cap and resumes as they are
    answered, none lost or reordered."""
    count = 1500  # ~60 KB of heads, several times limits.max_header_size
    reqs = b"".join(f"GET /echo?n={i} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
                    for i in range(count))
    with socket.create_connection(("127.0.0.1", sidepush.port)) as s:
        sender = threading.Thread(target=s.sendall, args=(reqs,))
        sender.start()
        got = read_responses(s, count, timeout=30)
        sender.join(10)
    assert [status for status, _ in got] == [200] * count
    assert [json.loads(body)["path_qs"] for _, body in got] == \
        [f"/echo?n={i}" for i in range(count)]


def test_half_closed_after_the_body_still_gets_its_answer(sidepush):
    """A client that sends its body, then shuts its side down (curl --data
    with a closed stdin, many HTTP/1.0 tools) is answered, then closed."""
    with socket.create_connection(("127.0.0.1", sidepush.port)) as s:
        s.sendall(b"POST /echo?half HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        s.shutdown(socket.SHUT_WR)
        [(status, body)] = read_responses(s, 1)
        s.settimeout(5)
        assert s.recv(1) == b""  # and then closed
    assert status == 200 and json.loads(body)["body"] == "hello"
