#include "channel/msg.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "http/server.h"
#include "http/wsdeflate.h"
#include "http/wsframe.h"

struct sp_msg {
    atomic_uint refs;
    uint64_t seq;
    uint64_t created_ms;
    char id[SP_MSG_ID_MAX];
    char *channel;
    char *event;
    char *data;
    size_t len;
    /* Renders, made on first use by whichever worker needs one first: the
     * pointer is published last, and a worker that lost the race to
     * publish its own frees it. */
    _Atomic(char *) rendered[SP_FMT_COUNT];
    atomic_size_t rendered_len[SP_FMT_COUNT];
    _Atomic(struct deflated *) deflated; /* made on the first compressed render */
    json_t *grip;
    char *origin; /* a Pusher socket_id the message is not for, or NULL */
};

/* Compressed WebSocket frames, by format (WS, envelope, Pusher) and window:
 * [0] with the smallest window that spans the message, good for every peer
 * that allows that much; [1] with the smallest window zlib makes, for the
 * rare peer that allows less. A message most subscribers do not compress
 * for pays 8 bytes for the pointer, not this. */
enum { DEFLATE_FORMATS = 3, DEFLATE_VARIANTS = 2 };
/* Stands in a slot whose compressed frame would not be smaller: the raw
 * rendering is sent, and not kept twice. */
static char not_smaller;
struct deflated {
    _Atomic(char *) frame[DEFLATE_FORMATS][DEFLATE_VARIANTS];
    atomic_size_t len[DEFLATE_FORMATS][DEFLATE_VARIANTS];
};

struct sp_msg *sp_msg_new(const char *channel, uint64_t seq, const char *id, const char *event,
                          const void *data, size_t len, uint64_t created_ms)
{
    struct sp_msg *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    m->seq = seq;
    m->created_ms = created_ms;
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->channel = strdup(channel);
    m->event = event && event[0] ? strdup(event) : NULL;
    m->data = malloc(len + 1);
    if (m->channel == NULL || (event && event[0] && m->event == NULL) || m->data == NULL) {
        sp_msg_unref(m);
        return NULL;
    }
    memcpy(m->data, data, len);
    m->data[len] = '\0';
    m->len = len;
    return m;
}

struct sp_msg *sp_msg_ref(struct sp_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void sp_msg_unref(struct sp_msg *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < SP_FMT_COUNT; i++)
        free(atomic_load_explicit(&m->rendered[i], memory_order_acquire));
    struct deflated *d = atomic_load_explicit(&m->deflated, memory_order_acquire);
    if (d != NULL) {
        for (int f = 0; f < DEFLATE_FORMATS; f++)
            for (int v = 0; v < DEFLATE_VARIANTS; v++) {
                char *frame = atomic_load_explicit(&d->frame[f][v], memory_order_acquire);
                if (frame != &not_smaller)
                    free(frame);
            }
        free(d);
    }
    json_decref(m->grip);
    free(m->origin);
    free(m->channel);
    free(m->event);
    free(m->data);
    free(m);
}

void sp_msg_set_grip(struct sp_msg *m, void *formats)
{
    json_decref(m->grip);
    m->grip = formats ? json_incref(formats) : NULL;
}

int sp_msg_set_origin(struct sp_msg *m, const char *origin)
{
    free(m->origin);
    m->origin = origin ? strdup(origin) : NULL;
    return origin && m->origin == NULL ? -1 : 0;
}

const char *sp_msg_origin(const struct sp_msg *m)
{
    return m->origin;
}

void *sp_msg_grip(const struct sp_msg *m)
{
    return m->grip;
}

void sp_msg_unref_cb(const void *data, size_t len, void *msg)
{
    (void)data;
    (void)len;
    sp_msg_unref(msg);
}

uint64_t sp_msg_seq(const struct sp_msg *m)
{
    return m->seq;
}

const char *sp_msg_id(const struct sp_msg *m)
{
    return m->id;
}

const char *sp_msg_channel(const struct sp_msg *m)
{
    return m->channel;
}

const char *sp_msg_event(const struct sp_msg *m)
{
    return m->event;
}

struct sp_slice sp_msg_data(const struct sp_msg *m)
{
    return (struct sp_slice){m->data, m->len};
}

uint64_t sp_msg_created(const struct sp_msg *m)
{
    return m->created_ms;
}

