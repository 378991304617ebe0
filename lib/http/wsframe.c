#include "http/wsframe.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

size_t sp_ws_frame_header(uint8_t *out, enum sp_ws_opcode op, bool fin, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

bool sp_ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

/* ---- reader ------------------------------------------------------------------------ */

struct sp_ws_reader {
    size_t max_message;
    const struct sp_ws_reader_events *ev;
    void *ctx;
    bool stopped;
    /* the frame being read */
    uint8_t head[14];
    size_t head_len;
    bool have_header;
    uint8_t opcode;
    bool fin;
    uint8_t mask[4];
    uint64_t payload_len;
    uint64_t payload_read;
    /* control frame payload (<= 125 bytes) */
    uint8_t control[125];
    /* the data message being assembled */
    bool in_message;
    bool message_text;
    uint8_t *message;
    size_t message_len, message_cap;
    uint32_t utf8;
    /* permessage-deflate, once negotiated: the inflater lives only while a
     * compressed message arrives; between messages a peer that carries its
     * window over costs the window's bytes (dict), a peer that does not
     * costs nothing. */
    bool deflate;        /* negotiated: RSV1 allowed on a message's first frame */
    bool no_context;     /* the peer resets its window every message */
    bool compressed;     /* the message being assembled is */
    bool inflate_ended;  /* its deflate stream ended (BFINAL): the rest is ignored */
    uint8_t window_bits; /* the peer's window */
    size_t wire_len;     /* compressed bytes of the message so far */
    z_stream *z;
    uint8_t *dict;
    size_t dict_len;
};

struct sp_ws_reader *sp_ws_reader_new(size_t max_message, const struct sp_ws_reader_events *ev,
                                      void *ctx)
{
    struct sp_ws_reader *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->max_message = max_message;
    r->ev = ev;
    r->ctx = ctx;
    return r;
}

static void end_inflate(struct sp_ws_reader *r)
{
    if (r->z == NULL)
        return;
    inflateEnd(r->z);
    free(r->z);
    r->z = NULL;
}

void sp_ws_reader_set_deflate(struct sp_ws_reader *r, int window_bits, bool no_context)
{
    r->deflate = true;
    r->window_bits = (uint8_t)window_bits;
    r->no_context = no_context;
}

void sp_ws_reader_free(struct sp_ws_reader *r)
{
    if (r == NULL)
        return;
    end_inflate(r);
    free(r->dict);
    free(r->message);
    free(r);
}

/* Needed header bytes given what has arrived so far: 2, then the length and
 * mask fields. */
static size_t header_need(const uint8_t *h, size_t have)
{
    if (have < 2)
        return 2;
    size_t n = 2 + ((h[1] & 0x80) ? 4 : 0);
    uint8_t len7 = h[1] & 0x7f;
    return n + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
}

/* A fresh inflater for a compressed message, primed with the peer's window
 * from its earlier messages unless it compresses each alone. */
static int begin_inflate(struct sp_ws_reader *r)
{
    r->inflate_ended = false;
    r->z = calloc(1, sizeof(*r->z));
    if (r->z == NULL)
        return -1;
    /* The largest window inflates any smaller one's stream. */
    if (inflateInit2(r->z, -15) != Z_OK) {
        free(r->z);
        r->z = NULL;
        return -1;
    }
    if (r->dict_len > 0 && inflateSetDictionary(r->z, r->dict, (uInt)r->dict_len) != Z_OK) {
        end_inflate(r);
        return -1;
    }
    return 0;
}

/* The message is whole: keep the window the peer's next message may refer
 * to (the last 2^bits bytes of everything inflated so far), then let the
 * inflater go. */
static int finish_inflate(struct sp_ws_reader *r)
{
    if (!r->no_context) {
        uInt len = 0;
        /* zlib deflates with 9 bits when asked for 8: keep that much. */
        size_t keep = (size_t)1 << (r->window_bits < 9 ? 9 : r->window_bits);
        uint8_t *dict = malloc(32768);
        if (dict == NULL || inflateGetDictionary(r->z, dict, &len) != Z_OK) {
            free(dict);
            return SP_WS_CLOSE_INTERNAL;
        }
        if (len > keep) { /* the peer refers back no further than its window */
            memmove(dict, dict + (len - keep), keep);
            len = (uInt)keep;
        }
        free(r->dict);
        r->dict = NULL;
        r->dict_len = len;
        if (len == 0) {
            free(dict);
        } else {
            uint8_t *fit = realloc(dict, len);
            r->dict = fit ? fit : dict;
        }
    }
    end_inflate(r);
    return 0;
}

static int parse_header(struct sp_ws_reader *r)
{
    const uint8_t *h = r->head;
    size_t pos = 2;

    bool rsv1 = (h[0] & SP_WS_RSV1) != 0;

    if (h[0] & 0x30)
        return SP_WS_CLOSE_PROTOCOL; /* RSV2, RSV3: no extension uses them */
    r->fin = (h[0] & 0x80) != 0;
    r->opcode = h[0] & 0x0f;
    /* RSV1 marks a compressed message, on its first frame only (RFC 7692
     * §6): never on a control frame, a continuation, or unnegotiated. */
    if (rsv1 && (!r->deflate || (r->opcode & 0x8) || r->opcode == SP_WS_OP_CONT))
        return SP_WS_CLOSE_PROTOCOL;
    if (!(h[1] & 0x80))
        return SP_WS_CLOSE_PROTOCOL; /* client frames must be masked */
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        if (len < 126)
            return SP_WS_CLOSE_PROTOCOL; /* not minimally encoded */
        pos = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        if (len >> 63 || len <= 0xffff)
            return SP_WS_CLOSE_PROTOCOL;
        pos = 10;
    }
    memcpy(r->mask, h + pos, 4);
    r->payload_len = len;
    r->payload_read = 0;
    bool control = r->opcode & 0x8;
    if (control) {
        if (r->opcode > SP_WS_OP_PONG)
            return SP_WS_CLOSE_PROTOCOL;
        if (!r->fin || len > 125)
            return SP_WS_CLOSE_PROTOCOL; /* control frames: unfragmented, <= 125 bytes */
        return 0;
    }
    if (r->opcode > SP_WS_OP_BINARY)
        return SP_WS_CLOSE_PROTOCOL;
    if (r->opcode == SP_WS_OP_CONT && !r->in_message)
        return SP_WS_CLOSE_PROTOCOL; /* continuation of nothing */
    if (r->opcode != SP_WS_OP_CONT && r->in_message)
        return SP_WS_CLOSE_PROTOCOL; /* new message inside a fragmented one */
    if (r->opcode != SP_WS_OP_CONT) {
        r->in_message = true;
        r->message_text = r->opcode == SP_WS_OP_TEXT;
        r->message_len = 0;
        r->utf8 = 0;
        r->compressed = rsv1;
        r->wire_len = 0;
        if (rsv1 && begin_inflate(r) < 0)
            return SP_WS_CLOSE_INTERNAL;
    }
    /* Compressed bytes count against the limit too, and then what they
     * inflate to (take_payload). */
    size_t so_far = r->compressed ? r->wire_len : r->message_len;
    if (len > r->max_message - so_far)
        return SP_WS_CLOSE_TOO_BIG;
    r->wire_len += (size_t)len;
    return 0;
}

