"""The proxy's own upstream client: kept connections counted at a real
backend (Python's threading HTTP/1.1 server), a backend that closes idle
connections sooner than sidepush does, and connection limits per kept
connection."""
import http.server
import os
import subprocess
import sys
import threading
import time

import requests

from conftest import HERE, free_port
from pushutil import CurlSSE


class CountingBackend:
    """HTTP/1.1 with keep-alive; counts the connections it accepts. With
    idle_close, a connection idle that long is closed by the backend."""

    def __init__(self, idle_close=None):
        counter = self
        self.connections = 0
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_close

            def setup(self):
                counter.connections += 1
                super().setup()

            def do_GET(self):
                counter.requests += 1
                body = f"hello {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                counter.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_kept_connections_are_reused(make_sidepush):
    backend = CountingBackend()
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url)
        with requests.Session() as s:
            for i in range(20):
                r = s.get(f"{sp.url}/page/{i}", timeout=5)
                assert r.status_code == 200 and r.text == f"hello /page/{i}"
        assert backend.requests == 20
        assert backend.connections == 1  # one kept connection carried all twenty
        text = requests.get(f"{sp.url}/metrics", timeout=5).text
        assert 'sidepush_proxy_upstream_total{event="connect"} 1' in text
        assert 'sidepush_proxy_upstream_total{event="reuse"} 19' in text
    finally:
        backend.stop()


def test_backend_closing_idle_connections_costs_no_error(make_sidepush):
    """The backend closes a kept connection after 0.3 s idle; sidepush keeps
    them 4 s. Every later request must still be answered (the closed one is
    dropped or, caught in the act, retried on a fresh connection)."""
    backend = CountingBackend(idle_close=0.3)
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url)
        with requests.Session() as s:
            for i in range(4):
                assert s.get(f"{sp.url}/again/{i}", timeout=5).status_code == 200
                assert s.post(f"{sp.url}/post/{i}", data=b"x" * 100, timeout=5).content == b"x" * 100
                time.sleep(0.5)
        assert backend.connections >= 4  # each pause cost the kept connection
    finally:
        backend.stop()


def test_keepalive_limits_are_configurable(make_sidepush):
    """keepalive_requests: 5 closes a kept connection after five requests;
    keepalive: 0 keeps none."""
    backend = CountingBackend()
    try:
        sp = make_sidepush("workers: 1\n", backend_url=backend.url,
                           backend_keys=", keepalive_requests: 5")
        with requests.Session() as s:
            for i in range(20):
                assert s.get(f"{sp.url}/n/{i}", timeout=5).status_code == 200
        assert backend.connections == 4
        before = backend.connections
        sp2 = make_sidepush("workers: 1\n", backend_url=backend.url, backend_keys=", keepalive: 0")
        with requests.Session() as s:
            for i in range(5):
                assert s.get(f"{sp2.url}/n/{i}", timeout=5).status_code == 200
        assert backend.connections - before == 5
    finally:
        backend.stop()


def test_unix_socket_backend(make_sidepush, tmp_path):
    """backend.url: unix:/path: proxied requests (the own client) and a poll
    route's requests (libcurl) both reach an aiohttp app on a Unix socket."""
    path = str(tmp_path / "app.sock")
    app = subprocess.Popen([sys.executable, str(HERE / "backend.py"), path], stdout=subprocess.PIPE)
    try:
        app.stdout.readline()  # "ready"
        for _ in range(100):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        sp = make_sidepush("routes:\n  - path: /live/{name}\n"
                           "    poll: { url: '/resource/{name}', interval: 1s }\n",
                           backend_url=f"'unix:{path}'")
        with requests.Session() as s:
            r = s.get(f"{sp.url}/echo/through/the/socket?q=1", timeout=5)
            assert r.status_code == 200 and r.json()["path_qs"] == "/echo/through/the/socket?q=1"
            assert r.json()["method"] == "GET"
            r = s.post(f"{sp.url}/echo", data=b"y" * 5000, timeout=5)
            assert r.json()["body_len"] == 5000
        sse = CurlSSE(f"{sp.url}/live/sock")
        try:
            events = sse.events(1, timeout=10)
            assert events and '"v": 0' in events[0]["data"]  # polled over the socket
        finally:
            sse.close()
    finally:
        app.terminate()
        app.wait(10)
