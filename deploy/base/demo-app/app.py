"""A deliberately ordinary "legacy" web app for trying sidepush.

Plain request/response, Python standard library only, no realtime code of
its own: an order board with an HTML page and a small JSON API. sidepush sits
in front of it and proxies everything it does not answer itself. When an
order is created the app tells sidepush with one plain HTTP POST (a webhook),
and sidepush pushes it to every open page over Server-Sent Events.

    python3 app.py --port 3000 --publish http://127.0.0.1:8081
        [--token-file /etc/sidepush-secret/token] [--redis HOST:PORT --redis-password-file F
         [--redis-user NAME] [--redis-tls [--redis-ca FILE]]]
    python3 app.py --pre-stop http://127.0.0.1:9090/drain --pre-stop-wait 10

Orders live in memory, or with --redis in a Redis hash so that every replica
shows the same board. SIGTERM stops it at once after the requests in flight.
--pre-stop is the pod's preStop hook: it asks sidepush to drain (readiness
off, subscribers sent away while the app still serves), then waits while the
endpoints catch up.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
# In the Kubernetes example the files come flat from a ConfigMap.
STATIC = HERE / "static" if (HERE / "static").is_dir() else HERE
PUBLISH_URL = None
TOKEN_FILE = None

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Orders (legacy app)</title></head>
<body>
<h1>Orders</h1>
<p>Served by an ordinary app through sidepush.</p>
<ul id="orders"></ul>
<form id="new"><input name="item" placeholder="item"><button>Add order</button></form>
<p id="live">live updates: connecting…</p>
<script>
// The page's only realtime code: an EventSource on sidepush's subscribe route.
const live = new EventSource('/events/orders');
live.onopen = () => { document.getElementById('live').textContent = 'live updates: on'; };
live.onmessage = () => load();
async function load() {
  const orders = await (await fetch('/api/orders')).json();
  document.getElementById('orders').innerHTML =
    orders.map(o => `<li>#${o.id} ${o.item} (${o.status})</li>`).join('');
}
document.getElementById('new').onsubmit = async (e) => {
  e.preventDefault();
  await fetch('/api/orders', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({item: e.target.item.value})});
  load();
};
load();
</script>
</body></html>
"""


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.orders = {1: {"id": 1, "item": "coffee", "status": "new"}}

    def add(self, item):
        with self.lock:
            oid = max(self.orders, default=0) + 1
            self.orders[oid] = {"id": oid, "item": item, "status": "new"}
            return self.orders[oid]


class RedisStore:
    """The same board for every replica: orders in one Redis hash, ids from
    INCR. A few lines of RESP over a socket keep the app standard-library only."""

    def __init__(self, address, password_file=None, user=None, tls=False, ca_file=None):
        host, _, port = address.rpartition(":")
        self.address = (host or "127.0.0.1", int(port or 6379))
        self.password_file = password_file
        self.user = user
        # A managed Redis over TLS: its certificate checked against the
        # system's CAs or ca_file, and its name against the host.
        self.tls = ssl.create_default_context(cafile=ca_file) if tls else None
        self.lock = threading.Lock()
        self.sock = None

    def command(self, *args):
        with self.lock:
            for attempt in (0, 1):  # one reconnect: Redis may have restarted
                try:
                    if self.sock is None:
                        self.connect()
                    return self.send(*args)
                except OSError:
                    self.sock = None
                    if attempt:
                        raise

    def connect(self):
        self.sock = socket.create_connection(self.address, timeout=2)
        if self.tls:
            self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.address[0])
        self.reader = self.sock.makefile("rb")
        if self.password_file:
            password = Path(self.password_file).read_text().strip()
            self.send("AUTH", *([self.user] if self.user else []), password)
        if self.send("SETNX", "orders:next", "1"):
            self.send("HSET", "orders", "1", json.dumps({"id": 1, "item": "coffee", "status": "new"}))

    def send(self, *args):
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.reply()

    def reply(self):
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise OSError(f"redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2].decode()
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise OSError("redis: connection lost")

    def all(self):
        return sorted((json.loads(v) for v in self.command("HVALS", "orders")),
                      key=lambda o: o["id"])

    def get(self, oid):
        value = self.command("HGET", "orders", str(oid))
        return json.loads(value) if value else None

    def add(self, item):
        oid = self.command("INCR", "orders:next")
        order = {"id": oid, "item": item, "status": "new"}
        self.command("HSET", "orders", str(oid), json.dumps(order))
        return order


class MemoryStore(Store):
    def all(self):
        with self.lock:
            return list(self.orders.values())

    def get(self, oid):
        with self.lock:
            return self.orders.get(oid)


STORE = MemoryStore()


def publish_token():
    """Read at every publish: a rotated Secret's new token is used at once."""
    if TOKEN_FILE:
        try:
            return Path(TOKEN_FILE).read_text().strip()
        except OSError:
            return None
    return os.environ.get("SIDEPUSH_PUBLISH_TOKEN")


def notify(order):
    """The whole of the app's "realtime": one webhook POST to sidepush."""
    if PUBLISH_URL is None:
        return
    headers = {"Sidepush-Event": "message"}
    token = publish_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{PUBLISH_URL}/publish/orders", method="POST",
                                 data=json.dumps(order).encode(), headers=headers)
    try:
        urllib.request.urlopen(req, timeout=2).close()
    except OSError:
        pass  # the page still works by reloading


