"""Publishing through Redis: 3 sidepush replicas on one redis-server, 1,000 channels.

    /usr/bin/python3 tests/bench/redis_bench.py [--channels 1000] [--publishes 5000]
        [--replicas 3] [--seconds 5]

Each replica (one worker) holds SSE subscribers of every channel (250
channels per connection), so each publish is delivered once per replica.
Then the pattern users have: one publisher POSTs 128-byte messages one at a
time, round-robin over the replicas and the channels (--publishes of them),
each carrying its send time; and the pattern that flatters: wrk with 16
connections on one replica for --seconds, over the same channels. Prints
publishes/s and deliveries/s, the end-to-end lag (the publisher's send to a
subscriber's receipt, through Redis's pub/sub, on one clock) p50/p99/max,
CPU per published message of redis-server and of all replicas together, and
each replica's connections to Redis with 10 channels and with --channels
followed. Prints figures; asserts nothing. A Redis Cluster run is not here:
sidepush does not speak Redis Cluster yet (deploy/README.md).
"""
import argparse
import asyncio
import http.client
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchutil import (cpu_seconds, free_port, open_sse, raise_fd_limit, start_redis,
                       wait_port, wait_redis_up)

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SIDEPUSH_BUILD", ROOT / "build"))
SIDEPUSH = BUILD / "cmd" / "sidepush"
PER_CONNECTION = 250


async def hold(port, names, ready, lags):
    """An SSE connection to names; appends each message's lag (its data is
    the send time in ns, then padding) and returns how many it got."""
    reader, writer = await open_sse(port, f"/events/{names}")
    ready.set_result(None)
    got = 0
    try:
        while line := await reader.readline():
            if line.startswith(b"data:"):
                got += 1
                sent = line[5:].strip().split(b" ", 1)[0]
                if sent.isdigit():
                    lags.append(time.time_ns() - int(sent))
    except (asyncio.CancelledError, ConnectionError):
        pass
    writer.close()
    return got


def serial(publish_ports, channels, count):
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in publish_ports]
    start = time.monotonic()
    for n in range(count):
        conn = conns[n % len(conns)]
        body = f"{time.time_ns()} ".encode().ljust(128, b"x")
        conn.request("POST", f"/publish/c{n % channels}", body)
        r = conn.getresponse()
        r.read()
        if r.status != 202:
            raise RuntimeError(f"publish answered {r.status}")
    for c in conns:
        c.close()
    return time.monotonic() - start


def wrk(tmp, publish_port, channels, seconds):
    script = Path(tmp) / "post.lua"
    script.write_text(f"""local i = 0
wrk.method = "POST"
wrk.body = string.rep("x", 128)
request = function()
  i = i + 1
  return wrk.format(nil, "/publish/c" .. (i % {channels}))
end
""")
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{publish_port}/"], capture_output=True,
                         text=True, timeout=seconds + 60).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) * seconds


def redis_clients(port):
    """Connections to redis-server now, without the one asking."""
    out = subprocess.run(["redis-cli", "-p", str(port), "CLIENT", "LIST"], capture_output=True,
                         text=True, timeout=10).stdout
    return len(out.strip().splitlines()) - 1


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


async def subscribe(ports, channels, lags):
    tasks = []
    for port in ports:
        for first in range(0, channels, PER_CONNECTION):
            names = ",".join(f"c{i}" for i in range(first, min(channels, first + PER_CONNECTION)))
            ready = asyncio.get_running_loop().create_future()
            tasks.append(asyncio.create_task(hold(port, names, ready, lags)))
            await ready
    return tasks


async def wait_followed(admin_ports, channels, timeout=30):
    import urllib.request
    deadline = time.monotonic() + timeout
    for port in admin_ports:
        while time.monotonic() < deadline:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            m = re.search(rb"^sidepush_redis_channels (\d+)", body, re.M)
            if m and int(m.group(1)) >= channels:
                break
            await asyncio.sleep(0.1)


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=10).stdout


def command_costs(port, publishes):
    """Redis's own time per published message, by command (INFO commandstats),
    the scripts' inner calls included."""
    costs = []
    for line in redis_cli(port, "INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_(\S+):calls=(\d+),usec=(\d+)", line)
        if m:
            costs.append((int(m.group(3)) / publishes, int(m.group(2)) / publishes, m.group(1)))
    return sorted(costs, reverse=True)


