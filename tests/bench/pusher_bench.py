"""Pusher protocol against native WebSocket: sidepush, same process, same run.

    /usr/bin/python3 tests/bench/pusher_bench.py [--subscribers 10000] [--messages 40]
        [--rate 2] [--patterns steady,serial] [--nchan]

One sidepush (one event loop) with the pusher section; for each pattern it
is started afresh and driven by tests/bench/fanout twice: N native WebSocket
subscribers of /sub/bench, then N Pusher protocol clients (pusher:subscribe
to "bench" on /app/{key}). Both get the same messages, published natively
to the channel, at --rate per second (steady, 2/s by default: a chat or a
dashboard) or one POST at a time (serial: one backend worker). Prints
delivered vs expected, duplicates, latency, RSS per subscriber once all are
subscribed (idle memory) and server CPU per delivery, then Pusher / native
ratios. --nchan adds Nchan's WebSocket for reference. Prints figures;
asserts nothing.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchutil import free_port, wait_port
from fanout_bench import SIDEPUSH, FANOUT, fmt, run_fanout, start_nchan, stop


def start_sidepush(tmp, history):
    port, pub = free_port(), free_port()
    conf = Path(tmp) / "sidepush.yaml"
    conf.write_text(f"""listen: 127.0.0.1:{port}
publish_listen: 127.0.0.1:{pub}
backend: {{ url: 'http://127.0.0.1:9' }}
log: {{ level: warn }}
channels: {{ history: {history} }}
limits: {{ max_connections: 100000, subscriber_max_unsent: 4MiB }}
pusher: {{ app_id: '1', key: bench-key, secret: bench-secret }}
routes:
  - path: /sub/{{channel}}
    subscribe: {{ transports: [websocket] }}
""")
    proc = subprocess.Popen([str(SIDEPUSH), "--config", str(conf)], stdout=subprocess.DEVNULL)
    wait_port(port)
    return {"name": "sidepush", "kind": "sidepush", "procs": [proc], "pids": [proc.pid],
            "ports": [port], "path": "/sub/bench", "publish_port": pub,
            "publish_path": "/publish/bench"}


def run_pusher(server, mode, subscribers, messages, rate, size, timeout):
    """fanout in --mode pusher on the Pusher path, subscribing to the same channel."""
    pusher = dict(server, path="/app/bench-key?protocol=7&client=bench")
    return run_fanout(pusher, "pusher", subscribers, messages, rate, size, timeout,
                      extra=("--pusher-channel", "bench"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--rate", type=int, default=2, help="steady publish rate, messages/s")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--patterns", default="steady,serial")
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--nchan", action="store_true", help="also Nchan's WebSocket, for reference")
    args = ap.parse_args()
    for need in (SIDEPUSH, FANOUT):
        if not need.exists():
            raise SystemExit(f"{need} missing: build first (meson setup build && ninja -C build)")
    rows = []
    for pattern in args.patterns.split(","):
        rate = {"steady": args.rate, "serial": -1}[pattern]
        runs = [("native ws", start_sidepush, run_fanout, "ws"),
                ("pusher", start_sidepush, run_pusher, "pusher")]
        if args.nchan:
            runs.append(("nchan ws", start_nchan, run_fanout, "ws"))
        for label, start, drive, mode in runs:
            tmp = tempfile.mkdtemp(prefix="sidepush-pusher-")
            server = start(tmp, max(args.messages, 100))
            try:
                r = drive(server, mode, args.subscribers, args.messages, rate, args.size,
                          args.timeout)
            finally:
                stop(server)
                shutil.rmtree(tmp, ignore_errors=True)
            r.update(label=label, pattern=pattern)
            rows.append(r)
            print(json.dumps(r), flush=True)

    print(f"\nPusher vs native WebSocket: {args.subscribers} subscribers, {args.messages} messages "
          f"of {args.size} B, steady = {args.rate}/s, loopback, {os.cpu_count()} CPUs")
    print(f"{'transport':10} {'pattern':7} {'delivered':>17} {'dups':>4} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS B/sub':>9} {'CPU us/deliv':>12}")
    for r in rows:
        if "error" in r:
            print(f"{r['label']:10} {r['pattern']:7} error: {r['error']}")
            continue
        print(f"{r['label']:10} {r['pattern']:7} {r['delivered']:>8}/{r['expected']:<8} "
              f"{r['duplicates']:>4} {fmt(r, 'p50_ms', '8.2f')} {fmt(r, 'p99_ms', '8.2f')} "
              f"{fmt(r, 'rss_per_sub_bytes', '9.0f')} {fmt(r, 'cpu_us_per_delivery', '12.3f')}")
    by = {(r["label"], r["pattern"]): r for r in rows if "error" not in r}
    print("\npusher / native ws (goals: CPU per delivery <= 1.2x; idle memory <= 1,500 B/sub):")
    for pattern in args.patterns.split(","):
        p, n = by.get(("pusher", pattern)), by.get(("native ws", pattern))
        if p and n:
            ratio = lambda k: (p[k] / n[k]) if n.get(k) else float("nan")
            print(f"  {pattern:7} CPU/delivery {ratio('cpu_us_per_delivery'):5.2f}x  "
                  f"memory/sub {ratio('rss_per_sub_bytes'):5.2f}x  p99 {ratio('p99_ms'):5.2f}x")


if __name__ == "__main__":
    main()
