#include "http/upstream.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/clock.h"

struct conn {
    TAILQ_ENTRY(conn) link; /* the pool's idle list */
    struct sp_upstream_pool *pool;
    struct bufferevent *bev;
    struct sp_upstream *x; /* the exchange on it, NULL while idle */
    struct event *idle_timer;
    uint64_t requests;
    bool connected;
};

TAILQ_HEAD(conn_list, conn);

TAILQ_HEAD(exchange_list, sp_upstream);

struct sp_upstream_pool {
    struct event_base *base;
    /* Exchanges wait for a connection until the end of the loop turn's
     * active callbacks: an idle connection on which epoll saw a late byte or
     * an EOF has had its callback run (and is closed) by then. */
    struct exchange_list waiting;
    struct event *dispatch;
    struct sp_upstream_options opts;
    char *unix_path;
    struct sp_http_header *headers; /* max_headers, for the head being read (one loop) */
    size_t active;                  /* exchanges not yet ended */
    bool dying;                     /* freed once the last of them ends */
    struct conn_list idle;
    struct sp_upstream_stats stats;
};

enum state { X_SENDING, X_HEAD, X_BODY };

struct sp_upstream {
    struct sp_upstream_pool *pool;
    struct conn *conn; /* NULL while waiting */
    TAILQ_ENTRY(sp_upstream) wait_link;
    bool waiting;
    struct evbuffer *early; /* body written while waiting */
    const struct sp_upstream_ops *ops;
    void *ctx;
    struct evbuffer *head;  /* the request head, kept for a retry */
    struct evbuffer *chunk; /* body bytes handed to ops->body */
    struct event timer;     /* connect, head or body timeout (assigned, not allocated) */
    enum state state;
    enum sp_http_body_kind kind;
    uint64_t remaining;  /* Content-Length bytes still to come */
    size_t head_scanned; /* bytes of an incomplete head already searched for its end */
    struct sp_chunked chunked;
    bool retry_safe, head_request, upgrade, retried, paused;
    bool request_queued; /* the caller gave the whole request (head, and body if any) */
    bool keep_alive;     /* the response's headers let the connection be reused */
    bool announced;      /* a bodiless answer (HEAD, 204, 304) that announced a body */
};

static void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    if (c->idle_timer)
        event_free(c->idle_timer);
    if (c->bev)
        bufferevent_free(c->bev);
    free(c);
}

/* ---- timers ----------------------------------------------------------------------------- */

static void arm(struct sp_upstream *u, uint64_t ms)
{
    struct timeval tv = sp_timeval_ms(ms);

    if (ms == 0)
        event_del(&u->timer);
    else
        event_add(&u->timer, &tv);
}

/* ---- ending an exchange ----------------------------------------------------------------- */

static void pool_destroy(struct sp_upstream_pool *pool);

static void exchange_free(struct sp_upstream *u)
{
    struct sp_upstream_pool *pool = u->pool;

    if (u->waiting)
        TAILQ_REMOVE(&pool->waiting, u, wait_link);
    if (--pool->active == 0 && pool->dying)
        pool_destroy(pool);
    event_del(&u->timer);
    if (u->early)
        evbuffer_free(u->early);
    if (u->head)
        evbuffer_free(u->head);
    if (u->chunk)
        evbuffer_free(u->chunk);
    free(u);
}

static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    TAILQ_REMOVE(&c->pool->idle, c, link);
    c->pool->stats.idle--;
    conn_free(c);
}

static void idle_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    c->pool->stats.stale++;
    idle_expired(-1, 0, arg); /* the backend closed it (or wrote out of turn) */
}

static void idle_read(struct bufferevent *bev, void *arg)
{
    idle_event(bev, 0, arg); /* bytes nobody asked for: never reuse it */
}