size_t sp_msg_size(const struct sp_msg *m)
{
    size_t n = sizeof(*m) + m->len + strlen(m->channel);
    for (int i = 0; i < SP_FMT_COUNT; i++)
        n += atomic_load_explicit(&((struct sp_msg *)m)->rendered_len[i], memory_order_relaxed);
    struct deflated *d =
        atomic_load_explicit(&((struct sp_msg *)m)->deflated, memory_order_acquire);
    if (d != NULL) {
        n += sizeof(*d);
        for (int f = 0; f < DEFLATE_FORMATS; f++)
            for (int v = 0; v < DEFLATE_VARIANTS; v++)
                n += atomic_load_explicit(&d->len[f][v], memory_order_relaxed);
    }
    return n;
}

/* ---- renderers ------------------------------------------------------------------ */

struct out {
    char *buf;
    size_t len, cap;
};

static bool put(struct out *o, const void *p, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = (o->len + n) * 2 + 64;
        char *grown = realloc(o->buf, cap);
        if (grown == NULL)
            return false;
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return true;
}

static bool puts_(struct out *o, const char *s)
{
    return put(o, s, strlen(s));
}

/* SSE: one "data:" line per line of the payload; CR, LF and CRLF all end a
 * line for the client, so each becomes a line break here and no raw CR or LF
 * ever lands inside a field. */
static bool render_sse(struct sp_msg *m, struct out *o)
{
    bool ok = puts_(o, "id: ") && puts_(o, m->id) && puts_(o, "\n");
    if (ok && m->event)
        ok = puts_(o, "event: ") && puts_(o, m->event) && puts_(o, "\n");
    const char *p = m->data, *end = m->data + m->len;
    for (;;) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r')
            eol++;
        ok = ok && puts_(o, "data: ") && put(o, p, (size_t)(eol - p)) && puts_(o, "\n");
        if (!ok || eol == end)
            break;
        p = eol + ((*eol == '\r' && eol + 1 < end && eol[1] == '\n') ? 2 : 1);
    }
    return ok && puts_(o, "\n");
}

static bool is_utf8(const struct sp_msg *m)
{
    uint32_t state = 0;
    return sp_utf8_feed(&state, (const uint8_t *)m->data, m->len) && state == 0;
}

/* JSON strings are Unicode: data that is not UTF-8 travels as base64 under
 * "data_base64" instead, so nothing is lost or mangled. */
static char *json_item(struct sp_msg *m)
{
    json_t *obj;

    if (is_utf8(m)) {
        obj = json_pack("{s:s, s:s, s:s*, s:s%}", "id", m->id, "channel", m->channel, "event",
                        m->event, "data", m->data, m->len);
    } else {
        char *b64 = malloc(SP_BASE64_LEN(m->len));
        if (b64 == NULL)
            return NULL;
        sp_base64_encode(m->data, m->len, b64);
        obj = json_pack("{s:s, s:s, s:s*, s:s}", "id", m->id, "channel", m->channel, "event",
                        m->event, "data_base64", b64);
        free(b64);
    }
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return text;
}

/* A Pusher channel event (protocol 7): data is a JSON string (the message's
 * bytes as they are, or base64 when they are not UTF-8), the event name the
 * message's ("message" when it has none), and "id" the position a client
 * resumes from (pusher-js passes fields it does not know along). On a
 * presence- channel, sidepush's own join and leave messages are Pusher's
 * member_added and member_removed. */
static const char *pusher_event(const struct sp_msg *m)
{
    if (strncmp(m->channel, "presence-", 9) == 0 && m->event != NULL) {
        if (strcmp(m->event, "sidepush-join") == 0)
            return "pusher_internal:member_added";
        if (strcmp(m->event, "sidepush-leave") == 0)
            return "pusher_internal:member_removed";
    }
    return m->event ? m->event : "message";
}

static char *pusher_frame_text(struct sp_msg *m)
{
    json_t *obj;

    if (is_utf8(m)) {
        obj = json_pack("{s:s, s:s, s:s%, s:s}", "event", pusher_event(m), "channel", m->channel,
                        "data", m->data, m->len, "id", m->id);
    } else {
        char *b64 = malloc(SP_BASE64_LEN(m->len));
        if (b64 == NULL)
            return NULL;
        sp_base64_encode(m->data, m->len, b64);
        obj = json_pack("{s:s, s:s, s:s, s:s}", "event", pusher_event(m), "channel", m->channel,
                        "data", b64, "id", m->id);
        free(b64);
    }
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    return text;
}

