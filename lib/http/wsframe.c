#include "http/wsframe.h"

#include <stdlib.h>
#include <string.h>

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

void sp_ws_reader_free(struct sp_ws_reader *r)
{
    if (r == NULL)
        return;
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

static int parse_header(struct sp_ws_reader *r)
{
    const uint8_t *h = r->head;
    size_t pos = 2;

    if (h[0] & 0x70)
        return SP_WS_CLOSE_PROTOCOL; /* RSV bits without a negotiated extension */
    r->fin = (h[0] & 0x80) != 0;
    r->opcode = h[0] & 0x0f;
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
    }
    if (len > r->max_message - r->message_len)
        return SP_WS_CLOSE_TOO_BIG;
    return 0;
}

static void unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[(offset + i) & 3];
}

static int grow_message(struct sp_ws_reader *r, size_t need)
{
    if (need <= r->message_cap)
        return 0;
    size_t cap = r->message_cap ? r->message_cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > r->max_message)
        cap = r->max_message;
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

static int finish_frame(struct sp_ws_reader *r)
{
    if (r->opcode & 0x8)
        return finish_control(r);
    if (!r->fin)
        return 0;
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
        if (grow_message(r, r->message_len + n) < 0)
            return SP_WS_CLOSE_TOO_BIG;
        uint8_t *dst = r->message + r->message_len;
        memcpy(dst, p, n);
        unmask(dst, n, r->mask, r->payload_read);
        if (r->message_text && !sp_utf8_feed(&r->utf8, dst, n))
            return SP_WS_CLOSE_BAD_DATA; /* fail fast, even mid-message */
        r->message_len += n;
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