/* The exchange is over: its connection goes back to the pool or away. */
static void release(struct sp_upstream *u, bool reusable)
{
    struct conn *c = u->conn;
    struct sp_upstream_pool *pool = u->pool;
    struct timeval tv = sp_timeval_ms(pool->opts.idle_timeout_ms);

    u->conn = NULL;
    if (c == NULL)
        return;
    c->x = NULL;
    reusable = reusable && !pool->dying && pool->stats.idle < pool->opts.max_idle &&
               (pool->opts.max_requests == 0 || c->requests < pool->opts.max_requests) &&
               evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
               evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
    if (!reusable || (c->idle_timer == NULL &&
                      (c->idle_timer = evtimer_new(pool->base, idle_expired, c)) == NULL)) {
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, idle_read, NULL, idle_event, c);
    bufferevent_enable(c->bev, EV_READ);
    evtimer_add(c->idle_timer, &tv);
    TAILQ_INSERT_HEAD(&pool->idle, c, link); /* the warmest is reused first */
    pool->stats.idle++;
}

static void fail_as(struct sp_upstream *u, int status, bool bad_response, const char *why)
{
    const struct sp_upstream_ops *ops = u->ops;
    void *ctx = u->ctx;

    if (bad_response)
        u->pool->stats.bad_responses++;
    release(u, false);
    exchange_free(u);
    ops->error(ctx, status, bad_response, why);
}

static void fail(struct sp_upstream *u, int status, const char *why)
{
    fail_as(u, status, false, why);
}

static void finish(struct sp_upstream *u)
{
    const struct sp_upstream_ops *ops = u->ops;
    void *ctx = u->ctx;
    /* An answer that came before the whole request went out (a 401 to an
     * upload the backend never read) leaves the rest of the request unsent:
     * whatever is sent on this connection next would be read as its body. */
    bool framed = u->keep_alive && u->kind != SP_HTTP_BODY_CLOSE;
    bool safe = u->request_queued && !u->announced;

    if (framed && !safe)
        u->pool->stats.unpooled++;
    release(u, framed && safe);
    exchange_free(u);
    ops->done(ctx);
}

/* ---- connections ---------------------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static struct conn *conn_open(struct sp_upstream_pool *pool)
{
    struct conn *c = calloc(1, sizeof(*c));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    const struct sockaddr *sa = (const struct sockaddr *)&pool->opts.address.addr;
    int salen = (int)pool->opts.address.len;

    if (c == NULL)
        return NULL;
    c->pool = pool;
    c->bev = bufferevent_socket_new(pool->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (pool->unix_path != NULL) {
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", pool->unix_path);
        sa = (const struct sockaddr *)&un;
        salen = (int)sizeof(un);
    }
    if (c->bev == NULL || bufferevent_socket_connect(c->bev, sa, salen) < 0) {
        conn_free(c); /* refused at once (a Unix socket nobody listens on) */
        return NULL;
    }
    pool->stats.connects++;
    return c;
}

/* Writes what is queued now, on a connected socket: a pooled connection
 * then costs no write registration (two epoll_ctl calls per request).
 * Only what the socket does not take waits for writability. */
static void send_now(struct sp_upstream *u)
{
    struct conn *c = u->conn;
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (!c->connected || evbuffer_get_length(out) == 0)
        return;
    /* A bufferevent keeps its output's start frozen against other
     * drainers; between its own writes (none is pending) this is one. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(c->bev, EV_WRITE); /* the rest (or the error) comes through on_write */
    else if (u->state == X_SENDING)
        u->state = X_HEAD;
}

/* Puts u on a connection: a pooled one unless fresh is asked for. */
/* The head goes straight from u->head to a connected socket (kept whole for
 * a retry); what the socket does not take, or all of it while connecting,
 * waits in the bufferevent's output. */
static int send_head(struct sp_upstream *u)
{
    struct conn *c = u->conn;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = evbuffer_get_length(u->head);
    const char *head = (const char *)evbuffer_pullup(u->head, -1);
    ssize_t sent = 0;

    if (c->connected && evbuffer_get_length(out) == 0) {
        sent = send(bufferevent_getfd(c->bev), head, len, MSG_NOSIGNAL);
        if (sent < 0)
            sent = 0; /* EAGAIN, or an error the write event will report */
    }
    if ((size_t)sent == len) {
        u->state = X_HEAD;
        return 0;
    }
    if (evbuffer_add(out, head + sent, len - (size_t)sent) < 0)
        return -1;
    bufferevent_enable(c->bev, EV_WRITE);
    return 0;
}

