"""Fan-out benchmark: sidepush and Nchan side by side, same machine, same run.

    /usr/bin/python3 tests/bench/fanout_bench.py [--subscribers 10000] [--messages 100]
        [--modes sse,ws,longpoll] [--patterns steady,burst,serial] [--size 128] [--redis]

Starts sidepush (one event loop) and nginx with Nchan (one worker), both on
loopback, and drives each with tests/bench/fanout (C, libevent): N
subscribers on one channel, M messages published at a steady rate, as a
burst over 8 connections, or serially (one POST at a time, the next as soon
as the previous is answered: how one backend worker publishes). Prints connect time, delivered vs expected, publish-to-delivery
latency p50/p99/max, deliveries per second, and, from /proc for the server's
processes only, RSS per subscriber and server CPU time per delivery. On a
2-core machine the load tool's own CPU caps deliveries per second, so CPU per
delivery and memory per subscriber are the figures that separate servers.
Prints figures; asserts nothing.

--redis adds two more servers per row: two sidepush replicas sharing a
redis-server (subscribers split evenly over them, every message published to
the first), and two nginx+Nchan instances with Nchan's Redis storage
(nchan_use_redis) arranged the same way. Their CPU and memory figures count
both replicas and redis-server.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from benchutil import free_port, start_redis, wait_port, wait_redis_up

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SIDEPUSH_BUILD", ROOT / "build"))
SIDEPUSH = BUILD / "cmd" / "sidepush"
FANOUT = BUILD / "tests" / "bench" / "fanout"
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"


def start_sidepush(tmp, history, redis_port=None, name="sidepush.yaml", workers=1):
    port, pub = free_port(), free_port()
    redis = f"redis: {{ url: '127.0.0.1:{redis_port}' }}\n" if redis_port else ""
    conf = Path(tmp) / name
    conf.write_text(redis + f"""listen: 127.0.0.1:{port}
publish_listen: 127.0.0.1:{pub}
backend: {{ url: 'http://127.0.0.1:9' }}
log: {{ level: warn }}
workers: {workers}
channels: {{ history: {history} }}
limits: {{ max_connections: 100000, subscriber_max_unsent: 4MiB }}
routes:
  - path: /sub/{{channel}}
    subscribe: {{ longpoll: {{ max_messages: 1000 }} }}
