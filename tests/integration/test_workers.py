"""Several workers under load: publishers on several channels, subscribers of
all three transports (their connections spread over four workers by the
kernel), cut and resumed while publishing goes on. Every subscriber must see
each of its channel's messages once, in order."""
import asyncio
import json
import random

import aiohttp
import websockets

from pushutil import wait_subscribers

CHANNELS = 3
MESSAGES = 60
PER_TRANSPORT = 2

CONFIG = ("workers: 4\nchannels: { history: 1000 }\n"
          "routes:\n  - path: /s/{channel}\n"
          "    subscribe: { websocket: { envelope: true }, longpoll: { timeout: 2s } }\n")


def expected(ch):
    return [f"{ch}:{i}" for i in range(MESSAGES)]


async def sse_client(sp, ch, got, cut_after, connected):
    """aiohttp reading the event stream; cut once, resumed with Last-Event-ID."""
    last_id, cuts = None, 0
    async with aiohttp.ClientSession() as session:
        while len(got) < MESSAGES:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            async with session.get(f"{sp.url}/s/{ch}", headers=headers) as r:
                assert r.status == 200
                connected.set()
                event = {}
                while len(got) < MESSAGES:
                    line = (await r.content.readline()).decode().rstrip("\n")
                    if line.startswith("id:"):
                        event["id"] = line[3:].strip()
                    elif line.startswith("data:"):
                        event["data"] = line[5:].strip()
                    elif line.startswith("event:"):
                        event["event"] = line[6:].strip()
                    elif line == "":
                        if "id" in event:
                            last_id = event["id"]
                        if event.get("data") and not event.get("event", "").startswith("sidepush"):
                            got.append(event["data"])
                        event = {}
                        if cuts == 0 and len(got) >= cut_after:
                            cuts += 1
                            break  # cut: the connection closes, the client resumes


async def ws_client(sp, ch, got, cut_after, connected):
    """websockets with the envelope (it carries ids); cut once, resumed."""
    last_id, cuts = None, 0
    while len(got) < MESSAGES:
        query = f"?last_event_id={last_id}" if last_id else ""
        async with websockets.connect(f"ws://127.0.0.1:{sp.port}/s/{ch}{query}",
                                      subprotocols=["sidepush-envelope"]) as ws:
            connected.set()
            while len(got) < MESSAGES:
                frame = json.loads(await ws.recv())
                if frame.get("id"):
                    last_id = frame["id"]
                if not frame.get("event", "").startswith("sidepush"):
                    got.append(frame["data"])
                    if cuts == 0 and len(got) >= cut_after:
                        cuts += 1
                        break


async def longpoll_client(sp, ch, got, cut_after, connected):
    """A loop of plain GETs with the cursor; one request abandoned mid-hold."""
    cursor, cut = None, False
    async with aiohttp.ClientSession() as session:
        while len(got) < MESSAGES:
            params = {"cursor": cursor} if cursor else {}
            request = session.get(f"{sp.url}/s/{ch}", params=params)
            if not cut and len(got) >= cut_after:
                cut = True
                task = asyncio.ensure_future(request.__aenter__())
                await asyncio.sleep(0.05)
                task.cancel()  # the client goes away while its request is held
                continue
            async with request as r:
                connected.set()
                if r.status == 204:
                    cursor = r.headers.get("Sidepush-Cursor", cursor)
                    continue
                assert r.status == 200, r.status
                body = await r.json()
                got.extend(m["data"] for m in body["messages"])
                cursor = body["cursor"]


async def publisher(sp, ch):
    """One backend worker posting one message at a time."""
    async with aiohttp.ClientSession() as session:
        for i in range(MESSAGES):
            async with session.post(f"http://127.0.0.1:{sp.publish_port}/publish/{ch}",
                                    data=f"{ch}:{i}") as r:
                assert r.status == 202
            if i % 7 == 0:
                await asyncio.sleep(0.01)


def test_order_no_loss_no_duplicate_across_workers(make_sidepush):
    sp = make_sidepush(CONFIG)
    rng = random.Random(7)
    clients = []

    async def main():
        tasks = []
        for c in range(CHANNELS):
            ch = f"stress{c}"
            for kind in (sse_client, ws_client, longpoll_client):
                for _ in range(PER_TRANSPORT):
                    got, connected = [], asyncio.Event()
                    clients.append((ch, kind.__name__, got))
                    tasks.append(asyncio.ensure_future(
                        kind(sp, ch, got, rng.randrange(5, MESSAGES - 5), connected)))
                    await asyncio.wait_for(connected.wait(), 10)
        for c in range(CHANNELS):
            await asyncio.get_running_loop().run_in_executor(
                None, wait_subscribers, sp, f"stress{c}", 3 * PER_TRANSPORT)
        await asyncio.gather(*(publisher(sp, f"stress{c}") for c in range(CHANNELS)))
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    asyncio.run(main())
    for ch, kind, got in clients:
        assert got == expected(ch), f"{kind} on {ch}: {got}"


def test_metrics_sum_the_workers(make_sidepush):
    """Connections on different workers are counted once each, by worker and
    in the sums, and a publish reaching all of them is counted per delivery."""
    import re
    import socket
    import time

    import requests

    from pushutil import CurlSSE, publish_ok

    sp = make_sidepush(CONFIG)
    streams = [CurlSSE(f"{sp.url}/s/sum") for _ in range(8)]
    idle = [socket.create_connection(("127.0.0.1", sp.port)) for _ in range(4)]
    wait_subscribers(sp, "sum", 8)
    publish_ok(sp, "sum", "x")
    deadline = time.monotonic() + 10
    while True:
        text = requests.get(sp.url + "/metrics", timeout=5).text
        value = lambda name: float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))
        per_worker = [float(v) for v in
                      re.findall(r'^sidepush_worker_connections\{worker="\d"\} (\S+)$', text, re.M)]
        streams_now = value('sidepush_connections{listener="stream"}')
        clients_now = value('sidepush_connections{listener="client"}')
        if (value("sidepush_messages_delivered_total") == 8 and streams_now == 8
                and clients_now == 5) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value("sidepush_workers") == 4 and len(per_worker) == 4
    assert value("sidepush_messages_delivered_total") == 8
    assert value('sidepush_subscribers{transport="sse"}') == 8
    assert streams_now == 8 and clients_now == 5  # 4 idle and the scrape itself
    assert sum(per_worker) == streams_now + clients_now
    for s in idle:
        s.close()
    for s in streams:
        s.close()
