"""Helpers for push tests: publishing, and reading SSE with a real client."""
import re
import subprocess
import time

import requests


def publish(sp, channel, data, event=None, headers=None, **kw):
    h = dict(headers or {})
    if event:
        h["Sidepush-Event"] = event
    r = requests.post(f"http://127.0.0.1:{sp.publish_port}/publish/{channel}",
                      data=data.encode() if isinstance(data, str) else data, headers=h,
                      timeout=5, **kw)
    return r


def publish_ok(sp, channel, data, event=None, headers=None):
    r = publish(sp, channel, data, event, headers)
    assert r.status_code == 202, r.text
    return r.json()


def metric(url, name, labels=""):
    """One value from sidepush's /metrics at url, or None."""
    text = requests.get(url + "/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_metric(url, name, value, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(url, name) == value:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} never became {value}")


def channel_info(sp, channel):
    return requests.get(f"http://127.0.0.1:{sp.publish_port}/channels/{channel}", timeout=5)


def wait_subscribers(sp, channel, count, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = channel_info(sp, channel)
        if r.status_code == 200 and r.json()["subscribers"] >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{channel} never had {count} subscribers")


class CurlSSE:
    """`curl -N` reading an event stream; a thread drains it as fast as it comes."""

    def __init__(self, url, headers=()):
        import threading
        args = ["curl", "-sN", "-H", "Accept: text/event-stream"]
        for h in headers:
            args += ["-H", h]
        self.proc = subprocess.Popen(args + [url], stdout=subprocess.PIPE)
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        while chunk := self.proc.stdout.read1(1 << 20):
            with self.lock:
                self.buf += chunk

    @property
    def raw(self):
        with self.lock:
            return bytes(self.buf)

    def events(self, count, timeout=5):
        """Waits until count events (with data) have arrived; returns those there are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                enough = self.buf.count(b"data:") >= count
            if enough:
                got = [e for e in parse_sse(self.raw) if "data" in e]
                if len(got) >= count:
                    return got
            if not self.thread.is_alive() and not enough:
                break
            time.sleep(0.02)
        return [e for e in parse_sse(self.raw) if "data" in e]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.thread.join(5)


def parse_sse(raw: bytes):
    """Parses an event stream per the WHATWG rules (fields, multi-line data)."""
    events, cur = [], {}
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    complete = text.rsplit("\n\n", 1)[0] + "\n\n" if "\n\n" in text else ""
    for line in complete.split("\n"):
        if line == "":
            if cur:
                events.append(cur)
            cur = {}
            continue
        if line.startswith(":"):
            cur.setdefault("comments", []).append(line[1:])
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            cur["data"] = cur["data"] + "\n" + value if "data" in cur else value
        else:
            cur[field] = value
    return events