static int attach(struct sp_upstream *u, bool fresh)
{
    struct sp_upstream_pool *pool = u->pool;
    struct conn *c = fresh ? NULL : TAILQ_FIRST(&pool->idle); /* the warmest */

    if (c != NULL) {
        TAILQ_REMOVE(&pool->idle, c, link);
        pool->stats.idle--;
        evtimer_del(c->idle_timer);
        pool->stats.reuses++;
    } else if ((c = conn_open(pool)) == NULL) {
        return -1;
    }
    c->x = u;
    c->requests++;
    u->conn = c;
    u->state = X_SENDING;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, u);
    /* A connecting socket needs writability to learn it connected; a
     * connected one is written straight (send_now). */
    if (c->connected)
        bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, c->connected ? EV_READ : EV_READ | EV_WRITE);
    arm(u, c->connected ? pool->opts.head_timeout_ms : pool->opts.connect_timeout_ms);
    if (send_head(u) < 0)
        return -1;
    if (u->paused)
        bufferevent_disable(c->bev, EV_READ);
    if (u->early != NULL && evbuffer_get_length(u->early) > 0) {
        evbuffer_add_buffer(bufferevent_get_output(c->bev), u->early);
        if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
            send_now(u);
    }
    return 0;
}

/* The end of the loop turn's callbacks: waiting exchanges take connections. */
static void on_dispatch(evutil_socket_t fd, short what, void *arg)
{
    struct sp_upstream_pool *pool = arg;
    struct sp_upstream *u;

    while ((u = TAILQ_FIRST(&pool->waiting)) != NULL) {
        bool last = pool->dying && pool->active == 1; /* the pool goes with it */
        TAILQ_REMOVE(&pool->waiting, u, wait_link);
        u->waiting = false;
        if (attach(u, false) < 0) {
            fail(u, 502, "cannot connect to the backend");
            if (last)
                return;
        }
    }
}

/* The pooled connection had been closed by the backend before any of the
 * answer came: once, on a fresh connection, when sending again is safe. Only
 * an idempotent request without a body is (RFC 9110 section 9.2.2, nginx's
 * default): the backend may have done the work before it closed, and a body
 * streamed through is not kept to be sent again. Returns true when it took
 * the exchange over (retried, or failed it). */
