/* The WebSocket kind over socketpairs: the handshake (RFC 6455's example
 * key), a publish as one text frame, the heartbeat, a version refused, the
 * close handshake. */
#include "harness.h"

#include "../tap.h"

static const char *const config =
    "routes:\n"
    "  - path: /ws/{channel}\n"
    "    subscribe: { transports: [websocket], websocket: { heartbeat: ping } }\n";

static const char *const handshake = "GET /ws/c HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                                     "Connection: keep-alive, Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     "Sec-WebSocket-Version: 13\r\n\r\n";

/* A masked client frame (the mask is zeroes: the payload reads as is). */
static void send_frame(int fd, unsigned char opcode, const char *payload)
{
    unsigned char frame[140] = {
        (unsigned char)(0x80 | opcode), (unsigned char)(0x80 | strlen(payload)), 0, 0, 0, 0};
    memcpy(frame + 6, payload, strlen(payload));
    ssize_t n = send(fd, frame, 6 + strlen(payload), 0);
    (void)n;
}

static void test_handshake_and_frames(struct harness *h)
{
    char buf[8192];
    size_t len = 0;

    int fd = harness_client(h, h->clients);
    harness_send(fd, handshake);
    bool got = harness_read(h, fd, buf, sizeof(buf), &len, "\r\n\r\n", NULL);
    ok(got && strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n") == buf &&
           strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
       "101 with RFC 6455's accept value for its example key");
    size_t head = len;
    harness_publish(h, "c", NULL, "hi");
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "hi", NULL) && len >= head + 4 &&
           memcmp(buf + len - 4, "\x81\x02hi", 4) == 0,
       "a publish is one unmasked text frame");
    send_frame(fd, 0x1, "ping");
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "pong", NULL) &&
           memcmp(buf + len - 6, "\x81\x04pong", 6) == 0,
       "the route's heartbeat is answered");
    send_frame(fd, 0x8, "\x03\xe8");
    bool eof = false;
    ok(harness_read(h, fd, buf, sizeof(buf), &len, NULL, &eof) && eof,
       "a close from the client ends the connection");
    ok((unsigned char)buf[len - 4] == 0x88 && buf[len - 3] == 2 &&
           memcmp(buf + len - 2, "\x03\xe8", 2) == 0,
       "after the close frame echoed back (1000)");
    close(fd);
}

static void test_wrong_version(struct harness *h)
{
    char buf[4096];
    size_t len = 0;

    int fd = harness_client(h, h->clients);
    harness_send(fd,
                 "GET /ws/c HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 8\r\n\r\n");
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "\r\n\r\n", NULL) &&
           strstr(buf, "HTTP/1.1 426 ") == buf && strstr(buf, "Sec-WebSocket-Version: 13\r\n"),
       "another version: 426 naming 13");
    close(fd);
}

int main(void)
{
    harness_run(config, test_handshake_and_frames);
    harness_run(config, test_wrong_version);
    return tap_done();
}
