#include "http/server.h"

#include "net/stream.h"
#include "core/clock.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "http/server-internal.h"

static void process_input(struct sp_http_conn *c);
static const struct timeval *common_timeout(struct event_base *base, uint64_t ms);

/* ---- lifecycle ------------------------------------------------------------------ */

/* The request's state only: the socket and its output are the stream's,
 * closed (or handed over) before. */
static void conn_free(struct sp_http_conn *c)
{
    event_del(&c->timer);
    if (c->stream)
        sp_stream_close(c->stream);
    if (c->in)
        evbuffer_free(c->in);
    if (c->body)
        evbuffer_free(c->body);
    free(c->head);
    free(c);
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
    struct sp_http_server *s = arg;
    struct sp_http_conn *c;

    while ((c = LIST_FIRST(&s->dead)) != NULL) {
        LIST_REMOVE(c, link);
        conn_free(c);
    }
}

/* Never frees inside a callback chain: the connection is parked and freed at
 * the end of the loop turn (redis's freeClientAsync); its stream, if it
 * still has one, is closed now and freed by the engine likewise. */
void http_conn_close(struct sp_http_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    c->server->count--;
    const struct sp_http_ops *ops = c->ops;
    c->ops = NULL;
    if (ops && ops->closed)
        ops->closed(c->ops_ctx);
    if (c->stream != NULL)
        sp_stream_close(c->stream);
    c->stream = NULL;
    event_del(&c->timer);
    LIST_REMOVE(c, link);
    LIST_INSERT_HEAD(&c->server->dead, c, link);
    event_active(c->server->reaper, EV_TIMEOUT, 0);
}

struct sp_stream *http_conn_release(struct sp_http_conn *c)
{
    struct sp_stream *stream = c->stream;

    c->stream = NULL;
    c->ops = NULL;
    http_conn_close(c);
    return stream;
}

static void end_exchange(struct sp_http_conn *c)
{
    free(c->head);
    c->head = NULL;
    memset(&c->req, 0, sizeof(c->req));
    if (c->body)
        evbuffer_free(c->body);
    c->body = NULL;
    c->ops = NULL;
    c->ops_ctx = NULL;
    c->response_begun = c->response_chunked = c->response_no_body = false;
    c->response_done = c->body_done = c->body_paused = false;
    c->body_kind = SP_HTTP_BODY_NONE;
    c->body_length = c->body_left = c->body_seen = 0;
    memset(&c->chunked, 0, sizeof(c->chunked));
}

static void arm_timer(struct sp_http_conn *c, const struct timeval *tv)
{
    event_add(&c->timer, tv);
}

/* A held request (a long-poll) may wait a minute among thousands: its
 * empty input buffer (about 150 bytes) goes until bytes come again. */
void sp_http_expire_after(struct sp_http_conn *c, uint64_t ms)
{
    struct timeval tv = sp_timeval_ms(ms);

    if (c->dead)
        return;
    event_add(&c->timer, &tv);
    if (c->in != NULL && evbuffer_get_length(c->in) == 0) {
        evbuffer_free(c->in);
        c->in = NULL;
    }
}

/* ---- output --------------------------------------------------------------------- */

/* The stream's output buffer: what is added to it is written at the end of
 * the loop turn, one writev for the whole response (the engine's pending
 * list), and only what the socket does not take waits for writability. */
struct evbuffer *http_conn_out(struct sp_http_conn *c)
{
    return sp_stream_output(c->stream);
}

static void update_reading(struct sp_http_conn *c);
static void reprocess_input(struct sp_http_conn *c);
static void body_clock(struct sp_http_conn *c);

/* Sends a final error answer and closes once it is flushed. */
static void fail_request(struct sp_http_conn *c, int status, const char *message)
{
    const struct sp_http_ops *ops = c->ops;

    /* The handler (say, a proxied upload) is told first and lets go. */
    if (ops != NULL && !c->response_begun) {
        c->ops = NULL;
        if (ops->closed)
            ops->closed(c->ops_ctx);
    }
    if (c->response_begun) {
        http_conn_close(c);
        return;
    }
    c->close_after = true;
    if (c->head == NULL)
        c->req.minor_version = 1; /* no usable request line: answer as HTTP/1.1 */
    sp_http_respond_error(c, status, message);
}

