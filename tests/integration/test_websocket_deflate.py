"""permessage-deflate (RFC 7692) with clients others wrote (Python's websockets,
compressing and not, on one channel) and raw frames for what no well-behaved
client sends: RSV1 where it may not be, corrupt deflate data, a zip bomb."""
import asyncio
import json
import os
import struct
import time
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from pushutil import metric, publish_ok, wait_subscribers
from test_websocket import RecordingBackend, raw_handshake, read_frame

CONFIG = ("routes:\n  - path: /ws/{channel}\n"
          "    subscribe: { websocket: { max_message_size: 4KiB EXTRA } }\n"
          "channels: { history: 10, max_message_size: 1MiB }\n")


def config(extra=""):
    return CONFIG.replace(" EXTRA", extra)


@pytest.fixture
def sp(make_sidepush):
    return make_sidepush(config())


def url(sp, path):
    return f"ws://127.0.0.1:{sp.port}{path}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def event_json(i, size):
    """A JSON event of about size bytes, as apps send: repetitive keys, varied values."""
    rows, n = [], 0
    while n < size:
        row = {"order_id": 4200 + i * 100 + len(rows), "status": "shipped", "carrier": "DHL",
               "updated_at": f"2026-12-08T01:{len(rows) % 60:02d}:00Z", "total_cents": len(rows) * 137}
        rows.append(row)
        n += len(json.dumps(row))
    return json.dumps({"event": "orders.updated", "seq": i, "rows": rows})


def received(backend, count, timeout=10):
    """The bodies a RecordingBackend got, once there are count of them."""
    deadline = time.monotonic() + timeout
    while len(backend.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [b for *_, b in backend.received]


def deflated(sp):
    base = f"http://127.0.0.1:{sp.port}"
    return (metric(base, "sidepush_websocket_deflated_messages_total"),
            metric(base, "sidepush_websocket_deflate_bytes_total", '{stage="before"}'),
            metric(base, "sidepush_websocket_deflate_bytes_total", '{stage="after"}'))


def test_compressing_and_plain_clients_get_identical_data(sp):
    messages = [event_json(0, 2048), '{"event":"tick","n":1}', event_json(2, 300),
                event_json(3, 60000), event_json(4, 2048), "ünïcode " * 50]

    async def main():
        async with websockets.connect(url(sp, "/ws/orders")) as zipped, \
                websockets.connect(url(sp, "/ws/orders"), compression=None) as plain:
            assert zipped.response_headers["Sec-WebSocket-Extensions"] == \
                "permessage-deflate; server_no_context_takeover"
            assert "Sec-WebSocket-Extensions" not in plain.response_headers
            wait_subscribers(sp, "orders", 2)
            for m in messages:
                publish_ok(sp, "orders", m)
            return ([await zipped.recv() for _ in messages], [await plain.recv() for _ in messages])
    got_zipped, got_plain = run(main())
    assert got_zipped == messages and got_plain == messages
    count, before, after = deflated(sp)
    assert count == 5  # all but the 22-byte one, under compression_min_size (128 B)
    assert after < before * 0.35, (before, after)  # the benchmark's goal, on the same JSON


def test_each_message_is_compressed_once_for_every_subscriber(make_sidepush):
    """Ten compressing subscribers, one message: the rendered frame is shared,
    so every subscriber is sent the same compressed bytes (counted per delivery)."""
    sp = make_sidepush(config())
    message = event_json(1, 4096)

    async def main():
        clients = [await websockets.connect(url(sp, "/ws/many")) for _ in range(10)]
        wait_subscribers(sp, "many", 10)
        publish_ok(sp, "many", message)
        got = [await c.recv() for c in clients]
        for c in clients:
            await c.close()
        return got
    assert run(main()) == [message] * 10
    count, before, after = deflated(sp)
    assert count == 10 and before % 10 == 0 and after % 10 == 0 and after < before


def test_small_window_client_and_context_takeover_in_both_directions(make_sidepush):
    """A client that allows only a 512-byte window (server_max_window_bits=9)
    and carries its own window over (context takeover): it can inflate what it
    gets, and sidepush inflates what it sends, message after message."""
    backend = RecordingBackend()
    sp = make_sidepush(config(", forward: '/inbox/{channel}'"),
                       backend_url=f"http://127.0.0.1:{backend.port}")
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=True)
    message = event_json(2, 3000)
    sent = [event_json(i, 600) for i in range(5)]

    async def main():
        async with websockets.connect(url(sp, "/ws/small"), extensions=[factory],
                                      compression=None) as ws:
            assert ws.response_headers["Sec-WebSocket-Extensions"] == \
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
            wait_subscribers(sp, "small", 1)
            publish_ok(sp, "small", message)
            got = await ws.recv()
            for m in sent:  # each one refers back into the ones before it
                await ws.send(m)
            await ws.send("ping")
            assert await ws.recv() == "pong"
            # Closing drops what still waits for the backend: wait for it first.
            return got, received(backend, len(sent))
    got, forwarded = run(main())
    assert got == message
    assert [b.decode() for b in forwarded] == sent