static bool retry(struct sp_upstream *u)
{
    bool reused = u->conn != NULL && u->conn->requests > 1;

    if (!reused || u->retried || u->state == X_BODY || !u->retry_safe)
        return false;
    if (evbuffer_get_length(bufferevent_get_input(u->conn->bev)) > 0)
        return false; /* part of an answer came */
    u->retried = true;
    u->pool->stats.retries++;
    release(u, false);
    if (attach(u, true) < 0)
        fail(u, 502, "cannot connect to the backend");
    return true;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sp_upstream *u = arg;

    if (u->conn != NULL && !u->conn->connected)
        fail(u, 502, "the backend did not accept the connection in time");
    else if (u->state == X_BODY)
        fail(u, 504, "the backend stopped sending the response body");
    else
        fail(u, 504, "no response head from the backend in time");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sp_upstream *u = arg;

    if (what & BEV_EVENT_CONNECTED) {
        u->conn->connected = true;
        arm(u, u->pool->opts.head_timeout_ms);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (u->state == X_BODY && u->kind == SP_HTTP_BODY_CLOSE && (what & BEV_EVENT_EOF)) {
        evbuffer_add_buffer(u->chunk, bufferevent_get_input(bev));
        if (evbuffer_get_length(u->chunk) > 0)
            u->ops->body(u->ctx, u->chunk);
        finish(u); /* the close is the end of this body */
        return;
    }
    if (retry(u))
        return;
    if (!u->conn->connected)
        fail(u, 502, "cannot connect to the backend");
    else if (u->state == X_BODY)
        fail(u, 502, "the backend closed the connection before the end of the response");
    else
        fail(u, 502, "the backend closed the connection without a response");
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct sp_upstream *u = arg;

    /* Drained: writes go straight to the socket again (send_now). */
    bufferevent_disable(bev, EV_WRITE);
    if (u->state == X_SENDING)
        u->state = X_HEAD;
    if (u->ops->drained)
        u->ops->drained(u->ctx);
}

/* ---- reading the answer ------------------------------------------------------------------- */

/* HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when
 * told to. */
static bool keeps_alive(const struct sp_http_response *resp)
{
    bool close = false, keep = false;

    for (size_t i = 0; i < resp->nheaders; i++) {
        if (!sp_slice_caseeq(resp->headers[i].name, "Connection"))
            continue;
        close |= sp_http_list_has_token(resp->headers[i].value, "close");
        keep |= sp_http_list_has_token(resp->headers[i].value, "keep-alive");
    }
    return !close && (resp->minor_version == 1 || keep);
}

/* Does a head with no body to follow still describe one? */
static bool announces_body(const struct sp_http_response *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct sp_http_header *h = &resp->headers[i];
        if (sp_slice_caseeq(h->name, "Transfer-Encoding"))
            return true;
        if (sp_slice_caseeq(h->name, "Content-Length") &&
            !(h->value.len == 1 && h->value.ptr[0] == '0'))
            return true;
    }
    return false;
}

/* Has the blank line that ends a head arrived? Searched only from where the
 * last look stopped, so a backend that sends its head a byte at a time
 * costs one pass over it, not one parse per byte. */
static bool head_ended(struct sp_upstream *u, const char *p, size_t len)
{
    const char *end = p + len;

    for (const char *q = p + (u->head_scanned > 2 ? u->head_scanned - 2 : 0);
         (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) {
        const char *r = q + 1;
        if (r < end && *r == '\r')
            r++;
        if (r < end && *r == '\n')
            return true;
    }
    u->head_scanned = len;
    return false;
}

/* Returns 1 when a head was read, SP_HTTP_INCOMPLETE to wait, 0 once an
 * upgrade handed the connection over, or -1 after failing u. */
static int read_head(struct sp_upstream *u, struct evbuffer *in)
{
    const struct sp_upstream_options *o = &u->pool->opts;
    struct sp_http_header *headers = u->pool->headers;
    struct sp_http_response resp;
    size_t avail = evbuffer_get_length(in);
    size_t look = avail < o->max_head_size ? avail : o->max_head_size;

    if (avail == 0)
        return SP_HTTP_INCOMPLETE; /* an interim answer was all there was */
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);

    if (look < o->max_head_size && !head_ended(u, p, look))
        return SP_HTTP_INCOMPLETE;
    u->head_scanned = 0;
    int n = sp_http_parse_response(p, look, &resp, headers, o->max_headers);

    if (n == SP_HTTP_INCOMPLETE && look < o->max_head_size)
        return SP_HTTP_INCOMPLETE;
    if (n < 0 || sp_http_response_framing(&resp, u->head_request, &u->kind, &u->remaining) < 0) {
        fail_as(u, 502, true,
                n == SP_HTTP_INCOMPLETE ? "the backend's response head is too large"
                                        : "the backend's response is malformed or ambiguous");
        return -1;
    }
    if (resp.status < 200 && resp.status != 101) {
        /* Interim (100 Continue, 102 Processing, 103 Early Hints): dropped,
         * as nginx drops them; the final answer follows. */
        evbuffer_drain(in, (size_t)n);
        return 1;
    }
    if (resp.status == 101 && !u->upgrade) {
        fail_as(u, 502, true, "101 Switching Protocols to a request that asked for no upgrade");
        return -1;
    }
    if (resp.status == 101) {
        const struct sp_upstream_ops *ops = u->ops;
        void *ctx = u->ctx;
        struct bufferevent *bev = u->conn->bev;
        ops->head(ctx, &resp, SP_HTTP_BODY_NONE, 0);
        evbuffer_drain(in, (size_t)n);
        u->conn->bev = NULL; /* the caller's now, with what followed the head */
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        release(u, false);
        exchange_free(u);
        ops->upgraded(ctx, bev);
        return 0;
    }
    /* A HEAD, 204 or 304 that announced a body (a length or chunked) from a
     * backend that may send it anyway, in a later segment: such a
     * connection is not reused, whatever arrives. */
    u->keep_alive = keeps_alive(&resp);
    u->announced = u->kind == SP_HTTP_BODY_NONE && announces_body(&resp);
    u->state = X_BODY;
    u->chunked = (struct sp_chunked){0};
    u->ops->head(u->ctx, &resp, u->kind, u->remaining);
    evbuffer_drain(in, (size_t)n);
    if (!u->paused)
        arm(u, o->body_timeout_ms);
    return 1;
}