/* The engine sends what is queued, then closes the socket; the request's
 * state goes now. */
static void flush_then_close(struct sp_http_conn *c)
{
    sp_stream_end(c->stream);
    c->stream = NULL;
    http_conn_close(c);
}

void http_response_complete(struct sp_http_conn *c)
{
    c->response_done = true;
    if (c->close_after || !c->body_done || c->server->draining) {
        /* A response that ends before its request body was read leaves the
         * body's framing unknown; the connection cannot carry another request. */
        flush_then_close(c);
        return;
    }
    end_exchange(c);
    c->state = ST_HEAD;
    update_reading(c);
    c->head_clock = input_length(c) > 0;
    arm_timer(c, c->head_clock ? c->server->header_timeout : c->server->idle_timeout);
    /* Pipelined requests already buffered are served on the next loop turn,
     * outside whatever callback chain finished this response. */
    if (input_length(c) > 0)
        reprocess_input(c);
}

/* ---- request bodies --------------------------------------------------------------- */

void sp_http_set_ops(struct sp_http_conn *c, const struct sp_http_ops *ops, void *ctx)
{
    c->ops = ops;
    c->ops_ctx = ctx;
}

const char *sp_http_peer(const struct sp_http_conn *c)
{
    return c->peer;
}

bool sp_http_has_body(const struct sp_http_conn *c)
{
    return c->body_kind == SP_HTTP_BODY_CHUNKED ||
           (c->body_kind == SP_HTTP_BODY_LENGTH && c->body_length > 0);
}

enum sp_http_body_kind sp_http_body_kind(const struct sp_http_conn *c)
{
    return c->body_kind;
}

uint64_t sp_http_body_length(const struct sp_http_conn *c)
{
    return c->body_length;
}

struct evbuffer *sp_http_body(struct sp_http_conn *c)
{
    return c->body;
}

bool sp_http_body_complete(const struct sp_http_conn *c)
{
    return c->body_done;
}

void sp_http_body_taken(struct sp_http_conn *c)
{
    if (c->body_paused && !c->dead &&
        evbuffer_get_length(c->body) < c->server->limits.output_buffer) {
        c->body_paused = false;
        body_clock(c);
        reprocess_input(c);
    }
}

static void notify_body(struct sp_http_conn *c)
{
    if (c->ops && c->ops->body)
        c->ops->body(c->ops_ctx);
}

/* The gap between request body reads is bounded (nginx's
 * client_body_timeout): restarted by every read, stopped while the handler
 * has not taken what came (the backend is slow, not the client) and once
 * the body is complete. */
static void body_clock(struct sp_http_conn *c)
{
    if (c->body_done || c->body_paused || c->server->limits.body_timeout_ms == 0)
        event_del(&c->timer);
    else
        arm_timer(c, c->server->body_timeout);
}

/* Moves body bytes from the socket's input into c->body. Returns -1 after
 * failing the request. */
static int read_body(struct sp_http_conn *c)
{
    struct evbuffer *in = c->in;
    size_t before = evbuffer_get_length(c->body);

    while (!c->body_done && evbuffer_get_length(c->body) < c->server->limits.output_buffer) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            break;
        if (c->body_kind == SP_HTTP_BODY_LENGTH) {
            size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
            evbuffer_remove_buffer(in, c->body, take);
            c->body_left -= take;
            c->body_done = c->body_left == 0;
            continue;
        }
        struct evbuffer_iovec vec;
        size_t data_len;
        bool done;
        evbuffer_peek(in, -1, NULL, &vec, 1);
        int skip = sp_chunked_next(&c->chunked, vec.iov_base, vec.iov_len, &data_len, &done);
        if (skip < 0) {
            fail_request(c, 400, "malformed chunked request body");
            return -1;
        }
        evbuffer_drain(in, (size_t)skip);
        c->body_seen += data_len;
        if (c->body_seen > c->server->limits.max_body_size) {
            fail_request(c, 413, "request body is larger than limits.max_body_size");
            return -1;
        }
        evbuffer_remove_buffer(in, c->body, data_len);
        c->body_done = done;
        if (skip == 0 && data_len == 0 && !done && vec.iov_len == avail)
            break; /* need more bytes */
        if (skip == 0 && data_len == 0 && !done)
            evbuffer_pullup(in, (ssize_t)(vec.iov_len + 1)); /* framing spans chains */
    }
    if (!c->body_done && evbuffer_get_length(c->body) >= c->server->limits.output_buffer)
        c->body_paused = true;
    body_clock(c);
    if (evbuffer_get_length(c->body) != before || c->body_done)
        notify_body(c);
    return 0;
}