class InFlight:
    """Requests being answered, so that SIGTERM lets them finish (but does not
    wait for idle keep-alive connections, which only block in a read)."""

    def __init__(self):
        self.count = 0
        self.done = threading.Condition()

    def __enter__(self):
        with self.done:
            self.count += 1

    def __exit__(self, *exc):
        with self.done:
            self.count -= 1
            self.done.notify_all()

    def wait_idle(self, timeout):
        with self.done:
            self.done.wait_for(lambda: self.count == 0, timeout)


IN_FLIGHT = InFlight()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one_request(self):
        # Counted from the request line on: a kept connection waiting for its
        # next request is not in flight.
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        with IN_FLIGHT:
            self.handle_parsed()

    def handle_parsed(self):
        if len(self.raw_requestline) > 65536 or not self.parse_request():
            return
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        method()
        self.wfile.flush()

    def send_json(self, status, value):
        body = (json.dumps(value) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(self.get)

    def do_POST(self):
        self.answer(self.post)

    def answer(self, handler):
        try:
            handler()
        except OSError as e:  # the store's Redis: away, or its certificate refused
            self.send_json(503, {"error": f"the order store is unavailable: {e}"})

    def get(self):
        if self.path.split("?")[0] == "/push-test.html":
            body = (STATIC / "push-test.html").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/":
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/api/orders":
            self.send_json(200, STORE.all())
        elif self.path.startswith("/api/orders/"):
            tail = self.path.rsplit("/", 1)[1]
            order = STORE.get(int(tail)) if tail.isdigit() else None
            self.send_json(200 if order else 404, order or {"error": "no such order"})
        else:
            self.send_json(404, {"error": "not found"})

    def post(self):
        if self.path != "/api/orders":
            self.send_json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            item = json.loads(self.rfile.read(length) or b"{}").get("item") or "something"
        except (ValueError, AttributeError):
            self.send_json(400, {"error": "expected JSON {\"item\": ...}"})
            return
        order = STORE.add(str(item))
        self.send_json(201, order)
        notify(order)

    def log_message(self, fmt, *args):
        pass


def pre_stop(url, wait):
    """The preStop hook: sidepush drains while this app still serves."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""),
                               timeout=5).close()
    except OSError as e:
        print(f"pre-stop: {url}: {e}", file=sys.stderr)  # stop anyway
    time.sleep(wait)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--publish", help="sidepush publish URL, e.g. http://127.0.0.1:8081")
    parser.add_argument("--token-file", help="the publish token, read at every publish")
    parser.add_argument("--redis", help="HOST:PORT of a Redis shared by every replica")
    parser.add_argument("--redis-password-file")
    parser.add_argument("--redis-user", help="a Redis ACL user (AUTH user password)")
    parser.add_argument("--redis-tls", action="store_true", help="TLS to Redis (rediss://)")
    parser.add_argument("--redis-ca", help="the CA that signed Redis's certificate")
    parser.add_argument("--pre-stop", metavar="URL", help="POST URL (sidepush's /drain), wait, exit")
    parser.add_argument("--pre-stop-wait", type=float, default=10)
    args = parser.parse_args()
    if args.pre_stop:
        pre_stop(args.pre_stop, args.pre_stop_wait)
        return
    global PUBLISH_URL, TOKEN_FILE, STORE
    PUBLISH_URL = args.publish.rstrip("/") if args.publish else None
    TOKEN_FILE = args.token_file
    if args.redis:
        STORE = RedisStore(args.redis, args.redis_password_file, args.redis_user,
                           args.redis_tls or bool(args.redis_ca), args.redis_ca)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    # PID 1 in a container gets no default SIGTERM action: without this the
    # kubelet waits out the whole grace period and then kills the app.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    IN_FLIGHT.wait_idle(timeout=5)


if __name__ == "__main__":
    main()