/* Moves the decoded body bytes available in in to u->chunk. Returns 1 when
 * the body is complete, 0 to wait, -1 for broken chunk framing. */
static int take_body(struct sp_upstream *u, struct evbuffer *in)
{
    if (u->kind == SP_HTTP_BODY_NONE)
        return 1;
    if (u->kind == SP_HTTP_BODY_CLOSE) {
        evbuffer_add_buffer(u->chunk, in);
        return 0;
    }
    if (u->kind == SP_HTTP_BODY_LENGTH) {
        size_t n = evbuffer_get_length(in);
        if (n > u->remaining)
            n = (size_t)u->remaining;
        evbuffer_remove_buffer(in, u->chunk, n);
        u->remaining -= n;
        return u->remaining == 0;
    }
    for (;;) {
        size_t len = evbuffer_get_length(in), data_len = 0;
        bool done = false;
        if (len == 0)
            return 0;
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)(len < 4096 ? len : 4096));
        int skip = sp_chunked_next(&u->chunked, p, len < 4096 ? len : 4096, &data_len, &done);
        if (skip < 0)
            return -1;
        evbuffer_drain(in, (size_t)skip);
        if (data_len > 0)
            evbuffer_remove_buffer(in, u->chunk, data_len);
        if (done)
            return 1;
        if (skip == 0 && data_len == 0)
            return 0;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sp_upstream *u = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (u->state != X_BODY) {
        int rc = read_head(u, in);
        if (rc <= 0)
            return;
    }
    int rc = take_body(u, in);
    if (rc < 0) {
        fail_as(u, 502, true, "malformed chunked framing in the response body");
        return;
    }
    if (evbuffer_get_length(u->chunk) > 0) {
        u->ops->body(u->ctx, u->chunk);
        evbuffer_drain(u->chunk, evbuffer_get_length(u->chunk));
    }
    if (rc == 1)
        finish(u);
    else if (!u->paused)
        arm(u, u->pool->opts.body_timeout_ms);
}

/* ---- the API --------------------------------------------------------------------------------- */

struct sp_upstream_pool *sp_upstream_pool_new(struct event_base *base,
                                              const struct sp_upstream_options *opts)
{
    struct sp_upstream_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    pool->base = base;
    pool->opts = *opts;
    TAILQ_INIT(&pool->idle);
    TAILQ_INIT(&pool->waiting);
    pool->dispatch = event_new(base, -1, 0, on_dispatch, pool);
    if (pool->dispatch == NULL) {
        free(pool);
        return NULL;
    }
    if (opts->unix_path != NULL && (pool->unix_path = strdup(opts->unix_path)) == NULL) {
        sp_upstream_pool_free(pool);
        return NULL;
    }
    pool->opts.unix_path = pool->unix_path;
    pool->headers = calloc(opts->max_headers ? opts->max_headers : 1, sizeof(*pool->headers));
    if (pool->headers == NULL) {
        sp_upstream_pool_free(pool);
        return NULL;
    }
    return pool;
}