static void unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[(offset + i) & 3];
}

/* Grows the message buffer to hold need bytes, at most limit. */
static int grow_message(struct sp_ws_reader *r, size_t need, size_t limit)
{
    if (need <= r->message_cap)
        return 0;
    size_t cap = r->message_cap ? r->message_cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    uint8_t *grown = realloc(r->message, cap ? cap : 1);
    if (grown == NULL)
        return -1;
    r->message = grown;
    r->message_cap = cap;
    return 0;
}

static int finish_control(struct sp_ws_reader *r)
{
    const uint8_t *p = r->control;
    size_t len = (size_t)r->payload_len;

    switch (r->opcode) {
    case SP_WS_OP_PING:
        if (r->ev->ping)
            r->ev->ping(r->ctx, p, len);
        return 0;
    case SP_WS_OP_PONG:
        if (r->ev->pong)
            r->ev->pong(r->ctx, p, len);
        return 0;
    default: { /* close */
        unsigned code = 1005;
        uint32_t utf8 = 0;
        if (len == 1)
            return SP_WS_CLOSE_PROTOCOL;
        if (len >= 2) {
            code = ((unsigned)p[0] << 8) | p[1];
            if (!sp_ws_close_code_valid(code))
                return SP_WS_CLOSE_PROTOCOL;
            if (!sp_utf8_feed(&utf8, p + 2, len - 2) || utf8 != 0)
                return SP_WS_CLOSE_BAD_DATA;
        }
        r->stopped = true;
        if (r->ev->close)
            r->ev->close(r->ctx, code, len > 2 ? (const char *)p + 2 : "", len > 2 ? len - 2 : 0);
        return 0;
    }
    }
}

static int inflate_into_message(struct sp_ws_reader *r, const uint8_t *in, size_t n);

static int finish_frame(struct sp_ws_reader *r)
{
    if (r->opcode & 0x8)
        return finish_control(r);
    if (!r->fin)
        return 0;
    if (r->compressed) {
        static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
        int rc = inflate_into_message(r, tail, sizeof(tail));
        if (rc == 0)
            rc = finish_inflate(r);
        if (rc != 0)
            return rc;
    }
    if (r->message_text && r->utf8 != 0)
        return SP_WS_CLOSE_BAD_DATA; /* ends inside a character */
    r->in_message = false;
    if (r->ev->message)
        r->ev->message(r->ctx, r->message_text, r->message ? r->message : (const uint8_t *)"",
                       r->message_len);
    /* Clients send rarely (a subscribe, a ping a minute): an idle one keeps
     * no buffer, which would otherwise be most of what it costs. */
    free(r->message);
    r->message = NULL;
    r->message_cap = 0;
    return 0;
}

