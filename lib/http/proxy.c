#include "http/proxy.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "http/tunnel.h"
#include "net/stream.h"
#include "http/target.h"
#include "http/upstream.h"

#define MAX_HEAD 65536
#define MAX_HEADERS 256

struct sp_proxy {
    struct sp_proxy_stats stats;
    struct event_base *base;
    struct sp_upstream_pool *pool;
    struct sp_upstream_stats retired; /* counts of pools a reload replaced */
    struct sp_tunnels *tunnels;       /* upgraded connections, joined to the backend */
    struct sp_proxy_options opts;
    char *backend_url;       /* as configured, for logs */
    char *base_path;         /* the backend URL's path, without a trailing '/' ("" for none) */
    char *host;              /* "host[:port]" for Host when the client's is not kept */
    struct sp_cidr *trusted; /* clients whose X-Forwarded-Proto is passed on */
    size_t ntrusted;
    const struct sp_log *log;
};

/* One proxied exchange; lives from sp_proxy_handle() until the backend's
 * answer ends or the client goes away, whichever is first. */
struct xfer {
    struct sp_proxy *proxy;
    struct sp_http_conn *conn;
    struct sp_upstream *up;
    struct evbuffer *request_head; /* while the body is read whole first (request_buffer) */
    unsigned flags;                /* for sp_upstream_start */
    bool chunked_up;               /* the request body goes to the backend in chunks */
    bool body_done;                /* all of it went */
    bool head_sent;
    bool paused;  /* the client is slow: the backend's body waits */
    bool upgrade; /* the client asked to switch protocols */
    int status;
    char reason[64];
    int64_t content_length; /* for the client: -1 unknown */
    struct evbuffer *head_lines;
    uint64_t started_ms;
    void *hold; /* the hook holds the response (opts.hook) */
};

static void xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    sp_upstream_cancel(x->up);
    if (x->request_head)
        evbuffer_free(x->request_head);
    if (x->head_lines)
        evbuffer_free(x->head_lines);
    if (x->hold)
        x->proxy->opts.hook->cancel(x->hold);
    free(x);
}

static bool holding(const struct xfer *x)
{
    return x->hold != NULL;
}

bool sp_proxy_is_own_header(struct sp_slice name)
{
    return (name.len >= 9 && strncasecmp(name.ptr, "Sidepush-", 9) == 0) ||
           sp_slice_caseeq(name, "X-Original-URI");
}

bool sp_proxy_is_hop_header(struct sp_slice name)
{
#define HOP(s)                                                                                     \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    /* Every header of every proxied exchange is looked up here: the lengths
     * are known, so most names are rejected without a string compare. */
    static const struct sp_slice hop[] = {HOP("Connection"),
                                          HOP("Keep-Alive"),
                                          HOP("Proxy-Connection"),
                                          HOP("TE"),
                                          HOP("Trailer"),
                                          HOP("Transfer-Encoding"),
                                          HOP("Upgrade"),
                                          HOP("Proxy-Authenticate"),
                                          HOP("Proxy-Authorization")};
#undef HOP
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        if (name.len == hop[i].len && strncasecmp(name.ptr, hop[i].ptr, name.len) == 0)
            return true;
    }
    return false;
}

/* ---- the request body, client to backend -------------------------------------------- */

/* Moves what the client sent so far to the backend, while the backend's
 * side has room; framed in chunks when the client's was. What stays in the
 * client's body buffer stops the client's reads (sp_http_body_taken). */
static void forward_body(struct xfer *x)
{
    struct evbuffer *body = sp_http_body(x->conn);
    struct evbuffer *piece;
    size_t room = x->proxy->opts.buffer_size;
    size_t unsent;

    if (body == NULL || x->body_done || x->up == NULL || (piece = evbuffer_new()) == NULL)
        return;
    unsent = sp_upstream_unsent(x->up);
    while (evbuffer_get_length(body) > 0 && unsent < room) {
        size_t n = evbuffer_get_length(body);
        if (n > room)
            n = room;
        if (x->chunked_up)
            evbuffer_add_printf(piece, "%zx\r\n", n);
        evbuffer_remove_buffer(body, piece, n);
        if (x->chunked_up)
            evbuffer_add(piece, "\r\n", 2);
        unsent = sp_upstream_write(x->up, piece, false);
    }
    sp_http_body_taken(x->conn);
    if (sp_http_body_complete(x->conn) && evbuffer_get_length(body) == 0) {
        if (x->chunked_up)
            evbuffer_add(piece, "0\r\n\r\n", 5);
        sp_upstream_write(x->up, piece, true);
        x->body_done = true;
    }
    evbuffer_free(piece);
}

