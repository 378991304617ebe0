"""Publish cost with 0, 1,000 and 100,000 pattern subscriptions on unrelated prefixes.

    /usr/bin/python3 tests/bench/pattern_bench.py [--patterns 0,1000,100000]
        [--publishes 10000] [--redis] [--nchan]

For each count, one sidepush (one worker; with --redis, also its own
redis-server) holds that many patterns ("u000000.*", "u000001.*", ...: 250
per SSE connection) and one plain SSE subscriber of "bench.x". Then the
pattern users have: one publisher POSTs 128-byte messages to "bench.x" one
at a time (--publishes of them) on a kept-alive connection, and the pattern
that flatters: wrk with 16 connections for 5 s. Prints per count the time per
publish (serial), publishes per second (wrk), and CPU per publish of
sidepush (and redis-server), and that the subscriber got every serial
message. With --nchan, Nchan's serial publish to one subscriber in the same
session, as the reference (it has no patterns). Prints figures; asserts nothing.
"""
import argparse
import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import (cpu_seconds, free_port, open_sse, raise_fd_limit, rss_kib,
                       start_redis, wait_port, wait_redis_up)

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SIDEPUSH_BUILD", ROOT / "build"))
SIDEPUSH = BUILD / "cmd" / "sidepush"
PER_CONNECTION = 250
BODY = b"x" * 128


async def hold(port, path, ready):
    """An SSE request kept open; counts the data lines it reads."""
    reader, writer = await open_sse(port, path)
    ready.set_result(None)
    got = 0
    try:
        while line := await reader.readline():
            got += line.startswith(b"data:")
    except (asyncio.CancelledError, ConnectionError):
        pass
    writer.close()
    return got


async def open_patterns(port, count):
    tasks = []
    for first in range(0, count, PER_CONNECTION):
        names = ",".join(f"u{i:06d}.*" for i in range(first, min(count, first + PER_CONNECTION)))
        ready = asyncio.get_running_loop().create_future()
        tasks.append(asyncio.create_task(hold(port, f"/events/{names}", ready)))
        await ready
    return tasks


def serial(publish_port, path, count):
    conn = http.client.HTTPConnection("127.0.0.1", publish_port, timeout=10)
    start = time.monotonic()
    for _ in range(count):
        conn.request("POST", path, BODY)
        r = conn.getresponse()
        r.read()
        if r.status not in (200, 201, 202):
            raise RuntimeError(f"publish answered {r.status}")
    conn.close()
    return time.monotonic() - start


def wrk(tmp, publish_port, path, seconds=5):
    script = Path(tmp) / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = string.rep("x", 128)\n')
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{publish_port}{path}"], capture_output=True,
                         text=True, timeout=seconds + 60).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) * seconds


async def measure(tmp, count, publishes, redis):
    port, publish_port = free_port(), free_port()
    redis_proc = None
    extra = ""
    if redis:
        rdir = Path(tmp) / f"redis-{count}"
        rdir.mkdir()
        redis_proc, redis_port = start_redis(rdir)
        extra = f"redis: {{ url: 'redis://127.0.0.1:{redis_port}' }}\n"
    conf = Path(tmp) / f"patterns-{count}.yaml"
    conf.write_text(f"""listen: 127.0.0.1:{port}
publish_listen: 127.0.0.1:{publish_port}
backend: {{ url: 'http://127.0.0.1:9' }}
log: {{ level: warn }}
workers: 1
limits: {{ max_connections: 20000, max_channels_per_connection: {PER_CONNECTION} }}
channels: {{ history: 10 }}
routes:
  - path: /events/{{channel}}
    subscribe: {{ transports: [sse], patterns: true }}
""" + extra)
    sp = subprocess.Popen([SIDEPUSH, "--config", str(conf)], stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        if redis:
            wait_redis_up(port)
        holders = await open_patterns(port, count)
        ready = asyncio.get_running_loop().create_future()
        subscriber = asyncio.create_task(hold(port, "/events/bench.x", ready))
        await ready
        rss = rss_kib(sp.pid)
        pids = [sp.pid] + ([redis_proc.pid] if redis_proc else [])
        before = [cpu_seconds(p) for p in pids]
        wall = await asyncio.to_thread(serial, publish_port, "/publish/bench.x", publishes)
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, before)]
        await asyncio.sleep(0.5)
        subscriber.cancel()
        got = await subscriber
        before = [cpu_seconds(p) for p in pids]
        done = await asyncio.to_thread(wrk, tmp, publish_port, "/publish/bench.x")
        burst_cpu = [cpu_seconds(p) - b for p, b in zip(pids, before)]
        for t in holders:
            t.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    finally:
        sp.send_signal(signal.SIGTERM)
        sp.wait(30)
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait(10)
    return {"serial_us": wall / publishes * 1e6, "cpu_us": cpu[0] / publishes * 1e6, "rss": rss,
            "redis_us": cpu[1] / publishes * 1e6 if redis else None, "got": got,
            "burst_rps": done / 5, "burst_cpu_us": burst_cpu[0] / done * 1e6,
            "burst_redis_us": burst_cpu[1] / done * 1e6 if redis else None}


async def nchan_serial(tmp, publishes):
    sys.path.insert(0, str(Path(__file__).parent))
    from fanout_bench import start_nchan
    server = start_nchan(tmp, 10)
    port = server["ports"][0]
    try:
        ready = asyncio.get_running_loop().create_future()
        subscriber = asyncio.create_task(hold(port, "/sub", ready))
        await ready
        pids = server["pids"]
        before = [cpu_seconds(p) for p in pids]
        wall = await asyncio.to_thread(serial, port, "/pub", publishes)
        cpu = sum(cpu_seconds(p) - b for p, b in zip(pids, before))
        await asyncio.sleep(0.5)
        subscriber.cancel()
        got = await subscriber
    finally:
        for p in server["procs"]:
            p.send_signal(signal.SIGTERM)
            p.wait(15)
    return {"serial_us": wall / publishes * 1e6, "cpu_us": cpu / publishes * 1e6, "got": got}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patterns", default="0,1000,100000")
    ap.add_argument("--publishes", type=int, default=10000)
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--nchan", action="store_true")
    args = ap.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'patterns':>9} {'serial µs/publish':>18} {'CPU µs/publish':>15} "
              f"{'redis µs':>9} {'delivered':>11} {'burst publishes/s':>18} "
              f"{'burst CPU µs':>13} {'burst redis µs':>15} {'RSS MiB':>8}")
        for count in (int(c) for c in args.patterns.split(",")):
            r = asyncio.run(measure(tmp, count, args.publishes, args.redis))
            redis = f"{r['redis_us']:9.1f}" if args.redis else f"{'-':>9}"
            bredis = f"{r['burst_redis_us']:15.1f}" if args.redis else f"{'-':>15}"
            print(f"{count:>9,} {r['serial_us']:18.1f} {r['cpu_us']:15.1f} {redis} "
                  f"{r['got']:>5}/{args.publishes:<5} {r['burst_rps']:18,.0f} "
                  f"{r['burst_cpu_us']:13.1f} {bredis} {r['rss'] / 1024:8.1f}", flush=True)
        if args.nchan:
            r = asyncio.run(nchan_serial(tmp, args.publishes))
            print(f"{'nchan':>9} {r['serial_us']:18.1f} {r['cpu_us']:15.1f} {'-':>9} "
                  f"{r['got']:>5}/{args.publishes:<5} (no patterns: the reference)")


if __name__ == "__main__":
    main()
