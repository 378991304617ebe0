"""A raw-socket stand-in backend: answers each request with canned bytes chosen
by its path, and records every request head verbatim. For testing what sidepush
does with responses no well-behaved HTTP server would send."""
import socket
import threading


class RawBackend:
    def __init__(self, responses: dict):
        """responses: path -> the exact bytes to answer with (then close)."""
        self.responses = responses
        self.requests = []  # each request head, as received
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            head = head.split(b"\r\n\r\n", 1)[0]
            self.requests.append(head)
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            path = target.split("?", 1)[0]
            body = self.responses.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            try:
                conn.sendall(body)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # until the proxy closes
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.sock.close()