/* ---- the client's side ------------------------------------------------------------------ */

static void start_upstream(struct xfer *x);

/* A body read whole first (backend.request_buffer) goes to the backend once
 * it is complete, or once it outgrew the buffer and must stream after all. */
static bool body_ready(struct xfer *x)
{
    struct evbuffer *body = sp_http_body(x->conn);

    return sp_http_body_complete(x->conn) ||
           (body != NULL && evbuffer_get_length(body) >= x->proxy->opts.request_buffer);
}

static void on_client_body(void *ctx)
{
    struct xfer *x = ctx;

    if (x->request_head != NULL && body_ready(x))
        start_upstream(x); /* frees x when it fails */
    else
        forward_body(x);
}

static void on_client_drain(void *ctx)
{
    struct xfer *x = ctx;

    if (x->paused && sp_http_unsent(x->conn) < x->proxy->opts.buffer_size) {
        x->paused = false;
        sp_upstream_pause(x->up, false);
    }
}

static void on_client_closed(void *ctx)
{
    xfer_free(ctx);
}

static const struct sp_http_ops client_ops = {on_client_body, on_client_drain, on_client_closed,
                                              NULL};

/* ---- the backend's answer ---------------------------------------------------------------- */

static void count(struct xfer *x, int status)
{
    struct sp_proxy_stats *st = &x->proxy->stats;
    st->by_class[status >= 100 && status < 600 ? status / 100 : 0]++;
    sp_histogram_observe(&st->latency, (double)(sp_now_ms() - x->started_ms) / 1000.0);
}

static void send_head(struct xfer *x)
{
    if (x->head_sent || holding(x))
        return;
    x->head_sent = true;
    sp_http_begin(x->conn, x->status, x->reason[0] ? x->reason : NULL, x->head_lines,
                  x->content_length);
}

/* The Connection headers of a head: what they name is hop-by-hop too
 * (RFC 9110 section 7.6.1). Found once per head, not once per header. */
struct connection_list {
    const struct sp_http_header *first;
    size_t count; /* Connection headers from first on */
};

static struct connection_list connection_list(const struct sp_http_header *headers, size_t n)
{
    struct connection_list l = {NULL, 0};

    for (size_t i = 0; i < n; i++) {
        if (sp_slice_caseeq(headers[i].name, "Connection")) {
            if (l.first == NULL)
                l.first = &headers[i];
            l.count = (size_t)(&headers[i] - l.first) + 1;
        }
    }
    return l;
}

static bool connection_names(struct connection_list l, struct sp_slice name)
{
    for (size_t i = 0; i < l.count; i++) {
        if (sp_slice_caseeq(l.first[i].name, "Connection") &&
            sp_http_list_has_slice(l.first[i].value, name))
            return true;
    }
    return false;
}

/* A head being written: gathered here and handed to its evbuffer in a few
 * large adds, since one evbuffer_add costs more than copying a field. */
struct head_text {
    struct evbuffer *out;
    size_t len;
    char buf[4096];
};

static void add(struct head_text *t, const void *data, size_t len)
{
    if (t->len + len > sizeof(t->buf)) {
        evbuffer_add(t->out, t->buf, t->len);
        t->len = 0;
        if (len > sizeof(t->buf)) {
            evbuffer_add(t->out, data, len);
            return;
        }
    }
    memcpy(t->buf + t->len, data, len);
    t->len += len;
}

static void add_text(struct head_text *t, const char *text)
{
    add(t, text, strlen(text));
}

static void add_field(struct head_text *t, struct sp_slice name, struct sp_slice value)
{
    add(t, name.ptr, name.len);
    add(t, ": ", 2);
    add(t, value.ptr, value.len);
    add(t, "\r\n", 2);
}

static int head_done(struct head_text *t)
{
    int rc = evbuffer_add(t->out, t->buf, t->len);
    t->len = 0;
    return rc;
}

/* A header for the hook (GRIP's Grip-*), never for the client. */
static bool hooked(const struct xfer *x, struct sp_slice name)
{
    const struct sp_proxy_hook *hook = x->proxy->opts.hook;
    size_t n = hook != NULL ? strlen(hook->header_prefix) : 0;

    return n > 0 && name.len > n && strncasecmp(name.ptr, hook->header_prefix, n) == 0;
}

