#include "http/wsdeflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http/wsframe.h"

#include "../inflate.h"
#include "../tap.h"

/* ---- negotiation ----------------------------------------------------------------- */

static bool offer(const char *field, struct sp_ws_deflate *d, char answer[])
{
    return sp_ws_deflate_negotiate(sp_slice_from(field), d, answer);
}

static void test_negotiate(void)
{
    struct sp_ws_deflate d;
    char answer[SP_WS_DEFLATE_ANSWER_MAX];

    ok(offer("permessage-deflate", &d, answer) && d.server_bits == 15 && d.client_bits == 15 &&
           !d.client_no_context &&
           strcmp(answer, "permessage-deflate; server_no_context_takeover") == 0,
       "a bare offer: sidepush takes server_no_context_takeover");
    ok(offer("permessage-deflate; client_max_window_bits", &d, answer) && d.client_bits == 15,
       "Chromium's offer");
    ok(offer("permessage-deflate; client_max_window_bits=10; server_max_window_bits=11", &d,
             answer) &&
           d.client_bits == 10 && d.server_bits == 11 &&
           strcmp(answer, "permessage-deflate; server_no_context_takeover; "
                          "server_max_window_bits=11; client_max_window_bits=10") == 0,
       "window sizes both ways");
    ok(offer("PerMessage-Deflate ; Client_No_Context_Takeover", &d, answer) &&
           d.client_no_context &&
           strcmp(answer, "permessage-deflate; server_no_context_takeover; "
                          "client_no_context_takeover") == 0,
       "names are case-insensitive, white space is optional");
    ok(offer("permessage-deflate; server_max_window_bits=\"9\"", &d, answer) && d.server_bits == 9,
       "a quoted value");
    ok(offer("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
             "server_max_window_bits=12",
             &d, answer) &&
           d.server_bits == 12,
       "8 bits (which zlib cannot make) declined, the next offer taken");
    ok(offer("foo; bar=\"a,b;c\", permessage-deflate", &d, answer),
       "another extension with a quoted comma is skipped");
    ok(offer(", permessage-deflate ,", &d, answer), "empty list elements are ignored");

    static const char *const declined[] = {
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=015",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; mystery",
        "permessage-deflate;",
        "permessage-deflate; server_max_window_bits=\"9",
        "permessage-deflate; server_max_window_bits=99999999999999999999",
        "x-webkit-deflate-frame",
        "",
        "permessage-deflate garbage",
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        d.server_bits = 0;
        ok(!offer(declined[i], &d, answer) && d.server_bits == 0, "declined: '%s'", declined[i]);
    }
}

/* ---- compressing ------------------------------------------------------------------ */

static void test_deflate(void)
{
    static uint8_t text[20000], back[20000];
    size_t zlen = 0;

    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t)("{\"order\":42,\"status\":\"shipped\"},"[i % 32] + (i % 997 == 0));
    ok(sp_ws_deflate_fit_bits(10) == 9 && sp_ws_deflate_fit_bits(250) == 9 &&
           sp_ws_deflate_fit_bits(251) == 10 && sp_ws_deflate_fit_bits(2048) == 12 &&
           sp_ws_deflate_fit_bits(1 << 20) == 15,
       "the window that spans a message");
    for (int bits = 9; bits <= 15; bits++) {
        uint8_t *z = sp_ws_deflate_message(text, sizeof(text), bits, &zlen);
        long n = z ? test_inflate(z, zlen, bits, back, sizeof(back)) : -1;
        ok(z && zlen < sizeof(text) / 4 && n == (long)sizeof(text) &&
               memcmp(back, text, sizeof(text)) == 0,
           "%d-bit window: %zu bytes to %zu, inflated back with that window", bits, sizeof(text),
           zlen);
        free(z);
    }
    uint8_t *z = sp_ws_deflate_message("", 0, 9, &zlen);
    ok(z && test_inflate(z, zlen, 9, back, sizeof(back)) == 0, "an empty message");
    free(z);
}

/* ---- the reader inflating ----------------------------------------------------------- */

struct rec {
    int messages;
    bool text;
    uint8_t data[70000];
    size_t len;
};

static void on_message(void *ctx, bool text, const uint8_t *d, size_t len)
{
    struct rec *r = ctx;
    r->messages++;
    r->text = text;
    memcpy(r->data, d, len < sizeof(r->data) ? len : sizeof(r->data));
    r->len = len;
}

static void on_control(void *ctx, const uint8_t *d, size_t len)
{
}

static void on_close(void *ctx, unsigned code, const char *reason, size_t len)
{
}

static const struct sp_ws_reader_events events = {on_message, on_control, on_control, on_close};

static size_t frame(uint8_t *out, int b0, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t)b0;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    memcpy(out + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ mask[i & 3];
    return n + len;
}

/* A client's deflater that carries its window from message to message. */
struct client {
    z_stream z;
};

