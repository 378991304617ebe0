#include "http/wsdeflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- negotiation ----------------------------------------------------------------- */

/* A cursor over one field value: extension = token *( ";" param ), params
 * name [ "=" ( token / quoted-string ) ], offers separated by "," (RFC 6455
 * §9.1), with optional white space between the parts. */
struct lexer {
    const char *p, *end;
};

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_ows(struct lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
        lx->p++;
}

static bool accept_char(struct lexer *lx, char c)
{
    skip_ows(lx);
    if (lx->p < lx->end && *lx->p == c) {
        lx->p++;
        return true;
    }
    return false;
}

static struct sp_slice token(struct lexer *lx)
{
    skip_ows(lx);
    const char *start = lx->p;
    while (lx->p < lx->end && tchar(*lx->p))
        lx->p++;
    return (struct sp_slice){start, (size_t)(lx->p - start)};
}

/* A parameter's value, unquoted into buf (cap bytes with the NUL). Returns
 * false on a syntax error; a value too long for buf comes back empty, which
 * no parameter of this extension accepts. */
static bool value(struct lexer *lx, char *buf, size_t cap)
{
    size_t n = 0;
    bool fits = true;

    skip_ows(lx);
    if (lx->p < lx->end && *lx->p == '"') {
        for (lx->p++; lx->p < lx->end && *lx->p != '"'; lx->p++) {
            if (*lx->p == '\\' && ++lx->p == lx->end)
                return false;
            fits = fits && n + 1 < cap;
            if (fits)
                buf[n++] = *lx->p;
        }
        if (lx->p == lx->end)
            return false; /* unterminated */
        lx->p++;
    } else {
        struct sp_slice t = token(lx);
        if (t.len == 0)
            return false;
        fits = t.len < cap;
        if (fits)
            memcpy(buf, t.ptr, n = t.len);
    }
    buf[fits ? n : 0] = '\0';
    return true;
}

/* RFC 7692's window bits: "8" to "15", no sign, no leading zero. */
static int window_bits(const char *v)
{
    if (v[0] >= '8' && v[0] <= '9' && v[1] == '\0')
        return v[0] - '0';
    if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == '\0')
        return 10 + v[1] - '0';
    return -1;
}

enum {
    P_SERVER_NO_CONTEXT = 1,
    P_CLIENT_NO_CONTEXT = 2,
    P_SERVER_BITS = 4,
    P_CLIENT_BITS = 8,
    P_CLIENT_BITS_VALUE = 16,
};

/* One parameter of a permessage-deflate offer into *d; false declines the
 * offer (the caller still reads past it). */
static bool offer_param(struct sp_slice name, const char *val, bool has_value, unsigned *seen,
                        struct sp_ws_deflate *d)
{
    unsigned bit;
    int bits = has_value ? window_bits(val) : -1;

    if (sp_slice_caseeq(name, "server_no_context_takeover") && !has_value) {
        bit = P_SERVER_NO_CONTEXT;
    } else if (sp_slice_caseeq(name, "client_no_context_takeover") && !has_value) {
        bit = P_CLIENT_NO_CONTEXT;
        d->client_no_context = true;
    } else if (sp_slice_caseeq(name, "server_max_window_bits") && bits >= 0) {
        bit = P_SERVER_BITS;
        d->server_bits = (uint8_t)bits;
    } else if (sp_slice_caseeq(name, "client_max_window_bits") && (!has_value || bits >= 0)) {
        /* Bare, it only says the client can be told a size (none is); with
         * a value, it is a hint the answer confirms, binding the client. */
        bit = P_CLIENT_BITS;
        if (has_value) {
            d->client_bits = (uint8_t)bits;
            *seen |= P_CLIENT_BITS_VALUE;
        }
    } else {
        return false;
    }
    if (*seen & bit)
        return false; /* the same parameter twice */
    *seen |= bit;
    return true;
}

