"""The corpus of the differential harness (test_differential.py): backend
behaviours as scripted raw answers with timings (scripted.py's steps), each
with the request client A sends to reach it. Client B, another user, asks
for /victim with its session cookie right after A's answer (or during it,
with b_during), on its own connection, while A's stays open.

A case: name -> dict(a=raw request bytes, script=steps for A's path,
b_during=seconds after A's request to send B while A is pending, or None;
limit=True for a behaviour beyond what any HTTP/1.1 client can defend).
"""
from scripted import ok

HEAD_200_5 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
FORGED = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=ATTACKER\r\nContent-Length: 6\r\n\r\nforged"


def get(path: bytes, method: bytes = b"GET", extra: bytes = b"") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: app\r\n" + extra + b"\r\n"


SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: t\r\nX-Swallow: "

CASES = {
    # ---- ordinary framings -------------------------------------------------------------
    "content-length": dict(a=get(b"/a"), script=[("send", ok(b"hello"))]),
    "chunked-trailers": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                           b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")]),
    "chunked-in-pieces": dict(a=get(b"/a"), script=[
        ("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r"), ("sleep", 0.05),
        ("send", b"\nhel"), ("sleep", 0.05), ("send", b"lo\r\n0\r\n\r\n")]),
    "close-delimited": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\n\r\nuntil close"), ("close",)]),
    "connection-close": dict(a=get(b"/a"), script=[("send", ok(b"bye", b"Connection: close\r\n"))]),
    "http10-answer": dict(a=get(b"/a"), script=[("send", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")]),
    "204-no-body": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 204 No Content\r\n\r\n")]),
    "slow-head": dict(a=get(b"/a"), script=[("sleep", 0.4), ("send", ok(b"late"))], b_during=0.1),
    # ---- interim answers ---------------------------------------------------------------
    "103-early-hints": dict(a=get(b"/a"), script=[
        ("send", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"), ("sleep", 0.1),
        ("send", ok(b"final"))]),
    "102-processing": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 102 Processing\r\n\r\n"), ("sleep", 0.1),
                                                 ("send", ok(b"final"))]),
    "lone-100-continue": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 100 Continue\r\n\r\n"), ("sleep", 0.1),
                                                    ("send", ok(b"final"))]),
    "1xx-then-200-one-segment": dict(a=get(b"/a"), script=[
        ("send", b"HTTP/1.1 102 Processing\r\n\r\n" + ok(b"final"))]),
    # ---- bodies where there must be none -----------------------------------------------
    "head-late-body": dict(a=get(b"/a", b"HEAD"), script=[("send", HEAD_200_5), ("sleep", 0.05),
                                                          ("send", FORGED)]),
    "head-body-same-segment": dict(a=get(b"/a", b"HEAD"), script=[("send", HEAD_200_5 + FORGED)]),
    "304-late-body": dict(a=get(b"/a"), script=[
        ("send", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 79\r\n\r\n"), ("sleep", 0.05),
        ("send", FORGED)]),
    "extra-after-length": dict(a=get(b"/a"), script=[("send", ok(b"ok") + FORGED)]),
    # A backend that writes past its own framing after a pause, when the next request is
    # already on its way: no HTTP/1.1 client can tell those bytes from the next answer
    # (nginx cannot either). Compared with nginx, not held to the harness's safety rule.
    "extra-after-length-later": dict(a=get(b"/a"), script=[("send", ok(b"ok")), ("sleep", 0.05),
                                                           ("send", FORGED)], limit=True),
    # ---- early answers to uploads ------------------------------------------------------
    "early-401-upload": dict(
        a=get(b"/a", b"POST", b"Content-Length: 100000\r\n") + SMUGGLE.ljust(80, b"x"),
        script=[("send", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")]),
    "early-413-close": dict(
        a=get(b"/a", b"POST", b"Content-Length: 100000\r\n") + SMUGGLE.ljust(80, b"x"),
        script=[("send", b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                ("close",)]),
    "upload-read-whole": dict(a=get(b"/a", b"POST", b"Content-Length: 4\r\n") + b"data",
                              script=[("read_body",), ("send", ok(b"stored"))]),
    # ---- ambiguous or malformed answers ------------------------------------------------
    "cl-and-te": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")]),
    "gzip-chunked": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                                                        b"5\r\nhello\r\n0\r\n\r\n")]),
    "two-content-lengths": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                                               b"Content-Length: 5\r\n\r\nhello")]),
    "bare-cr-in-header": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 2\r\n\r\nok")]),
    "obs-fold": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok")]),
    "bad-status": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok")]),
    "101-unasked": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                                                       b"Connection: Upgrade\r\n\r\n")]),
    "bad-chunk-size": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                          b"zz\r\nhello\r\n0\r\n\r\n")]),
    # ---- closes at every point ---------------------------------------------------------
    "close-before-answer": dict(a=get(b"/a"), script=[("close",)]),
    "close-mid-head": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nContent-Le"), ("close",)]),
    "close-mid-body": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
                                                 ("close",)]),
    "close-mid-chunk": dict(a=get(b"/a"), script=[("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                           b"a\r\nhello"), ("close",)]),
    "post-then-close-unanswered": dict(a=get(b"/a", b"POST", b"Content-Length: 0\r\n"), script=[("close",)]),
}
