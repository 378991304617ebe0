"""Redis Sentinel (issue 26): real redis-server processes, a primary, a
replica and three sentinels on loopback. Two sidepush replicas learn the
primary from the sentinels, with subscribers on both and a steady publisher
(one POST at a time, alternating between them) while the primary is killed
with SIGKILL: publishes answer 503 during the switch, never 202 for what
was not stored (redis.wait_replicas: 1, every replica there is, so the one
promoted has every acknowledged message), both follow the new primary, the
old one restarts (empty, as a pod would) and Sentinel makes it a replica,
after which publishes are confirmed again, and every acknowledged message
reaches both subscribers once, in order."""
import signal
import subprocess
import threading
import time

import pytest

from conftest import free_port, wait_port
from pushutil import CurlSSE, metric, publish, wait_metric, wait_subscribers

MASTER = "mymaster"


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=10).stdout.strip()


def start(args, port, what):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, what)
    return proc


@pytest.fixture
def sentinel_set(tmp_path):
    procs = []
    primary = free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    d = tmp_path / f"redis-{primary}"
    d.mkdir()
    procs.append(start(["redis-server", "--port", str(primary), "--dir", str(d), *common],
                       primary, "primary"))
    replicas = []
    for _ in range(1):
        port = free_port()
        d = tmp_path / f"redis-{port}"
        d.mkdir()
        procs.append(start(["redis-server", "--port", str(port), "--dir", str(d),
                            "--replicaof", "127.0.0.1", str(primary), *common], port, "replica"))
        replicas.append(port)
    sentinels = []
    for _ in range(3):
        port = free_port()
        conf = tmp_path / f"sentinel-{port}.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                        f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 3000\n"
                        f"sentinel failover-timeout {MASTER} 4000\n"
                        f"sentinel parallel-syncs {MASTER} 1\n")
        procs.append(start(["redis-server", str(conf), "--sentinel"], port, "sentinel"))
        sentinels.append(port)
    # down-after 3 s: with 1 s, a sentinel on a loaded machine took its
    # own new links to the just-promoted primary for a failure and failed
    # over again, to a replica that had not finished its first sync.
    deadline = time.monotonic() + 20
    while not all(cli(r, "INFO", "replication").count("master_link_status:up") for r in replicas):
        assert time.monotonic() < deadline, "the replicas never synced"
        time.sleep(0.1)
    while not all(cli(s, "SENTINEL", "replicas", MASTER).count("127.0.0.1") >= 1
                  for s in sentinels):
        assert time.monotonic() < deadline, "the sentinels never saw both replicas"
        time.sleep(0.2)

    class Set:
        pass
    st = Set()
    st.primary, st.primary_proc, st.sentinels = primary, procs[0], sentinels
    st.sentinel_procs = procs[2:5]

    def restart_primary_empty():
        """The killed primary back at once, empty and a master."""
        procs.append(start(["redis-server", "--port", str(primary), "--dir",
                            str(tmp_path / f"redis-{primary}"), *common], primary, "old primary"))
    st.restart_primary_empty = restart_primary_empty

    def restart_primary(new_primary):
        """The killed primary back on its port as a replica of the new one, as
        an operator (or a Helm chart's start script asking Sentinel) restarts it:
        started empty as a master, Sentinel may promote it back before it
        makes it a replica, and the history is lost in Redis."""
        procs.append(start(["redis-server", "--port", str(primary), "--dir",
                            str(tmp_path / f"redis-{primary}"), "--replicaof", "127.0.0.1",
                            str(new_primary), *common], primary, "old primary"))
    st.restart_primary = restart_primary
    yield st
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


def config(st, extra=""):
    sentinels = ", ".join(f"'127.0.0.1:{p}'" for p in st.sentinels)
    return ("routes:\n  - path: /events/{channel}\n    subscribe: {}\n"
            "channels: { history: 1000 }\n"
            f"redis: {{ url: 'redis://unused:6379', key_prefix: 'test:', sentinels: [{sentinels}], "
            f"sentinel_master: {MASTER}, wait_replicas: 1, wait_timeout: 500ms, "
            "reconnect_max: 200ms }\n" + extra)


def explain_loss(st, lost, ids, statuses, killed_at):
    """What a failure needs to be told apart: lost in Redis, or on the way."""
    primary = cli(st.sentinels[0], "SENTINEL", "get-master-addr-by-name", MASTER).split()
    seq = int(lost[0].rsplit("-", 1)[1])
    stored = cli(int(primary[1]), "XRANGE", "test:s:f", f"{seq}-0", f"{seq}-0") if primary else ""
    timeline = [(round(at - killed_at, 2), code) for at, code in statuses]
    return (f"the primary {primary} has it: {bool(stored)}; received near it: "
            f"{[i for i in ids if abs(i - seq) < 4]}; statuses after the kill: "
            f"{[t for t in timeline if -0.5 < t[0] < 8]}")