static int take_plain(struct sp_ws_reader *r, const uint8_t *p, size_t n)
{
    if (grow_message(r, r->message_len + n, r->max_message) < 0)
        return SP_WS_CLOSE_TOO_BIG;
    uint8_t *dst = r->message + r->message_len;
    memcpy(dst, p, n);
    unmask(dst, n, r->mask, r->payload_read);
    if (r->message_text && !sp_utf8_feed(&r->utf8, dst, n))
        return SP_WS_CLOSE_BAD_DATA; /* fail fast, even mid-message */
    r->message_len += n;
    return 0;
}

/* Inflates in[0 .. n) onto the message. The buffer may grow one byte past
 * the limit, so a message exactly at it is told from one over it; nothing
 * past that is ever inflated (a zip bomb costs the limit, no more). */
static int inflate_into_message(struct sp_ws_reader *r, const uint8_t *in, size_t n)
{
    z_stream *z = r->z;

    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    while (!r->inflate_ended) {
        if (r->message_len == r->message_cap &&
            (r->message_cap > r->max_message ||
             grow_message(r, r->message_len + 1, r->max_message + 1) < 0))
            return SP_WS_CLOSE_TOO_BIG;
        uint8_t *dst = r->message + r->message_len;
        z->next_out = dst;
        z->avail_out = (uInt)(r->message_cap - r->message_len);
        int rc = inflate(z, Z_SYNC_FLUSH);
        size_t made = (size_t)(z->next_out - dst);
        r->message_len += made;
        if (r->message_len > r->max_message)
            return SP_WS_CLOSE_TOO_BIG;
        if (r->message_text && !sp_utf8_feed(&r->utf8, dst, made))
            return SP_WS_CLOSE_BAD_DATA;
        if (rc == Z_STREAM_END)
            r->inflate_ended = true; /* a final block: what follows is not read */
        else if (rc == Z_BUF_ERROR || (rc == Z_OK && z->avail_in == 0 && z->avail_out > 0))
            return 0; /* all input taken, all output out */
        else if (rc != Z_OK)
            return rc == Z_MEM_ERROR ? SP_WS_CLOSE_INTERNAL : SP_WS_CLOSE_BAD_DATA;
    }
    return 0;
}

static int take_compressed(struct sp_ws_reader *r, const uint8_t *p, size_t n)
{
    uint8_t chunk[4096];

    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof(chunk) ? n - done : sizeof(chunk);
        memcpy(chunk, p + done, k);
        unmask(chunk, k, r->mask, r->payload_read + done);
        int rc = inflate_into_message(r, chunk, k);
        if (rc != 0)
            return rc;
        done += k;
    }
    return 0;
}

/* Takes payload bytes of the current frame from p; returns how many. */
static int take_payload(struct sp_ws_reader *r, const uint8_t *p, size_t len, size_t *used)
{
    uint64_t want = r->payload_len - r->payload_read;
    size_t n = want < len ? (size_t)want : len;

    *used = n;
    if (r->opcode & 0x8) {
        memcpy(r->control + r->payload_read, p, n);
        unmask(r->control + r->payload_read, n, r->mask, r->payload_read);
    } else {
        int rc = r->compressed ? take_compressed(r, p, n) : take_plain(r, p, n);
        if (rc != 0)
            return rc;
    }
    r->payload_read += n;
    return 0;
}

int sp_ws_reader_feed(struct sp_ws_reader *r, const uint8_t *p, size_t len)
{
    size_t pos = 0;
    int rc;

    while (!r->stopped && (pos < len || (r->have_header && r->payload_read == r->payload_len))) {
        if (!r->have_header) {
            size_t need = header_need(r->head, r->head_len);
            while (r->head_len < need && pos < len) {
                r->head[r->head_len++] = p[pos++];
                need = header_need(r->head, r->head_len);
            }
            if (r->head_len < need)
                return 0;
            rc = parse_header(r);
            if (rc != 0)
                goto fail;
            r->have_header = true;
        }
        if (r->payload_read < r->payload_len) {
            if (pos == len)
                return 0; /* the payload has not arrived yet */
            size_t used;
            rc = take_payload(r, p + pos, len - pos, &used);
            if (rc != 0)
                goto fail;
            pos += used;
        }
        if (r->payload_read == r->payload_len) {
            r->have_header = false;
            r->head_len = 0;
            rc = finish_frame(r);
            if (rc != 0)
                goto fail;
        }
    }
    return 0;

fail:
    r->stopped = true;
    return rc;
}
