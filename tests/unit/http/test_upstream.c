/* The upstream client against a raw-socket backend in the same loop: it
 * answers every request head with bytes the test chose, so framing, reuse,
 * retries and refusals are exact. */
#include "http/upstream.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"

/* ---- the backend -------------------------------------------------------------------------- */

struct backend {
    struct evconnlistener *listener;
    struct sp_address address;
    const char *answer; /* NULL: never answer */
    const char *later;  /* written 30 ms after answer, in a segment of its own */
    bool close_after;   /* close the socket once the answer is written */
    bool drip;          /* write the answer one byte per loop turn */
    int accepts, requests;
    /* the answer being dripped */
    struct event *drip_timer;
    struct bufferevent *drip_to;
    size_t dripped;
    struct event *later_timer;
};

static void write_later(evutil_socket_t fd, short what, void *arg)
{
    struct backend *b = arg;

    bufferevent_write(b->drip_to, b->later, strlen(b->later));
}

static void drip_byte(evutil_socket_t fd, short what, void *arg)
{
    struct backend *b = arg;

    bufferevent_write(b->drip_to, b->answer + b->dripped++, 1);
    if (b->answer[b->dripped] != '\0')
        event_add(b->drip_timer, &(struct timeval){0, 0});
}

static void backend_written(struct bufferevent *bev, void *arg)
{
    struct backend *b = arg;
    if (b->close_after)
        bufferevent_free(bev);
}

static void backend_event(struct bufferevent *bev, short what, void *arg);

static void backend_read(struct bufferevent *bev, void *arg)
{
    struct backend *b = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end;

    while ((end = evbuffer_search(in, "\r\n\r\n", 4, NULL)).pos >= 0) {
        evbuffer_drain(in, (size_t)end.pos + 4);
        b->requests++;
        if (b->answer != NULL && b->answer[0] == '\0' && b->close_after) {
            bufferevent_free(bev); /* took the request, answers nothing, closes */
            return;
        }
        if (b->answer != NULL && b->drip) {
            b->drip_to = bev;
            b->dripped = 0;
            b->drip_timer = evtimer_new(bufferevent_get_base(bev), drip_byte, b);
            event_add(b->drip_timer, &(struct timeval){0, 0});
        } else if (b->answer != NULL)
            bufferevent_write(bev, b->answer, strlen(b->answer));
        if (b->later != NULL) {
            b->drip_to = bev;
            if (b->later_timer == NULL)
                b->later_timer = evtimer_new(bufferevent_get_base(bev), write_later, b);
            event_add(b->later_timer, &(struct timeval){0, 30000});
        }
        if (b->answer != NULL && b->close_after) /* once this answer is out */
            bufferevent_setcb(bev, backend_read, backend_written, backend_event, b);
    }
}

static void backend_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void backend_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int len, void *arg)
{
    struct backend *b = arg;
    struct bufferevent *bev =
        bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);

    b->accepts++;
    bufferevent_setcb(bev, backend_read, NULL, backend_event, b);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void backend_start(struct event_base *base, struct backend *b)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(b->address.addr);

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    b->listener = evconnlistener_new_bind(base, backend_accept, b, LEV_OPT_CLOSE_ON_FREE, 16,
                                          (struct sockaddr *)&sin, sizeof(sin));
    getsockname(evconnlistener_get_fd(b->listener), (struct sockaddr *)&b->address.addr, &len);
    b->address.len = len;
}

/* ---- one exchange ------------------------------------------------------------------------- */

struct result {
    struct event_base *base;
    int status; /* from the head, or the error's */
    enum sp_http_body_kind kind;
    char body[256];
    size_t body_len;
    bool done, failed;
    /* started from done(): a second request right behind the first */
    struct sp_upstream_pool *then_pool;
    struct result *then;
};

static void on_head(void *ctx, const struct sp_http_response *resp, enum sp_http_body_kind kind,
                    uint64_t length)
{
    struct result *r = ctx;
    r->status = resp->status;
    r->kind = kind;
}

static void on_body(void *ctx, struct evbuffer *data)
{
    struct result *r = ctx;
    size_t n = evbuffer_get_length(data);

    if (r->body_len + n < sizeof(r->body)) {
        evbuffer_copyout(data, r->body + r->body_len, n);
        r->body_len += n;
    }
}

static void start(struct sp_upstream_pool *pool, struct result *r, const char *method);

