/* The reverse proxy with a client over a socketpair and a scripted backend
 * on a Unix socket (a thread answering each connection's request with the
 * next canned bytes): a response passed through and re-framed, a request
 * head as the backend sees it, ambiguous and missing answers as 502, and
 * the response hook holding an answer. */
#include "http/proxy.h"
#include "net/stream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"

/* ---- the backend: one thread, one canned answer per connection ------------------------ */

struct backend {
    int listener;
    char path[108];
    const char *const *answers; /* NULL-terminated */
    char seen[4096];            /* the last request head */
    pthread_t thread;
};

static void *serve(void *arg)
{
    struct backend *b = arg;

    for (const char *const *a = b->answers; *a != NULL; a++) {
        int fd = accept(b->listener, NULL, NULL);
        size_t len = 0;
        if (fd < 0)
            return NULL;
        while (len < sizeof(b->seen) - 1 && strstr(b->seen, "\r\n\r\n") == NULL) {
            ssize_t n = recv(fd, b->seen + len, sizeof(b->seen) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            b->seen[len] = '\0';
        }
        ssize_t n = send(fd, *a, strlen(*a), MSG_NOSIGNAL);
        (void)n;
        close(fd);
    }
    return NULL;
}

static int backend_start(struct backend *b, const char *const *answers)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    memset(b->seen, 0, sizeof(b->seen));
    b->answers = answers;
    snprintf(b->path, sizeof(b->path), "/tmp/sp-test-proxy-%d.sock", (int)getpid());
    unlink(b->path);
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", b->path);
    b->listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (b->listener < 0 || bind(b->listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(b->listener, 8) < 0)
        return -1;
    return pthread_create(&b->thread, NULL, serve, b);
}

static void backend_stop(struct backend *b)
{
    shutdown(b->listener, SHUT_RDWR); /* accept() returns */
    pthread_join(b->thread, NULL);
    close(b->listener);
    unlink(b->path);
}

/* ---- sidepush's side -------------------------------------------------------------------- */

struct rig {
    struct event_base *base;
    struct sp_proxy *proxy;
    struct sp_flusher *flusher; /* the connection engine under the server */
    struct sp_http_server *server;
};

static void handle(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req)
{
    sp_proxy_handle(((struct rig *)ctx)->proxy, conn, req);
}

static int rig_new(struct rig *r, const char *socket_path, const struct sp_proxy_hook *hook)
{
    char url[160];
    const struct sp_http_limits limits = {.max_header_size = 16384,
                                          .max_headers = 100,
                                          .max_body_size = 1 << 20,
                                          .header_timeout_ms = 10000,
                                          .idle_timeout_ms = 60000,
                                          .output_buffer = 1 << 20};

    snprintf(url, sizeof(url), "unix:%s", socket_path);
    const struct sp_proxy_options opts = {.hook = hook,
                                          .backend_url = url,
                                          .connect_timeout_ms = 2000,
                                          .response_timeout_ms = 5000,
                                          .buffer_size = 65536,
                                          .keepalive = 0};
    r->base = event_base_new();
    r->proxy = sp_proxy_new(r->base, &opts, NULL);
    r->flusher = sp_flusher_new(r->base, NULL, NULL);
    r->server = sp_http_server_new(r->base, r->flusher, &limits, handle, r, NULL);
    return r->proxy && r->server ? 0 : -1;
}

static void rig_free(struct rig *r)
{
    sp_http_server_free(r->server);
    sp_proxy_free(r->proxy);
    sp_flusher_free(r->flusher);
    event_base_free(r->base);
}

/* Runs test with a backend giving answers and a proxy to it (with hook). */
static void rig_run(const char *const *answers, const struct sp_proxy_hook *hook,
                    void (*test)(struct rig *r, struct backend *b))
{
    struct backend b;
    struct rig r;

    if (backend_start(&b, answers) < 0 || rig_new(&r, b.path, hook) < 0) {
        printf("not ok - the backend or the proxy could not be made\n");
        exit(1);
    }
    test(&r, &b);
    rig_free(&r);
    backend_stop(&b);
}

/* Sends request as a client and returns what came back once the server
 * closed or the answer holds until. */
static void exchange(struct rig *r, const char *request, const char *until, char *buf, size_t size)
{
    struct sockaddr_in peer = {.sin_family = AF_INET};
    int sv[2];
    size_t len = 0;

    buf[0] = '\0';
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    sp_http_server_adopt(r->server, sv[0], (struct sockaddr *)&peer, sizeof(peer));
    ssize_t n = send(sv[1], request, strlen(request), 0);
    (void)n;
    for (int turn = 0; turn < 2000 && strstr(buf, until) == NULL; turn++) {
        event_base_loop(r->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        while ((n = recv(sv[1], buf + len, size - 1 - len, 0)) > 0)
            len += (size_t)n;
        buf[len] = '\0';
        usleep(500);
    }
    close(sv[1]);
}

static const char *const pass_through_answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend: yes\r\nKeep-Alive: timeout=5\r\n"
    "\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", NULL};

static void test_pass_through(struct rig *r, struct backend *b)
{
    char buf[8192];

    exchange(r,
             "GET /page?q=1 HTTP/1.1\r\nHost: app\r\nCookie: s=1\r\nSidepush-User: forged\r\n"
             "Connection: close\r\n\r\n",
             "hello", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "X-Backend: yes\r\n") &&
           strstr(buf, "Content-Length: 5\r\n") && strstr(buf, "\r\n\r\nhello"),
       "the backend's answer, its length kept");
    ok(strstr(buf, "Keep-Alive") == NULL, "a hop-by-hop header is not passed on");
    ok(strstr(b->seen, "GET /page?q=1 HTTP/1.1\r\n") == b->seen &&
           strstr(b->seen, "Cookie: s=1\r\n") && strstr(b->seen, "X-Forwarded-For: 127.0.0.1\r\n"),
       "the backend gets the target verbatim, the cookie, X-Forwarded-For");
    ok(strstr(b->seen, "Sidepush-User") == NULL, "never a header only sidepush may set");
    exchange(r, "GET /c HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n", "0\r\n\r\n", buf,
             sizeof(buf));
    ok(strstr(buf, "Transfer-Encoding: chunked\r\n") && strstr(buf, "3\r\nabc\r\n0\r\n\r\n"),
       "a chunked answer goes on chunked to an HTTP/1.1 client");
}

