"""Publish throughput: wrk POSTing 128-byte messages to one channel of one
sidepush, in memory and with Redis (a redis-server started here), in one run
on loopback. Prints requests per second, latency, and CPU time per publish of
sidepush and of redis-server; asserts nothing.

    /usr/bin/python3 tests/bench/publish_bench.py [--duration 5] [--connections 16]
"""
import argparse
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

from benchutil import cpu_seconds, free_port, wait_port, wait_redis_up

ROOT = Path(__file__).resolve().parents[2]
SIDEPUSH = os.environ.get("SIDEPUSH_BIN", str(ROOT / "build" / "cmd" / "sidepush"))
def start(args, port):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc


def run(tmp, redis, duration, connections):
    """redis: (process, port) of a redis-server, or None for in memory."""
    redis_port = redis[1] if redis else None
    port, publish = free_port(), free_port()
    conf = Path(tmp) / f"publish-{redis_port or 'memory'}.yaml"
    conf.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{publish}\n"
                    "backend: { url: 'http://127.0.0.1:9' }\nlog: { level: warn }\n"
                    + (f"redis: {{ url: '127.0.0.1:{redis_port}' }}\n" if redis_port else ""))
    sp = start([SIDEPUSH, "--config", str(conf)], publish)
    script = Path(tmp) / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = string.rep("x", 128)\n')
    try:
        if redis_port:
            wait_redis_up(port)
        pids = [sp.pid] + ([redis[0].pid] if redis else [])
        before = [cpu_seconds(p) for p in pids]
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s",
                              str(script), f"http://127.0.0.1:{publish}/publish/bench"],
                             capture_output=True, text=True, timeout=duration + 60).stdout
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, before)]
    finally:
        sp.send_signal(signal.SIGTERM)
        sp.wait(15)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = re.search(r"Latency\s+(\S+)", out).group(1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = rps * duration
    return {"rps": rps, "latency": lat, "non_2xx": int(bad.group(1)) if bad else 0,
            "sidepush_us": cpu[0] / total * 1e6, "redis_us": cpu[1] / total * 1e6 if redis_port
            else 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sidepush-publish-") as tmp:
        rport = free_port()
        redis = start(["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--dir", tmp,
                       "--save", "", "--appendonly", "no", "--logfile", f"{tmp}/redis.log"],
                      rport)
        try:
            rows = [("in memory", run(tmp, None, args.duration, args.connections)),
                    ("Redis", run(tmp, (redis, rport), args.duration, args.connections))]
        finally:
            redis.terminate()
            redis.wait(10)
    print(f"\npublish: wrk, {args.connections} connections, {args.duration} s, 128 B to one "
          f"channel (history 100), loopback, {os.cpu_count()} CPUs")
    print(f"{'engine':10} {'publishes/s':>12} {'mean latency':>13} {'non-2xx':>8} "
          f"{'sidepush us/pub':>16} {'redis us/pub':>13}")
    for name, r in rows:
        print(f"{name:10} {r['rps']:12.0f} {r['latency']:>13} {r['non_2xx']:8d} "
              f"{r['sidepush_us']:16.1f} {r['redis_us']:13.1f}")


if __name__ == "__main__":
    main()
