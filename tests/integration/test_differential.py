"""Differential testing of the proxy with nginx as the oracle (issue 22; the
HTTP Garden project is the model). Every backend behaviour of
differential_cases.py runs through `nginx proxy_pass` (a keep-alive
upstream) and through sidepush, each against its own fresh scripted backend:
a warm-up request leaves a pooled connection, client A's request meets the
behaviour, then client B (another user, with a session cookie) asks for
/victim while A's connection stays open. What each client receives and what
the backend saw are compared; a difference fails unless
differential-justified.yaml lists it with its reason.

Apart from nginx, two things must hold for sidepush in every case: B gets
exactly its own page, and no request but B's reaches the backend with B's
cookie."""
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import HERE, Sidepush, free_port, wait_port
from differential_cases import CASES
from scripted import ScriptedBackend

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (.ci/deps)")

JUSTIFIED = yaml.safe_load((HERE / "differential-justified.yaml").read_text()) or {}
VICTIM = b"GET /victim HTTP/1.1\r\nHost: app\r\nCookie: session=VICTIM\r\nConnection: close\r\n\r\n"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_read_timeout 2s;
            proxy_connect_timeout 1s;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, tmp: Path, backend_port: int):
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=self.port, backend=backend_port))
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp), "-e",
                                      str(tmp / "nginx.err")], stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "nginx")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Start:
    """A sidepush with one worker (one pool, as nginx's one worker has)."""

    def __init__(self, tmp: Path, backend_url: str):
        tmp.mkdir(parents=True, exist_ok=True)
        self.sp = Sidepush(backend_url, "workers: 1\n", tmp)
        self.port = self.sp.port

    def stop(self):
        assert self.sp.stop() == 0, self.sp.output
        assert "Sanitizer" not in self.sp.output and "runtime error" not in self.sp.output


class Reader:
    """Reads answers off a socket as a lenient client would, 1xx included
    (http.client takes any 1xx but 100 for the final answer)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def head(self):
        status = self.line().split(b" ")
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
            raise ValueError("not an HTTP/1.x status line")
        headers = {}
        while (line := self.line()) != b"":
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        return int(status[1]), headers

    def body(self, status, headers, head_request):
        if head_request or status in (204, 304) or status < 200:
            return b""
        if b"chunked" in b",".join(headers.get(b"transfer-encoding", [])).lower():
            out = b""
            while (size := int(self.line().split(b";")[0], 16)) > 0:
                out += self.take(size)
                self.line()
            while self.line() != b"":
                pass
            return out
        if b"content-length" in headers:
            return self.take(int(headers[b"content-length"][0]))
        try:
            while True:
                self.more()
        except EOFError:
            data, self.buf = self.buf, b""
            return data


def read_answer(sock, head_request=False, timeout=3.0):
    """(status, body, forged-cookie, interim statuses) of one answer; an error
    tag in status when there is none."""
    sock.settimeout(timeout)
    r, interim = Reader(sock), []
    try:
        while True:
            status, headers = r.head()
            if status >= 200 or status == 101:
                break
            interim.append(status)
    except socket.timeout:
        return ("timeout", b"", False, interim)
    except (EOFError, OSError, ValueError) as e:
        return ("closed:" + type(e).__name__, b"", False, interim)
    forged = any(b"ATTACKER" in v for v in headers.get(b"set-cookie", []))
    try:
        body = r.body(status, headers, head_request)
    except socket.timeout:
        body = b"timeout:" + r.buf
    except (EOFError, OSError, ValueError):
        body = b"cut:" + r.buf
    return (status, body, forged, interim)


def exchange(port, data, head_request=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    return s, read_answer(s, head_request)


def run_case(case, proxy_port, backend):
    """What A and B received and what the backend saw, through one proxy."""
    warm, warm_answer = exchange(proxy_port, VICTIM.replace(b"/victim", b"/warm").replace(
        b"Cookie: session=VICTIM\r\n", b""))
    warm.close()
    assert warm_answer[0] == 200, warm_answer
    head = case["a"].startswith(b"HEAD ")
    got = {}
    a = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
    a.sendall(case["a"])
    if case.get("b_during") is not None:
        def victim():
            time.sleep(case["b_during"])
            b, got["b"] = exchange(proxy_port, VICTIM)
            b.close()
        t = threading.Thread(target=victim)
        t.start()
        got["a"] = read_answer(a, head)
        t.join()
    else:
        got["a"] = read_answer(a, head)
        b, got["b"] = exchange(proxy_port, VICTIM)
        b.close()
    a.close()
    time.sleep(0.05)
    seen = []
    for _, req in backend.requests:
        target = req.split(b" ", 2)[1]
        if target != b"/warm":
            seen.append((target.decode(errors="replace"), b"VICTIM" in req))
    got["backend"] = sorted(seen)
    return got


def comparable(obs):
    """Errors are compared by status only: nginx answers HTML, sidepush JSON."""
    status, body, forged, interim = obs
    if isinstance(status, int) and status >= 500:
        return (status, forged, interim)
    return (status, body, forged, interim)


def through(kind, tmp, name, case):
    backend = ScriptedBackend({"/a": case["script"]}, timeout=5)
    proxy = (Nginx(tmp / f"{name}-nginx", backend.port) if kind == "nginx"
             else Start(tmp / f"{name}-sidepush", backend.url))
    try:
        return run_case(case, proxy.port, backend)
    finally:
        proxy.stop()
        backend.stop()


@pytest.mark.skipif(os.environ.get("SIDEPUSH_TEST_WORKERS") == "4",
                    reason="one worker on both sides; run once per build")
def test_sidepush_answers_as_nginx_does(tmp_path):
    differences, unsafe, rows = [], [], []
    for name, case in CASES.items():
        ours = through("sidepush", tmp_path, name, case)
        theirs = through("nginx", tmp_path, name, case)
        if case.get("limit"):
            pass
        elif ours["b"] != (200, b"/victim", False, []) or any(c for p, c in ours["backend"] if p != "/victim"):
            unsafe.append(f"{name}: B got {ours['b']}, backend saw {ours['backend']}")
        for field in ("a", "b", "backend"):
            mine, oracle = ours[field], theirs[field]
            if field != "backend":
                mine, oracle = comparable(mine), comparable(oracle)
            same = mine == oracle
            justified = JUSTIFIED.get(name, {}).get(field)
            rows.append(f"{name:28} {field:8} {'same' if same else 'JUSTIFIED' if justified else 'DIFF'}"
                        f"  sidepush={mine!r:.70}  nginx={oracle!r:.70}")
            if not same and not justified:
                differences.append(rows[-1])
    print("\n".join(rows))
    assert not unsafe, "one user's bytes reached another:\n" + "\n".join(unsafe)
    assert not differences, "unjustified differences from nginx:\n" + "\n".join(differences)
    stale = [f"{n}.{f}" for n, fields in JUSTIFIED.items() for f in fields if n not in CASES]
    assert not stale, f"justified differences for cases that no longer exist: {stale}"
