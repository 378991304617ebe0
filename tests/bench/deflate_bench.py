"""WebSocket compression benchmark: permessage-deflate on and off, sidepush and Nchan
(nchan_deflate_message_for_websocket) side by side, same machine, same run.

    SIDEPUSH_BUILD=build-release /usr/bin/python3 tests/bench/deflate_bench.py \
        [--subscribers 10000] [--size 2048] [--patterns serial,steady]

N WebSocket subscribers on one channel, messages of JSON rows (tests/bench/fanout --json),
published one POST at a time (serial: how one backend worker publishes) and at 2 msg/s
(steady). Each server runs twice: once with subscribers that offer permessage-deflate and
once with subscribers that do not. Prints, per row, bytes on the wire per delivery, server
CPU per delivery, idle memory per subscriber (RSS after connecting, before any message),
delivered vs expected and latency; then compressed against uncompressed for each server.
The issue's goals: CPU per delivery compressed at most 1.1x uncompressed, idle memory per
subscriber unchanged within 64 B, bytes per delivery at most 0.35x raw. Asserts nothing.
"""
import argparse
import json
import os
import shutil
import tempfile

import fanout_bench as fb
from benchutil import raise_fd_limit

PATTERNS = {"serial": (-1, 50), "steady": (2, 20)}  # rate, messages


def start(kind, tmp, history):
    if kind == "sidepush":
        return fb.start_sidepush(tmp, history)
    # Nchan compresses a message once, at publish, when its publisher location says so.
    saved = fb.NGINX_CONF
    fb.NGINX_CONF = saved.replace("nchan_publisher;",
                                  "nchan_publisher;\n            nchan_deflate_message_for_websocket on;")
    try:
        return fb.start_nchan(tmp, history)
    finally:
        fb.NGINX_CONF = saved


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--patterns", default="serial,steady")
    ap.add_argument("--servers", default="sidepush,nchan")
    ap.add_argument("--timeout", type=int, default=90)
    args = ap.parse_args()
    raise_fd_limit()
    rows = []
    for pattern in args.patterns.split(","):
        rate, messages = PATTERNS[pattern]
        for kind in args.servers.split(","):
            for deflate in (False, True):
                tmp = tempfile.mkdtemp(prefix="sidepush-deflate-")
                server = start(kind, tmp, 100)
                server["path"] = "/sub/bench" if kind == "sidepush" else "/sub"
                try:
                    extra = ["--json"] + (["--deflate"] if deflate else [])
                    r = fb.run_fanout(server, "ws", args.subscribers, messages, rate, args.size,
                                      args.timeout, extra)
                finally:
                    fb.stop(server)
                    shutil.rmtree(tmp, ignore_errors=True)
                r.update(server=kind, pattern=pattern, deflate=deflate)
                rows.append(r)
                print(json.dumps(r), flush=True)

    print(f"\npermessage-deflate: {args.subscribers} WebSocket subscribers, {args.size} B of "
          f"JSON rows per message, loopback, {os.cpu_count()} CPUs")
    print(f"{'server':9} {'pattern':7} {'deflate':7} {'delivered':>17} {'wire B/deliv':>12} "
          f"{'CPU us/deliv':>12} {'RSS B/sub':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['server']:9} {r['pattern']:7} {str(r['deflate']):7} error: {r['error']}")
            continue
        print(f"{r['server']:9} {r['pattern']:7} {'on' if r['deflate'] else 'off':7} "
              f"{r['delivered']:>8}/{r['expected']:<8} {r['wire_bytes_per_delivery']:12.1f} "
              f"{r['cpu_us_per_delivery']:12.3f} {r['rss_per_sub_bytes']:9.0f} "
              f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    print("\ncompressed / uncompressed (goals: bytes <= 0.35x, CPU <= 1.10x, memory +-64 B):")
    by = {(r["server"], r["pattern"], r["deflate"]): r for r in rows if "error" not in r}
    for (kind, pattern, deflate), on in by.items():
        off = by.get((kind, pattern, False))
        if not deflate or off is None:
            continue
        print(f"  {kind:9} {pattern:7} bytes/delivery {on['wire_bytes_per_delivery'] / off['wire_bytes_per_delivery']:5.2f}x  "
              f"CPU/delivery {on['cpu_us_per_delivery'] / off['cpu_us_per_delivery']:5.2f}x  "
              f"idle memory/sub {on['rss_per_sub_bytes'] - off['rss_per_sub_bytes']:+6.0f} B")
    print("\nsidepush / nchan, both compressing:")
    for pattern in args.patterns.split(","):
        s, n = by.get(("sidepush", pattern, True)), by.get(("nchan", pattern, True))
        if s and n:
            print(f"  {pattern:7} bytes/delivery {s['wire_bytes_per_delivery'] / n['wire_bytes_per_delivery']:5.2f}x  "
                  f"CPU/delivery {s['cpu_us_per_delivery'] / n['cpu_us_per_delivery']:5.2f}x  "
                  f"memory/sub {s['rss_per_sub_bytes'] / n['rss_per_sub_bytes']:5.2f}x  "
                  f"p99 {s['p99_ms'] / n['p99_ms']:5.2f}x")


if __name__ == "__main__":
    main()