static void on_head(void *ctx, const struct sp_http_response *resp, enum sp_http_body_kind kind,
                    uint64_t length)
{
    struct xfer *x = ctx;
    size_t rlen =
        resp->reason.len < sizeof(x->reason) - 1 ? resp->reason.len : sizeof(x->reason) - 1;

    x->status = resp->status;
    memcpy(x->reason, resp->reason.ptr, rlen);
    x->reason[rlen] = '\0';
    x->content_length = -1;
    struct connection_list named = connection_list(resp->headers, resp->nheaders);
    struct head_text lines;
    lines.out = x->head_lines;
    lines.len = 0;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct sp_http_header *h = &resp->headers[i];
        uint64_t n;
        if (sp_slice_caseeq(h->name, "Content-Length")) {
            /* kept for HEAD and 304 too, where it describes what was not sent */
            if (sp_http_parse_content_length(h->value, &n) == 0 && n <= INT64_MAX)
                x->content_length = (int64_t)n;
            continue;
        }
        if (hooked(x, h->name))
            continue;
        if (resp->status == 101 && sp_slice_caseeq(h->name, "Upgrade")) {
            /* The protocol switched to; Connection: Upgrade goes with it. */
            add_field(&lines, h->name, h->value);
            add_text(&lines, "Connection: Upgrade\r\n");
            continue;
        }
        if (sp_proxy_is_hop_header(h->name) || connection_names(named, h->name))
            continue;
        add_field(&lines, h->name, h->value);
    }
    head_done(&lines);
    if (kind == SP_HTTP_BODY_CHUNKED || kind == SP_HTTP_BODY_CLOSE)
        x->content_length = -1; /* the client gets it in its own framing */
    (void)length;
    if (resp->status != 101 && x->proxy->opts.hook != NULL)
        x->hold = x->proxy->opts.hook->head(x->proxy->opts.hook_ctx, resp);
    if (resp->status != 101)
        send_head(x);
}

static void on_body(void *ctx, struct evbuffer *data)
{
    struct xfer *x = ctx;

    if (holding(x)) {
        x->proxy->opts.hook->body(x->hold, data);
        return;
    }
    sp_http_write_buffer(x->conn, data);
    if (!x->paused && sp_http_unsent(x->conn) >= x->proxy->opts.buffer_size) {
        x->paused = true;
        sp_upstream_pause(x->up, true);
    }
}

static void on_done(void *ctx)
{
    struct xfer *x = ctx;
    struct sp_http_conn *conn = x->conn;

    x->up = NULL; /* the upstream exchange is over */
    sp_http_set_ops(conn, NULL, NULL);
    count(x, x->status);
    if (holding(x)) {
        void *hold = x->hold;
        x->hold = NULL;
        x->proxy->opts.hook->done(hold, conn, x->status, x->reason[0] ? x->reason : NULL,
                                  x->head_lines);
    } else {
        sp_http_finish(conn);
    }
    xfer_free(x);
}

static void on_error(void *ctx, int status, bool bad_response, const char *why)
{
    struct xfer *x = ctx;
    struct sp_http_conn *conn = x->conn;

    x->up = NULL;
    sp_http_set_ops(conn, NULL, NULL);
    count(x, status);
    sp_log_warn(x->proxy->log, bad_response ? "backend_bad_response" : "backend_error", "%s: %s",
                x->proxy->backend_url, why);
    if (x->head_sent)
        sp_http_abort(conn); /* a cut-off body must not look complete */
    else if (status == 504)
        sp_http_respond_error(conn, 504, "backend did not answer within backend.timeout");
    else if (bad_response)
        sp_http_respond_error(conn, 502, "backend sent an invalid or ambiguous response");
    else
        sp_http_respond_error(conn, 502, "backend unreachable or failed");
    xfer_free(x);
}

static void on_drained(void *ctx)
{
    forward_body(ctx);
}

