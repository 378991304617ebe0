"""A deliberately ordinary "legacy" web app for trying sidepush.

Plain request/response, Python standard library only, no realtime code of
its own: an order board with an HTML page and a small JSON API. sidepush sits
in front of it and proxies everything it does not answer itself. When an
order is created the app tells sidepush with one plain HTTP POST (a webhook),
and sidepush pushes it to every open page over Server-Sent Events.

    python3 app.py --port 3000 --publish http://127.0.0.1:8081
"""
import argparse
import json
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
# In the Kubernetes example the files come flat from a ConfigMap.
STATIC = HERE / "static" if (HERE / "static").is_dir() else HERE
PUBLISH_URL = None

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


STORE = Store()


def notify(order):
    """The whole of the app's "realtime": one webhook POST to sidepush."""
    if PUBLISH_URL is None:
        return
    headers = {"Sidepush-Event": "message"}
    token = os.environ.get("SIDEPUSH_PUBLISH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{PUBLISH_URL}/publish/orders", method="POST",
                                 data=json.dumps(order).encode(), headers=headers)
    try:
        urllib.request.urlopen(req, timeout=2).close()
    except OSError:
        pass  # the page still works by reloading


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, status, value):
        body = (json.dumps(value) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
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
            with STORE.lock:
                self.send_json(200, list(STORE.orders.values()))
        elif self.path.startswith("/api/orders/"):
            with STORE.lock:
                order = STORE.orders.get(int(self.path.rsplit("/", 1)[1] or 0))
            self.send_json(200 if order else 404, order or {"error": "no such order"})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--publish", help="sidepush publish URL, e.g. http://127.0.0.1:8081")
    args = parser.parse_args()
    global PUBLISH_URL
    PUBLISH_URL = args.publish.rstrip("/") if args.publish else None
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