/* ---- request heads ----------------------------------------------------------------- */

/* Copies a complete head (len bytes) into one allocation that holds the
 * header array first (aligned), then the bytes, and parses it there; the
 * slices in c->req point into it until the exchange ends. */
static int take_head(struct sp_http_conn *c, const char *bytes, size_t len)
{
    const struct sp_http_limits *lim = &c->server->limits;
    size_t lines = 0;

    /* The header array holds as many fields as the head has lines (never
     * more than max_headers, so the parser still refuses one too many): a
     * held request keeps only what it uses. */
    for (const char *p = bytes; (p = memchr(p, '\n', len - (size_t)(p - bytes))) != NULL; p++)
        lines++;
    size_t slots = lines < lim->max_headers ? lines : lim->max_headers;
    size_t headers_size = slots * sizeof(struct sp_http_header);

    c->head = malloc(headers_size + len);
    if (c->head == NULL)
        return -1;
    char *copy = c->head + headers_size;
    memcpy(copy, bytes, len);
    return sp_http_parse_request(copy, len, &c->req, (struct sp_http_header *)c->head, slots);
}

/* Length of the head at the start of p (through its blank line), or 0 if
 * the blank line has not arrived yet. Bare LF line ends count, as in the
 * parser. */
static size_t head_length(const char *p, size_t len)
{
    for (const char *nl = memchr(p, '\n', len); nl != NULL;
         nl = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - p))) {
        size_t rest = len - (size_t)(nl + 1 - p);
        if (rest >= 1 && nl[1] == '\n')
            return (size_t)(nl + 2 - p);
        if (rest >= 2 && nl[1] == '\r' && nl[2] == '\n')
            return (size_t)(nl + 3 - p);
    }
    return 0;
}

static const char *status_message(int status)
{
    switch (status) {
    case 431:
        return "request header fields too large";
    case 505:
        return "only HTTP/1.0 and HTTP/1.1 are supported";
    case 501:
        return "unsupported Transfer-Encoding (only chunked is accepted)";
    default:
        return "malformed request";
    }
}

