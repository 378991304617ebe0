"""The stand-in legacy backend for integration tests: a real aiohttp server.

Run as `python3 backend.py PORT`; prints "ready" once listening. It knows
nothing about realtime; it only answers requests in ways the tests can check.
"""
import asyncio
import hashlib
import json
from urllib.parse import parse_qs, urlsplit
import sys
from collections import Counter

from aiohttp import web

hits = Counter()
# Resources polled by sidepush's poll routes, changed by the tests with PUT.
resources = {}


def resource_state(name):
    return resources.setdefault(name, {"body": b'{"v": 0}', "status": 200, "etag": True,
                                       "retry_after": None})


async def resource_get(request: web.Request) -> web.Response:
    st = resource_state(request.match_info["name"])
    if st["status"] != 200:
        headers = {"Retry-After": st["retry_after"]} if st["retry_after"] else {}
        return web.Response(status=st["status"], text="failing\n", headers=headers)
    body = st["body"]
    if request.query.get("echo_auth"):
        body = json.dumps({"auth": request.headers.get("Authorization")}).encode()
    headers = {"Content-Type": "application/json"}
    if st["etag"]:
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers["ETag"] = etag
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)


async def resource_put(request: web.Request) -> web.Response:
    st = resource_state(request.match_info["name"])
    update = await request.json()
    if "body" in update:
        st["body"] = update["body"].encode()
    for key in ("status", "etag", "retry_after"):
        if key in update:
            st[key] = update[key]
    return web.json_response({"ok": True})


async def app_websocket(request: web.Request) -> web.WebSocketResponse:
    """The app's own WebSocket endpoint (not sidepush's): echoes text and
    binary messages, says who it saw, and closes with 4000 on "bye"."""
    ws = web.WebSocketResponse(protocols=("chat",), heartbeat=None, autoping=True)
    await ws.prepare(request)
    await ws.send_str(json.dumps({"hello": True, "forwarded_for": request.headers.get("X-Forwarded-For"),
                                  "protocol": ws.ws_protocol}))
    if request.query.get("push"):  # the app talks, the client only listens
        for i in range(int(request.query["push"])):
            await asyncio.sleep(0.3)
            await ws.send_str(f"tick {i}")
    async for msg in ws:
        if msg.type == web.WSMsgType.TEXT:
            if msg.data == "bye":
                await ws.close(code=4000, message=b"app says bye")
                break
            await ws.send_str("echo:" + msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "path_qs": request.path_qs,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_len": len(body),
        "body": body.decode("utf-8", "replace") if len(body) < 4096 else None,
    })


async def status(request: web.Request) -> web.StreamResponse:
    code = int(request.match_info["code"])
    reason = request.query.get("reason")
    if code in (204, 304):
        return web.Response(status=code, reason=reason)
    return web.Response(status=code, reason=reason, text=f"status {code}\n")


async def cookies(request: web.Request) -> web.Response:
    resp = web.Response(text="cookies\n")
    resp.headers.add("Set-Cookie", "a=1; Path=/")
    resp.headers.add("Set-Cookie", "b=2; Path=/")
    resp.headers.add("X-Multi", "one")
    resp.headers.add("X-Multi", "two")
    resp.headers.add("Connection", "X-Private")
    resp.headers.add("X-Private", "hop")
    return resp


PATTERN = bytes(range(256)) * 256  # 64 KiB


async def stream_bytes(request: web.Request) -> web.StreamResponse:
    n = int(request.match_info["n"])
    resp = web.StreamResponse()
    resp.content_type = "application/octet-stream"
    if request.query.get("cl"):
        resp.content_length = n
    await resp.prepare(request)
    sent = 0
    while sent < n:
        piece = PATTERN[: min(len(PATTERN), n - sent)]
        await resp.write(piece)
        sent += len(piece)
    await resp.write_eof()
    return resp


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(text="slow\n")


async def upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    count = 0
    async for piece in request.content.iter_chunked(65536):
        digest.update(piece)
        count += len(piece)
    return web.json_response({"count": count, "sha256": digest.hexdigest(),
                              "chunked": "chunked" in request.headers.get("Transfer-Encoding", ""),
                              "content_length": request.headers.get("Content-Length")})


auth_log = []