static void pool_destroy(struct sp_upstream_pool *pool)
{
    event_free(pool->dispatch);
    free(pool->unix_path);
    free(pool->headers);
    free(pool);
}

void sp_upstream_pool_free(struct sp_upstream_pool *pool)
{
    struct conn *c;

    if (pool == NULL)
        return;
    while ((c = TAILQ_FIRST(&pool->idle)) != NULL) {
        TAILQ_REMOVE(&pool->idle, c, link);
        conn_free(c);
    }
    pool->stats.idle = 0;
    pool->dying = true;
    if (pool->active == 0)
        pool_destroy(pool);
}

const struct sp_upstream_stats *sp_upstream_pool_stats(const struct sp_upstream_pool *pool)
{
    return &pool->stats;
}

struct sp_upstream *sp_upstream_start(struct sp_upstream_pool *pool, struct evbuffer *request_head,
                                      unsigned flags, const struct sp_upstream_ops *ops, void *ctx)
{
    bool retry_safe = flags & SP_UPSTREAM_RETRY_SAFE;
    bool head_request = flags & SP_UPSTREAM_HEAD;

    struct sp_upstream *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    *u = (struct sp_upstream){.pool = pool,
                              .ops = ops,
                              .ctx = ctx,
                              .request_queued = (flags & SP_UPSTREAM_BODY) == 0,
                              .retry_safe = retry_safe && (flags & SP_UPSTREAM_BODY) == 0,
                              .head_request = head_request,
                              .upgrade = (flags & SP_UPSTREAM_UPGRADE) != 0 && ops->upgraded};
    pool->active++;
    u->head = evbuffer_new();
    u->chunk = evbuffer_new();
    evtimer_assign(&u->timer, pool->base, on_timeout, u);
    if (u->head == NULL || u->chunk == NULL || evbuffer_add_buffer(u->head, request_head) < 0) {
        exchange_free(u);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&pool->waiting, u, wait_link);
    u->waiting = true;
    event_active(pool->dispatch, EV_TIMEOUT, 0); /* after what is active now */
    return u;
}

size_t sp_upstream_write(struct sp_upstream *u, struct evbuffer *data, bool last)
{
    if (u->conn == NULL) { /* waiting: the body follows the head once attached */
        if (u->early == NULL && (u->early = evbuffer_new()) == NULL)
            return evbuffer_get_length(data);
        if (evbuffer_add_buffer(u->early, data) == 0 && last)
            u->request_queued = true;
        return evbuffer_get_length(u->early);
    }
    struct evbuffer *out = bufferevent_get_output(u->conn->bev);

    if (evbuffer_get_length(data) > 0 && u->state != X_BODY && u->conn->connected)
        arm(u, u->pool->opts.head_timeout_ms); /* an upload is not a silent backend */
    if (evbuffer_add_buffer(out, data) == 0 && last)
        u->request_queued = true;
    if (!(bufferevent_get_enabled(u->conn->bev) & EV_WRITE))
        send_now(u);
    return evbuffer_get_length(out);
}

size_t sp_upstream_unsent(const struct sp_upstream *u)
{
    if (u->conn == NULL)
        return u->early ? evbuffer_get_length(u->early) : 0;
    return evbuffer_get_length(bufferevent_get_output(u->conn->bev));
}

void sp_upstream_pause(struct sp_upstream *u, bool paused)
{
    if (paused == u->paused)
        return;
    u->paused = paused;
    if (u->conn == NULL)
        return; /* waiting: applied once attached */
    if (paused) {
        bufferevent_disable(u->conn->bev, EV_READ);
        if (u->state == X_BODY)
            event_del(&u->timer); /* a slow client, not a stalled backend */
    } else {
        bufferevent_enable(u->conn->bev, EV_READ);
        if (u->state == X_BODY)
            arm(u, u->pool->opts.body_timeout_ms);
    }
}

void sp_upstream_cancel(struct sp_upstream *u)
{
    if (u == NULL)
        return;
    release(u, false);
    exchange_free(u);
}
