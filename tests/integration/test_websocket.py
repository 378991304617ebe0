"""WebSocket with real clients: Python's websockets and aiohttp, and raw frames
for what no well-behaved client library will send (unmasked frames)."""
import asyncio
import base64
import json
import os
import socket
import struct
import threading

import aiohttp
import pytest
import websockets
from aiohttp import web

from pushutil import publish_ok, wait_subscribers

ROUTES = ("routes:\n  - path: /ws/{channel}\n"
          "    subscribe: { websocket: { max_message_size: 1KiB, ping_interval: 1s EXTRA } }\n")


def config(extra=""):
    return ROUTES.replace(" EXTRA", extra) + "channels: { history: 10 }\n"


@pytest.fixture
def sp(make_sidepush):
    return make_sidepush(config())


def ws_url(sp, path):
    return f"ws://127.0.0.1:{sp.port}{path}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_messages_arrive_as_text_frames(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/news")) as ws:
            wait_subscribers(sp, "news", 1)
            publish_ok(sp, "news", "hello")
            publish_ok(sp, "news", '{"json": true}', event="upd")
            return [await ws.recv(), await ws.recv()]
    assert run(main()) == ["hello", '{"json": true}']


def test_binary_data_arrives_as_binary_frame(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/bin")) as ws:
            wait_subscribers(sp, "bin", 1)
            publish_ok(sp, "bin", b"\xff\x00\xfe")
            return await ws.recv()
    assert run(main()) == b"\xff\x00\xfe"


def test_envelope_by_subprotocol_with_resume(sp):
    ids = [publish_ok(sp, "env", f"m{i}", event="e")["id"] for i in range(3)]

    async def main():
        async with websockets.connect(ws_url(sp, f"/ws/env?last_event_id={ids[0]}"),
                                      subprotocols=["sidepush-envelope"]) as ws:
            assert ws.subprotocol == "sidepush-envelope"
            return [json.loads(await ws.recv()) for _ in range(3)]
    got = run(main())
    assert got == [{"event": "sidepush-open", "id": ids[0]},  # resumes from just before m1
                   {"id": ids[1], "channel": "env", "event": "e", "data": "m1"},
                   {"id": ids[2], "channel": "env", "event": "e", "data": "m2"}]


def test_unoffered_subprotocol_is_never_echoed(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/p"), subprotocols=["chat"]) as ws:
            return ws.subprotocol
    assert run(main()) is None  # "chat" was offered, sidepush does not speak it: none chosen


def test_missed_signal_in_envelope_mode(make_sidepush):
    sp = make_sidepush(config(", envelope: true") .replace("history: 10", "history: 2"))
    old = publish_ok(sp, "g", "m0")["id"]
    for i in range(1, 5):
        publish_ok(sp, "g", f"m{i}")

    async def main():
        async with websockets.connect(ws_url(sp, f"/ws/g?last_event_id={old}")) as ws:
            return [json.loads(await ws.recv()) for _ in range(4)]
    got = run(main())
    assert got[0]["event"] == "sidepush-open"
    assert got[1]["event"] == "sidepush-missed"
    assert [m["data"] for m in got[2:]] == ["m3", "m4"]


def test_fragmented_message_and_heartbeat(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/frag")) as ws:
            await ws.send(["pi", "ng"])  # fragments: joined to "ping", the heartbeat
            return await ws.recv()
    assert run(main()) == "pong"


def test_server_pings_keep_a_quiet_connection_alive(sp):
    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url(sp, "/ws/quiet"), autoping=False) as ws:
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.PING
                await ws.pong(msg.data)
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.PING  # still open a ping later
    run(main())


def test_unanswered_pings_close_the_connection(sp):
    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url(sp, "/ws/deaf"), autoping=False) as ws:
                while True:
                    msg = await ws.receive(timeout=10)
                    if msg.type != aiohttp.WSMsgType.PING:
                        return msg.type, ws.close_code
    kind, code = run(main())
    assert kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert code == 1001


def test_oversize_message_closes_1009(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/big")) as ws:
            await ws.send("x" * 2000)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd.code if e.value.rcvd else None
    assert run(main()) == 1009


def test_bad_utf8_closes_1007(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/utf")) as ws:
            await ws.write_frame(True, websockets.frames.OP_TEXT, b"\xc3\x28")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd.code
    assert run(main()) == 1007


def test_client_close_code_is_echoed(sp):
    async def main():
        ws = await websockets.connect(ws_url(sp, "/ws/bye"))
        await ws.close(code=4001, reason="done here")
        return ws.close_code
    assert run(main()) == 4001


def raw_handshake(sp, path="/ws/raw", headers=b""):
    s = socket.create_connection(("127.0.0.1", sp.port))
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
              b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\n" + headers + b"\r\n")
    s.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s, head


def read_frame(s):
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b
    b0, b1 = exact(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", exact(8))[0]
    return b0 & 0x0f, exact(n)


def test_unmasked_frame_closes_1002(sp):
    s, head = raw_handshake(sp)
    assert head.startswith(b"HTTP/1.1 101")
    s.sendall(b"\x81\x02hi")  # a text frame without a mask
    op, payload = read_frame(s)
    while op == 0x9:
        op, payload = read_frame(s)
    assert op == 0x8 and struct.unpack(">H", payload[:2])[0] == 1002
    s.close()


def test_control_frame_between_fragments_over_raw_socket(sp):
    s, _ = raw_handshake(sp)
    mask = b"\x01\x02\x03\x04"

    def masked(b0, payload):
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return bytes([b0, 0x80 | len(payload)]) + mask + data
    s.sendall(masked(0x01, b"pi") + masked(0x89, b"x") + masked(0x80, b"ng"))
    frames = [read_frame(s) for _ in range(2)]
    assert (0xA, b"x") in frames and (0x1, b"pong") in frames
    s.close()


@pytest.mark.parametrize("headers,status", [
    (b"", 101),
])
def test_handshake_ok(sp, headers, status):
    s, head = raw_handshake(sp, headers=headers)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Protocol" not in head
    s.close()


def handshake_status(sp, request: bytes):
    with socket.create_connection(("127.0.0.1", sp.port)) as s:
        s.sendall(request)
        s.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ")[1]), data


def test_bad_handshakes(sp):
    base = (b"GET /ws/h HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    status, data = handshake_status(sp, base + b"Sec-WebSocket-Version: 8\r\n\r\n")
    assert status == 426 and b"Sec-WebSocket-Version: 13" in data
    status, _ = handshake_status(sp, base.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short") +
                                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status == 400
    status, _ = handshake_status(sp, base.replace(b"Connection: Upgrade", b"Connection: close") +
                                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status == 400
    status, data = handshake_status(sp, base + b"Sec-WebSocket-Version: 13\r\n"
                                    b"Origin: http://evil.example\r\n\r\n")
    assert status == 403
    status, data = handshake_status(sp, base + b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status == 101
    # RFC 6455 §1.3's example key and accept value
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in data


def test_channel_delete_closes_1000(sp):
    async def main():
        async with websockets.connect(ws_url(sp, "/ws/gone")) as ws:
            wait_subscribers(sp, "gone", 1)
            await asyncio.get_running_loop().run_in_executor(None, lambda: __import__(
                "requests").delete(f"http://127.0.0.1:{sp.publish_port}/channels/gone",
                                   timeout=5))
            with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd.code
    assert run(main()) == 1000


class RecordingBackend:
    """A real aiohttp backend that records forwarded WebSocket messages."""

    def __init__(self):
        self.received = []
        self.port = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self):
        async def handler(request):
            body = await request.read()
            self.received.append((request.path, request.headers.get("Content-Type"),
                                  request.headers.get("Cookie"), body))
            if body == b"refuse":
                return web.Response(status=422, text="no")
            if body == b"echo":
                return web.Response(text="echoed")
            return web.Response(status=204)

        async def main():
            app = web.Application()
            app.router.add_post("/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            self.ready.set()
            await asyncio.Event().wait()
        asyncio.run(main())


def test_client_messages_forwarded_to_backend(make_sidepush):
    backend = RecordingBackend()
    sp = make_sidepush(config(", forward: '/inbox/{channel}'"),
                       backend_url=f"http://127.0.0.1:{backend.port}")

    async def main():
        async with websockets.connect(ws_url(sp, "/ws/room1"),
                                      extra_headers={"Cookie": "session=abc"}) as ws:
            await ws.send("first")
            await ws.send("refuse")
            error = json.loads(await ws.recv())
            await ws.send("echo")
            reply = await ws.recv()
            return error, reply
    error, reply = run(main())
    assert error["event"] == "sidepush-error" and error["data"]["status"] == 422
    assert reply == "echoed"
    paths = [(p, ct, c, b) for p, ct, c, b in backend.received]
    assert paths[0] == ("/inbox/room1", "text/plain; charset=utf-8", "session=abc", b"first")
    assert [b for *_, b in paths] == [b"first", b"refuse", b"echo"]  # in order


def test_envelope_opens_with_its_position_so_a_cut_loses_nothing(sp):
    """A client cut before its first message resumes from the opening frame's
    id and gets what was published during the cut."""
    publish_ok(sp, "cut", "before")

    async def first_connection():
        async with websockets.connect(ws_url(sp, "/ws/cut"),
                                      subprotocols=["sidepush-envelope"]) as ws:
            return json.loads(await ws.recv())
    opening = run(first_connection())
    assert opening["event"] == "sidepush-open" and opening["id"]
    during = publish_ok(sp, "cut", "during the cut")["id"]

    async def reconnect():
        async with websockets.connect(ws_url(sp, f"/ws/cut?last_event_id={opening['id']}"),
                                      subprotocols=["sidepush-envelope"]) as ws:
            return [json.loads(await ws.recv()) for _ in range(2)]
    got = run(reconnect())
    assert got[0]["event"] == "sidepush-open"
    assert got[1]["id"] == during and got[1]["data"] == "during the cut"
