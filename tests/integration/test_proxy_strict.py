"""The proxy as strict as nginx (issue 22): no pooled backend connection ever
carries one user's bytes to another, against real backends (Python's
http.server, Node's http) and a scripted raw one. One worker, so the attacker
and the victim share one pool."""
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import HERE, free_port
from scripted import ScriptedBackend, ok


class LegacyApp:
    """Python's http.server on keep-alive: it answers 401 to POST /early
    without reading the body (as auth middleware does), sends a body to HEAD
    (do_HEAD = do_GET, a common mistake), and echoes what a GET saw."""

    def __init__(self):
        app = self
        self.paths = []
        self.seen = []  # (path, cookie) of every GET

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                app.paths.append(self.path)
                app.seen.append((self.path, self.headers.get("Cookie")))
                if self.path.startswith("/forge"):
                    body = (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=ATTACKER\r\n"
                            b"Content-Length: 6\r\n\r\nforged")
                else:
                    body = json.dumps({"path": self.path,
                                       "cookie": self.headers.get("Cookie")}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                time.sleep(0.002)  # the body in a later segment than the head
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the proxy closed it (a smuggled request's answer)

            do_HEAD = do_GET

            def do_POST(self):
                app.paths.append(self.path)
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def legacy_app():
    app = LegacyApp()
    yield app
    app.stop()


def raw_request(port, data: bytes, timeout=5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: t\r\nX-Swallow: "


def test_an_early_answer_never_pools_a_half_sent_request(make_sidepush, legacy_app):
    """Item 1: a POST whose body the backend never read leaves its rest unsent;
    the next user's request must not ride on that connection."""
    sp = make_sidepush("workers: 1\n", backend_url=legacy_app.url)  # 100000 bytes: streamed
    for _ in range(5):
        attacker = socket.create_connection(("127.0.0.1", sp.port), timeout=5)
        attacker.sendall(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" +
                         SMUGGLE.ljust(80, b"x")[:80])
        answer = attacker.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401"), answer
        r = requests.get(f"{sp.url}/victim/profile", cookies={"session": "VICTIM"}, timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/victim/profile", r.text
        attacker.close()
    # The backend may run /smuggled on the attacker's own connection (those are
    # the attacker's bytes, as through nginx); never with anyone else's request.
    assert ("/victim/profile", "session=VICTIM") in legacy_app.seen
    assert all(cookie is None for path, cookie in legacy_app.seen if path == "/smuggled")
    text = requests.get(f"{sp.url}/metrics", timeout=5).text
    assert 'sidepush_proxy_upstream_total{event="unpooled"} 5' in text


def test_a_trickled_body_is_read_whole_before_the_backend_is_asked(make_sidepush, legacy_app):
    """Item 11: with request_buffer (the default), an upload that trickles holds
    no backend connection, and one that stops is cut by limits.body_timeout."""
    sp = make_sidepush("workers: 1\nlimits: { body_timeout: 1s }\n", backend_url=legacy_app.url)
    slow = socket.create_connection(("127.0.0.1", sp.port), timeout=5)
    slow.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    for _ in range(3):
        slow.sendall(b"x")
        time.sleep(0.3)
    assert "/upload" not in legacy_app.paths  # the backend has not been asked yet
    assert requests.get(f"{sp.url}/other", timeout=5).status_code == 200
    answer = slow.recv(65536)  # then silence: 408 after body_timeout
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"limits.body_timeout" in answer
    slow.close()
    assert "/upload" not in legacy_app.paths


def test_a_late_body_after_head_never_reaches_another_user(make_sidepush, legacy_app):
    """Item 3: http.server sends a body to HEAD, in a later segment; the
    connection must never be reused, or a victim gets that body as its answer."""
    sp = make_sidepush("workers: 1\n", backend_url=legacy_app.url)
    forged = 0
    errors = []

    def attack():
        try:
            requests.head(f"{sp.url}/forge", timeout=5)
        except requests.RequestException as e:
            errors.append(e)

    for _ in range(40):
        t = threading.Thread(target=attack)
        t.start()
        r = requests.get(f"{sp.url}/victim", timeout=5)
        t.join()
        forged += "forged" in r.text or "ATTACKER" in r.headers.get("Set-Cookie", "")
        assert r.status_code == 200 and r.json()["path"] == "/victim", r.text
    assert forged == 0 and not errors


def test_interim_answers_are_never_final(make_sidepush):
    """Item 2 and 13: 102, 103 and a lone 100 are interim; the exchange reads on
    to the final answer, and the next user gets its own."""
    scripts = {}
    for code in (b"100 Continue", b"102 Processing", b"103 Early Hints\r\nLink: </a.css>"):
        path = "/interim/" + code[:3].decode()
        scripts[path] = [("send", b"HTTP/1.1 " + code + b"\r\n\r\n"), ("sleep", 0.1),
                         ("send", ok(b"final for " + path.encode()))]
    backend = ScriptedBackend(scripts)
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url)
        with requests.Session() as s:
            for path in scripts:
                r = s.get(sp.url + path, timeout=5)
                assert r.status_code == 200 and r.text == "final for " + path
                r = requests.get(f"{sp.url}/victim", timeout=5)
                assert r.status_code == 200 and r.text == "/victim"
    finally:
        backend.stop()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_node_early_hints(make_sidepush, tmp_path):
    """Item 2 with Node's own res.writeEarlyHints()."""
    port = free_port()
    script = tmp_path / "app.js"
    script.write_text(
        "const http = require('http');\n"
        "http.createServer((req, res) => {\n"
        "  if (req.url === '/hints') {\n"
        "    res.writeEarlyHints({link: '</a.css>; rel=preload'});\n"
        "    setTimeout(() => res.end('after hints'), 100);\n"
        "  } else res.end('page ' + req.url);\n"
        f"}}).listen({port}, '127.0.0.1', () => console.log('ready'));\n")
    node = subprocess.Popen(["node", str(script)], stdout=subprocess.PIPE)
    try:
        node.stdout.readline()
        sp = make_sidepush("workers: 1\n", backend_url=f"http://127.0.0.1:{port}")
        for _ in range(3):
            r = requests.get(f"{sp.url}/hints", timeout=5)
            assert r.status_code == 200 and r.text == "after hints"
            r = requests.get(f"{sp.url}/victim", timeout=5)
            assert r.text == "page /victim"
    finally:
        node.kill()
        node.wait()


def test_a_non_idempotent_request_is_never_sent_twice(make_sidepush):
    """Item 4: the backend does the work, then closes without answering: the
    client gets 502, and the work happened once."""
    backend = ScriptedBackend({"/work": [("read_body",), ("close",)]})
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url)
        for method, body in (("POST", None), ("PATCH", None), ("POST", b""), ("PUT", b"data")):
            assert requests.get(f"{sp.url}/warm", timeout=5).status_code == 200  # a kept connection
            before = backend.paths().count("/work")
            r = requests.request(method, f"{sp.url}/work", data=body, timeout=5)
            assert r.status_code == 502, (method, r.status_code)
            assert backend.paths().count("/work") == before + 1, method
    finally:
        backend.stop()


def test_an_idempotent_retry_is_whole(make_sidepush):
    """Item 4: a GET on a kept connection the backend closed is retried once,
    unseen, with its whole head."""
    backend = ScriptedBackend({"/once": [("close",)]})
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url)
        assert requests.get(f"{sp.url}/warm", timeout=5).status_code == 200
        r = requests.get(f"{sp.url}/once", timeout=5)
        assert r.status_code == 502  # closed twice (the fresh connection too)
        assert backend.paths().count("/once") == 2
    finally:
        backend.stop()


def test_only_chunked_alone_is_a_transfer_coding(make_sidepush):
    """Item 14 and 15: "gzip, chunked" and CL+TE are 502 bad responses, logged
    as backend_bad_response."""
    backend = ScriptedBackend({
        "/gzip": [("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                           b"5\r\nhello\r\n0\r\n\r\n")],
        "/both": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")],
    })
    try:
        sp = make_sidepush("workers: 1\nlog: { level: warn }\n", backend_url=backend.url)
        for path in ("/gzip", "/both"):
            r = requests.get(sp.url + path, timeout=5)
            assert r.status_code == 502
            assert r.json()["error"] == "backend sent an invalid or ambiguous response"
        sp.stop()
        assert sp.output.count('"backend_bad_response"') == 2, sp.output
        assert '"backend_error"' not in sp.output
    finally:
        backend.stop()


def test_client_cannot_forge_what_sidepush_sets(make_sidepush):
    """Item 16: Sidepush-* and X-Original-URI from a client never reach the
    backend; X-Forwarded-Proto is http unless the client is a trusted proxy."""
    backend = ScriptedBackend({})
    forged = {"Sidepush-User": "admin", "sidepush-channels": "all", "X-Original-URI": "/admin",
              "X-Forwarded-Proto": "https"}
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url)
        assert requests.get(f"{sp.url}/p", headers=forged, timeout=5).status_code == 200
        trusted = make_sidepush("workers: 1\n", backend_url=backend.url,
                                backend_keys=", trusted_proxies: [10.0.0.0/8, 127.0.0.1]")
        assert requests.get(f"{trusted.url}/t", headers=forged, timeout=5).status_code == 200
        heads = {head.split(b" ")[1]: head.lower() for _, head in backend.requests}
        for head in heads.values():
            assert b"sidepush-" not in head and b"x-original-uri" not in head, head
        assert b"x-forwarded-proto: http\r\n" in heads[b"/p"] + b"\r\n"
        assert b"x-forwarded-proto: https\r\n" in heads[b"/t"] + b"\r\n"
    finally:
        backend.stop()


def read_json_answers(sock, count, timeout=5):
    """count pipelined JSON answers (Content-Length framed) off one socket."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0])
        while len(buf) < length:
            buf += sock.recv(65536)
        out.append(json.loads(buf[:length]))
        buf = buf[length:]
    return out


def test_a_keep_alive_client_connection_carries_nothing_to_its_next_request(sidepush):
    """What survives on a keep-alive client connection from one request to the
    next (lib/http/server.h): the socket and the bytes already sent after the
    request. Not a header, a body byte or a handler's state of the last one."""
    with socket.create_connection(("127.0.0.1", sidepush.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nCookie: session=ONE\r\nX-User: alice\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Trailer: t\r\n\r\n"
                  b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        first, second = read_json_answers(s, 2)
    assert first["body"] == "body" and ["X-User", "alice"] in first["headers"]
    names = {k.lower() for k, _ in second["headers"]}
    assert second["method"] == "GET" and second["body_len"] == 0
    assert not names & {"cookie", "x-user", "x-trailer", "transfer-encoding", "content-length"}


def test_a_slow_client_is_not_taken_for_a_stalled_backend(make_sidepush):
    """Item 12: backend.body_timeout ran while the proxy had paused the backend
    because the client was slow, cut the download and blamed the backend."""
    blob = b"y" * (48 << 20)  # more than every socket buffer on the way holds
    backend = ScriptedBackend({"/big": [("send", ok(blob))]}, timeout=30)
    try:
        sp = make_sidepush("workers: 1\nlimits: { proxy_buffer_size: 64KiB }\n",
                           backend_url=backend.url, backend_keys=", body_timeout: 1s")
        with socket.create_connection(("127.0.0.1", sp.port), timeout=10) as s:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            time.sleep(2.5)  # the client reads nothing for longer than body_timeout
            got = b""
            while chunk := s.recv(1 << 20):
                got += chunk
        assert got.endswith(blob), len(got)
        sp.stop()
        assert "stopped sending the response body" not in sp.output
    finally:
        backend.stop()