def test_a_failover_under_load_loses_no_acknowledged_message(make_sidepush, sentinel_set):
    a, b = (make_sidepush(config(sentinel_set, "log: { level: info }\n")) for _ in range(2))
    for sp in (a, b):
        wait_metric(sp.url, "sidepush_redis_up", 1)
    streams = [CurlSSE(f"{sp.url}/events/f") for sp in (a, b)]
    try:
        for sp in (a, b):
            wait_subscribers(sp, "f", 1)
        acked, statuses, killed_at = [], [], []

        def publisher():
            # Until ten publishes in a row after the kill were acknowledged:
            # a sentinel election that splits is retried only after twice
            # failover-timeout, so a loaded machine may need a second round.
            n, end = 0, time.monotonic() + 60
            while time.monotonic() < end:
                sp = (a, b)[n % 2]
                r = publish(sp, "f", f"n{n}")
                statuses.append((time.monotonic(), r.status_code))
                if r.status_code == 202:
                    acked.append((r.json()["id"], f"n{n}"))
                else:
                    assert r.status_code == 503, r.text
                    reasons.add(r.json().get("error", r.text))
                n += 1
                if killed_at and time.monotonic() > killed_at[0] + 3 and \
                        any(code == 503 for _, code in statuses) and \
                        [code for _, code in statuses[-10:]] == [202] * 10:
                    return
                time.sleep(0.02)
        reasons = set()
        t = threading.Thread(target=publisher)
        t.start()
        time.sleep(2)
        sentinel_set.primary_proc.send_signal(signal.SIGKILL)
        killed_at.append(time.monotonic())
        # Publishes are confirmed again once the old primary is back as a replica.
        deadline = time.monotonic() + 60
        while (named := cli(sentinel_set.sentinels[0], "SENTINEL", "get-master-addr-by-name",
                            MASTER).split()[1:]) == [str(sentinel_set.primary)]:
            assert time.monotonic() < deadline, "Sentinel never named a new primary"
            time.sleep(0.1)
        sentinel_set.restart_primary(int(named[0]))
        t.join()
        assert any(code == 503 for _, code in statuses), "the switch was never seen"
        last = [code for _, code in statuses[-10:]]
        assert last == [202] * 10, f"not back on the new primary within 60 s: {sorted(reasons)}"
        for s in streams:
            # Publishes answered 503 for want of a replica were stored and
            # delivered all the same: read on to the last acknowledged one.
            deadline = time.monotonic() + 20
            got = []
            while acked[-1] not in got and time.monotonic() < deadline:
                got = [(e["id"], e["data"]) for e in s.events(len(acked), timeout=1)]
            ids = [int(i.rsplit("-", 1)[1]) for i, _ in got]
            assert ids == sorted(set(ids)), f"out of order or repeated: {got}"
            missing = [m for m in acked if m not in got]
            assert not missing, (f"{len(missing)} acknowledged messages lost by stream "
                                 f"{streams.index(s)}: {missing[:5]}; "
                                 + explain_loss(sentinel_set, missing[0], ids, statuses,
                                                killed_at[0]))
        primary = cli(sentinel_set.sentinels[0], "SENTINEL", "get-master-addr-by-name",
                      MASTER).split()
        for sp in (a, b):
            assert metric(sp.url, "sidepush_redis_primary_changes_total") >= 1
            assert metric(sp.url, "sidepush_redis_primary_info",
                          f'{{mode="sentinel",address="{primary[0]}:{primary[1]}"}}') == 1
    except BaseException:
        for sp in (a, b):
            sp.stop()
            print(f"sidepush on {sp.port}:\n{sp.output}")
        raise
    finally:
        for s in streams:
            s.close()


def test_no_write_to_a_server_sentinel_has_not_named_since_the_loss(make_sidepush, sentinel_set):
    """With every sentinel frozen, the primary dies and restarts empty on its
    address: sidepush does not write there on the strength of the answer it
    had before the loss (a new epoch in an empty master, lost when Sentinel
    makes it a replica), and publishes are refused until a sentinel answers."""
    sp = make_sidepush(config(sentinel_set))
    wait_metric(sp.url, "sidepush_redis_up", 1)
    assert publish(sp, "g", "before").status_code == 202
    for p in sentinel_set.sentinel_procs:
        p.send_signal(signal.SIGSTOP)
    try:
        sentinel_set.primary_proc.send_signal(signal.SIGKILL)
        sentinel_set.primary_proc.wait(10)
        wait_metric(sp.url, "sidepush_redis_up", 0)
        sentinel_set.restart_primary_empty()
        deadline = time.monotonic() + 3  # many reconnect attempts (reconnect_max 200 ms)
        while time.monotonic() < deadline:
            assert publish(sp, "g", "x").status_code == 503
            time.sleep(0.1)
        assert cli(sentinel_set.primary, "EXISTS", "test:epoch") == "0"
    finally:
        for p in sentinel_set.sentinel_procs:
            p.send_signal(signal.SIGCONT)
    # The sentinels answer again (the primary they know is up): writes resume.
    wait_metric(sp.url, "sidepush_redis_up", 1, timeout=30)
    deadline = time.monotonic() + 30  # and the replica has synced again (wait_replicas)
    while publish(sp, "g", "after").status_code != 202:
        assert time.monotonic() < deadline, "publishes never resumed"
        time.sleep(0.2)


def test_sentinel_settings_are_checked(tmp_path):
    from conftest import SIDEPUSH
    cfg = tmp_path / "s.yaml"
    cfg.write_text("backend: { url: 'http://127.0.0.1:9' }\n"
                   "redis: { sentinels: ['127.0.0.1:26379', 'http://x'] }\n")
    r = subprocess.run([SIDEPUSH, "--check-config", str(cfg)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "redis.sentinels needs redis.sentinel_master" in r.stderr
    assert "'http://x' must be host[:port]" in r.stderr
