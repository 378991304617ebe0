#include "channel/msg.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdlib.h>

#include "../inflate.h"
#include "../tap.h"

static void test_render(void)
{
    struct sp_msg *m = sp_msg_new("c", 7, "e-7", "upd", "line1\nline2\r\nline3\rend\n", 23, 0);
    struct sp_slice s = sp_msg_render(m, SP_FMT_SSE);
    const char *want = "id: e-7\nevent: upd\ndata: line1\ndata: line2\ndata: line3\n"
                       "data: end\ndata: \n\n";
    ok(s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0,
       "SSE: each of LF, CRLF, CR splits a data line; no raw CR survives");
    ok(sp_msg_render(m, SP_FMT_SSE).ptr == s.ptr, "rendered once, then reused");
    struct sp_slice c = sp_msg_render(m, SP_FMT_SSE_CHUNKED);
    ok(c.len == s.len + 6 && memcmp(c.ptr, "49\r\n", 4) == 0 &&
           memcmp(c.ptr + c.len - 2, "\r\n", 2) == 0,
       "chunked SSE is one HTTP chunk");
    struct sp_slice w = sp_msg_render(m, SP_FMT_WS);
    ok(w.len == 25 && (uint8_t)w.ptr[0] == 0x81 && w.ptr[1] == 23, "WS text frame, unmasked");
    struct sp_slice j = sp_msg_render(m, SP_FMT_JSON);
    const char *wj = "{\"id\":\"e-7\",\"channel\":\"c\",\"event\":\"upd\","
                     "\"data\":\"line1\\nline2\\r\\nline3\\rend\\n\"}";
    ok(j.len == strlen(wj) && memcmp(j.ptr, wj, j.len) == 0, "JSON item");
    sp_msg_unref(m);

    m = sp_msg_new("c", 1, "e-1", NULL, "", 0, 0);
    s = sp_msg_render(m, SP_FMT_SSE);
    ok(s.len == 16 && memcmp(s.ptr, "id: e-1\ndata: \n\n", 16) == 0, "empty data, no event");
    j = sp_msg_render(m, SP_FMT_JSON);
    ok(memcmp(j.ptr, "{\"id\":\"e-1\",\"channel\":\"c\",\"data\":\"\"}", j.len) == 0,
       "no event key when there is no event");
    sp_msg_unref(m);

    m = sp_msg_new("c", 1, "e-1", NULL, "\xff\xfe", 2, 0);
    j = sp_msg_render(m, SP_FMT_JSON);
    const char *wb = "{\"id\":\"e-1\",\"channel\":\"c\",\"data_base64\":\"//4=\"}";
    ok(j.len == strlen(wb) && memcmp(j.ptr, wb, j.len) == 0,
       "data that is not UTF-8 travels as base64 in JSON");
    w = sp_msg_render(m, SP_FMT_WS);
    ok(w.len == 4 && (uint8_t)w.ptr[0] == 0x82, "and as a binary WebSocket frame");
    sp_msg_unref(m);
}

/* A Pusher text frame: the payload after a 2-byte header (short frames). */
static bool pusher_is(struct sp_msg *m, const char *want)
{
    struct sp_slice w = sp_msg_render(m, SP_FMT_PUSHER);
    bool same = w.len == strlen(want) + 2 && (uint8_t)w.ptr[0] == 0x81 &&
                memcmp(w.ptr + 2, want, strlen(want)) == 0;
    if (!same)
        printf("# got %.*s\n", (int)(w.len > 2 ? w.len - 2 : 0), w.ptr + 2);
    return same;
}

