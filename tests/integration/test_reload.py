"""SIGHUP: a good new file takes effect for new requests while open
subscriptions keep receiving; a broken one is refused and the old one kept."""
import signal
import time

import requests

from pushutil import CurlSSE, publish_ok, wait_subscribers

BASE = "routes:\n  - path: /events/{channel}\n    subscribe: {}\n"


def reload(sp, extra):
    text = sp.config.read_text()
    head = text.split("routes:")[0]
    sp.config.write_text(head + extra)
    sp.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)


def test_reload_adds_a_route_and_keeps_connections(make_sidepush):
    sp = make_sidepush(BASE)
    sse = CurlSSE(f"{sp.url}/events/keep")
    try:
        wait_subscribers(sp, "keep", 1)
        publish_ok(sp, "keep", "before")
        assert requests.get(f"{sp.url}/live/x?wait=0", timeout=5).status_code == 404  # proxied
        reload(sp, BASE + "  - path: /live/{channel}\n    subscribe: {}\n")
        assert requests.get(f"{sp.url}/live/x?wait=0", timeout=5).status_code == 304  # new route
        publish_ok(sp, "keep", "after")
        assert [e["data"] for e in sse.events(2)] == ["before", "after"]  # never interrupted
    finally:
        sse.close()


def test_broken_config_is_refused_and_the_old_one_serves(make_sidepush):
    sp = make_sidepush(BASE)
    sse = CurlSSE(f"{sp.url}/events/stay")
    try:
        wait_subscribers(sp, "stay", 1)
        reload(sp, "routes: [ this is : not valid\n")
        assert sp.proc.poll() is None  # still running
        assert requests.get(f"{sp.url}/events/stay?wait=0", timeout=5).status_code == 304
        publish_ok(sp, "stay", "still here")
        assert sse.events(1)[0]["data"] == "still here"
    finally:
        sse.close()
    sp.log.flush()
    log = sp.config.with_suffix(".log").read_text()
    assert "reload_rejected" in log and "YAML syntax error" in log