def test_compression_off_declines_the_offer(make_sidepush):
    sp = make_sidepush(config(", compression: off"))

    async def main():
        async with websockets.connect(url(sp, "/ws/off")) as ws:
            return ws.response_headers.get("Sec-WebSocket-Extensions")
    assert run(main()) is None


# ---- negotiation over a raw socket ------------------------------------------------------

@pytest.mark.parametrize("offer,answer", [
    (b"permessage-deflate", b"permessage-deflate; server_no_context_takeover"),
    (b"permessage-deflate; client_max_window_bits",
     b"permessage-deflate; server_no_context_takeover"),
    (b"permessage-deflate; client_no_context_takeover",
     b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    (b'permessage-deflate; server_max_window_bits="12"',
     b"permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
    (b"permessage-deflate; client_max_window_bits=8",  # a hint, confirmed so it binds
     b"permessage-deflate; server_no_context_takeover; client_max_window_bits=8"),
    # zlib cannot use a 256-byte window: declined, the next offer taken.
    (b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
     b"permessage-deflate; server_no_context_takeover"),
    (b"x-webkit-deflate-frame, permessage-deflate; unknown=1, permessage-deflate",
     b"permessage-deflate; server_no_context_takeover"),
    (b"permessage-deflate; server_max_window_bits=8", None),
    (b"permessage-deflate; server_max_window_bits=16", None),
    (b"permessage-deflate; server_max_window_bits=09", None),
    (b"permessage-deflate; server_max_window_bits", None),
    (b"permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    (b"permessage-deflate; server_no_context_takeover=1", None),
    (b"permessage-deflate;;", None),
])
def test_offers(sp, offer, answer):
    s, head = raw_handshake(sp, headers=b"Sec-WebSocket-Extensions: " + offer + b"\r\n")
    s.close()
    assert head.startswith(b"HTTP/1.1 101")  # never a failed handshake
    got = [line.split(b": ", 1)[1] for line in head.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-extensions:")]
    assert got == ([answer] if answer else [])


def test_offer_split_over_two_header_lines(sp):
    s, head = raw_handshake(sp, headers=b"Sec-WebSocket-Extensions: foo\r\n"
                            b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    s.close()
    assert b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover" in head


# ---- raw frames, each with its close code ------------------------------------------------

MASK = b"\x0a\x0b\x0c\x0d"


def frame(b0, payload):
    data = bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))
    n = len(payload)
    if n < 126:
        length = bytes([0x80 | n])
    elif n < 65536:
        length = bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        length = bytes([0x80 | 127]) + struct.pack(">Q", n)
    return bytes([b0]) + length + MASK + data


def compress(data, window=15):
    z = zlib.compressobj(9, zlib.DEFLATED, -window)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def close_code(s):
    while True:
        op, payload = read_frame(s)
        if op == 0x8:
            return struct.unpack(">H", payload[:2])[0]


def negotiated(sp, offer=b"permessage-deflate"):
    s, head = raw_handshake(sp, "/ws/raw", headers=b"Sec-WebSocket-Extensions: " + offer + b"\r\n")
    assert b"permessage-deflate" in head
    return s


@pytest.mark.parametrize("frames,code", [
    ([frame(0xC9, compress(b"hi"))], 1002),                               # compressed ping
    ([frame(0x41, compress(b"he")), frame(0xC0, compress(b"llo"))], 1002),  # RSV1 on a continuation
    ([frame(0xC1, b"\xff\xfe\xfd\xfc not deflate")], 1007),                # corrupt stream
    ([frame(0xC1, compress(b"\x00" * 1_000_000))], 1009),                  # a zip bomb
    ([frame(0xA1, b"hi")], 1002),                                          # RSV2
    ([frame(0xC1, compress(b"\xff\xfe invalid UTF-8"))], 1007),           # text, once inflated
])
def test_bad_compressed_frames(sp, frames, code):
    s = negotiated(sp)
    s.sendall(b"".join(frames))
    assert close_code(s) == code
    s.close()


def test_rsv1_without_negotiation_closes_1002(sp):
    s, head = raw_handshake(sp)
    assert b"Sec-WebSocket-Extensions" not in head
    s.sendall(frame(0xC1, compress(b"ping")))
    assert close_code(s) == 1002
    s.close()


def test_a_message_inflating_to_exactly_the_limit_passes_and_one_byte_more_does_not(make_sidepush):
    backend = RecordingBackend()
    sp = make_sidepush(config(", forward: '/inbox/{channel}'"),
                       backend_url=f"http://127.0.0.1:{backend.port}")
    s = negotiated(sp, b"permessage-deflate; client_no_context_takeover")
    s.sendall(frame(0xC1, compress(b"a" * 4096)))  # max_message_size: 4KiB
    s.sendall(frame(0x81, b"ping"))
    op, payload = read_frame(s)
    assert (op, payload) == (0x1, b"pong")
    assert [len(b) for b in received(backend, 1)] == [4096]
    s.sendall(frame(0xC1, compress(b"a" * 4097)))
    assert close_code(s) == 1009
    s.close()


def test_fragmented_compressed_message_and_final_block(make_sidepush):
    """A compressed message in three fragments with a ping between them, then
    one whose deflate stream ends with a final block (BFINAL), as RFC 7692
    §7.2.3.4 allows."""
    backend = RecordingBackend()
    sp = make_sidepush(config(", forward: '/inbox/{channel}'"),
                       backend_url=f"http://127.0.0.1:{backend.port}")
    s = negotiated(sp)
    body = compress(b"fragmented " * 40)
    third = len(body) // 3
    s.sendall(frame(0x41, body[:third]) + frame(0x89, b"p") + frame(0x00, body[third:2 * third]) +
              frame(0x80, body[2 * third:]))
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    s.sendall(frame(0xC1, z.compress(b"with a final block") + z.flush(zlib.Z_FINISH)))
    s.sendall(frame(0x81, b"ping"))
    frames = [read_frame(s) for _ in range(2)]
    assert (0xA, b"p") in frames and (0x1, b"pong") in frames
    assert received(backend, 2) == [b"fragmented " * 40, b"with a final block"]
    s.close()


# ---- other clients: the ws npm package, Chromium ------------------------------------------

def node_script(script, sp):
    """Runs a tests/browser script against sp; returns its JSON outcome, which must say ok."""
    from test_browser import run_browser_script
    env = dict(os.environ, SIDEPUSH_PORT=str(sp.port), SIDEPUSH_PUBLISH_PORT=str(sp.publish_port))
    return run_browser_script(script, env)


def test_ws_npm_client_with_context_takeover_and_small_windows(make_sidepush):
    backend = RecordingBackend()
    sp = make_sidepush(config(", forward: '/inbox/{channel}'").replace("4KiB", "64KiB"),
                       backend_url=f"http://127.0.0.1:{backend.port}")
    result = node_script("ws-deflate-client.mjs", sp)
    # The context-keeping client was not told client_no_context_takeover
    # (ws refuses that answer when it asked to keep its window).
    assert result["extensions"]["small"] == ("permessage-deflate; server_no_context_takeover; "
                                             "server_max_window_bits=10; client_max_window_bits=9")
    assert result["extensions"]["defaults"] == "permessage-deflate; server_no_context_takeover"
    bodies = [b.decode() for b in received(backend, 8)]
    for name in ("small", "defaults"):
        mine = [b for b in bodies if b.startswith(name + " says") or b == "echo"]
        assert len([b for b in mine if b != "echo"]) == 3, bodies


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_chromium_websocket_negotiates_and_receives_compressed(sp):
    result = node_script("websocket-deflate.mjs", sp)
    assert result["extensions"].startswith("permessage-deflate; server_no_context_takeover")
