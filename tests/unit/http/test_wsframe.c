#include "http/wsframe.h"

#include <stdlib.h>

#include "../tap.h"

struct rec {
    int messages, pings, pongs, closes;
    bool text;
    char data[70000];
    size_t len;
    unsigned close_code;
};

static void on_message(void *ctx, bool text, const uint8_t *d, size_t len)
{
    struct rec *r = ctx;
    r->messages++;
    r->text = text;
    memcpy(r->data, d, len < sizeof(r->data) ? len : sizeof(r->data));
    r->len = len;
}

static void on_ping(void *ctx, const uint8_t *d, size_t len)
{
    struct rec *r = ctx;
    r->pings++;
    memcpy(r->data, d, len);
    r->len = len;
}

static void on_pong(void *ctx, const uint8_t *d, size_t len)
{
    ((struct rec *)ctx)->pongs++;
}

static void on_close(void *ctx, unsigned code, const char *reason, size_t len)
{
    struct rec *r = ctx;
    r->closes++;
    r->close_code = code;
}

static const struct sp_ws_reader_events events = {on_message, on_ping, on_pong, on_close};

/* Builds a masked client frame. */
static size_t frame(uint8_t *out, int b0, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t)b0;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ mask[i & 3];
    return n + len;
}

static int feed_all(struct rec *r, const uint8_t *buf, size_t len, size_t step, size_t max)
{
    struct sp_ws_reader *rd = sp_ws_reader_new(max, &events, r);
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0; pos += step)
        rc = sp_ws_reader_feed(rd, buf + pos, pos + step > len ? len - pos : step);
    sp_ws_reader_free(rd);
    return rc;
}

static void test_messages(void)
{
    uint8_t buf[200000];
    size_t n;
    struct rec r;

    /* RFC 6455 §5.7: a single-frame masked "Hello" */
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    memset(&r, 0, sizeof(r));
    is_int(feed_all(&r, hello, sizeof(hello), 100, 1024), 0, "RFC 6455 §5.7 example");
    ok(r.messages == 1 && r.text && r.len == 5 && memcmp(r.data, "Hello", 5) == 0,
       "decodes to Hello");

    /* fragmented text with a ping between the fragments, fed byte by byte */
    n = frame(buf, 0x01, "Hel", 3);
    n += frame(buf + n, 0x89, "hi", 2);
    n += frame(buf + n, 0x80, "lo", 2);
    memset(&r, 0, sizeof(r));
    is_int(feed_all(&r, buf, n, 1, 1024), 0, "fragments with an interleaved ping");
    ok(r.messages == 1 && r.pings == 1 && r.len == 5 && memcmp(r.data, "Hello", 5) == 0,
       "ping answered between fragments, message joined");

    /* 16-bit and 64-bit lengths */
    static uint8_t big[70000];
    memset(big, 'a', sizeof(big));
    n = frame(buf, 0x82, big, 300);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 7, 1024) == 0 && r.len == 300 && !r.text, "16-bit length, binary");
    n = frame(buf, 0x81, big, 70000);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 4096, 100000) == 0 && r.len == 70000, "64-bit length");

    /* close frames */
    n = frame(buf, 0x88,
              "\x03\xe8"
              "bye",
              5);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 100, 1024) == 0 && r.closes == 1 && r.close_code == 1000,
       "close 1000 with a reason");
    n = frame(buf, 0x88, "", 0);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 100, 1024) == 0 && r.close_code == 1005, "empty close is 1005");
    n = frame(buf, 0x8A, "p", 1);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 100, 1024) == 0 && r.pongs == 1, "unsolicited pong is fine");
}

static void test_errors(void)
{
    uint8_t buf[1024];
    size_t n;
    struct rec r;
    uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};

    memset(&r, 0, sizeof(r));
    is_int(feed_all(&r, unmasked, sizeof(unmasked), 100, 1024), 1002, "unmasked frame: 1002");
    n = frame(buf, 0xC1, "x", 1);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "RSV1 without extension: 1002");
    n = frame(buf, 0x83, "x", 1);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "reserved opcode: 1002");
    n = frame(buf, 0x80, "x", 1);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "continuation without a start: 1002");
    n = frame(buf, 0x01, "a", 1);
    n += frame(buf + n, 0x81, "b", 1);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "new message inside a fragmented one: 1002");
    n = frame(buf, 0x09, "x", 1);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "fragmented control frame: 1002");
    static uint8_t long_ping[126];
    n = frame(buf, 0x89, long_ping, 126);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "126-byte ping: 1002");
    n = frame(buf, 0x81, "\xc3\x28", 2);
    is_int(feed_all(&r, buf, n, 100, 1024), 1007, "bad UTF-8 in text: 1007");
    n = frame(buf, 0x01, "\xe2\x82", 2);
    n += frame(buf + n, 0x80, "\xac", 1);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 1, 1024) == 0 && r.len == 3, "a character split over fragments");
    n = frame(buf, 0x81, "\xe2\x82", 2);
    is_int(feed_all(&r, buf, n, 100, 1024), 1007, "text ending mid-character: 1007");
    n = frame(buf, 0x82, "\xff", 1);
    memset(&r, 0, sizeof(r));
    ok(feed_all(&r, buf, n, 100, 1024) == 0 && r.messages == 1, "binary is not UTF-8 checked");
    static uint8_t payload[600];
    n = frame(buf, 0x82, payload, 600);
    is_int(feed_all(&r, buf, n, 100, 512), 1009, "message over the limit: 1009");
    n = frame(buf, 0x02, payload, 300);
    n += frame(buf + n, 0x80, payload, 300);
    is_int(feed_all(&r, buf, n, 100, 512), 1009, "fragments over the limit together: 1009");
    n = frame(buf, 0x88, "\x03", 1);
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "1-byte close payload: 1002");
    n = frame(buf, 0x88, "\x03\xed", 2); /* 1005 may not be sent */
    is_int(feed_all(&r, buf, n, 100, 1024), 1002, "close code 1005 on the wire: 1002");
    n = frame(buf, 0x88, "\x03\xe8\xff", 3);
    is_int(feed_all(&r, buf, n, 100, 1024), 1007, "close reason not UTF-8: 1007");
    uint8_t nonminimal[] = {0x81, 0xFE, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'};
    is_int(feed_all(&r, nonminimal, sizeof(nonminimal), 100, 1024), 1002,
           "16-bit length for a short payload: 1002");
}

static void test_header(void)
{
    uint8_t h[SP_WS_MAX_HEADER];
    ok(sp_ws_frame_header(h, SP_WS_OP_TEXT, true, 5) == 2 && h[0] == 0x81 && h[1] == 5,
       "7-bit header");
    ok(sp_ws_frame_header(h, SP_WS_OP_TEXT, true, 300) == 4 && h[1] == 126 && h[2] == 1 &&
           h[3] == 44,
       "16-bit header");
    ok(sp_ws_frame_header(h, SP_WS_OP_BINARY, true, 70000) == 10 && h[1] == 127 && h[7] == 1,
       "64-bit header");
    ok(sp_ws_close_code_valid(1000) && sp_ws_close_code_valid(4000) &&
           !sp_ws_close_code_valid(1005) && !sp_ws_close_code_valid(1006) &&
           !sp_ws_close_code_valid(1015) && !sp_ws_close_code_valid(999) &&
           !sp_ws_close_code_valid(2999),
       "close code validity");
}

int main(void)
{
    test_messages();
    test_errors();
    test_header();
    return tap_done();
}