/* GRIP's http-stream content, text or base64-decoded bytes. */
static bool render_grip_content(struct sp_msg *m, struct out *o)
{
    json_t *stream = json_object_get(m->grip, "http-stream");
    json_t *content = json_object_get(stream, "content");
    json_t *bin = json_object_get(stream, "content-bin");
    char *decoded = NULL;
    size_t len = 0;
    bool ok;

    if (json_is_string(content))
        return put(o, json_string_value(content), json_string_length(content));
    if (!json_is_string(bin) ||
        sp_base64_decode(json_string_value(bin), json_string_length(bin), &decoded, &len) < 0)
        return false;
    ok = put(o, decoded, len);
    free(decoded);
    return ok;
}

static bool render(struct sp_msg *m, enum sp_msg_format fmt, struct out *o)
{
    switch (fmt) {
    case SP_FMT_SSE:
        return render_sse(m, o);
    case SP_FMT_SSE_CHUNKED: {
        struct sp_slice sse = sp_msg_render(m, SP_FMT_SSE);
        char head[SP_HTTP_CHUNK_HEAD_MAX];
        size_t n = sp_http_chunk_head(head, sse.len);
        return sse.len && put(o, head, n) && put(o, sse.ptr, sse.len) &&
               put(o, SP_HTTP_CHUNK_TAIL, 2);
    }
    case SP_FMT_WS:
    case SP_FMT_WS_ENVELOPE: {
        char *env = fmt == SP_FMT_WS_ENVELOPE ? json_item(m) : NULL;
        const char *payload = env ? env : m->data;
        size_t plen = env ? strlen(env) : m->len;
        uint8_t head[SP_WS_MAX_HEADER];
        /* A text frame must be UTF-8; other data goes out as a binary frame. */
        enum sp_ws_opcode op = env || is_utf8(m) ? SP_WS_OP_TEXT : SP_WS_OP_BINARY;
        size_t hlen = sp_ws_frame_header(head, op, true, plen);
        bool ok = (fmt == SP_FMT_WS || env) && put(o, head, hlen) && put(o, payload, plen);
        free(env);
        return ok;
    }
    case SP_FMT_GRIP_CONTENT:
        return render_grip_content(m, o);
    case SP_FMT_GRIP_STREAM: {
        /* Rendered afresh, not from SP_FMT_GRIP_CONTENT: a message keeps
         * only the renderings its subscribers use. */
        struct out content = {0};
        char head[SP_HTTP_CHUNK_HEAD_MAX];
        /* An empty chunk would end the stream: nothing to send then. */
        bool ok = render_grip_content(m, &content) && content.len > 0 &&
                  put(o, head, sp_http_chunk_head(head, content.len)) &&
                  put(o, content.buf, content.len) && put(o, SP_HTTP_CHUNK_TAIL, 2);
        free(content.buf);
        return ok;
    }
    case SP_FMT_PUSHER: {
        char *text = pusher_frame_text(m);
        uint8_t head[SP_WS_MAX_HEADER];
        size_t len = text ? strlen(text) : 0;
        bool ok = text && put(o, head, sp_ws_frame_header(head, SP_WS_OP_TEXT, true, len)) &&
                  put(o, text, len);
        free(text);
        return ok;
    }
    case SP_FMT_JSON: {
        char *item = json_item(m);
        bool ok = item && puts_(o, item);
        free(item);
        return ok;
    }
    default:
        return false;
    }
}

struct sp_slice sp_msg_render(struct sp_msg *m, enum sp_msg_format fmt)
{
    struct out o = {0};
    char *done = atomic_load_explicit(&m->rendered[fmt], memory_order_acquire);

    if (done != NULL)
        goto rendered;
    if (!render(m, fmt, &o) || o.len == 0) {
        free(o.buf);
        return (struct sp_slice){NULL, 0};
    }
    atomic_store_explicit(&m->rendered_len[fmt], o.len, memory_order_relaxed);
    if (atomic_compare_exchange_strong_explicit(&m->rendered[fmt], &done, o.buf,
                                                memory_order_acq_rel, memory_order_acquire))
        done = o.buf;
    else
        free(o.buf); /* another worker's render, the same bytes, is in place */
rendered:
    return (struct sp_slice){done,
                             atomic_load_explicit(&m->rendered_len[fmt], memory_order_relaxed)};
}

/* ---- compressed WebSocket frames --------------------------------------------------- */

/* The payload of a rendered WebSocket frame (server frames are unmasked). */
static struct sp_slice frame_payload(struct sp_slice frame)
{
    uint8_t len7 = (uint8_t)frame.ptr[1] & 0x7f;
    size_t head = len7 == 127 ? 10 : len7 == 126 ? 4 : 2;
    return (struct sp_slice){frame.ptr + head, frame.len - head};
}