/* The backend's 101: the client gets it, then both connections are joined. */
static void on_upgraded(void *ctx, struct bufferevent *backend)
{
    struct xfer *x = ctx;
    struct sp_http_conn *conn = x->conn;
    struct evbuffer *out = evbuffer_new(), *in = evbuffer_new();
    enum sp_http_stream framing;
    struct sp_stream *stream = NULL;

    x->up = NULL;
    sp_http_set_ops(conn, NULL, NULL);
    count(x, 101);
    if (out != NULL && in != NULL)
        stream = sp_http_begin_stream(conn, 101, x->reason[0] ? x->reason : NULL, x->head_lines,
                                      true, in, &framing);
    if (stream == NULL) {
        bufferevent_free(backend);
        sp_http_respond_error(conn, 502, "cannot switch protocols");
    } else {
        /* The tunnel's bufferevent takes the socket and what is queued. */
        sp_tunnel_open(x->proxy->tunnels, sp_stream_take_socket(stream, out), out, in, backend);
    }
    if (out)
        evbuffer_free(out);
    if (in)
        evbuffer_free(in);
    xfer_free(x);
}

static const struct sp_upstream_ops upstream_ops = {on_head,  on_body,    on_done,
                                                    on_error, on_drained, on_upgraded};

/* ---- the request head ---------------------------------------------------------------------- */

/* "http", unless the client is a trusted proxy (a TLS-terminating ingress)
 * that said "http" or "https" itself. */
static struct sp_slice forwarded_proto(struct xfer *x, const struct sp_http_header *proto)
{
    struct sp_proxy *p = x->proxy;

    if (proto != NULL && p->ntrusted > 0 &&
        (sp_slice_caseeq(proto->value, "https") || sp_slice_caseeq(proto->value, "http")) &&
        sp_cidr_match(p->trusted, p->ntrusted, sp_http_peer(x->conn)))
        return proto->value;
    return (struct sp_slice){"http", 4};
}

static int build_head(struct xfer *x, const struct sp_http_request *req, struct evbuffer *out)
{
    const struct sp_http_header *xff = NULL, *host = NULL, *proto = NULL;
    struct sp_proxy *p = x->proxy;
    enum sp_http_body_kind kind = sp_http_body_kind(x->conn);
    struct connection_list named = connection_list(req->headers, req->nheaders);
    struct head_text t; /* not zeroed: only len bytes of buf are ever read */

    t.out = out;
    t.len = 0;
    add(&t, req->method.ptr, req->method.len);
    add(&t, " ", 1);
    add_text(&t, p->base_path);
    add(&t, req->target.ptr, req->target.len);
    add(&t, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sp_http_header *h = &req->headers[i];
        if (sp_slice_caseeq(h->name, "X-Forwarded-For")) {
            xff = h;
            continue;
        }
        if (sp_slice_caseeq(h->name, "Host"))
            host = h;
        if (sp_slice_caseeq(h->name, "X-Forwarded-Proto")) {
            proto = h;
            continue;
        }
        if (sp_proxy_is_hop_header(h->name) || connection_names(named, h->name) ||
            sp_proxy_is_own_header(h->name) || sp_slice_caseeq(h->name, "Content-Length") ||
            sp_slice_caseeq(h->name, "Expect") || sp_slice_caseeq(h->name, "X-Forwarded-Host") ||
            (sp_slice_caseeq(h->name, "Host") && !p->opts.preserve_host))
            continue;
        add_field(&t, h->name, h->value);
    }
    if (!p->opts.preserve_host || host == NULL) {
        add_text(&t, "Host: ");
        add_text(&t, p->host);
        add_text(&t, "\r\n");
    }
    add_text(&t, "X-Forwarded-For: ");
    if (xff) {
        add(&t, xff->value.ptr, xff->value.len);
        add_text(&t, ", ");
    }
    add_text(&t, sp_http_peer(x->conn));
    add_text(&t, "\r\n");
    add_field(&t, (struct sp_slice){"X-Forwarded-Proto", 17}, forwarded_proto(x, proto));
    const struct sp_http_header *upgrade = sp_http_find_header(req, "Upgrade");
    if (x->upgrade && upgrade != NULL) {
        add_text(&t, "Connection: Upgrade\r\n");
        add_field(&t, (struct sp_slice){"Upgrade", 7}, upgrade->value);
    }
    if (host)
        add_field(&t, (struct sp_slice){"X-Forwarded-Host", 16}, host->value);
    if (kind == SP_HTTP_BODY_CHUNKED) {
        x->chunked_up = true;
        add_text(&t, "Transfer-Encoding: chunked\r\n");
    } else if (kind == SP_HTTP_BODY_LENGTH || sp_http_find_header(req, "Content-Length")) {
        char n[32];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)sp_http_body_length(x->conn));
        add_field(&t, (struct sp_slice){"Content-Length", 14}, sp_slice_from(n));
    }
    add(&t, "\r\n", 2);
    return head_done(&t);
}

