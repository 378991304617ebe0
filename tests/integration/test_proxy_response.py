"""The response path of the reverse proxy against a raw-socket backend that
sends what a sloppy or hostile backend might: a response that can be read two
ways is a 502 (logged), never forwarded, and hop-by-hop headers stay behind."""
import socket
import time

import pytest

from rawbackend import RawBackend

SMUGGLED = b"HTTP/1.1 299 Forged\r\nContent-Length: 0\r\n\r\n"

RESPONSES = {
    # Content-Length and chunked together: the decoded body must not go out
    # under the backend's length (the forged response would be read next).
    "/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"%x\r\n" % (5 + len(SMUGGLED)) + b"hello" + SMUGGLED + b"\r\n0\r\n\r\n",
    "/te-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
              b"3\r\nabc\r\n0\r\n\r\n",
    "/two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello",
    "/same-cl-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "/cl-list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
    "/cl-sign": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "/bare-cr": b"HTTP/1.1 200 OK\r\nX-Evil: a\rSet-Cookie: pwned=1\r\nContent-Length: 2\r\n\r\nok",
    "/folded": b"HTTP/1.1 200 OK\r\nX-Long: first\r\n second\r\nContent-Length: 2\r\n\r\nok",
    "/no-colon": b"HTTP/1.1 200 OK\r\nJust a line\r\nContent-Length: 2\r\n\r\nok",
    "/bad-name": b"HTTP/1.1 200 OK\r\nX Bad: 1\r\nContent-Length: 2\r\n\r\nok",
    "/upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\n"
                b"raw bytes of another protocol",
    "/connection-named": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\n"
                         b"Connection: X-Other\r\nX-Internal: secret\r\nX-Other: also\r\n"
                         b"X-Public: kept\r\nContent-Length: 2\r\n\r\nok",
    "/fine": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Public: kept\r\n\r\nok",
    "/fine-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
}


@pytest.fixture(scope="module")
def raw():
    b = RawBackend(RESPONSES)
    yield b
    b.stop()


@pytest.fixture
def sp(make_sidepush, raw):
    return make_sidepush(backend_url=raw.url)


def exchange(sp, request: bytes, timeout=5.0) -> bytes:
    """Sends request on one connection and reads until the server closes it."""
    s = socket.create_connection(("127.0.0.1", sp.port), timeout=timeout)
    s.sendall(request)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def get(path, keep_alive=True):
    conn = b"keep-alive" if keep_alive else b"close"
    return b"GET %s HTTP/1.1\r\nHost: app\r\nConnection: %s\r\n\r\n" % (path.encode(), conn)


@pytest.mark.parametrize("path", ["/cl-te", "/te-cl", "/two-cl", "/same-cl-twice", "/cl-list",
                                  "/cl-sign", "/bare-cr", "/folded", "/no-colon", "/bad-name",
                                  "/upgrade"])
def test_ambiguous_responses_are_502(sp, path):
    # Two requests on one connection: the second must get its own answer,
    # never bytes smuggled in the first one's body.
    out = exchange(sp, get(path) + get("/fine", keep_alive=False))
    assert out.startswith(b"HTTP/1.1 502 "), out[:200]
    assert b"299 Forged" not in out and b"pwned" not in out and b"raw bytes" not in out
    assert out.count(b"HTTP/1.1 ") == 2 and b"X-Public: kept" in out, out
    sp.stop()
    assert "backend_bad_response" in sp.output or "backend_error" in sp.output  # logged


def test_headers_named_in_backend_connection_are_removed(sp):
    out = exchange(sp, get("/connection-named", keep_alive=False))
    head = out.split(b"\r\n\r\n", 1)[0]
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"X-Public: kept" in head
    assert b"X-Internal" not in head and b"X-Other" not in head and b"secret" not in head


def test_well_formed_responses_still_pass(sp):
    out = exchange(sp, get("/fine") + get("/fine-chunked", keep_alive=False))
    assert out.count(b"HTTP/1.1 200 OK") == 2 and out.count(b"ok") >= 2


def test_every_connection_field_counts(sp, raw):
    """Connection: keep-alive then Connection: X-Secret: X-Secret is private to
    this hop; a second Connection: close closes after the answer."""
    req = (b"GET /fine?conn HTTP/1.1\r\nHost: app\r\nConnection: keep-alive\r\n"
           b"Connection: X-Secret\r\nX-Secret: do-not-forward\r\n\r\n")
    exchange(sp, req, timeout=2)
    head = [r for r in raw.requests if b"/fine?conn" in r][-1]
    assert b"X-Secret" not in head and b"do-not-forward" not in head
    t0 = time.monotonic()
    out = exchange(sp, b"GET /fine HTTP/1.1\r\nHost: app\r\nConnection: keep-alive\r\n"
                       b"Connection: close\r\n\r\n", timeout=5)
    assert out.startswith(b"HTTP/1.1 200") and time.monotonic() - t0 < 4  # closed, not idle


@pytest.mark.parametrize("target", ["/a/../secret/x", "/a/./b", "/a//b", "/%2e%2e/x", "/a/b/.."])
def test_target_is_forwarded_exactly(sp, raw, target):
    exchange(sp, b"GET %s HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n" % target.encode())
    lines = [r.split(b"\r\n", 1)[0] for r in raw.requests]
    assert b"GET %s HTTP/1.1" % target.encode() in lines, lines[-3:]
