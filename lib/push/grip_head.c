/* What a backend says in GRIP (Pushpin's protocol) when it answers a
 * proxied request: Grip-Hold, Grip-Channel, Grip-Timeout, Grip-Keep-Alive.
 * Read through the proxy's response hook (http/proxy.h), so the proxy knows
 * nothing of GRIP; a held response's body is kept (bounded), and once it is
 * complete the client becomes a GRIP subscriber (grip.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/proxy.h"
#include "push/grip.h"

/* The body of a hold is what the client gets first (stream) or on timeout
 * (response): kept whole, up to this. */
#define HOLD_BODY_MAX (1024 * 1024)

struct grip_head {
    void *kind; /* the GRIP kind's state, where the client is held */
    char *hold, *channel, *keepalive;
    uint64_t timeout_ms;
    struct evbuffer *body;
    bool too_big;
};

static void head_free(struct grip_head *g)
{
    if (g->body)
        evbuffer_free(g->body);
    free(g->hold);
    free(g->channel);
    free(g->keepalive);
    free(g);
}

/* Keeps one Grip-* header; repeated Grip-Channel headers add channels. */
static int take(struct grip_head *g, const struct sp_http_header *h)
{
    char *value = strndup(h->value.ptr, h->value.len);
    char **slot = sp_slice_caseeq(h->name, "Grip-Hold")         ? &g->hold
                  : sp_slice_caseeq(h->name, "Grip-Channel")    ? &g->channel
                  : sp_slice_caseeq(h->name, "Grip-Keep-Alive") ? &g->keepalive
                                                                : NULL;

    if (value == NULL)
        return -1;
    if (sp_slice_caseeq(h->name, "Grip-Timeout"))
        g->timeout_ms = (uint64_t)strtoul(value, NULL, 10) * 1000;
    if (slot != NULL && *slot == NULL) {
        *slot = value;
        return 0;
    }
    if (slot != NULL) {
        char *joined = NULL;
        if (asprintf(&joined, "%s, %s", *slot, value) < 0) {
            free(value);
            return -1;
        }
        free(*slot);
        *slot = joined;
    }
    free(value);
    return 0;
}

static void *on_head(void *ctx, const struct sp_http_response *resp)
{
    struct grip_head *g = calloc(1, sizeof(*g));

    if (g == NULL)
        return NULL; /* out of memory: the response passes through */
    g->kind = ctx;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct sp_http_header *h = &resp->headers[i];
        if (h->name.len > 5 && strncasecmp(h->name.ptr, "Grip-", 5) == 0 && take(g, h) < 0)
            break;
    }
    if (g->hold == NULL) {
        head_free(g);
        return NULL;
    }
    return g;
}

static void on_body(void *hold, struct evbuffer *data)
{
    struct grip_head *g = hold;
    size_t len = evbuffer_get_length(data);

    if (g->body == NULL && !g->too_big)
        g->body = evbuffer_new();
    if (g->body == NULL || g->too_big || evbuffer_get_length(g->body) + len > HOLD_BODY_MAX) {
        g->too_big = true;
        evbuffer_drain(data, len);
        return;
    }
    evbuffer_add_buffer(g->body, data);
}

/* Grip-Channel "a; prev-id=1, b" -> "a,b" (parameters are not supported). */
static void channel_list(const char *header, char *out, size_t size)
{
    size_t n = 0;
    char *copy = strdup(header);

    out[0] = '\0';
    for (char *save, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *semi = strchr(tok, ';');
        if (semi)
            *semi = '\0';
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
            len--;
        if (len == 0 || n + len + 2 > size)
            continue;
        if (n > 0)
            out[n++] = ',';
        memcpy(out + n, tok, len);
        n += len;
        out[n] = '\0';
    }
    free(copy);
}

/* Grip-Keep-Alive "data; format=cstring; timeout=30": decodes data in place. */
static size_t keepalive_data(char *header, uint64_t *timeout_ms)
{
    char *semi = strchr(header, ';');
    const char *params = semi ? semi + 1 : "";
    bool cstring = strstr(params, "format=cstring") != NULL;
    const char *t = strstr(params, "timeout=");
    size_t len, w = 0;

    *timeout_ms = (t ? (uint64_t)strtoul(t + 8, NULL, 10) : 55) * 1000;
    if (semi)
        *semi = '\0';
    len = strlen(header);
    while (len > 0 && header[len - 1] == ' ')
        len--;
    for (size_t r = 0; r < len; r++) {
        char c = header[r];
        if (cstring && c == '\\' && r + 1 < len) {
            char e = header[++r];
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        }
        header[w++] = c;
    }
    return w;
}

static void on_done(void *hold, struct sp_http_conn *conn, int status, const char *reason,
                    struct evbuffer *lines)
{
    struct grip_head *g = hold;
    char channels[2048];
    struct sp_grip_hold h = {
        .stream = strncasecmp(g->hold, "stream", 6) == 0,
        .channels = channels,
        .status = status,
        .reason = reason,
        .headers = lines,
        .body = g->body,
        .timeout_ms = g->timeout_ms ? g->timeout_ms : 55000,
    };

    channel_list(g->channel ? g->channel : "", channels, sizeof(channels));
    if (g->keepalive != NULL) {
        h.keepalive_len = keepalive_data(g->keepalive, &h.keepalive_ms);
        h.keepalive = g->keepalive;
    }
    if (h.body == NULL && !g->too_big)
        h.body = g->body = evbuffer_new();
    if (g->too_big)
        sp_http_respond_error(conn, 502, "backend's Grip-Hold body is larger than 1 MiB");
    else if (channels[0] == '\0' || h.body == NULL)
        sp_http_respond_error(conn, 502, "backend sent Grip-Hold without a usable Grip-Channel");
    else
        sp_grip_hold(g->kind, conn, &h);
    head_free(g);
}

static void on_cancel(void *hold)
{
    head_free(hold);
}

const struct sp_proxy_hook sp_grip_proxy_hook = {
    .header_prefix = "Grip-",
    .head = on_head,
    .body = on_body,
    .done = on_done,
    .cancel = on_cancel,
};