async def authorize(request: web.Request) -> web.Response:
    """Subscriber authorization: decided by the Authorization header."""
    auth = request.headers.get("Authorization")
    auth_log.append({"auth": auth, "cookie": request.headers.get("Cookie"),
                     "uri": request.headers.get("X-Original-URI"),
                     "channels": request.headers.get("Sidepush-Channels")})
    if auth == "Bearer slow":
        await asyncio.sleep(5)
    # A browser's EventSource can only carry a token in the query string.
    query = parse_qs(urlsplit(request.headers.get("X-Original-URI", "")).query)
    # Presence: the subscriber's identity, in headers or in a JSON body.
    if "user" in query:
        user = query["user"][0]
        return web.Response(status=204, headers={"Sidepush-User": user,
                                                 "Sidepush-User-Info": json.dumps({"name": user})})
    if auth and auth.startswith("Bearer user:"):
        user = auth[len("Bearer user:"):]
        return web.Response(status=204, headers={"Sidepush-User": user,
                                                 "Sidepush-User-Info": json.dumps({"name": user})})
    if auth and auth.startswith("Bearer body:"):
        user = auth[len("Bearer body:"):]
        return web.json_response({"user_id": int(user) if user.isdigit() else user,
                                  "user_info": {"name": user}})
    if auth == "Bearer bad-user":
        return web.json_response({"user_id": ""})
    if auth == "Bearer bad-info":
        return web.Response(status=204, headers={"Sidepush-User": "x", "Sidepush-User-Info": "[1,2]"})
    if "token" in query:
        return web.Response(status=204 if query["token"] == ["good"] else 403)
    # Per-verdict caching, as the backend's own Cache-Control says.
    if auth == "Bearer no-store":
        return web.Response(status=204, headers={"Cache-Control": "no-store"})
    if auth == "Bearer max-age-1":
        return web.Response(status=204, headers={"Cache-Control": "private, max-age=1"})
    if auth == "Bearer good" or (request.headers.get("Cookie") or "").startswith("session=ok"):
        return web.Response(status=204)
    if auth == "Bearer broken":
        return web.Response(status=500)
    return web.Response(status=403 if auth else 401)


async def get_auth_log(request: web.Request) -> web.Response:
    return web.json_response(auth_log)


async def grip_stream(request: web.Request) -> web.Response:
    """A Pushpin-style backend: hold the client as an event stream."""
    channel = request.match_info["channel"]
    return web.Response(text=": welcome\n\n", headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "Grip-Hold": "stream", "Grip-Channel": f"{channel}; prev-id=none",
        "Grip-Keep-Alive": "\\n; format=cstring; timeout=1"})


async def grip_response(request: web.Request) -> web.Response:
    """A Pushpin-style long-poll: the body is what a timeout answers."""
    channel = request.match_info["channel"]
    return web.json_response({"items": []}, headers={
        "Grip-Hold": "response", "Grip-Channel": channel, "Grip-Timeout": "2",
        "X-Backend": "legacy"})


GRIP_PAGE = """<!doctype html><meta charset="utf-8"><title>GRIP stream</title>
<script>
window.events = [];
const ch = new URLSearchParams(location.search).get('channel');
const es = new EventSource('/grip/stream/' + ch);
es.addEventListener('update', (e) => window.events.push(e.data));
</script>"""


async def grip_page(request: web.Request) -> web.Response:
    return web.Response(text=GRIP_PAGE, content_type="text/html")


# Webhooks from sidepush, kept raw (body and headers) per test key, so the
# test can verify each signature with an independent implementation.
hooks = {}
hook_failures = {}


async def receive_hook(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    body = await request.text()
    if hook_failures.get(key, 0) > 0:
        hook_failures[key] -= 1
        hooks.setdefault(key + ":failed", []).append({"body": body, "headers": dict(request.headers)})
        return web.Response(status=503)
    hooks.setdefault(key, []).append({"body": body, "headers": dict(request.headers)})
    return web.Response(status=204)


async def get_hooks(request: web.Request) -> web.Response:
    return web.json_response(hooks.get(request.match_info["key"], []))


async def fail_hooks(request: web.Request) -> web.Response:
    hook_failures[request.match_info["key"]] = int(request.query.get("n", "1"))
    return web.Response(status=204)


async def get_hits(request: web.Request) -> web.Response:
    return web.json_response(dict(hits))


@web.middleware
async def count_hits(request, handler):
    if request.path != "/hits" and request.method != "PUT":
        hits[request.path] += 1
    return await handler(request)


def main() -> None:
    where = sys.argv[1]  # a port, or the path of a Unix socket
    app = web.Application(middlewares=[count_hits], client_max_size=2**40)
    app.router.add_get("/app-ws", app_websocket)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/bytes/{n}", stream_bytes)
    app.router.add_get("/slow/{ms}", slow)
    app.router.add_route("*", "/upload", upload)
    app.router.add_get("/hits", get_hits)
    app.router.add_post("/hooks/{key}", receive_hook)
    app.router.add_get("/hooks-log/{key}", get_hooks)
    app.router.add_post("/hooks-fail/{key}", fail_hooks)
    app.router.add_get("/resource/{name}", resource_get)
    app.router.add_get("/auth/{tail:.*}", authorize)
    app.router.add_get("/auth-log", get_auth_log)
    app.router.add_get("/grip/stream/{channel}", grip_stream)
    app.router.add_get("/grip/response/{channel}", grip_response)
    app.router.add_get("/grip-page.html", grip_page)
    app.router.add_put("/resource/{name}", resource_put)
    app.router.add_route("*", "/healthz", echo)

    async def on_startup(_app):
        print("ready", flush=True)

    app.on_startup.append(on_startup)
    if where.startswith("/"):
        web.run_app(app, path=where, print=None, access_log=None)
    else:
        web.run_app(app, host="127.0.0.1", port=int(where), print=None, access_log=None)


if __name__ == "__main__":
    main()