static void on_done(void *ctx)
{
    struct result *r = ctx;
    r->done = true;
    if (r->then != NULL)
        start(r->then_pool, r->then, "GET");
}

static void on_error(void *ctx, int status, bool bad_response, const char *why)
{
    struct result *r = ctx;
    r->failed = true;
    r->status = status;
}

static const struct sp_upstream_ops ops = {on_head, on_body, on_done, on_error, NULL, NULL};

static struct sp_upstream *start_as(struct sp_upstream_pool *pool, struct result *r,
                                    const char *method, unsigned flags)
{
    struct evbuffer *head = evbuffer_new();
    struct sp_upstream *u;

    evbuffer_add_printf(head, "%s / HTTP/1.1\r\nHost: backend\r\n%s\r\n", method,
                        flags & SP_UPSTREAM_BODY ? "Content-Length: 100000\r\n" : "");
    if ((u = sp_upstream_start(pool, head, flags, &ops, r)) == NULL)
        r->failed = true;
    evbuffer_free(head);
    return u;
}

static void start(struct sp_upstream_pool *pool, struct result *r, const char *method)
{
    bool head = strcmp(method, "HEAD") == 0;

    start_as(pool, r, method, SP_UPSTREAM_RETRY_SAFE | (head ? SP_UPSTREAM_HEAD : 0));
}

static void give_up(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until r ends, for 3 s at most (a test that hangs fails). */
static void wait_for(struct result *r)
{
    bool late = false;
    struct timeval three = {3, 0};
    struct event *guard = evtimer_new(r->base, give_up, &late);

    evtimer_add(guard, &three);
    while (!r->done && !r->failed && !late)
        event_base_loop(r->base, EVLOOP_ONCE);
    event_free(guard);
}

static struct sp_upstream_pool *pool_for(struct event_base *base, const struct sp_address *a)
{
    struct sp_upstream_options o = {.address = *a,
                                    .max_idle = 4,
                                    .idle_timeout_ms = 5000,
                                    .connect_timeout_ms = 1000,
                                    .head_timeout_ms = 200,
                                    .max_head_size = 8192,
                                    .max_headers = 32};
    return sp_upstream_pool_new(base, &o);
}

/* After a pool is freed: the backend sees its connections close. */
static void settle(struct event_base *base)
{
    struct timeval ms = {0, 20000};

    event_base_loopexit(base, &ms);
    event_base_dispatch(base);
}

static bool body_is(const struct result *r, const char *want)
{
    return r->body_len == strlen(want) && memcmp(r->body, want, r->body_len) == 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_reuse_and_framings(struct event_base *base)
{
    struct backend b = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);
    struct result r1 = {.base = base}, r2 = {.base = base}, r3 = {.base = base};

    start(pool, &r1, "GET");
    wait_for(&r1);
    start(pool, &r2, "GET");
    wait_for(&r2);
    ok(r1.done && r2.done && body_is(&r1, "hello") && body_is(&r2, "hello"), "two answers");
    ok(b.accepts == 1 && sp_upstream_pool_stats(pool)->reuses == 1,
       "the second request reused the pooled connection");

    b.answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"; /* a HEAD's: no body */
    start(pool, &r3, "HEAD");
    wait_for(&r3);
    ok(r3.done && r3.status == 200 && r3.body_len == 0 && b.accepts == 1 &&
           sp_upstream_pool_stats(pool)->unpooled == 1,
       "HEAD: Content-Length but no body, and the connection not kept (a late body could follow)");
    struct result r3b = {.base = base};
    b.answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    start(pool, &r3b, "HEAD"); /* a backend that sends a body anyway */
    wait_for(&r3b);
    struct result r3c = {.base = base};
    start(pool, &r3c, "GET");
    wait_for(&r3c);
    ok(r3b.done && r3b.body_len == 0 && r3c.done && body_is(&r3c, "hello") && b.accepts == 3,
       "bytes after a HEAD's answer: the connection is never reused (no desync)");

    b.answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    struct result r4 = {.base = base};
    start(pool, &r4, "GET");
    wait_for(&r4);
    ok(r4.done && r4.kind == SP_HTTP_BODY_CHUNKED && body_is(&r4, "hello world"),
       "chunked, decoded, extensions and trailers dropped");
    ok(b.accepts == 3, "the same connection after a chunked answer");

    b.answer = "HTTP/1.1 200 OK\r\n\r\nuntil close";
    b.close_after = true;
    struct result r5 = {.base = base};
    start(pool, &r5, "GET");
    wait_for(&r5);
    ok(r5.done && r5.kind == SP_HTTP_BODY_CLOSE && body_is(&r5, "until close"),
       "a close-delimited body ends with the close");
    b.close_after = false;
    b.answer = "HTTP/1.1 204 No Content\r\n\r\n";
    struct result r6 = {.base = base};
    start(pool, &r6, "GET");
    wait_for(&r6);
    ok(r6.done && r6.status == 204 && b.accepts == 4, "a close-delimited connection is not reused");
    sp_upstream_pool_free(pool);
    settle(base);
    evconnlistener_free(b.listener);
}

/* A head that arrives a byte at a time, split at every point, CRLF CRLF
 * included (the client searches on from where its last look stopped). */
static void test_a_head_byte_by_byte(struct event_base *base)
{
    char answer[4096];
    int n = snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nX-Long: ");
    memset(answer + n, 'a', 3000);
    snprintf(answer + n + 3000, sizeof(answer) - (size_t)n - 3000,
             "\r\nContent-Length: 5\r\n\r\nhello");
    struct backend b = {.answer = answer, .drip = true};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);
    struct result r = {.base = base};

    start(pool, &r, "GET");
    wait_for(&r);
    ok(r.done && r.status == 200 && body_is(&r, "hello") && b.dripped == strlen(answer),
       "a 3 KB head sent one byte at a time");
    sp_upstream_pool_free(pool);
    settle(base);
    event_free(b.drip_timer);
    evconnlistener_free(b.listener);
}