""")
    proc = subprocess.Popen([str(SIDEPUSH), "--config", str(conf)], stdout=subprocess.DEVNULL)
    wait_port(port)
    if redis_port:
        wait_redis_up(port)
    return {"name": "sidepush" if workers == 1 else f"sidepush-w{workers}", "kind": "sidepush",
            "procs": [proc], "pids": [proc.pid],
            "ports": [port], "path": "/sub/bench", "publish_port": pub,
            "publish_path": "/publish/bench"}


def start_replicas(tmp, history, start_one, name):
    """Two replicas of a server sharing one redis-server."""
    redis, redis_port = start_redis(tmp)
    first = start_one(tmp, history, redis_port, "a")
    second = start_one(tmp, history, redis_port, "b")
    return {"name": name, "kind": first["kind"], "procs": first["procs"] + second["procs"] + [redis],
            "pids": first["pids"] + second["pids"] + [redis.pid],
            "ports": first["ports"] + second["ports"], "path": first["path"],
            "publish_port": first["publish_port"], "publish_path": first["publish_path"]}


def start_sidepush_redis(tmp, history):
    return start_replicas(tmp, history, lambda t, h, r, n: start_sidepush(t, h, r, f"{n}.yaml"),
                          "sp+redis")


def start_nchan_redis(tmp, history):
    return start_replicas(tmp, history, lambda t, h, r, n: start_nchan(t, h, r, n), "nchan+redis")


NGINX_CONF = """
load_module {module};
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {redis_url}
    server {{
        listen 127.0.0.1:{port};
        location = /pub {{
            {use_redis}
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length {history};
        }}
        location = /sub {{
            {use_redis}
            nchan_subscriber;
            nchan_channel_id bench;
        }}
    }}
}}
"""


def start_nchan(tmp, history, redis_port=None, name="", workers=1):
    port = free_port()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    run = Path(tmp) / f"nginx{name}"
    run.mkdir()
    conf = run / "nginx.conf"
    conf.write_text(NGINX_CONF.format(
        module=NCHAN_MODULE, tmp=run, port=port, history=history, nofile=nofile, workers=workers,
        conns=nofile - 100,
        redis_url=f'nchan_redis_url "redis://127.0.0.1:{redis_port}";' if redis_port else "",
        use_redis="nchan_use_redis on;" if redis_port else ""))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(run), "-e", f"{run}/nginx.err"],
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    return {"name": "nchan" if workers == 1 else f"nchan-w{workers}", "kind": "nchan",
            "procs": [proc],
            "pids": [proc.pid] + [int(w) for w in children], "ports": [port], "path": "/sub",
            "publish_port": port, "publish_path": "/pub"}


def run_fanout(server, mode, subscribers, messages, rate, size, timeout, extra=()):
    args = [str(FANOUT), "--path", server["path"], *extra,
            "--publish-port", str(server["publish_port"]),
            "--publish-path", server["publish_path"], "--mode", mode,
            "--server", server["kind"], "--subscribers", str(subscribers),
            "--messages", str(messages), "--rate", str(rate), "--size", str(size),
            "--sources", "8", "--publishers", "1" if rate < 0 else "8",
            "--timeout", str(timeout)]
    for port in server["ports"]:
        args += ["--port", str(port)]
    for pid in server["pids"]:
        args += ["--pid", str(pid)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 120)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"error": out.stderr.strip()[-300:]}
    result = json.loads(lines[-1])
    errors = [l for l in out.stderr.splitlines() if l]
    if errors:
        result["client_errors"] = len(errors)
    return result


def stop(server):
    for proc in server["procs"]:
        nginx = server["kind"] == "nchan" and proc.args[0] == "nginx"
        proc.send_signal(signal.SIGQUIT if nginx else signal.SIGTERM)
    for proc in server["procs"]:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fmt(r, key, spec):
    return format(r[key], spec) if key in r else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--rate", type=int, default=100, help="steady publish rate, messages/s")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--modes", default="sse,ws,longpoll")
    ap.add_argument("--patterns", default="steady,burst,serial",
                    help="steady: --rate per second; burst: all at once over 8 connections; "
                         "serial: one POST at a time, the next when it is answered")
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--workers", default="1",
                    help="comma-separated worker counts: sidepush workers and nginx "
                         "worker_processes, each row run with each")
    ap.add_argument("--redis", action="store_true",
                    help="also two replicas of each sharing a redis-server")
    args = ap.parse_args()
    starters = [start_sidepush, start_nchan]
    if args.redis:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is needed for --redis: .ci/deps test installs it")
        starters += [start_sidepush_redis, start_nchan_redis]
    for need in (SIDEPUSH, FANOUT):
        if not need.exists():
            raise SystemExit(f"{need} missing: build first (meson setup build && ninja -C build)")
    if shutil.which("nginx") is None or not Path(NCHAN_MODULE).exists():
        raise SystemExit("nginx and libnginx-mod-nchan are needed: .ci/deps test installs them")
    rows = []
    for mode in args.modes.split(","):
        for pattern in args.patterns.split(","):
            rate = {"steady": args.rate, "burst": 0, "serial": -1}[pattern]
            for start, workers in [(st, int(w)) for w in args.workers.split(",")
                                   for st in starters]:
                tmp = tempfile.mkdtemp(prefix="sidepush-fanout-")
                if start in (start_sidepush, start_nchan):
                    server = start(tmp, max(args.messages, 100), workers=workers)
                else:
                    server = start(tmp, max(args.messages, 100))
                try:
                    r = run_fanout(server, mode, args.subscribers, args.messages, rate,
                                   args.size, args.timeout)
                finally:
                    stop(server)
                    shutil.rmtree(tmp, ignore_errors=True)
                r["server"] = server["name"]
                r.setdefault("mode", mode)
                r.setdefault("pattern", pattern)
                rows.append(r)
                print(json.dumps(r), flush=True)

    print(f"\nfan-out: {args.subscribers} subscribers, {args.messages} messages of {args.size} B, "
          f"steady = {args.rate}/s, loopback, {os.cpu_count()} CPUs, workers {args.workers}")
    head = (f"{'server':11} {'mode':9} {'pattern':7} {'connect s':>9} {'delivered':>17} {'dups':>4} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'deliv/s':>9} {'RSS B/sub':>9} "
            f"{'CPU us/deliv':>12}")
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['server']:11} {r['mode']:9} {r['pattern']:7} error: {r['error']}")
            continue
        delivered = f"{r['delivered']}/{r['expected']}"
        print(f"{r['server']:11} {r['mode']:9} {r['pattern']:7} {fmt(r, 'connect_s', '9.2f')} "
              f"{delivered:>17} {r['duplicates']:>4} {fmt(r, 'p50_ms', '8.2f')} {fmt(r, 'p99_ms', '8.2f')} "
              f"{fmt(r, 'max_ms', '8.2f')} {fmt(r, 'deliveries_per_s', '9.0f')} "
              f"{fmt(r, 'rss_per_sub_bytes', '9.0f')} {fmt(r, 'cpu_us_per_delivery', '12.3f')}")
    print("\nsidepush / nchan (lower is better for all three; deliveries/s: higher is better):")
    step = len(starters)
    for i in range(0, len(rows) - 1, step):
        for j in range(0, step, 2):
            s, n = rows[i + j], rows[i + j + 1]
            if "error" in s or "error" in n:
                continue
            ratio = lambda k: (s[k] / n[k]) if n.get(k) else float("nan")
            print(f"  {s['server']:11} {s['mode']:9} {s['pattern']:7} "
                  f"memory/sub {ratio('rss_per_sub_bytes'):5.2f}x  "
                  f"CPU/delivery {ratio('cpu_us_per_delivery'):5.2f}x  p99 {ratio('p99_ms'):5.2f}x  "
                  f"deliveries/s {ratio('deliveries_per_s'):5.2f}x")
    extra = worker_ratios(rows)
    if extra:
        print("\nmore workers (lower is better):")
        print("\n".join(extra))




def worker_ratios(rows):
    """sidepush with more workers against itself with one and against Nchan."""
    by = {(r["server"], r["mode"], r["pattern"]): r for r in rows if "error" not in r}
    keys = sorted({(m, p) for (_, m, p) in by})
    lines = []
    for name in sorted({s for (s, _, _) in by if s.startswith("sidepush-w")}):
        for mode, pattern in keys:
            s = by.get((name, mode, pattern))
            if s is None:
                continue
            for other in ("sidepush", "nchan", "nchan-" + name.split("-")[1]):
                o = by.get((other, mode, pattern))
                if o is None:
                    continue
                ratio = lambda k: (s[k] / o[k]) if o.get(k) else float("nan")
                lines.append(f"  {name} / {other:9} {mode:9} {pattern:7} p99 {ratio('p99_ms'):5.2f}x  "
                             f"CPU/delivery {ratio('cpu_us_per_delivery'):5.2f}x  "
                             f"memory/sub {ratio('rss_per_sub_bytes'):5.2f}x")
    return lines


if __name__ == "__main__":
    main()
