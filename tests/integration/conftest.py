"""Fixtures: a real stand-in backend and real sidepush processes on loopback."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SIDEPUSH = os.environ.get("SIDEPUSH_BIN", str(ROOT / "build" / "cmd" / "sidepush"))
# Sanitizer builds keep freed memory in quarantine, so RSS says nothing there.
SANITIZED = bool(os.environ.get("SIDEPUSH_SANITIZED"))
# The whole suite runs once per worker count (.ci/test: 1 and 4); unset, the
# configurations say nothing and sidepush picks (workers: auto).
WORKERS = os.environ.get("SIDEPUSH_TEST_WORKERS")


def workers_line(extra: str = "") -> str:
    return f"workers: {WORKERS}\n" if WORKERS and "workers:" not in extra else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def refused_port():
    """A loopback port that refuses connections for the whole test: bound but
    not listening. A port merely found free is handed out again by the next
    bind to port 0, such as free_port() choosing sidepush's own listen port,
    which then proxied to itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Backend:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "backend.py"), str(self.port)],
                                     stdout=subprocess.PIPE)
        self.proc.stdout.readline()  # "ready"
        wait_port(self.port, self.proc, "backend")

    def hits(self) -> dict:
        return requests.get(self.url + "/hits", timeout=5).json()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Sidepush:
    """One sidepush process with a generated configuration."""

    def __init__(self, backend_url: str, extra: str = "", tmp: Path = None, backend_keys: str = ""):
        self.port = free_port()
        self.publish_port = free_port()
        while self.publish_port == self.port:  # the kernel may hand a just-freed port out again
            self.publish_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = Path(tmp or tempfile.mkdtemp()) / "sidepush.yaml"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"publish_listen: 127.0.0.1:{self.publish_port}\n"
            f"backend: {{ url: {backend_url}, connect_timeout: 1s, timeout: 2s{backend_keys} }}\n"
            + ("" if extra.startswith("log:") or "\nlog:" in extra else "log: { level: warn }\n")
            + "shutdown_grace: 2s\n" + workers_line(extra) + extra)
        self.log = open(self.config.with_suffix(".log"), "w+")
        self.proc = subprocess.Popen([SIDEPUSH, "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "sidepush")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> int:
        if self.log.closed:  # stopped already
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        self.output = self.log.read()
        self.log.close()
        return self.proc.returncode


class RedisServer:
    """A real redis-server on a loopback port, in a temporary directory.

    persistent: an append-only file synced on every write, so a restart keeps
    every acknowledged write (what a production Redis with AOF does)."""

    def __init__(self, tmp: Path, persistent: bool = False, password: str = None):
        self.password = password
        self.port = free_port()
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir()
        self.persistent = persistent
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log")]
        args += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                 else ["--appendonly", "no"])
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "redis-server")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill_pubsub(self, times=3, pause=0.3):
        """Drops every subscribed connection (CLIENT KILL TYPE pubsub) times, pause apart."""
        for _ in range(times):
            time.sleep(pause)
            subprocess.run(["redis-cli", "-p", str(self.port), "CLIENT", "KILL", "TYPE", "pubsub"],
                           check=True, capture_output=True)

    def config(self, **extra) -> str:
        """A redis section for sidepush (extra keys as YAML text values)."""
        fields = {"url": f"'redis://127.0.0.1:{self.port}'", "key_prefix": "'test:'"}
        fields.update(extra)
        return "redis: { " + ", ".join(f"{k}: {v}" for k, v in fields.items()) + " }\n"


@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(tmp_path)
    yield r
    r.stop()


@pytest.fixture(scope="session")
def backend():
    b = Backend()
    yield b
    b.stop()


@pytest.fixture
def make_sidepush(backend, tmp_path):
    """Starts sidepush processes; each must exit cleanly (0, no sanitizer report)."""
    started = []

    def start(extra: str = "", backend_url: str = None, backend_keys: str = "") -> Sidepush:
        # A directory each: replicas sharing one would write one configuration file (which
        # the others then reload, watch_config) and clobber each other's log.
        own = tmp_path / f"sidepush-{len(started)}"
        own.mkdir()
        sp = Sidepush(backend_url or backend.url, extra, own, backend_keys)
        started.append(sp)
        return sp

    yield start
    for sp in started:
        rc = sp.stop()
        assert rc == 0, f"sidepush exited with {rc}:\n{sp.output}"
        assert "Sanitizer" not in sp.output and "runtime error" not in sp.output, sp.output


@pytest.fixture
def sidepush(make_sidepush):
    return make_sidepush()
