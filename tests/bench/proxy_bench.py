"""Proxy overhead: wrk against the backend directly, through sidepush, and
through nginx proxy_pass, in one run on loopback. Prints figures; asserts
nothing.

    /usr/bin/python3 tests/bench/proxy_bench.py [--duration 10] [--connections 50]
        [--workers 1,2] [--threads 1] [--rounds 1]
    /usr/bin/python3 tests/bench/proxy_bench.py --instructions [--requests 2000]

The backend is nginx answering a fixed 13-byte body (so the backend costs
little and the proxies' own overhead shows). nginx proxy_pass runs with one
worker and upstream keep-alive, like sidepush's one worker with its upstream
pool. Server CPU time per request is read from /proc/PID/stat for the proxy
process only. With --rounds N the targets take turns N times and each row is
the round with the median req/s (one connection's latency is noisy on a
shared machine; turns spread the noise over every target alike).
--instructions counts instead, under valgrind's callgrind, the user-space
instructions each proxy spends per keep-alive request (libraries included,
the kernel not): the same figure on every run, whatever else the machine does.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from benchutil import cpu_seconds, free_port, rss_kib, wait_port

ROOT = Path(__file__).resolve().parents[2]
SIDEPUSH = os.environ.get("SIDEPUSH_BIN", str(ROOT / "build" / "cmd" / "sidepush"))
NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}.err warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body-{name};
    proxy_temp_path {dir}/proxy-{name};
    fastcgi_temp_path {dir}/fcgi-{name};
    uwsgi_temp_path {dir}/uwsgi-{name};
    scgi_temp_path {dir}/scgi-{name};
    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        {body}
    }}
}}
"""


def start_nginx(tmp, name, port, body, backend_port=1):
    conf = Path(tmp) / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp, name=name, port=port, body=body,
                                      backend_port=backend_port))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", tmp, "-e", f"{tmp}/nginx-{name}.err"],
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


WRK_THREADS = 1


def run_wrk(url, duration, connections):
    out = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, timeout=duration + 30).stdout

    def latency(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": latency(50), "p99": latency(99), "requests": total,
            "errors": int(errors.group(1)) if errors else 0}


def instructions(tmp, name, cmd, port, requests):
    """Callgrind's count for `requests` requests on one keep-alive connection,
    after a warm-up and with the counters zeroed, so start-up is left out."""
    import glob
    import http.client
    import time
    out = f"{tmp}/callgrind.{name}"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def go(n):
            for _ in range(n):
                conn.request("GET", "/bench", headers={"User-Agent": "proxy_bench", "Accept": "*/*"})
                conn.getresponse().read()
        go(300)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        go(requests)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
        time.sleep(0.5)
        dump = max(glob.glob(out + "*"), key=os.path.getmtime)
        total = int(re.search(r"^(?:summary|totals): (\d+)", Path(dump).read_text(), re.M).group(1))
        return total / requests
    finally:
        proc.kill()
        proc.wait()