static void test_pusher(void)
{
    struct sp_msg *m = sp_msg_new("orders", 4, "e-4", "shipped", "{\"id\":42}", 9, 0);
    ok(pusher_is(m, "{\"event\":\"shipped\",\"channel\":\"orders\","
                    "\"data\":\"{\\\"id\\\":42}\",\"id\":\"e-4\"}"),
       "Pusher: the data as a JSON string, the id beside it");
    sp_msg_unref(m);
    m = sp_msg_new("orders", 5, "e-5", NULL, "x", 1, 0);
    ok(pusher_is(m, "{\"event\":\"message\",\"channel\":\"orders\",\"data\":\"x\","
                    "\"id\":\"e-5\"}"),
       "Pusher: a message without a name is a 'message' event");
    sp_msg_unref(m);
    m = sp_msg_new("orders", 6, "e-6", "bin", "\xff\x00", 2, 0);
    ok(pusher_is(m, "{\"event\":\"bin\",\"channel\":\"orders\",\"data\":\"/wA=\","
                    "\"id\":\"e-6\"}"),
       "Pusher: data that is not UTF-8 goes as base64");
    sp_msg_unref(m);
    m = sp_msg_new("presence-room", 7, "e-7", "sidepush-join", "{\"user_id\":\"a\"}", 15, 0);
    ok(pusher_is(m, "{\"event\":\"pusher_internal:member_added\",\"channel\":"
                    "\"presence-room\",\"data\":\"{\\\"user_id\\\":\\\"a\\\"}\","
                    "\"id\":\"e-7\"}"),
       "Pusher: a join on a presence- channel is member_added");
    ok(sp_msg_origin(m) == NULL && sp_msg_set_origin(m, "1.2") == 0 &&
           strcmp(sp_msg_origin(m), "1.2") == 0,
       "a message keeps the socket it is not for");
    sp_msg_unref(m);
    m = sp_msg_new("room", 8, "e-8", "sidepush-join", "{}", 2, 0);
    ok(pusher_is(m, "{\"event\":\"sidepush-join\",\"channel\":\"room\",\"data\":\"{}\","
                    "\"id\":\"e-8\"}"),
       "Pusher: outside presence- channels the name stays");
    sp_msg_unref(m);
}

static void test_envelope_and_grip(void)
{
    struct sp_msg *m = sp_msg_new("c", 3, "e-3", "upd", "hi \"you\"", 8, 0);
    struct sp_slice w = sp_msg_render(m, SP_FMT_WS_ENVELOPE);
    const char *want =
        "{\"id\":\"e-3\",\"channel\":\"c\",\"event\":\"upd\",\"data\":\"hi \\\"you\\\"\"}";
    ok((uint8_t)w.ptr[0] == 0x81 && (size_t)w.ptr[1] == strlen(want) &&
           memcmp(w.ptr + 2, want, strlen(want)) == 0,
       "envelope: one text frame with the JSON item");
    ok(sp_msg_render(m, SP_FMT_GRIP_STREAM).len == 0, "no GRIP formats: nothing for GRIP streams");
    json_t *formats = json_pack("{s:{s:s}}", "http-stream", "content", "raw bytes\n");
    sp_msg_set_grip(m, formats); /* takes its own reference */
    json_decref(formats);
    struct sp_slice g = sp_msg_render(m, SP_FMT_GRIP_STREAM);
    ok(g.len == 3 + 10 + 2 && memcmp(g.ptr, "a\r\nraw bytes\n\r\n", g.len) == 0,
       "GRIP http-stream content as one chunk");
    struct sp_slice c = sp_msg_render(m, SP_FMT_GRIP_CONTENT);
    ok(c.len == 10 && memcmp(c.ptr, "raw bytes\n", c.len) == 0,
       "GRIP http-stream content unframed, for HTTP/1.0 streams");
    sp_msg_unref(m);

    char big[300];
    memset(big, 'x', sizeof(big));
    m = sp_msg_new("c", 4, "e-4", NULL, big, sizeof(big), 0);
    w = sp_msg_render(m, SP_FMT_WS);
    ok(w.len == 4 + sizeof(big) && (uint8_t)w.ptr[1] == 126 && (uint8_t)w.ptr[2] == 1 &&
           (uint8_t)w.ptr[3] == 44,
       "a 300-byte frame has a 16-bit length");
    sp_msg_unref(m);
}

static void test_longpoll_body(void)
{
    struct sp_msg *a = sp_msg_new("c", 1, "e-1", NULL, "one", 3, 0);
    struct sp_msg *b = sp_msg_new("d", 2, "e-2", "ev", "two", 3, 0);
    struct sp_msg *both[] = {a, b};
    struct evbuffer *out = evbuffer_new();

    ok(sp_msg_longpoll_body(out, "e-2", false, both, 2) == 0, "body");
    const char *want = "{\"cursor\":\"e-2\",\"missed\":false,\"messages\":["
                       "{\"id\":\"e-1\",\"channel\":\"c\",\"data\":\"one\"},"
                       "{\"id\":\"e-2\",\"channel\":\"d\",\"event\":\"ev\",\"data\":\"two\"}]}\n";
    size_t len = evbuffer_get_length(out);
    ok(len == strlen(want) && memcmp(evbuffer_pullup(out, -1), want, len) == 0,
       "cursor, missed and the items in order");
    json_error_t e;
    json_t *parsed = json_loadb((const char *)evbuffer_pullup(out, -1), len, 0, &e);
    ok(parsed != NULL && json_array_size(json_object_get(parsed, "messages")) == 2, "valid JSON");
    json_decref(parsed);
    evbuffer_drain(out, len);
    ok(sp_msg_longpoll_body(out, "e-0", true, NULL, 0) == 0, "empty body");
    len = evbuffer_get_length(out);
    ok(memcmp(evbuffer_pullup(out, -1), "{\"cursor\":\"e-0\",\"missed\":true,\"messages\":[]}\n",
              len) == 0,
       "missed, no messages");
    evbuffer_free(out); /* drops the references the body held */
    sp_msg_unref(a);
    sp_msg_unref(b);
}

