"""A raw-socket backend that plays a script per request, on keep-alive
connections: for testing what a proxy does with answers no well-behaved
server sends (early answers, interim 1xx, late bodies, closes at any point).

A script is a list of steps, chosen by the request's path:
  ("send", bytes)    write these bytes (one send: a segment of their own)
  ("sleep", seconds) wait
  ("close",)         close the connection (nothing after it runs)
  ("read_body",)     read the request body its Content-Length announces
Without ("close",) the connection waits for its next request. Unknown paths
answer 200 with the path as the body, so a victim's request shows where it
went. Every request head is recorded with the index of its connection.
"""
import socket
import threading
import time


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra +
            b"\r\n" + body)


class ScriptedBackend:
    def __init__(self, scripts: dict, timeout: float = 10):
        self.scripts = scripts
        self.timeout = timeout  # a blocked send or receive gives up after it
        self.requests = []  # (connection index, request head bytes)
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def paths(self):
        with self.lock:
            return [head.split(b" ", 2)[1].decode() for _, head in self.requests]

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                index = self.connections
                self.connections += 1
            threading.Thread(target=self._connection, args=(conn, index), daemon=True).start()

    def _connection(self, conn, index):
        buf = b""
        conn.settimeout(self.timeout)
        with conn:
            while True:
                try:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                except OSError:
                    return
                head, buf = buf.split(b"\r\n\r\n", 1)
                with self.lock:
                    self.requests.append((index, head))
                path = head.split(b" ", 2)[1].decode().split("?", 1)[0]
                script = self.scripts.get(path, [("send", ok(path.encode()))])
                try:
                    buf = self._play(conn, head, buf, script)
                except OSError:
                    return
                if buf is None:
                    return

    @staticmethod
    def _play(conn, head, buf, script):
        for step in script:
            if step[0] == "send":
                conn.sendall(step[1])
            elif step[0] == "sleep":
                time.sleep(step[1])
            elif step[0] == "close":
                conn.shutdown(socket.SHUT_RDWR)
                return None
            elif step[0] == "read_body":
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return None
                    buf += chunk
                buf = buf[length:]
        return buf

    def stop(self):
        self.sock.close()
