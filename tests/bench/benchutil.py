"""What the benchmark scripts share: loopback ports, /proc figures, readiness."""
import asyncio
import os
import resource
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    """Resident memory of a process now, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_redis_up(port, timeout=10):
    """Until the sidepush listening on port reports both Redis connections ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            if b"sidepush_redis_up 1" in body:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sidepush on {port} never reached Redis")


def start_redis(directory):
    """A redis-server on a free loopback port, without persistence, its log
    in directory: (process, port). The caller stops it."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--dir", str(directory), "--save", "", "--appendonly", "no",
                             "--logfile", f"{directory}/redis.log"], stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def raise_fd_limit():
    """The soft limit of open files up to the hard one (many subscribers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_sse(port, path):
    """An SSE request to sidepush on port, its head read: (reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:200])
    return reader, writer