static bool idempotent(struct sp_slice method)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

    for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++) {
        if (sp_slice_eq(method, safe[i]))
            return true;
    }
    return false;
}

void sp_proxy_handle(struct sp_proxy *p, struct sp_http_conn *conn,
                     const struct sp_http_request *req)
{
    struct xfer *x = calloc(1, sizeof(*x));
    struct evbuffer *head = evbuffer_new();

    if (x == NULL || head == NULL)
        goto fail;
    x->proxy = p;
    x->conn = conn;
    x->content_length = -1;
    x->started_ms = sp_now_ms();
    x->head_lines = evbuffer_new();
    /* An Upgrade (WebSocket or any protocol) without a body is passed on;
     * the tunnel takes over after the backend's 101. */
    x->upgrade = sp_http_request_has_token(req, "Connection", "upgrade") &&
                 sp_http_find_header(req, "Upgrade") != NULL &&
                 sp_http_body_kind(conn) == SP_HTTP_BODY_NONE;
    if (x->head_lines == NULL || build_head(x, req, head) < 0)
        goto fail;
    enum sp_http_body_kind body = sp_http_body_kind(conn);
    /* Only an idempotent request without a body is ever sent twice. */
    x->flags = (idempotent(req->method) && body == SP_HTTP_BODY_NONE ? SP_UPSTREAM_RETRY_SAFE : 0) |
               (body != SP_HTTP_BODY_NONE ? SP_UPSTREAM_BODY : 0) |
               (sp_slice_eq(req->method, "HEAD") ? SP_UPSTREAM_HEAD : 0) |
               (x->upgrade ? SP_UPSTREAM_UPGRADE : 0);
    x->request_head = head;
    sp_http_set_ops(conn, &client_ops, x);
    /* A body the buffer can hold is read whole before the backend is asked:
     * a client uploading a byte at a time then costs the backend nothing. */
    bool fits =
        body == SP_HTTP_BODY_CHUNKED ||
        (body == SP_HTTP_BODY_LENGTH && sp_http_body_length(conn) <= p->opts.request_buffer);
    if (body != SP_HTTP_BODY_NONE && p->opts.request_buffer > 0 && fits && !body_ready(x))
        return;
    start_upstream(x);
    return;

fail:
    if (head)
        evbuffer_free(head);
    xfer_free(x);
    sp_http_respond_error(conn, 500, "out of memory");
}

/* The request head goes out (and the body as it comes). Frees x and answers
 * the client when the exchange cannot start. */
