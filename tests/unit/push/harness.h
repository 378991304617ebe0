/* One worker's push with nothing around it but a loop: clients are
 * socketpairs adopted by an HTTP server whose handler is the app's routing
 * in brief (a subscribe route's channel is the rest of the path after its
 * prefix; the publish server is the publish API). The test drives the
 * loop one turn at a time and reads what a client got. */
#ifndef SP_TEST_PUSH_HARNESS_H
#define SP_TEST_PUSH_HARNESS_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "net/curlm.h"
#include "net/mailbox.h"
#include "net/stream.h"
#include "push/push.h"

struct harness {
    struct event_base *base;
    struct sp_config *config;
    struct sp_mailbox *mailbox;
    struct sp_curlm *curlm;
    struct sp_flusher *flusher;
    struct sp_push_shared *shared;
    struct sp_push *push;
    struct sp_http_server *clients, *publishers;
};

/* Every route is "/<name>/{channel}": the channel is what follows. */
static inline void harness_route(void *ctx, struct sp_http_conn *conn,
                                 const struct sp_http_request *req)
{
    struct harness *h = ctx;

    for (size_t i = 0; i < h->config->nroutes; i++) {
        const struct sp_route_config *r = &h->config->routes[i];
        size_t prefix = strcspn(r->path, "{");
        if (req->path.len > prefix && strncmp(req->path.ptr, r->path, prefix) == 0) {
            char spec[300];
            size_t n = req->path.len - prefix < sizeof(spec) - 1 ? req->path.len - prefix
                                                                 : sizeof(spec) - 1;
            memcpy(spec, req->path.ptr + prefix, n);
            spec[n] = '\0';
            sp_push_subscribe(h->push, r, spec, conn, req, NULL);
            return;
        }
    }
    sp_http_respond_error(conn, 404, "no route");
}

static inline void harness_publish_api(void *ctx, struct sp_http_conn *conn,
                                       const struct sp_http_request *req)
{
    struct harness *h = ctx;
    sp_push_publish_request(h->push, conn, req);
}

/* yaml: the configuration after backend (routes, limits...). Returns 0. */
static inline int harness_init(struct harness *h, const char *yaml)
{
    char text[4096];
    struct sp_diags diags = {0};
    const struct sp_http_limits limits = {
        .max_header_size = 16384,
        .max_headers = 100,
        .max_body_size = 1 << 20,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .output_buffer = 1 << 20,
    };

    memset(h, 0, sizeof(*h));
    snprintf(text, sizeof(text), "backend: { url: 'http://127.0.0.1:9' }\n%s", yaml);
    if (sp_config_parse("test.yaml", text, strlen(text), NULL, NULL, &h->config, &diags) < 0) {
        for (size_t i = 0; i < diags.count; i++)
            printf("# %s\n", diags.lines[i]);
        sp_diags_clear(&diags);
        return -1;
    }
    h->base = event_base_new();
    h->mailbox = sp_mailbox_new(h->base);
    h->curlm = sp_curlm_new(h->base);
    h->flusher = sp_flusher_new(h->base, NULL, NULL);
    const struct sp_push_shared_env env = {h->base, h->mailbox, 1, h->config, NULL};
    h->shared = sp_push_shared_new(&env);
    const struct sp_push_worker w = {h->base, h->curlm, h->mailbox, 0, h->shared};
    h->push = h->shared ? sp_push_new(&w, h->config, NULL) : NULL;
    h->clients = sp_http_server_new(h->base, h->flusher, &limits, harness_route, h, NULL);
    h->publishers = sp_http_server_new(h->base, h->flusher, &limits, harness_publish_api, h, NULL);
    return h->push && h->clients && h->publishers ? 0 : -1;
}

static inline void harness_free(struct harness *h)
{
    sp_push_free(h->push); /* its subscribers first: held requests are the servers' */
    sp_push_shared_free(h->shared);
    sp_http_server_free(h->clients);
    sp_http_server_free(h->publishers);
    sp_flusher_free(h->flusher);
    sp_curlm_free(h->curlm);
    sp_mailbox_free(h->mailbox);
    event_base_free(h->base);
    sp_config_release(h->config);
}

/* A client of server: the test's end of a socketpair. */
static inline int harness_client(struct harness *h, struct sp_http_server *server)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    int sv[2];

    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (sp_http_server_adopt(server, sv[0], (struct sockaddr *)&peer, sizeof(peer)) < 0) {
        close(sv[1]);
        return -1;
    }
    (void)h;
    return sv[1];
}

static inline void harness_send(int fd, const char *text)
{
    ssize_t n = send(fd, text, strlen(text), 0);
    (void)n;
}

/* Runs loop turns, appending what fd receives to buf (NUL-terminated;
 * *len bytes so far), until buf holds until (NULL: until EOF) or turns
 * run out. Returns true if it got there; *eof says whether the peer
 * closed. */
static inline bool harness_read(struct harness *h, int fd, char *buf, size_t size, size_t *len,
                                const char *until, bool *eof)
{
    for (int turn = 0; turn < 200; turn++) {
        event_base_loop(h->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        for (;;) {
            ssize_t n = recv(fd, buf + *len, size - 1 - *len, 0);
            if (n == 0 && eof != NULL)
                *eof = true;
            if (n <= 0)
                break;
            *len += (size_t)n;
        }
        buf[*len] = '\0';
        if (until != NULL && memmem(buf, *len, until, strlen(until)) != NULL)
            return true;
        if (until == NULL && eof != NULL && *eof)
            return true;
        usleep(1000);
    }
    return false;
}

struct published {
    int rc;
    struct sp_publish_result res;
};

static inline void harness_published(void *arg, int rc, const struct sp_publish_result *res)
{
    struct published *p = arg;
    p->rc = rc;
    if (res != NULL)
        p->res = *res;
}

/* Publishes data on channel, as the publish API would. Returns its id. */
static inline struct published harness_publish(struct harness *h, const char *channel,
                                               const char *event, const char *data)
{
    struct published p = {.rc = -1};
    const struct sp_engine_publish pub = {
        .pub = {.channel = channel, .event = event, .data = data, .len = strlen(data)}};

    if (sp_push_publish(h->push, &pub, harness_published, &p) < 0)
        p.rc = -1;
    return p;
}

/* Runs test on a fresh harness made with yaml, then frees it. */
static inline void harness_run(const char *yaml, void (*test)(struct harness *h))
{
    struct harness h;

    if (harness_init(&h, yaml) < 0) {
        printf("not ok - the harness could not be made\n");
        exit(1);
    }
    test(&h);
    harness_free(&h);
}

#endif
