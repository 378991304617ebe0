/* The upstream client's pool, stateful: two exchanges in a row on one pool,
 * against a backend whose first answer (its bytes and how they are cut into
 * segments) is the input. The invariants (issue 22): the second exchange sees
 * exactly its own response or an error, never a byte of the first; a
 * connection whose request was not completely sent never carries it; and a
 * 1xx never ends an exchange.
 *
 * Input: byte 0 flags (1: the first request is a HEAD; 2: it has a body;
 * 4: that body is sent whole), byte 1 the number of segments less one
 * (mod 4), then one byte per cut point, then the first answer's bytes. Every
 * segment of the first answer arrives before the second request starts: a
 * backend that writes past its own framing later still, after a pause, is
 * beyond what any HTTP/1.1 client can tell (nginx included). */
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "http/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECOND "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECOND"

struct result {
    int status;
    char body[64];
    size_t body_len;
    bool overflow, done, failed;
};

static void on_head(void *ctx, const struct sp_http_response *resp, enum sp_http_body_kind kind,
                    uint64_t length)
{
    ((struct result *)ctx)->status = resp->status;
}

static void on_body(void *ctx, struct evbuffer *data)
{
    struct result *r = ctx;
    size_t n = evbuffer_get_length(data);

    if (r->body_len + n > sizeof(r->body)) {
        r->overflow = true;
        return;
    }
    evbuffer_copyout(data, r->body + r->body_len, n);
    r->body_len += n;
}

static void on_done(void *ctx)
{
    ((struct result *)ctx)->done = true;
}

static void on_error(void *ctx, int status, bool bad_response, const char *why)
{
    ((struct result *)ctx)->failed = true;
}

static const struct sp_upstream_ops ops = {on_head, on_body, on_done, on_error, NULL, NULL};

/* ---- the backend's side: a Unix socket made once per process ----------------------------- */

static struct event_base *base;
static int listener = -1;
static char dir[64], path[96];

static void cleanup(void)
{
    if (listener >= 0)
        close(listener);
    unlink(path);
    rmdir(dir);
}

static int setup(void)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};

    snprintf(dir, sizeof(dir), "/tmp/sp-fuzz-pool-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/backend.sock", dir);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&un, sizeof(un)) < 0 ||
        listen(listener, 16) < 0)
        return -1;
    base = event_base_new();
    atexit(cleanup);
    return base ? 0 : -1;
}

/* Runs whatever is ready until nothing is. */
static void settle(void)
{
    for (int i = 0; i < 16; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

static void drain(int fd)
{
    char buf[4096];

    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

/* ---- one input ------------------------------------------------------------------------------ */

static struct sp_upstream *start(struct sp_upstream_pool *pool, struct result *r,
                                 const char *method, unsigned flags)
{
    struct evbuffer *head = evbuffer_new();
    struct sp_upstream *u;

    evbuffer_add_printf(head, "%s / HTTP/1.1\r\nHost: b\r\n%s\r\n", method,
                        flags & SP_UPSTREAM_BODY ? "Content-Length: 8\r\n" : "");
    u = sp_upstream_start(pool, head, flags, &ops, r);
    evbuffer_free(head);
    return u;
}

static void run(uint8_t flags, const uint8_t *answer, size_t len, const size_t *cuts, size_t ncuts)
{
    struct sp_upstream_options o = {.unix_path = path,
                                    .max_idle = 1,
                                    .idle_timeout_ms = 60000,
                                    .connect_timeout_ms = 60000,
                                    .head_timeout_ms = 60000,
                                    .max_head_size = 4096,
                                    .max_headers = 16};
    struct sp_upstream_pool *pool = sp_upstream_pool_new(base, &o);
    struct result r1 = {0}, r2 = {0};
    bool head = flags & 1, body = flags & 2, whole = flags & 4;
    unsigned f1 = (head ? SP_UPSTREAM_HEAD : 0) | (body ? SP_UPSTREAM_BODY : 0);
    struct sp_upstream *u1 = start(pool, &r1, head ? "HEAD" : "POST", f1), *u2 = NULL;

    settle();
    int first = accept4(listener, NULL, NULL, SOCK_NONBLOCK), second = -1;
    if (u1 == NULL || first < 0)
        goto out;
    if (body) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, "12345678", whole ? 8 : 4);
        sp_upstream_write(u1, b, whole);
        evbuffer_free(b);
    }
    settle();
    drain(first);
    for (size_t i = 0, at = 0; i <= ncuts && !r1.done && !r1.failed; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (end > at && send(first, answer + at, end - at, MSG_NOSIGNAL) < 0)
            break;
        at = end > at ? end : at;
        settle();
    }
    if (r1.done && r1.status < 200)
        abort(); /* an interim answer (1xx but 101, never asked for here) ended the exchange */
    if (!r1.done && !r1.failed) {
        sp_upstream_cancel(u1); /* an answer that never ends: its connection is closed */
        settle();
    }

    u2 = start(pool, &r2, "GET", SP_UPSTREAM_RETRY_SAFE);
    settle();
    second = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
    if (second < 0 && body && !whole && sp_upstream_pool_stats(pool)->reuses > 0)
        abort(); /* the rest of the first request's body would be this request */
    int to = second >= 0 ? second : first;
    drain(to);
    send(to, SECOND, sizeof(SECOND) - 1, MSG_NOSIGNAL);
    settle();
    if (r2.done &&
        (r2.status != 200 || r2.overflow || r2.body_len != 6 || memcmp(r2.body, "SECOND", 6) != 0))
        abort(); /* the second exchange read something that was not its answer */
    if (!r2.done && !r2.failed)
        sp_upstream_cancel(u2);
out:
    if (u1 != NULL && first < 0 && !r1.done && !r1.failed)
        sp_upstream_cancel(u1);
    if (first >= 0)
        close(first);
    if (second >= 0)
        close(second);
    sp_upstream_pool_free(pool);
    settle();
    for (int fd; (fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0;)
        close(fd); /* a retry's connection nobody answered */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cuts[4], ncuts;

    if (base == NULL && setup() < 0)
        abort();
    if (size < 2)
        return 0;
    ncuts = data[1] % 4;
    if (size < 2 + ncuts)
        return 0;
    const uint8_t *answer = data + 2 + ncuts;
    size_t len = size - 2 - ncuts;
    for (size_t i = 0; i < ncuts; i++) {
        size_t cut = len ? data[2 + i] * len / 255 : 0;
        cuts[i] = i > 0 && cut < cuts[i - 1] ? cuts[i - 1] : cut;
    }
    run(data[0], answer, len, cuts, ncuts);
    return 0;
}