/* The backend closes a kept connection: the next request, sent on it at
 * once, finds it closed before any answer and is retried, unseen. */
static void test_retry_on_a_closed_pooled_connection(struct event_base *base)
{
    struct backend b = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        .close_after = true};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);
    struct result second = {.base = base};
    struct result first = {.base = base, .then_pool = pool, .then = &second};

    start(pool, &first, "GET");
    wait_for(&first);
    wait_for(&second);
    ok(first.done && second.done && body_is(&second, "ok"), "both answered, no error");
    /* Found closed when taken (the EOF had arrived), or on the first read. */
    ok(sp_upstream_pool_stats(pool)->retries + sp_upstream_pool_stats(pool)->stale == 1 &&
           b.accepts == 2,
       "retried once on a fresh connection");
    sp_upstream_pool_free(pool);
    settle(base);
    evconnlistener_free(b.listener);
}

static void test_refusals(struct event_base *base)
{
    static const char *const ambiguous[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    struct backend b = {0};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);

    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        struct result r = {.base = base};
        b.answer = ambiguous[i];
        start(pool, &r, "GET");
        wait_for(&r);
        ok(r.failed && r.status == 502, "refused with 502: %zu", i);
    }
    is_int((int)sp_upstream_pool_stats(pool)->bad_responses, 6, "each counted");

    struct result slow = {.base = base};
    b.answer = NULL;
    start(pool, &slow, "GET");
    wait_for(&slow);
    ok(slow.failed && slow.status == 504, "no head within head_timeout: 504");
    sp_upstream_pool_free(pool);
    settle(base);
    evconnlistener_free(b.listener);

    struct sp_address closed = b.address; /* nobody listens there any more */
    pool = pool_for(base, &closed);
    struct result refused = {.base = base};
    start(pool, &refused, "GET");
    wait_for(&refused);
    ok(refused.failed && refused.status == 502, "connection refused: 502");
    sp_upstream_pool_free(pool);
}

/* Issue 22: an answer that comes before the request body was all sent (a
 * 401 to an upload the backend never read) never pools its connection, or
 * the next user's request would be read as the rest of that body. */
