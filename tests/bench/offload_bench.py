"""Backend offload: N clients polling the backend directly vs the same N
clients on a sidepush poll route, in one run on loopback.

    /usr/bin/python3 tests/bench/offload_bench.py [--clients 1000,10000] [--interval 2]
        [--changes 3] [--png tests/bench/offload.png]

The "backend" is nginx serving a static JSON file (with ETag and
Last-Modified, as a legacy app's cacheable endpoint would have); the file is
changed --changes times, each change stamped with the time it was made.
Plain polling: every client GETs it every --interval seconds (random phase).
sidepush: every client holds an SSE subscription to a poll route that polls
the file every --interval seconds with conditional requests. Reports backend
requests per minute (nginx's access log) and change-to-client latency, and
draws both with gnuplot. Prints figures; asserts nothing.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchutil import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SIDEPUSH_BUILD", ROOT / "build"))
SIDEPUSH = BUILD / "cmd" / "sidepush"
FANOUT = BUILD / "tests" / "bench" / "fanout"


NGINX = """
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
events {{ worker_connections {conns}; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


def write_state(tmp, seq):
    """The backend's answer changes: a JSON document stamped with the time."""
    doc = json.dumps({"order": 42, "status": f"changed {seq}",
                      "stamp": f"@t={time.monotonic_ns()} s={seq}@"})
    path = Path(tmp) / "www" / "state.json"
    tmp_path = path.with_suffix(".tmp")
    tmp_path.write_text(doc)
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, path)


def log_lines(tmp):
    try:
        with open(Path(tmp) / "access.log", "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def run(clients, interval, changes, with_sidepush):
    tmp = tempfile.mkdtemp(prefix="sidepush-offload-")
    os.chmod(tmp, 0o755)  # nginx's workers drop to an unprivileged user when run as root
    (Path(tmp) / "www").mkdir(mode=0o755)
    write_state(tmp, -1)  # outside the counted range
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nginx_port = free_port()
    (Path(tmp) / "nginx.conf").write_text(NGINX.format(tmp=tmp, port=nginx_port, nofile=nofile,
                                                       conns=nofile - 100))
    procs = [subprocess.Popen(["nginx", "-c", f"{tmp}/nginx.conf", "-p", tmp, "-e",
                               f"{tmp}/nginx.err"], stderr=subprocess.DEVNULL)]
    try:
        wait_port(nginx_port)
        if with_sidepush:
            port = free_port()
            (Path(tmp) / "sidepush.yaml").write_text(f"""listen: 127.0.0.1:{port}
publish_listen: 127.0.0.1:{free_port()}
backend: {{ url: 'http://127.0.0.1:{nginx_port}' }}
log: {{ level: warn }}
limits: {{ max_connections: 100000 }}
routes:
  - path: /live/state
    poll: {{ url: /state.json, interval: {int(interval * 1000)}ms, initial: false }}
""")
            procs.append(subprocess.Popen([str(SIDEPUSH), "--config", f"{tmp}/sidepush.yaml"]))
            wait_port(port)
            args = ["--port", str(port), "--path", "/live/state", "--mode", "sse"]
        else:
            args = ["--port", str(nginx_port), "--path", "/state.json", "--mode", "poll",
                    "--interval-ms", str(int(interval * 1000))]
        timeout = int(changes * (interval + 1.5) + interval * 3 + 30)
        tool = subprocess.Popen([str(FANOUT), *args, "--subscribers", str(clients),
                                 "--messages", str(changes), "--sources", "8", "--external",
                                 "--timeout", str(timeout)],
                                stdout=subprocess.PIPE, text=True)
        assert tool.stdout.readline().strip() == "READY"
        time.sleep(interval)  # the pollers' phases settle
        start, t0 = log_lines(tmp), time.monotonic()
        for seq in range(changes):
            write_state(tmp, seq)
            time.sleep(interval + 1.5)
        requests = log_lines(tmp) - start
        minutes = (time.monotonic() - t0) / 60
        result = json.loads(tool.communicate(timeout=timeout + 30)[0].strip().splitlines()[-1])
        return {"clients": clients, "mode": "sidepush" if with_sidepush else "plain polling",
                "backend_requests_per_min": requests / minutes,
                "delivered": result["delivered"], "expected": result["expected"],
                "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"]}
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM if p is not procs[0] else signal.SIGQUIT)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def draw(rows, png, interval):
    """Two panels: backend requests/s (log scale) and change-to-client p50 latency."""
    data = Path(tempfile.mkdtemp()) / "offload.dat"
    by = {}
    for r in rows:
        by.setdefault(r["clients"], {})[r["mode"]] = r
    with open(data, "w") as f:
        for n, modes in sorted(by.items()):
            p, s = modes["plain polling"], modes["sidepush"]
            f.write(f'"{n} clients" {p["backend_requests_per_min"] / 60:.3f} '
                    f'{s["backend_requests_per_min"] / 60:.3f} {p["p50_ms"]:.1f} '
                    f'{s["p50_ms"]:.1f}\n')
    script = f"""
set terminal pngcairo size 1000,460 font "sans,11"
set output "{png}"
set multiplot layout 1,2 title "Legacy backend polled every {interval:g} s: plain polling vs sidepush poll route"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key below
set grid ytics
set logscale y
set ylabel "backend requests per second (log)"
plot "{data}" using 2:xtic(1) title "plain polling" lc rgb "#c0392b", \\
     "" using 3 title "sidepush" lc rgb "#2471a3"
unset logscale y
set ylabel "change-to-client latency, median (ms)"
set yrange [0:*]
plot "{data}" using 4:xtic(1) title "plain polling" lc rgb "#c0392b", \\
     "" using 5 title "sidepush" lc rgb "#2471a3"
unset multiplot
"""
    if shutil.which("gnuplot") is None:
        print("gnuplot not found (.ci/deps test installs gnuplot-nox): no picture drawn")
        return
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"picture: {png}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1000,10000")
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--changes", type=int, default=3)
    ap.add_argument("--png", default=str(ROOT / "tests" / "bench" / "offload.png"))
    args = ap.parse_args()
    rows = []
    for n in [int(x) for x in args.clients.split(",")]:
        for with_sidepush in (False, True):
            r = run(n, args.interval, args.changes, with_sidepush)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(f"\nbackend offload: {args.changes} changes, poll interval {args.interval:g} s, loopback")
    print(f"{'clients':>8} {'mode':15} {'backend req/min':>16} {'delivered':>15} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['clients']:>8} {r['mode']:15} {r['backend_requests_per_min']:>16.1f} "
              f"{r['delivered']:>7}/{r['expected']:<7} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}")
    for i in range(0, len(rows) - 1, 2):
        p, s = rows[i], rows[i + 1]
        ratio = p["backend_requests_per_min"] / max(s["backend_requests_per_min"], 1e-9)
        print(f"{p['clients']} clients: sidepush cuts backend requests {ratio:.0f}x; "
              f"median change-to-client latency {p['p50_ms']:.0f} ms -> {s['p50_ms']:.0f} ms")
    draw(rows, args.png, args.interval)


if __name__ == "__main__":
    main()