async def run(tmp, args):
    redis, redis_port = start_redis(tmp)
    procs, ports, publish_ports = [], [], []
    try:
        for i in range(args.replicas):
            port, publish_port = free_port(), free_port()
            conf = Path(tmp) / f"replica-{i}.yaml"
            conf.write_text(f"""listen: 127.0.0.1:{port}
publish_listen: 127.0.0.1:{publish_port}
backend: {{ url: 'http://127.0.0.1:9' }}
log: {{ level: warn }}
workers: 1
limits: {{ max_channels_per_connection: {PER_CONNECTION} }}
channels: {{ history: 10 }}
redis: {{ url: 'redis://127.0.0.1:{redis_port}', key_prefix: 'bench:' }}
routes:
  - path: /events/{{channel}}
    subscribe: {{ transports: [sse] }}
""")
            procs.append(subprocess.Popen([SIDEPUSH, "--config", str(conf)],
                                          stdout=subprocess.DEVNULL))
            ports.append(port)
            publish_ports.append(publish_port)
        for port in ports:
            wait_port(port)
            wait_redis_up(port)
        results = {}
        few_lags = []
        few = await subscribe(ports, 10, few_lags)
        await wait_followed(ports, 10)
        results["conns_10"] = redis_clients(redis_port) / args.replicas
        for t in few:
            t.cancel()
        await asyncio.gather(*few, return_exceptions=True)
        lags = []
        holders = await subscribe(ports, args.channels, lags)
        await wait_followed(ports, args.channels)
        results["conns_many"] = redis_clients(redis_port) / args.replicas
        pids = [redis.pid] + [p.pid for p in procs]
        before = [cpu_seconds(p) for p in pids]
        redis_cli(redis_port, "CONFIG", "RESETSTAT")
        wall = await asyncio.to_thread(serial, publish_ports, args.channels, args.publishes)
        results["commands"] = command_costs(redis_port, args.publishes)
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, before)]
        await asyncio.sleep(1)
        results["serial"] = {"rate": args.publishes / wall, "redis_us": cpu[0] / args.publishes * 1e6,
                             "sidepush_us": sum(cpu[1:]) / args.publishes * 1e6,
                             "lags": list(lags), "delivered": len(lags)}
        lags.clear()
        before = [cpu_seconds(p) for p in pids]
        done = await asyncio.to_thread(wrk, tmp, publish_ports[0], args.channels, args.seconds)
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, before)]
        await asyncio.sleep(1)
        results["burst"] = {"rate": done / args.seconds, "redis_us": cpu[0] / done * 1e6,
                            "sidepush_us": sum(cpu[1:]) / done * 1e6, "published": done}
        for t in holders:
            t.cancel()
        got = await asyncio.gather(*holders, return_exceptions=True)
        results["burst"]["delivered"] = sum(g for g in got if isinstance(g, int)) - \
            results["serial"]["delivered"]
        return results
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
        redis.terminate()
        redis.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("--publishes", type=int, default=5000)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(run(tmp, args))
    s, b = r["serial"], r["burst"]
    ms = [x / 1e6 for x in s["lags"]]
    print(f"1 redis-server, {args.replicas} replicas, {args.channels:,} channels, every channel "
          f"subscribed on every replica")
    print(f"serial: {s['rate']:,.0f} publishes/s, {s['delivered']:,}/"
          f"{args.publishes * args.replicas:,} deliveries "
          f"({s['rate'] * args.replicas:,.0f}/s); lag p50 {percentile(ms, 0.5):.2f} ms, "
          f"p99 {percentile(ms, 0.99):.2f} ms, max {max(ms, default=float('nan')):.2f} ms; "
          f"CPU per publish: redis {s['redis_us']:.1f} µs, replicas {s['sidepush_us']:.1f} µs")
    print(f"burst (wrk -c16, one replica): {b['rate']:,.0f} publishes/s, "
          f"{b['delivered'] / args.seconds:,.0f} deliveries/s; CPU per publish: redis "
          f"{b['redis_us']:.1f} µs, replicas {b['sidepush_us']:.1f} µs")
    print(f"connections to Redis per replica: {r['conns_10']:.0f} with 10 channels, "
          f"{r['conns_many']:.0f} with {args.channels:,}")
    print("Redis's time per serial publish by command (INFO commandstats; the rest of its CPU "
          "is sockets and the event loop):")
    for usec, calls, name in r["commands"][:12]:
        print(f"  {name:16} {usec:7.2f} µs  {calls:6.2f} calls")


if __name__ == "__main__":
    main()