static void write_answer(const struct sp_ws_deflate *d, unsigned seen,
                         char answer[SP_WS_DEFLATE_ANSWER_MAX])
{
    int n = snprintf(answer, SP_WS_DEFLATE_ANSWER_MAX,
                     "permessage-deflate; server_no_context_takeover");
    if (d->client_no_context)
        n += snprintf(answer + n, (size_t)(SP_WS_DEFLATE_ANSWER_MAX - n),
                      "; client_no_context_takeover");
    if (seen & P_SERVER_BITS)
        n += snprintf(answer + n, (size_t)(SP_WS_DEFLATE_ANSWER_MAX - n),
                      "; server_max_window_bits=%u", d->server_bits);
    if (seen & P_CLIENT_BITS_VALUE)
        snprintf(answer + n, (size_t)(SP_WS_DEFLATE_ANSWER_MAX - n), "; client_max_window_bits=%u",
                 d->client_bits);
}

bool sp_ws_deflate_negotiate(struct sp_slice offers, struct sp_ws_deflate *out,
                             char answer[SP_WS_DEFLATE_ANSWER_MAX])
{
    struct lexer lx = {offers.ptr, offers.ptr + offers.len};

    for (;;) {
        struct sp_ws_deflate d = {SP_WS_DEFLATE_MAX_BITS, SP_WS_DEFLATE_MAX_BITS, false};
        unsigned seen = 0;

        if (accept_char(&lx, ','))
            continue; /* empty list elements are allowed, and ignored */
        if (lx.p == lx.end)
            return false;
        struct sp_slice name = token(&lx);
        bool ours = sp_slice_caseeq(name, "permessage-deflate");
        if (name.len == 0)
            return false; /* garbage: the field is malformed */
        while (accept_char(&lx, ';')) {
            char val[16];
            struct sp_slice pname = token(&lx);
            bool has_value = accept_char(&lx, '=');
            if (pname.len == 0 || (has_value && !value(&lx, val, sizeof(val))))
                return false;
            if (ours && !offer_param(pname, val, has_value, &seen, &d))
                ours = false;
        }
        skip_ows(&lx);
        if (lx.p < lx.end && *lx.p != ',')
            return false;
        if (ours && d.server_bits >= SP_WS_DEFLATE_MIN_BITS) {
            *out = d;
            write_answer(&d, seen, answer);
            return true;
        }
    }
}

/* ---- compressing ------------------------------------------------------------------- */

int sp_ws_deflate_fit_bits(size_t len)
{
    /* deflate reaches back at most its window less MIN_LOOKAHEAD (262). */
    int bits = SP_WS_DEFLATE_MIN_BITS;
    while (bits < SP_WS_DEFLATE_MAX_BITS && ((size_t)1 << bits) - 262 < len)
        bits++;
    return bits;
}

uint8_t *sp_ws_deflate_message(const void *data, size_t len, int window_bits, size_t *out_len)
{
    z_stream z = {0};
    uLong cap;
    uint8_t *out = NULL;
    /* Every init clears a hash table of 2^(memLevel + 9) bytes: sized to
     * the message rather than zlib's default (8), a 2 KiB message deflates
     * in half the time to the same bytes (tests/README.md). */
    int mem_level = sp_ws_deflate_fit_bits(len) - 7;

    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits,
                     mem_level < 1   ? 1
                     : mem_level > 8 ? 8
                                     : mem_level,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    /* deflateBound is for a finished stream: a sync flush's empty block
     * takes a few bytes more. */
    cap = deflateBound(&z, (uLong)len) + 16;
    out = malloc(cap);
    if (out == NULL)
        goto fail;
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0 || z.avail_out == 0 || z.total_out < 4)
        goto fail;
    /* The flush ends in 00 00 ff ff, which the receiver adds back. */
    *out_len = z.total_out - 4;
    deflateEnd(&z);
    return out;
fail:
    free(out);
    deflateEnd(&z);
    return NULL;
}