static const char *const bad_answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: "
    "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "", NULL};

static void test_bad_answers(struct rig *r, struct backend *b)
{
    char buf[8192];

    exchange(r, "GET /a HTTP/1.1\r\nHost: app\r\n\r\n", "}\n", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 502 ") == buf && strstr(buf, "\"error\":"),
       "Content-Length with Transfer-Encoding: 502 with a JSON reason, never passed on");
    exchange(r, "GET /b HTTP/1.1\r\nHost: app\r\n\r\n", "}\n", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 502 ") == buf, "a backend that closes without answering: 502");
}

/* ---- the response hook ------------------------------------------------------------------ */

struct held {
    struct evbuffer *body;
};

static void *hook_head(void *ctx, const struct sp_http_response *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (sp_slice_caseeq(resp->headers[i].name, "X-Hold-Me")) {
            struct held *h = calloc(1, sizeof(*h));
            h->body = evbuffer_new();
            return h;
        }
    }
    return NULL;
}

static void hook_body(void *hold, struct evbuffer *data)
{
    evbuffer_add_buffer(((struct held *)hold)->body, data);
}

static void hook_done(void *hold, struct sp_http_conn *conn, int status, const char *reason,
                      struct evbuffer *lines)
{
    struct held *h = hold;
    char text[64];
    int n = snprintf(text, sizeof(text), "held %d: %.*s", status, (int)evbuffer_get_length(h->body),
                     (char *)evbuffer_pullup(h->body, -1));
    sp_http_respond(conn, 200, "text/plain", text, (size_t)n);
    (void)reason;
    (void)lines;
    evbuffer_free(h->body);
    free(h);
}

static void hook_cancel(void *hold)
{
    struct held *h = hold;
    evbuffer_free(h->body);
    free(h);
}

static const char *const held_answers[] = {
    "HTTP/1.1 201 Created\r\nX-Hold-Me: 1\r\nX-Hold-Other: 2\r\nContent-Length: 4\r\n\r\nbody",
    "HTTP/1.1 200 OK\r\nX-Hold-Note: n\r\nContent-Length: 2\r\n\r\nok", NULL};

static const struct sp_proxy_hook test_hook_ops = {"X-Hold-", hook_head, hook_body, hook_done,
                                                   hook_cancel};

static void test_hook(struct rig *r, struct backend *b)
{
    char buf[8192];

    exchange(r, "GET /h HTTP/1.1\r\nHost: app\r\n\r\n", "held 201: body", buf, sizeof(buf));
    ok(strstr(buf, "held 201: body") != NULL, "the hook held the answer, got its body, answered");
    exchange(r, "GET /p HTTP/1.1\r\nHost: app\r\n\r\n", "\r\n\r\nok", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "X-Hold") == NULL,
       "not held: passed through without the hook's headers");
}

int main(void)
{
    rig_run(pass_through_answers, NULL, test_pass_through);
    rig_run(bad_answers, NULL, test_bad_answers);
    rig_run(held_answers, &test_hook_ops, test_hook);
    return tap_done();
}
