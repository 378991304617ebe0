"""/metrics scraped while traffic flows, parsed with the Prometheus client's own parser."""
import requests
from prometheus_client.parser import text_string_to_metric_families

from pushutil import CurlSSE, publish, publish_ok, wait_subscribers


def scrape(sp):
    r = requests.get(f"{sp.url}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_counters_move_with_traffic(make_sidepush):
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n")
    before = scrape(sp)
    sse = CurlSSE(f"{sp.url}/events/m")
    try:
        wait_subscribers(sp, "m", 1)
        for i in range(3):
            publish_ok(sp, "m", f"x{i}")
        assert len(sse.events(3)) == 3
        assert publish(sp, "bad name", "x").status_code in (400, 404)
        requests.get(f"{sp.url}/echo", timeout=5)           # proxied: 2xx
        requests.get(f"{sp.url}/status/503", timeout=5)     # proxied: 5xx
        after = scrape(sp)
    finally:
        sse.close()
    assert value(after, "sidepush_subscribers", transport="sse") == 1
    assert value(after, "sidepush_channels") >= 1
    assert value(after, "sidepush_messages_published_total") - \
        value(before, "sidepush_messages_published_total") == 3
    assert value(after, "sidepush_messages_delivered_total") - \
        value(before, "sidepush_messages_delivered_total") == 3
    errors = sum(v for (n, _), v in after.items() if n == "sidepush_publish_errors_total")
    assert errors >= 1
    assert value(after, "sidepush_proxy_requests_total", code="2xx") >= 1
    assert value(after, "sidepush_proxy_requests_total", code="5xx") >= 1
    assert value(after, "sidepush_proxy_request_duration_seconds_count") >= 2
    assert value(after, "sidepush_fanout_duration_seconds_count") >= 3
    assert value(after, "sidepush_process_open_fds") > 0
    assert value(after, "sidepush_process_resident_memory_bytes") > 1_000_000
    assert value(after, "sidepush_ready") == 1
    assert value(after, "sidepush_connections", listener="stream") >= 1


def test_metrics_are_not_proxied(sidepush, backend):
    before = backend.hits().get("/metrics", 0)
    requests.get(f"{sidepush.url}/metrics", timeout=5)
    assert backend.hits().get("/metrics", 0) == before


def test_separate_admin_listener(make_sidepush, backend):
    from conftest import free_port
    admin = free_port()
    sp = make_sidepush(f"metrics: {{ listen: '127.0.0.1:{admin}' }}\n")
    r = requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=5)
    assert r.status_code == 200 and "sidepush_ready 1" in r.text
    assert requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=5).status_code == 200
    assert requests.get(f"http://127.0.0.1:{admin}/other", timeout=5).status_code == 404
    before = backend.hits().get("/metrics", 0)
    requests.get(f"{sp.url}/metrics", timeout=5)  # on listen it is an ordinary path now
    assert backend.hits().get("/metrics", 0) == before + 1


def test_access_log(make_sidepush):
    sp = make_sidepush("log: { level: info, access: true }\n")
    requests.get(f"{sp.url}/healthz", timeout=5)
    sp.stop()
    lines = [line for line in sp.output.splitlines() if '"event":"access"' in line]
    assert any("GET /healthz" in line and " 200" in line for line in lines), sp.output


def test_dropped_is_not_the_slow_consumer_count(make_sidepush):
    """sidepush_messages_dropped_total printed the slow-consumer disconnects;
    no message is dropped for a subscriber (it resumes from history), so the
    family is gone, and what can be lost, history, is counted when reported."""
    sp = make_sidepush("routes:\n  - path: /events/{channel}\n    subscribe: {}\n"
                       "channels: { history: 1 }\n")
    old = publish_ok(sp, "h", "a")["id"]
    publish_ok(sp, "h", "b")
    publish_ok(sp, "h", "c")
    before = scrape(sp)
    assert ("sidepush_messages_dropped_total", ()) not in before
    r = requests.get(f"{sp.url}/events/h?wait=0&cursor={old}", timeout=5)
    assert r.json()["missed"] is True
    after = scrape(sp)
    assert value(after, "sidepush_missed_history_total") - \
        value(before, "sidepush_missed_history_total") == 1


def test_metrics_on_the_client_port_are_for_loopback_only(make_sidepush):
    """Issue 22 item 12: without metrics.listen, /metrics was public on the
    client port (each scrape walks every fd). Now it answers metrics.allow_from
    (loopback by default) only."""
    import requests
    sp = make_sidepush("metrics: { allow_from: [127.0.0.2/32] }\n")
    r = requests.get(f"{sp.url}/metrics", timeout=5)  # from 127.0.0.1
    assert r.status_code == 403 and "metrics.allow_from" in r.json()["error"]
    default = make_sidepush()
    assert requests.get(f"{default.url}/metrics", timeout=5).status_code == 200