def count_instructions(requests):
    tmp = tempfile.mkdtemp(prefix="sidepush-bench-")
    backend = None
    try:
        backend_port, nginx_port, sp_port = free_port(), free_port(), free_port()
        backend = start_nginx(tmp, "backend", backend_port, 'location / { return 200 "hello world\\n"; }')
        conf = Path(tmp) / "nginx-proxy.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, name="proxy", port=nginx_port, backend_port=backend_port,
                                          body="location / { proxy_pass http://backend; "
                                               "proxy_http_version 1.1; proxy_set_header Connection \"\"; }"))
        sp_conf = Path(tmp) / "sidepush.yaml"
        sp_conf.write_text(f"listen: 127.0.0.1:{sp_port}\npublish_listen: 127.0.0.1:{free_port()}\n"
                           f"backend: {{ url: http://127.0.0.1:{backend_port} }}\nworkers: 1\n"
                           "log: { level: warn }\n")
        sp = instructions(tmp, "sidepush", [SIDEPUSH, "--config", str(sp_conf)], sp_port, requests)
        ng = instructions(tmp, "nginx", ["nginx", "-c", str(conf), "-p", tmp, "-e", f"{tmp}/err"],
                          nginx_port, requests)
        print(f"\nuser-space instructions per proxied request (callgrind, {requests} keep-alive requests)")
        print(f"through sidepush           {sp:>10.0f}")
        print(f"through nginx proxy_pass   {ng:>10.0f}")
        print(f"\nsidepush / nginx: {sp / ng:.2f}x")
    finally:
        if backend:
            backend.terminate()
            backend.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--workers", default="1", help="comma-separated sidepush worker counts")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--rounds", type=int, default=1, help="turns per target; the median is shown")
    ap.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    ap.add_argument("--requests", type=int, default=2000, help="with --instructions")
    args = ap.parse_args()
    if args.instructions:
        count_instructions(args.requests)
        return
    global WRK_THREADS
    WRK_THREADS = args.threads
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: .ci/deps test installs it")

    tmp = tempfile.mkdtemp(prefix="sidepush-bench-")
    procs = []
    try:
        backend_port, nginx_port, sp_port = free_port(), free_port(), free_port()
        procs.append(start_nginx(tmp, "backend", backend_port,
                                 'location / { return 200 "hello world\\n"; }'))
        nginx_proxy = start_nginx(tmp, "proxy", nginx_port,
                                  "location / { proxy_pass http://backend; "
                                  "proxy_http_version 1.1; proxy_set_header Connection \"\"; }",
                                  backend_port)
        procs.append(nginx_proxy)
        targets = [("direct to backend", backend_port, None)]
        for workers in [int(w) for w in args.workers.split(",")]:
            port = free_port() if targets[1:] else sp_port
            conf = Path(tmp) / f"sidepush-w{workers}.yaml"
            conf.write_text(f"listen: 127.0.0.1:{port}\npublish_listen: 127.0.0.1:{free_port()}\n"
                            f"backend: {{ url: http://127.0.0.1:{backend_port} }}\n"
                            f"workers: {workers}\nlog: {{ level: warn }}\n")
            sidepush = subprocess.Popen([SIDEPUSH, "--config", str(conf)])
            procs.append(sidepush)
            wait_port(port)
            name = "through sidepush" + ("" if workers == 1 else f" ({workers} workers)")
            targets.append((name, port, sidepush))
        targets.append(("through nginx proxy_pass", nginx_port, nginx_proxy))

        runs = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, port, proc in targets:
                url = f"http://127.0.0.1:{port}/bench"
                run_wrk(url, 1, args.connections)  # warm up connection pools
                cpu0 = cpu_seconds(proc.pid) if proc else 0
                r = run_wrk(url, args.duration, args.connections)
                if proc:
                    r["cpu_us"] = (cpu_seconds(proc.pid) - cpu0) / max(r["requests"], 1) * 1e6
                    r["rss"] = rss_kib(proc.pid)
                runs[name].append(r)
        rows = [(name, sorted(runs[name], key=lambda r: r["rps"])[args.rounds // 2])
                for name, _, _ in targets]

        print(f"\nproxy overhead: wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
              f"{os.cpu_count()} CPUs, loopback, median of {args.rounds} round(s)")
        print(f"{'':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'proxy CPU us/req':>17} {'proxy RSS MiB':>14}")
        for name, r in rows:
            cpu = f"{r['cpu_us']:.1f}" if "cpu_us" in r else "-"
            rss = f"{r['rss'] / 1024:.1f}" if "rss" in r else "-"
            print(f"{name:28} {r['rps']:>10.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} "
                  f"{r['errors']:>7} {cpu:>17} {rss:>14}")
        sp, ng = rows[1][1], rows[-1][1]
        direct = rows[0][1]
        print(f"\nsidepush / nginx: throughput {sp['rps'] / ng['rps']:.2f}x, "
              f"CPU per request {sp['cpu_us'] / ng['cpu_us']:.2f}x, "
              f"added p50 {sp['p50'] - direct['p50']:.3f} against {ng['p50'] - direct['p50']:.3f} ms "
              f"({(sp['p50'] - direct['p50']) / max(ng['p50'] - direct['p50'], 1e-6):.2f}x)")
        for name, r in rows[2:-1]:
            print(f"{name} / one worker: throughput {r['rps'] / sp['rps']:.2f}x, "
                  f"CPU per request {r['cpu_us'] / sp['cpu_us']:.2f}x")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