/* The payload of a compressed frame (server frames: 2 or 4 header bytes
 * here), inflated by zlib with a window of bits. */
static long inflate_frame(struct sp_slice f, int bits, char *out, size_t cap)
{
    size_t head = ((uint8_t)f.ptr[1] & 0x7f) == 126 ? 4 : 2;
    return test_inflate(f.ptr + head, f.len - head, bits, out, cap);
}

static void test_deflated(void)
{
    static char data[3000], back[4000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = "{\"order\":42,\"status\":\"shipped\"},"[i % 32];
    struct sp_msg *m = sp_msg_new("c", 1, "e-1", NULL, data, sizeof(data), 0);
    struct sp_msg *small = sp_msg_new("c", 2, "e-2", NULL, "tiny", 4, 0);
    struct sp_wire w15 = {SP_FMT_WS, 15, 128}, w12 = {SP_FMT_WS, 12, 128};
    struct sp_wire w10 = {SP_FMT_WS, 10, 128}, w9 = {SP_FMT_WS, 9, 128};
    size_t raw_len = 0;

    struct sp_slice a = sp_msg_render_wire(m, w15, &raw_len);
    struct sp_slice raw = sp_msg_render(m, SP_FMT_WS);
    ok(a.len > 0 && ((uint8_t)a.ptr[0] == (0x80 | 0x40 | 0x1)) && a.len < raw.len / 4 &&
           raw_len == raw.len,
       "a compressed text frame: FIN, RSV1, a quarter of the raw size or less");
    ok(inflate_frame(a, 12, back, sizeof(back)) == (long)sizeof(data) &&
           memcmp(back, data, sizeof(data)) == 0,
       "made with the smallest window that spans the message (12 bits for 3,000 bytes)");
    ok(sp_msg_render_wire(m, w12, &raw_len).ptr == a.ptr,
       "shared by every peer allowing that window or more");
    struct sp_slice b = sp_msg_render_wire(m, w10, &raw_len);
    ok(b.ptr != a.ptr && sp_msg_render_wire(m, w9, &raw_len).ptr == b.ptr &&
           inflate_frame(b, 9, back, sizeof(back)) == (long)sizeof(data),
       "peers allowing less share a second frame, made with 9 bits");
    ok(sp_msg_render_wire(small, w15, &raw_len).ptr == sp_msg_render(small, SP_FMT_WS).ptr &&
           raw_len == 0,
       "a message under the threshold goes raw");
    ok(sp_msg_render_wire(m, SP_WIRE(SP_FMT_WS), &raw_len).ptr == raw.ptr && raw_len == 0,
       "an uncompressing peer gets the raw frame");
    struct sp_wire sse = {SP_FMT_SSE, 15, 0};
    ok(sp_msg_render_wire(m, sse, &raw_len).ptr == sp_msg_render(m, SP_FMT_SSE).ptr,
       "formats other than WebSocket are never compressed");
    static char noise[1000];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (char)((seed = seed * 1103515245u + 12345u) >> 16);
    struct sp_msg *random = sp_msg_new("c", 3, "e-3", NULL, noise, sizeof(noise), 0);
    struct sp_slice plain = sp_msg_render(random, SP_FMT_WS);
    ok(sp_msg_render_wire(random, w15, &raw_len).ptr == plain.ptr && raw_len == 0 &&
           sp_msg_render_wire(random, w15, &raw_len).ptr == plain.ptr &&
           sp_msg_size(random) < 2 * sizeof(noise) + 400,
       "data deflate cannot shrink goes raw, the raw rendering not kept twice");
    sp_msg_unref(random);
    sp_msg_unref(m);
    sp_msg_unref(small);
}

int main(void)
{
    test_deflated();
    test_render();
    test_envelope_and_grip();
    test_pusher();
    test_longpoll_body();
    return tap_done();
}