/* The frame compressed with a window of bits, or &not_smaller when
 * compression would not make it smaller (RSV1 is per message). */
static char *deflate_frame(struct sp_slice raw, int bits, size_t *len)
{
    struct sp_slice payload = frame_payload(raw);
    size_t zlen = 0;
    uint8_t *z = sp_ws_deflate_message(payload.ptr, payload.len, bits, &zlen);
    uint8_t head[SP_WS_MAX_HEADER];
    size_t hlen;
    char *out;

    if (z == NULL)
        return NULL;
    if (zlen >= payload.len) {
        free(z);
        *len = 0;
        return &not_smaller;
    }
    hlen = sp_ws_frame_header(head, (enum sp_ws_opcode)(raw.ptr[0] & 0x0f), true, zlen);
    head[0] |= SP_WS_RSV1;
    out = malloc(hlen + zlen);
    if (out != NULL) {
        memcpy(out, head, hlen);
        memcpy(out + hlen, z, zlen);
        *len = hlen + zlen;
    }
    free(z);
    return out;
}

static struct deflated *deflated_of(struct sp_msg *m)
{
    struct deflated *d = atomic_load_explicit(&m->deflated, memory_order_acquire);
    struct deflated *mine;

    if (d != NULL)
        return d;
    mine = calloc(1, sizeof(*mine));
    if (mine == NULL)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(&m->deflated, &d, mine, memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    free(mine); /* another worker's is in place */
    return d;
}

static struct sp_slice render_deflated(struct sp_msg *m, struct sp_slice raw, int fmt_index,
                                       int max_bits)
{
    int fit = sp_ws_deflate_fit_bits(frame_payload(raw).len);
    int variant = max_bits >= fit ? 0 : 1;
    struct deflated *d = deflated_of(m);
    size_t len = 0;
    char *done, *mine;

    if (d == NULL)
        return (struct sp_slice){NULL, 0};
    done = atomic_load_explicit(&d->frame[fmt_index][variant], memory_order_acquire);
    if (done == NULL) {
        mine = deflate_frame(raw, variant == 0 ? fit : SP_WS_DEFLATE_MIN_BITS, &len);
        if (mine == NULL)
            return (struct sp_slice){NULL, 0};
        atomic_store_explicit(&d->len[fmt_index][variant], len, memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&d->frame[fmt_index][variant], &done, mine,
                                                    memory_order_acq_rel, memory_order_acquire))
            done = mine;
        else if (mine != &not_smaller)
            free(mine); /* the same bytes, made by another worker */
    }
    return (struct sp_slice){
        done, atomic_load_explicit(&d->len[fmt_index][variant], memory_order_relaxed)};
}

struct sp_slice sp_msg_render_wire(struct sp_msg *m, struct sp_wire w, size_t *raw_len)
{
    struct sp_slice raw = sp_msg_render(m, w.fmt);
    int fmt_index = w.fmt == SP_FMT_WS ? 0 : w.fmt == SP_FMT_WS_ENVELOPE ? 1 : 2;
    struct sp_slice z;

    *raw_len = 0;
    if (raw.len == 0 || w.deflate_bits == 0 ||
        (w.fmt != SP_FMT_WS && w.fmt != SP_FMT_WS_ENVELOPE && w.fmt != SP_FMT_PUSHER) ||
        frame_payload(raw).len < w.deflate_min)
        return raw;
    z = render_deflated(m, raw, fmt_index, w.deflate_bits);
    if (z.ptr == &not_smaller)
        return raw;
    if (z.len > 0)
        *raw_len = raw.len;
    return z;
}

int sp_msg_longpoll_body(struct evbuffer *out, const char *cursor, bool missed,
                         struct sp_msg *const *msgs, size_t n)
{
    if (evbuffer_add_printf(out, "{\"cursor\":\"%s\",\"missed\":%s,\"messages\":[", cursor,
                            missed ? "true" : "false") < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct sp_slice item = sp_msg_render(msgs[i], SP_FMT_JSON);
        if (item.len == 0 || (i > 0 && evbuffer_add(out, ",", 1) < 0))
            return -1;
        if (evbuffer_add_reference(out, item.ptr, item.len, sp_msg_unref_cb, sp_msg_ref(msgs[i])) <
            0) {
            sp_msg_unref(msgs[i]);
            return -1;
        }
    }
    return evbuffer_add(out, "]}\n", 3);
}