static void start_upstream(struct xfer *x)
{
    struct evbuffer *head = x->request_head;
    struct sp_http_conn *conn = x->conn;

    x->request_head = NULL;
    x->up = sp_upstream_start(x->proxy->pool, head, x->flags, &upstream_ops, x);
    evbuffer_free(head);
    if (x->up == NULL) {
        sp_http_set_ops(conn, NULL, NULL);
        xfer_free(x);
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    forward_body(x);
}

void sp_proxy_stats(const struct sp_proxy *p, struct sp_proxy_stats *out)
{
    const struct sp_tunnel_stats *t = sp_tunnels_stats(p->tunnels);
    const struct sp_upstream_stats *u = sp_upstream_pool_stats(p->pool);

    *out = p->stats;
    out->upstream_connects = p->retired.connects + u->connects;
    out->upstream_reuses = p->retired.reuses + u->reuses;
    out->upstream_retries = p->retired.retries + u->retries;
    out->upstream_bad = p->retired.bad_responses + u->bad_responses;
    out->upstream_stale = p->retired.stale + u->stale;
    out->upstream_unpooled = p->retired.unpooled + u->unpooled;
    out->tunnels_open = t->open;
    out->tunnels_opened = t->opened;
    out->tunnel_bytes_to_backend = t->bytes_to_backend;
    out->tunnel_bytes_to_client = t->bytes_to_client;
}

size_t sp_proxy_tunnels(struct sp_proxy *p)
{
    return (size_t)sp_tunnels_stats(p->tunnels)->open;
}

/* ---- the backend's address ------------------------------------------------------------ */

int sp_proxy_check_backend(const char *backend_url, char *err, size_t errlen)
{
    struct sp_http_target t;

    if (sp_http_target_resolve(backend_url, &t, err, errlen) < 0)
        return -1;
    sp_http_target_clear(&t);
    return 0;
}

/* The trusted proxies' address blocks, parsed (the configuration checked
 * them). NULL when out of memory. */
static struct sp_cidr *parse_trusted(const struct sp_proxy_options *opts)
{
    struct sp_cidr *blocks = calloc(opts->ntrusted_proxies + 1, sizeof(*blocks));
    char err[160];

    for (size_t i = 0; blocks != NULL && i < opts->ntrusted_proxies; i++) {
        if (sp_parse_cidr(opts->trusted_proxies[i], &blocks[i], err, sizeof(err)) < 0) {
            free(blocks);
            return NULL;
        }
    }
    return blocks;
}

/* A new pool for opts, swapped in only when all of it was built. */
static int make_pool(struct sp_proxy *p, const struct sp_proxy_options *opts)
{
    struct sp_upstream_options o = {
        .max_idle = opts->keepalive,
        .idle_timeout_ms = opts->keepalive_timeout_ms,
        .max_requests = opts->keepalive_requests,
        .connect_timeout_ms = opts->connect_timeout_ms,
        .head_timeout_ms = opts->response_timeout_ms,
        .body_timeout_ms = opts->body_timeout_ms,
        .max_head_size = MAX_HEAD,
        .max_headers = MAX_HEADERS,
    };
    struct sp_http_target t;
    struct sp_upstream_pool *pool = NULL;
    struct sp_cidr *trusted;
    char err[256];

    if (sp_http_target_resolve(opts->backend_url, &t, err, sizeof(err)) < 0)
        return -1;
    o.address = t.address;
    o.unix_path = t.unix_path;
    if ((trusted = parse_trusted(opts)) == NULL ||
        (pool = sp_upstream_pool_new(p->base, &o)) == NULL) {
        free(trusted);
        sp_http_target_clear(&t);
        return -1;
    }
    /* Exchanges in flight finish on the old pool, which goes after them. */
    if (p->pool != NULL) {
        const struct sp_upstream_stats *old = sp_upstream_pool_stats(p->pool);
        p->retired.connects += old->connects;
        p->retired.reuses += old->reuses;
        p->retired.retries += old->retries;
        p->retired.bad_responses += old->bad_responses;
        p->retired.stale += old->stale;
        p->retired.unpooled += old->unpooled;
    }
    sp_upstream_pool_free(p->pool);
    p->pool = pool;
    free(p->base_path);
    free(p->host);
    free(p->trusted);
    p->base_path = t.base_path; /* the proxy's now */
    p->host = t.host;
    p->trusted = trusted;
    p->ntrusted = opts->ntrusted_proxies;
    return 0;
}

struct sp_proxy *sp_proxy_new(struct event_base *base, const struct sp_proxy_options *opts,
                              const struct sp_log *log)
{
    struct sp_proxy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->base = base;
    p->opts = *opts;
    p->log = log;
    p->backend_url = strdup(opts->backend_url);
    p->tunnels = sp_tunnels_new(base, opts->buffer_size, opts->tunnel_idle_ms, opts->tunnel_gone,
                                opts->tunnel_gone_ctx);
    if (p->backend_url == NULL || p->tunnels == NULL || make_pool(p, opts) < 0) {
        sp_proxy_free(p);
        return NULL;
    }
    p->opts.backend_url = p->backend_url;
    p->opts.trusted_proxies = NULL;
    return p;
}

int sp_proxy_reconfigure(struct sp_proxy *p, const struct sp_proxy_options *opts)
{
    char *url = strdup(opts->backend_url);

    if (url == NULL || make_pool(p, opts) < 0) {
        free(url);
        return -1;
    }
    free(p->backend_url);
    p->backend_url = url;
    p->opts = *opts;
    p->opts.backend_url = url;
    p->opts.trusted_proxies = NULL; /* parsed into p->trusted */
    sp_tunnels_set(p->tunnels, opts->buffer_size, opts->tunnel_idle_ms);
    return 0;
}

void sp_proxy_free(struct sp_proxy *p)
{
    if (p == NULL)
        return;
    sp_tunnels_free(p->tunnels);
    sp_upstream_pool_free(p->pool);
    free(p->backend_url);
    free(p->base_path);
    free(p->host);
    free(p->trusted);
    free(p);
}
