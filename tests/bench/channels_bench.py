#!/usr/bin/env python3
"""Memory per subscriber by the number of channels it names.

Opens N SSE subscribers (raw sockets), each naming K channels of its own
(/events/u<i>-c0,u<i>-c1,...: the per-user channels of a real app, so every
channel exists for one subscriber only), for K = 1 and K = 16, and prints the
resident memory per subscriber and per extra channel, read from
/proc/PID/smaps_rollup after the connections settle. Loopback only; prints
figures, asserts nothing."""
import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import free_port, raise_fd_limit, wait_port

ROOT = Path(__file__).resolve().parent.parent.parent


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1])
    raise RuntimeError("no Rss")


def subscribe(port, n, k):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        channels = ",".join(f"u{i}-c{j}" for j in range(k))
        s.sendall(f"GET /events/{channels} HTTP/1.1\r\nHost: b\r\n"
                  "Accept: text/event-stream\r\n\r\n".encode())
        socks.append(s)
    for s in socks:  # every stream has opened
        s.settimeout(10)
        if not s.recv(4096).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("subscription refused")
    return socks


def measure(binary, n, k):
    port, pub = free_port(), free_port()
    cfg = Path(tempfile.mkdtemp()) / "sidepush.yaml"
    cfg.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{pub}\n"
                   "backend: { url: http://127.0.0.1:9 }\nlog: { level: warn }\n"
                   f"limits: {{ max_connections: {2 * n + 100} }}\n"
                   "routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    proc = subprocess.Popen([binary, "--config", str(cfg)])
    try:
        wait_port(port)
        warm = subscribe(port, 50, k)  # allocator and tables warmed up first
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks = subscribe(port, n, k)
        time.sleep(1.0)
        after = rss_kib(proc.pid)
        for s in socks + warm:
            s.close()
        return (after - before) * 1024 / n
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subscribers", type=int, default=5000)
    ap.add_argument("--binary", default=str(ROOT / "build" / "cmd" / "sidepush"))
    args = ap.parse_args()
    raise_fd_limit()
    one = measure(args.binary, args.subscribers, 1)
    sixteen = measure(args.binary, args.subscribers, 16)
    print(f"{args.subscribers} SSE subscribers, channels of their own")
    print(f"  1 channel:   {one:8.0f} B per subscriber")
    print(f"  16 channels: {sixteen:8.0f} B per subscriber")
    print(f"  per extra channel: {(sixteen - one) / 15:6.0f} B")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