static void test_early_answer_is_not_pooled(struct event_base *base)
{
    struct backend b = {.answer = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope"};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);
    struct result upload = {.base = base}, next = {.base = base};
    struct evbuffer *part = evbuffer_new();

    struct sp_upstream *u = start_as(pool, &upload, "POST", SP_UPSTREAM_BODY);
    evbuffer_add_printf(part, "GET /smuggled HTTP/1.1\r\nHost: t\r\nX-Swallow: ");
    sp_upstream_write(u, part, false);
    wait_for(&upload);
    start(pool, &next, "GET");
    wait_for(&next);
    ok(upload.done && upload.status == 401 && next.status == 401 && b.accepts == 2,
       "an early answer to an upload: the next request gets a connection of its own");
    ok(sp_upstream_pool_stats(pool)->unpooled == 1 && sp_upstream_pool_stats(pool)->reuses == 0,
       "counted as unpooled, never reused");
    evbuffer_free(part);
    sp_upstream_pool_free(pool);
    settle(base);
    evconnlistener_free(b.listener);
}

/* Every 1xx but 101 is interim: 102 and 103 (Node's writeEarlyHints), and a
 * 100 that arrives alone in its segment (it passed NULL to memchr). */
static void test_interim_answers(struct event_base *base)
{
    static const char *const interim[] = {
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        "HTTP/1.1 102 Processing\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
    };
    struct backend b = {0};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);

    for (size_t i = 0; i < sizeof(interim) / sizeof(interim[0]); i++) {
        struct result r = {.base = base}, next = {.base = base};
        b.answer = interim[i];
        b.later = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal";
        start(pool, &r, "GET");
        wait_for(&r);
        ok(r.done && r.status == 200 && body_is(&r, "final"), "%.12s: the final answer is read",
           interim[i]);
        b.answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext";
        b.later = NULL;
        start(pool, &next, "GET");
        wait_for(&next);
        ok(next.done && body_is(&next, "next"), "%.12s: the next exchange gets its own answer",
           interim[i]);
    }
    sp_upstream_pool_free(pool);
    settle(base);
    event_free(b.later_timer);
    evconnlistener_free(b.listener);
}

/* A non-idempotent request is never sent twice: a kept connection found
 * closed after the request went out is a 502, not a retry. */
static void test_no_retry_of_a_post(struct event_base *base)
{
    struct backend b = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    backend_start(base, &b);
    struct sp_upstream_pool *pool = pool_for(base, &b.address);
    struct result first = {.base = base}, post = {.base = base};

    start(pool, &first, "GET");
    wait_for(&first);
    b.close_after = true; /* the backend takes the POST, does the work, then closes */
    b.answer = "";
    start_as(pool, &post, "POST", 0);
    wait_for(&post);
    ok(post.failed && post.status == 502 && b.requests == 2 && b.accepts == 1,
       "a POST on a connection the backend closed: 502, sent once");
    is_int((int)sp_upstream_pool_stats(pool)->retries, 0, "no retry");
    sp_upstream_pool_free(pool);
    settle(base);
    evconnlistener_free(b.listener);
}

/* backend.url: unix:/path (gunicorn, puma, php-fpm behind a socket). */
static void test_unix_socket(struct event_base *base)
{
    char dir[] = "/tmp/sp-upstream-XXXXXX", path[64];
    struct backend b = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix"};
    struct sockaddr_un un = {.sun_family = AF_UNIX};

    if (mkdtemp(dir) == NULL) {
        ok(false, "a temporary directory");
        return;
    }
    snprintf(path, sizeof(path), "%s/app.sock", dir);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    b.listener = evconnlistener_new_bind(base, backend_accept, &b, LEV_OPT_CLOSE_ON_FREE, 16,
                                         (struct sockaddr *)&un, sizeof(un));
    struct sp_upstream_options o = {.unix_path = path,
                                    .max_idle = 2,
                                    .idle_timeout_ms = 5000,
                                    .connect_timeout_ms = 1000,
                                    .head_timeout_ms = 1000,
                                    .max_head_size = 8192,
                                    .max_headers = 32};
    struct sp_upstream_pool *pool = sp_upstream_pool_new(base, &o);
    struct result r1 = {.base = base}, r2 = {.base = base};
    start(pool, &r1, "GET");
    wait_for(&r1);
    start(pool, &r2, "GET");
    wait_for(&r2);
    ok(r1.done && r2.done && body_is(&r2, "unix") && b.accepts == 1,
       "a Unix socket backend, its connection pooled");
    sp_upstream_pool_free(pool);
    settle(base);
    evconnlistener_free(b.listener);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    struct event_base *base = event_base_new();

    signal(SIGPIPE, SIG_IGN); /* as sidepush does: a closed backend is an error, not a death */

    test_reuse_and_framings(base);
    test_retry_on_a_closed_pooled_connection(base);
    test_refusals(base);
    test_unix_socket(base);
    test_early_answer_is_not_pooled(base);
    test_interim_answers(base);
    test_no_retry_of_a_post(base);
    test_a_head_byte_by_byte(base);
    event_base_free(base);
    return tap_done();
}
