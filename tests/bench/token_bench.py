"""Subscribe cost: a signed token against forward-auth (cached and uncached).

    /usr/bin/python3 tests/bench/token_bench.py [--subscribers 10000] [--rounds 3]

One sidepush (one worker) with three routes, each subscribed to by N SSE
clients of tests/bench/fanout (one message published, so that every
subscriber is known to be in): /t/ with subscribe.token (HS256, the token
in ?token=), /c/ with authorize and the default 30 s cache (every client
sends the same request, so the backend is asked once), /u/ with authorize
and cache: 0s (asked for every client). The backend is an aiohttp server
that allows everything and counts what it is asked. Prints per route the
time to connect all N, sidepush's CPU per subscribe (its CPU over the run,
connects and the one delivery, divided by N), and the backend requests.
Prints figures; asserts nothing.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import cpu_seconds, free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SIDEPUSH_BUILD", ROOT / "build"))
SIDEPUSH = BUILD / "cmd" / "sidepush"
FANOUT = BUILD / "tests" / "bench" / "fanout"
SECRET = "a-benchmark-secret-of-at-least-32-bytes"

BACKEND = """
import sys
from aiohttp import web
asked = 0
async def auth(request):
    global asked
    asked += 1
    return web.Response(status=200)
async def count(request):
    return web.json_response({"asked": asked})
app = web.Application()
app.router.add_get("/auth", auth)
app.router.add_get("/count", count)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def hs256(claims):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def asked(port):
    import urllib.request
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/count").read())["asked"]


def run(route, path, subscribers, backend_port, tmp):
    port, pub = free_port(), free_port()
    conf = Path(tmp) / f"{route}.yaml"
    conf.write_text(f"""listen: 127.0.0.1:{port}
publish_listen: 127.0.0.1:{pub}
backend: {{ url: 'http://127.0.0.1:{backend_port}' }}
log: {{ level: warn }}
limits: {{ max_connections: 100000 }}
routes:
  - path: /t/{{channel}}
    subscribe: {{ transports: [sse], token: {{ secret: '{SECRET}' }} }}
  - path: /c/{{channel}}
    subscribe: {{ transports: [sse] }}
    authorize: {{ url: /auth }}
  - path: /u/{{channel}}
    subscribe: {{ transports: [sse] }}
    authorize: {{ url: /auth, cache: 0s }}
""")
    sp = subprocess.Popen([str(SIDEPUSH), "--config", str(conf)], stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        before_cpu, before_asked = cpu_seconds(sp.pid), asked(backend_port)
        started = time.monotonic()
        out = subprocess.run([str(FANOUT), "--port", str(port), "--path", path,
                              "--publish-port", str(pub), "--publish-path", "/publish/bench",
                              "--mode", "sse", "--subscribers", str(subscribers), "--messages", "1",
                              "--rate", "-1", "--sources", "8", "--publishers", "1",
                              "--timeout", "120"], capture_output=True, text=True, timeout=300)
        wall = time.monotonic() - started
        result = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
        return {"route": route, "connect_s": result["connect_s"],
                "delivered": f"{result['delivered']}/{result['expected']}",
                "cpu_us_per_subscribe": (cpu_seconds(sp.pid) - before_cpu) / subscribers * 1e6,
                "backend_requests": asked(backend_port) - before_asked, "wall_s": wall}
    finally:
        sp.terminate()
        sp.wait(15)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    token = hs256({"channels": ["bench"], "sub": "bench", "exp": int(time.time()) + 3600})
    backend_port = free_port()
    backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend_port)])
    rows = []
    try:
        wait_port(backend_port)
        with tempfile.TemporaryDirectory(prefix="sidepush-token-") as tmp:
            for _ in range(args.rounds):
                for route, path in (("token", f"/t/bench?token={token}"),
                                    ("authorize, cached", "/c/bench"),
                                    ("authorize, uncached", "/u/bench")):
                    r = run(route, path, args.subscribers, backend_port, tmp)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        backend.terminate()
        backend.wait(10)
    print(f"\nsubscribe cost: {args.subscribers} SSE subscribers per run, {args.rounds} rounds, "
          f"loopback, {os.cpu_count()} CPUs (medians)")
    print(f"{'route':20} {'connect s':>9} {'CPU us/subscribe':>16} {'backend requests':>16}")
    for route in ("token", "authorize, cached", "authorize, uncached"):
        mine = sorted((r for r in rows if r["route"] == route), key=lambda r: r["cpu_us_per_subscribe"])
        m = mine[len(mine) // 2]
        print(f"{route:20} {m['connect_s']:9.2f} {m['cpu_us_per_subscribe']:16.1f} "
              f"{m['backend_requests']:16}")


if __name__ == "__main__":
    main()