static size_t client_compress(struct client *c, const char *msg, uint8_t *out, size_t cap)
{
    c->z.next_in = (Bytef *)msg;
    c->z.avail_in = (uInt)strlen(msg);
    c->z.next_out = out;
    c->z.avail_out = (uInt)cap;
    deflate(&c->z, Z_SYNC_FLUSH);
    return cap - c->z.avail_out - 4;
}

static int feed_steps(struct sp_ws_reader *rd, const uint8_t *buf, size_t len, size_t step)
{
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0; pos += step)
        rc = sp_ws_reader_feed(rd, buf + pos, pos + step > len ? len - pos : step);
    return rc;
}

static void test_reader_context_takeover(void)
{
    static const char *const msgs[] = {
        "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-orders\"}}",
        "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-orders.42\"}}",
        "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-orders.43\"}}",
    };
    struct rec *r = calloc(1, sizeof(*r));
    struct client c = {0};
    uint8_t z[512], buf[600];
    bool all = true;

    deflateInit2(&c.z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    struct sp_ws_reader *rd = sp_ws_reader_new(1024, &events, r);
    sp_ws_reader_set_deflate(rd, 15, false);
    for (size_t i = 0; i < 3; i++) {
        size_t zlen = client_compress(&c, msgs[i], z, sizeof(z));
        size_t n = frame(buf, 0xC1, z, zlen);
        int rc = feed_steps(rd, buf, n, i + 1); /* 1, 2, 3 bytes at a time */
        all = all && rc == 0 && r->messages == (int)i + 1 && r->len == strlen(msgs[i]) &&
              memcmp(r->data, msgs[i], r->len) == 0;
        if (i > 0)
            all = all && zlen < strlen(msgs[i]) / 3; /* it did refer back */
    }
    ok(all, "context takeover: each message refers back into the ones before it");
    deflateEnd(&c.z);
    sp_ws_reader_free(rd);
    free(r);
}

static int feed_one(const uint8_t *buf, size_t len, bool negotiate, size_t max, struct rec *r)
{
    struct sp_ws_reader *rd = sp_ws_reader_new(max, &events, r);
    if (negotiate)
        sp_ws_reader_set_deflate(rd, 15, true);
    int rc = feed_steps(rd, buf, len, 7);
    sp_ws_reader_free(rd);
    return rc;
}

static void test_reader_errors(void)
{
    static uint8_t zeros[100000], z[2000], buf[2100];
    struct rec *r = calloc(1, sizeof(*r));
    size_t zlen;
    uint8_t *bomb = sp_ws_deflate_message(zeros, sizeof(zeros), 15, &zlen);

    memcpy(z, bomb, zlen);
    free(bomb);
    ok(zlen < 200 && feed_one(buf, frame(buf, 0xC2, z, zlen), true, 4096, r) == 1009 &&
           r->messages == 0,
       "a zip bomb: 1009 at the limit");
    uint8_t *exact = sp_ws_deflate_message(zeros, 4096, 15, &zlen);
    ok(feed_one(buf, frame(buf, 0xC2, exact, zlen), true, 4096, r) == 0 && r->len == 4096,
       "a message inflating to exactly the limit");
    free(exact);
    {
        z_stream f = {0};
        uint8_t fin[64];
        deflateInit2(&f, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        f.next_in = (Bytef *)"with a final block";
        f.avail_in = 18;
        f.next_out = fin;
        f.avail_out = sizeof(fin);
        deflate(&f, Z_FINISH);
        zlen = sizeof(fin) - f.avail_out;
        deflateEnd(&f);
        r->len = 0;
        ok(feed_one(buf, frame(buf, 0xC1, fin, zlen), true, 4096, r) == 0 && r->len == 18 &&
               memcmp(r->data, "with a final block", 18) == 0,
           "a message whose deflate stream ends (BFINAL)");
    }
    ok(feed_one(buf, frame(buf, 0xC1, "\xff\xff\xff\xff", 4), true, 4096, r) == 1007,
       "corrupt deflate data: 1007");
    ok(feed_one(buf, frame(buf, 0xC1, "hi", 2), false, 4096, r) == 1002, "RSV1 unnegotiated: 1002");
    ok(feed_one(buf, frame(buf, 0xC9, "", 0), true, 4096, r) == 1002, "RSV1 on a ping: 1002");
    size_t n = frame(buf, 0x41, "", 0);
    n += frame(buf + n, 0xC0, "", 0);
    ok(feed_one(buf, n, true, 4096, r) == 1002, "RSV1 on a continuation: 1002");
    ok(feed_one(buf, frame(buf, 0x91, "hi", 2), true, 4096, r) == 1002, "RSV3: 1002");
    uint8_t *bad = sp_ws_deflate_message("\xc3\x28 bad", 6, 15, &zlen);
    ok(feed_one(buf, frame(buf, 0xC1, bad, zlen), true, 4096, r) == 1007,
       "invalid UTF-8 once inflated: 1007");
    free(bad);
    free(r);
}

int main(void)
{
    test_negotiate();
    test_deflate();
    test_reader_context_takeover();
    test_reader_errors();
    return tap_done();
}
