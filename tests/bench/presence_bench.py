"""Presence at scale: N SSE subscribers of N/2 users (two tabs each) join one
presence channel, then all leave. Prints the time until the member list is
complete and until it is empty again, the webhooks sent against the events
they carry (batched), and sidepush's memory per member and per subscriber.
Asserts nothing.

    /usr/bin/python3 tests/bench/presence_bench.py [--subscribers 10000] [--workers 1]
                                                   [--replicas 2]

With --replicas N (2 or more) N sidepush processes share a redis-server
started here on loopback; subscriber i connects to replica i % N, so most
users have a tab on two replicas; the list is read from the first replica
and the webhooks counted are the deployment's.

The backend (aiohttp, in this process) answers forward-auth with the user
named in the subscription's query and receives the webhooks.
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from benchutil import cpu_seconds, free_port, rss_kib, start_redis, wait_port, wait_redis_up

ROOT = Path(__file__).resolve().parents[2]
SIDEPUSH = os.environ.get("SIDEPUSH_BIN", str(ROOT / "build" / "cmd" / "sidepush"))


class Backend:
    """Forward-auth by ?user=, and a webhook receiver that counts."""

    def __init__(self, port):
        self.port = port
        self.posts = 0
        self.events = {}

    async def auth(self, request):
        query = parse_qs(urlsplit(request.headers.get("X-Original-URI", "")).query)
        user = query["user"][0]
        return web.Response(status=204, headers={"Sidepush-User": user,
                                                 "Sidepush-User-Info": json.dumps({"n": user})})

    async def hook(self, request):
        body = await request.json()
        self.posts += 1
        for e in body["events"]:
            self.events[e["name"]] = self.events.get(e["name"], 0) + 1
        return web.Response(status=204)

    def run(self, ready):
        async def main():
            app = web.Application()
            app.router.add_get("/auth/{channel}", self.auth)
            app.router.add_post("/hooks", self.hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port, backlog=4096).start()
            ready.set()
            while True:
                await asyncio.sleep(3600)
        asyncio.run(main())


def members(publish_port):
    url = f"http://127.0.0.1:{publish_port}/channels/bench/presence"
    return json.loads(urllib.request.urlopen(url, timeout=60).read())["count"]


async def subscribers(ports, n, opened, stop):
    async def one(session, i):
        port = ports[i % len(ports)]
        async with session.get(f"http://127.0.0.1:{port}/room/bench?user=u{i // 2}",
                               headers={"Accept": "text/event-stream"}) as r:
            opened.append(r.status)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(r.content.readany(), 0.5)
                except asyncio.TimeoutError:
                    pass
    async with ClientSession(connector=TCPConnector(limit=0),
                             timeout=ClientTimeout(total=600)) as session:
        tasks = []
        for i in range(n):
            tasks.append(asyncio.ensure_future(one(session, i)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)  # a bounded ramp, not a SYN flood
        await asyncio.gather(*tasks, return_exceptions=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--replicas", type=int, default=1)
    args = ap.parse_args()
    n = args.subscribers
    backend_port = free_port()
    backend = Backend(backend_port)
    ready = threading.Event()
    threading.Thread(target=backend.run, args=(ready,), daemon=True).start()
    ready.wait(10)
    tmp = tempfile.mkdtemp(prefix="sidepush-bench-")
    procs, ports, publish_ports, redis = [], [], [], None
    redis_conf = ""
    if args.replicas > 1:
        redis, redis_port = start_redis(tmp)
        redis_conf = f"redis: {{ url: 'redis://127.0.0.1:{redis_port}', key_prefix: 'bench:' }}\n"
    for r in range(args.replicas):
        port, publish_port = free_port(), free_port()
        conf = Path(tmp) / f"sidepush-{r}.yaml"
        conf.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{publish_port}\n"
                        f"backend: {{ url: 'http://127.0.0.1:{backend_port}', timeout: 30s }}\n"
                        f"workers: {args.workers}\nlog: {{ level: warn }}\n"
                        f"limits: {{ max_connections: {2 * n + 100} }}\n" + redis_conf +
                        "presence: { leave_grace: 1s, max_members: 100 }\n"
                        "webhooks: { url: /hooks, batch: 250ms, vacated_grace: 1s, max_queue: 1000000 }\n"
                        "routes:\n  - path: /room/{channel}\n    subscribe: { presence: true }\n"
                        "    authorize: { url: '/auth/{channel}', cache: 60s }\n")
        procs.append(subprocess.Popen([SIDEPUSH, "--config", str(conf)]))
        ports.append(port)
        publish_ports.append(publish_port)
    publish_port = publish_ports[0]
    try:
        for port in ports:
            wait_port(port)
            if redis is not None:
                wait_redis_up(port)
        base_rss = sum(rss_kib(p.pid) for p in procs)
        base_cpu = sum(cpu_seconds(p.pid) for p in procs)
        opened, stop = [], threading.Event()
        loop_done = threading.Event()

        def client():
            asyncio.run(subscribers(ports, n, opened, stop))
            loop_done.set()
        threading.Thread(target=client, daemon=True).start()
        started = time.monotonic()
        deadline = started + 300
        while time.monotonic() < deadline and members(publish_port) < n // 2:
            time.sleep(0.1)
        joined_s = time.monotonic() - started
        count = members(publish_port)
        joined_rss = sum(rss_kib(p.pid) for p in procs)
        joined_cpu = sum(cpu_seconds(p.pid) for p in procs) - base_cpu
        time.sleep(5)  # the clients read the joins sent to them; what stays is the state
        full_rss = sum(rss_kib(p.pid) for p in procs)
        stop.set()
        left_at = time.monotonic()
        deadline = left_at + 120
        while time.monotonic() < deadline and members(publish_port) > 0:
            time.sleep(0.1)
        left_s = time.monotonic() - left_at
        deadline = time.monotonic() + 60  # the last webhooks, the vacancy after its grace
        while time.monotonic() < deadline and backend.events.get("channel_vacated", 0) == 0:
            time.sleep(0.2)
        last, still = -1, 0  # with replicas, another's last POSTs may still be on their way
        while time.monotonic() < deadline and still < 3:
            total = sum(backend.events.values())
            still = still + 1 if total == last else 0
            last = total
            time.sleep(1)
        events = sum(backend.events.values())
        print(f"\npresence: {n} SSE subscribers of {n // 2} users on one channel, "
              f"{args.replicas} replica(s){' sharing Redis' if redis else ''}, "
              f"workers {args.workers}, {os.cpu_count()} CPUs, loopback")
        print(f"member list complete after     {joined_s:8.2f} s ({count} members, "
              f"{sum(1 for s in opened if s == 200)} streams opened)")
        print(f"sidepush CPU while joining     {joined_cpu:8.2f} s "
              f"({joined_cpu * 1e6 / n:.0f} us per subscriber, all replicas)")
        print(f"member list empty after        {left_s:8.2f} s from the disconnect "
              f"(leave_grace 1 s included)")
        print(f"webhook events                 {events:8d} {dict(sorted(backend.events.items()))}")
        print(f"webhook POSTs                  {backend.posts:8d} "
              f"({events / max(backend.posts, 1):.0f} events per POST)")
        print(f"RSS                            {base_rss / 1024:8.1f} MiB idle, "
              f"{joined_rss / 1024:.1f} MiB as the list completed (joins queued to readers), "
              f"{full_rss / 1024:.1f} MiB 5 s later: "
              f"{(full_rss - base_rss) * 1024 / n:.0f} B per subscriber with its member share")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if redis is not None:
            redis.terminate()
            redis.wait(10)


if __name__ == "__main__":
    main()