static void dispatch(struct sp_http_conn *c)
{
    int rc = sp_http_request_framing(&c->req, &c->body_kind, &c->body_length);
    if (rc < 0) {
        fail_request(c, -rc,
                     -rc == 400 ? "ambiguous or malformed Host, Content-Length or "
                                  "Transfer-Encoding"
                                : status_message(-rc));
        return;
    }
    if (c->body_kind == SP_HTTP_BODY_LENGTH && c->body_length > c->server->limits.max_body_size) {
        fail_request(c, 413, "request body is larger than limits.max_body_size");
        return;
    }
    c->body_left = c->body_length;
    c->body_done = c->body_kind == SP_HTTP_BODY_NONE;
    if (!c->body_done) {
        c->body = evbuffer_new();
        if (c->body == NULL) {
            http_conn_close(c);
            return;
        }
        const struct sp_http_header *expect = sp_http_find_header(&c->req, "Expect");
        if (expect && sp_slice_caseeq(expect->value, "100-continue") && c->req.minor_version)
            evbuffer_add(http_conn_out(c), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    c->state = c->body_done ? ST_HANDLED : ST_BODY;
    body_clock(c);
    c->server->handler(c->server->handler_ctx, c, &c->req);
}

static void read_head(struct sp_http_conn *c)
{
    struct evbuffer *in = c->in;
    const struct sp_http_limits *lim = &c->server->limits;
    size_t avail = evbuffer_get_length(in);
    size_t window = avail < lim->max_header_size ? avail : lim->max_header_size;

    if (avail == 0)
        return;
    /* The deadline runs from a head's first byte and is never extended, so a
     * client trickling one byte at a time (slowloris) still runs out of time. */
    if (!c->head_clock) {
        c->head_clock = true;
        arm_timer(c, c->server->header_timeout);
    }
    const char *bytes = (const char *)evbuffer_pullup(in, (ssize_t)window);
    size_t len = head_length(bytes, window);
    if (len == 0) {
        if (avail >= lim->max_header_size)
            fail_request(c, 431, "request head is larger than limits.max_header_size");
        return;
    }
    int rc = take_head(c, bytes, len);
    if (rc == SP_HTTP_INCOMPLETE) {
        /* Only blank lines so far (RFC 9112 §2.2 says skip them), or a head
         * that starts with them: drop them and look again. */
        free(c->head);
        c->head = NULL;
        evbuffer_drain(in, len);
        read_head(c);
        return;
    }
    if (rc < 0) {
        free(c->head);
        c->head = NULL;
        fail_request(c, -rc, status_message(-rc));
        return;
    }
    evbuffer_drain(in, (size_t)rc);
    dispatch(c);
}

static void process_input(struct sp_http_conn *c)
{
    while (!c->dead) {
        if (c->state == ST_HEAD) {
            size_t before = evbuffer_get_length(c->in);
            read_head(c);
            if (c->state == ST_HEAD || before == 0)
                return;
        } else if (c->state == ST_BODY) {
            if (read_body(c) < 0 || c->dead)
                return;
            if (c->body_done && c->state == ST_BODY)
                c->state = ST_HANDLED;
            if (c->body_done && c->response_done)
                http_response_complete(c);
            return;
        } else {
            return; /* pipelined bytes wait until the response is complete */
        }
    }
}

/* ---- the stream's events ---------------------------------------------------------- */

/* Input is read while it holds less than a head's worth past what is being
 * processed, so pipelined requests behind a slow response cannot pile up;
 * a closing connection and one the client half-closed read no more. */
static void update_reading(struct sp_http_conn *c)
{
    size_t cap = c->server->limits.max_header_size + READ_CHUNK;
    bool want = !c->eof && input_length(c) < cap;

    if (!c->dead && sp_stream_set_reading(c->stream, want) < 0)
        http_conn_close(c);
}

/* Serves input already buffered on a later loop turn, outside the callback
 * chain that made room for it. */
static void reprocess_input(struct sp_http_conn *c)
{
    if (!c->dead)
        sp_stream_wake(c->stream);
}

/* The client closed its side (the engine has stopped reading). */
static void on_eof(void *ctx)
{
    struct sp_http_conn *c = ctx;

    if (c->state == ST_HANDLED && !c->response_done && sp_http_has_body(c)) {
        /* Half-close after sending a body (a publish, an upload): the
         * answer can still go out. */
        c->eof = true;
        c->close_after = true;
        return;
    }
    if (c->state != ST_HANDLED && sp_stream_unsent(c->stream) > 0) {
        /* The answer to the last request is written but not yet sent (the
         * client half-closed as it arrived): it still goes out. */
        c->eof = true;
        flush_then_close(c);
        return;
    }
    /* EOF on a request without a body is a client that left (as nginx takes
     * it): a held long-poll or a proxied request is released now, not when
     * its answer is ready; a body cut short tells the handler the same. */
    http_conn_close(c);
}

/* The input buffer is made when bytes first come, and kept while the
 * connection serves requests (one allocation per connection, not per
 * request); a held request drops it while empty (sp_http_expire_after). */
static void on_readable(void *ctx, const uint8_t *data, size_t len)
{
    struct sp_http_conn *c = ctx;

    if (c->in == NULL && (c->in = evbuffer_new()) == NULL) {
        http_conn_close(c);
        return;
    }
    if (len > 0 && evbuffer_add(c->in, data, len) < 0) {
        http_conn_close(c);
        return;
    }
    if (!c->body_paused)
        process_input(c);
    if (!c->dead)
        update_reading(c);
}

static void on_closed(void *ctx, enum sp_stream_end why)
{
    struct sp_http_conn *c = ctx;

    (void)why;
    c->stream = NULL; /* the engine frees it */
    http_conn_close(c);
}

/* Unsent output fell under half the limit: a producer waiting for room
 * (a proxied download) goes on. */
static void on_drained(void *ctx)
{
    struct sp_http_conn *c = ctx;

    if (c->ops && c->ops->drain)
        c->ops->drain(c->ops_ctx);
}

static const struct sp_stream_ops stream_ops = {on_readable, on_closed, on_eof, on_drained};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sp_http_conn *c = arg;

    if (c->state == ST_BODY) {
        fail_request(c, 408, "request body stalled longer than limits.body_timeout");
        return;
    }
    if (c->state != ST_HEAD) {
        const struct sp_http_ops *ops = c->ops;
        if (!c->response_begun && ops != NULL && ops->expired != NULL)
            ops->expired(c->ops_ctx);
        return;
    }
    if (input_length(c) == 0) {
        http_conn_close(c); /* idle keep-alive: close quietly */
        return;
    }
    fail_request(c, 408, "request head not received within limits.header_timeout");
}

/* ---- server --------------------------------------------------------------------------- */

static const struct timeval *common_timeout(struct event_base *base, uint64_t ms)
{
    struct timeval tv = sp_timeval_ms(ms);
    return event_base_init_common_timeout(base, &tv);
}

struct sp_http_server *sp_http_server_new(struct event_base *base, struct sp_flusher *flusher,
                                          const struct sp_http_limits *limits,
                                          sp_http_handler handler, void *handler_ctx,
                                          const struct sp_log *log)
{
    struct sp_http_server *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->base = base;
    s->limits = *limits;
    s->handler = handler;
    s->handler_ctx = handler_ctx;
    s->flusher = flusher;
    s->log = log;
    s->header_timeout = common_timeout(base, limits->header_timeout_ms);
    s->body_timeout = common_timeout(base, limits->body_timeout_ms);
    s->idle_timeout = common_timeout(base, limits->idle_timeout_ms);
    LIST_INIT(&s->live);
    LIST_INIT(&s->dead);
    s->reaper = event_new(base, -1, 0, reap, s);
    if (s->reaper == NULL || s->header_timeout == NULL || s->body_timeout == NULL ||
        s->idle_timeout == NULL) {
        sp_http_server_free(s);
        return NULL;
    }
    return s;
}

void sp_http_server_free(struct sp_http_server *s)
{
    struct sp_http_conn *c;

    if (s == NULL)
        return;
    while ((c = LIST_FIRST(&s->live)) != NULL)
        http_conn_close(c);
    if (s->reaper)
        reap(-1, 0, s);
    event_free(s->reaper);
    free(s);
}

size_t sp_http_server_connections(const struct sp_http_server *s)
{
    return s->count;
}

void sp_http_server_set_limits(struct sp_http_server *s, const struct sp_http_limits *limits)
{
    const struct timeval *header = common_timeout(s->base, limits->header_timeout_ms);
    const struct timeval *idle = common_timeout(s->base, limits->idle_timeout_ms);
    const struct timeval *body = common_timeout(s->base, limits->body_timeout_ms);

    if (header == NULL || idle == NULL || body == NULL)
        return;
    s->limits = *limits;
    s->header_timeout = header;
    s->body_timeout = body;
    s->idle_timeout = idle;
}

void sp_http_server_drain(struct sp_http_server *s)
{
    struct sp_http_conn *c, *next;

    s->draining = true;
    for (c = LIST_FIRST(&s->live); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        /* Idle keep-alive: nothing to finish. A response still being
         * written (a long-poll the drain has just answered) is not idle. */
        if (c->state == ST_HEAD && input_length(c) == 0 && sp_stream_unsent(c->stream) == 0)
            http_conn_close(c);
        else
            c->close_after = true;
    }
}

int sp_http_server_adopt(struct sp_http_server *s, evutil_socket_t fd, const struct sockaddr *peer,
                         int peer_len)
{
    struct sp_http_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    c->server = s;
    c->retire_ms = sp_retire_at(sp_now_ms(), s->limits.max_age_ms);
    evtimer_assign(&c->timer, s->base, on_timer, c);
    c->stream = sp_stream_new(s->flusher, fd, SIZE_MAX, &stream_ops, c); /* owns fd */
    if (c->stream == NULL || sp_stream_output(c->stream) == NULL)
        goto fail;
    sp_stream_set_low_water(c->stream, s->limits.output_buffer / 2);
    if (peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, c->peer,
                  sizeof(c->peer));
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, c->peer, sizeof(c->peer));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->head_clock = true;
    arm_timer(c, s->header_timeout);
    LIST_INSERT_HEAD(&s->live, c, link);
    s->count++;
    (void)peer_len;
    return 0;

fail:
    conn_free(c);
    return -1;
}
