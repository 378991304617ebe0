#include "net/redis.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define BACKOFF_FIRST_MS 100

enum state {
    S_WAITING,    /* for the reconnect timer */
    S_RESOLVING,  /* evdns */
    S_CONNECTING, /* TCP, then AUTH and SELECT */
    S_UP,
};

struct sp_redis {
    struct event_base *base;
    struct evdns_base *dns;
    struct sp_redis_options opts;
    const struct sp_redis_ops *ops;
    void *ctx;
    enum state state;
    redisAsyncContext *ac;
    struct evdns_getaddrinfo_request *resolving;
    struct event *retry;  /* reconnect after the backoff */
    struct event *watch;  /* timeouts and idle pings */
    uint64_t deadline_ms; /* of the connect in progress */
    uint64_t progress_ms; /* last reply, or when the oldest pending command was sent */
    unsigned pending;     /* commands without a reply */
    unsigned handshake;   /* AUTH / SELECT replies still expected */
    uint64_t backoff_ms;
    uint64_t connects, losses;
    char ip[INET6_ADDRSTRLEN];
};

/* A command's callback, wrapped to count replies for the timeout. */
struct call {
    struct sp_redis *r;
    redisAsyncContext *ac;
    redisCallbackFn *fn;
    void *privdata;
};

static void connect_now(struct sp_redis *r);

/* ---- losing and regaining the connection ----------------------------------------------- */

static uint64_t next_backoff(struct sp_redis *r)
{
    uint64_t ceiling = r->backoff_ms;

    r->backoff_ms =
        r->backoff_ms * 2 > r->opts.reconnect_max_ms ? r->opts.reconnect_max_ms : r->backoff_ms * 2;
    /* Full jitter between half and all of the ceiling: replicas that lost
     * Redis together do not all come back in the same millisecond. */
    return ceiling / 2 + sp_random() % (ceiling / 2 + 1);
}

/* Drops the connection (whatever stage it is in) and schedules the next. */
static void lost(struct sp_redis *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    bool was_up = r->state == S_UP;

    r->ac = NULL;
    if (r->resolving != NULL) {
        struct evdns_getaddrinfo_request *req = r->resolving;
        r->resolving = NULL;
        evdns_getaddrinfo_cancel(req);
    }
    r->state = S_WAITING;
    if (ac != NULL)
        redisAsyncFree(ac); /* pending callbacks run with NULL; deferred inside a callback */
    r->pending = 0;
    r->handshake = 0;
    if (was_up)
        r->losses++;
    uint64_t ms = next_backoff(r);
    struct timeval tv = sp_timeval_ms(ms);
    evtimer_add(r->retry, &tv);
    r->ops->down(r->ctx, why, ms);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    connect_now(arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct sp_redis *r = ac->data;

    if (r == NULL || ac != r->ac)
        return;   /* one we dropped ourselves */
    r->ac = NULL; /* hiredis frees it after this callback */
    lost(r, ac->errstr[0] ? ac->errstr : "connection closed by Redis");
}

/* ---- commands ---------------------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    struct call *c = arg;
    struct sp_redis *r = c->r;

    if (r != NULL && ac == r->ac && r->pending > 0) {
        r->pending--;
        r->progress_ms = sp_now_ms();
    }
    if (c->fn != NULL)
        c->fn(ac, reply, c->privdata);
    free(c);
}

static int send_argv(struct sp_redis *r, redisCallbackFn *fn, void *privdata, int argc,
                     const char **argv, const size_t *argvlen)
{
    bool subscription = argc > 0 && (strcasecmp(argv[0], "SUBSCRIBE") == 0 ||
                                     strcasecmp(argv[0], "UNSUBSCRIBE") == 0);

    if (subscription) {
        /* hiredis keeps these callbacks per channel and calls them for every
         * message: they are not one-reply commands. */
        return redisAsyncCommandArgv(r->ac, fn, privdata, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
    }
    struct call *c = malloc(sizeof(*c));
    if (c == NULL)
        return -1;
    *c = (struct call){r, r->ac, fn, privdata};
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        free(c);
        return -1;
    }
    if (r->pending++ == 0)
        r->progress_ms = sp_now_ms();
    return 0;
}

int sp_redis_command(struct sp_redis *r, redisCallbackFn *fn, void *privdata, int argc,
                     const char **argv, const size_t *argvlen)
{
    if (r == NULL || r->state != S_UP || r->ac == NULL)
        return -1;
    return send_argv(r, fn, privdata, argc, argv, argvlen);
}

/* ---- connecting -------------------------------------------------------------------------- */

static void became_up(struct sp_redis *r)
{
    r->state = S_UP;
    r->connects++;
    r->backoff_ms = BACKOFF_FIRST_MS;
    r->ops->up(r->ctx);
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_redis *r = arg;
    redisReply *rep = reply;
    char why[160];

    if (rep == NULL || ac != r->ac)
        return; /* lost meanwhile; already handled */
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "Redis refused the handshake: %s", rep->str);
        lost(r, why);
        return;
    }
    if (--r->handshake == 0)
        became_up(r);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct sp_redis *r = ac->data;
    char db[24];

    if (r == NULL || ac != r->ac)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees it after this callback */
        lost(r, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    redisEnableKeepAlive(&ac->c);
    const char *auth[3] = {"AUTH", r->opts.username, r->opts.password};
    const char *select[2] = {"SELECT", db};
    snprintf(db, sizeof(db), "%u", r->opts.database);
    r->handshake = 0;
    if (r->opts.password != NULL) {
        int argc = r->opts.username ? 3 : 2;
        if (r->opts.username == NULL)
            auth[1] = r->opts.password;
        if (send_argv(r, on_handshake, r, argc, auth, NULL) < 0)
            goto fail;
        r->handshake++;
    }
    if (r->opts.database != 0) {
        if (send_argv(r, on_handshake, r, 2, select, NULL) < 0)
            goto fail;
        r->handshake++;
    }
    if (r->handshake == 0)
        became_up(r);
    return;
fail:
    lost(r, "out of memory");
}

static void open_tcp(struct sp_redis *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->ip, (int)r->opts.port);

    if (ac == NULL || ac->err) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        lost(r, why);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->state = S_CONNECTING;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        lost(r, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
    struct sp_redis *r = arg;
    char why[300];

    if (err == EVUTIL_EAI_CANCEL)
        return; /* r may be gone */
    r->resolving = NULL;
    if (err != 0 || res == NULL) {
        snprintf(why, sizeof(why), "cannot resolve '%s': %s", r->opts.host,
                 evutil_gai_strerror(err));
        if (res)
            evutil_freeaddrinfo(res);
        lost(r, why);
        return;
    }
    const void *addr = res->ai_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    evutil_inet_ntop(res->ai_family, addr, r->ip, sizeof(r->ip));
    evutil_freeaddrinfo(res);
    open_tcp(r);
}

static void connect_now(struct sp_redis *r)
{
    struct evutil_addrinfo hints = {0};

    r->deadline_ms = sp_now_ms() + r->opts.connect_timeout_ms;
    r->state = S_RESOLVING;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    /* May answer at once (a numeric address, /etc/hosts): then it returns NULL. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(r->dns, r->opts.host, NULL, &hints, on_resolved, r);
    if (req != NULL && r->state == S_RESOLVING)
        r->resolving = req;
}

/* Connect deadline, command timeout, idle ping. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct sp_redis *r = arg;
    uint64_t now = sp_now_ms();
    char why[96];

    if ((r->state == S_RESOLVING || r->state == S_CONNECTING) && now >= r->deadline_ms) {
        snprintf(why, sizeof(why), "no connection within %llu ms",
                 (unsigned long long)r->opts.connect_timeout_ms);
        lost(r, why);
    } else if (r->state == S_UP && r->pending > 0 && now - r->progress_ms >= r->opts.timeout_ms) {
        snprintf(why, sizeof(why), "no answer within %llu ms",
                 (unsigned long long)r->opts.timeout_ms);
        lost(r, why);
    } else if (r->state == S_UP && r->opts.ping && r->pending == 0 &&
               now - r->progress_ms >= r->opts.timeout_ms / 2) {
        const char *ping[1] = {"PING"};
        if (send_argv(r, NULL, NULL, 1, ping, NULL) < 0)
            lost(r, "out of memory");
    }
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

struct sp_redis *sp_redis_new(struct event_base *base, struct evdns_base *dns,
                              const struct sp_redis_options *opts, const struct sp_redis_ops *ops,
                              void *ctx)
{
    struct sp_redis *r = calloc(1, sizeof(*r));
    uint64_t every = opts->timeout_ms / 4 < 50 ? 50 : opts->timeout_ms / 4;
    struct timeval tv = sp_timeval_ms(every);

    if (r == NULL)
        return NULL;
    r->base = base;
    r->dns = dns;
    r->opts = *opts;
    r->opts.host = strdup(opts->host);
    r->opts.username = opts->username ? strdup(opts->username) : NULL;
    r->opts.password = opts->password ? strdup(opts->password) : NULL;
    r->ops = ops;
    r->ctx = ctx;
    r->backoff_ms = BACKOFF_FIRST_MS;
    r->retry = evtimer_new(base, on_retry, r);
    r->watch = event_new(base, -1, EV_PERSIST, on_watch, r);
    if (r->opts.host == NULL || (opts->username && r->opts.username == NULL) ||
        (opts->password && r->opts.password == NULL) || r->retry == NULL || r->watch == NULL ||
        event_add(r->watch, &tv) < 0) {
        sp_redis_free(r);
        return NULL;
    }
    connect_now(r);
    return r;
}

void sp_redis_free(struct sp_redis *r)
{
    if (r == NULL)
        return;
    if (r->resolving != NULL)
        evdns_getaddrinfo_cancel(r->resolving);
    if (r->ac != NULL) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    if (r->retry)
        event_free(r->retry);
    if (r->watch)
        event_free(r->watch);
    free((char *)r->opts.host);
    free((char *)r->opts.username);
    free((char *)r->opts.password);
    free(r);
}

int sp_redis_set_auth(struct sp_redis *r, const char *username, const char *password)
{
    char *user = username ? strdup(username) : NULL, *pass = password ? strdup(password) : NULL;

    if ((username && user == NULL) || (password && pass == NULL)) {
        free(user);
        free(pass);
        return -1;
    }
    free((char *)r->opts.username);
    free((char *)r->opts.password);
    r->opts.username = user;
    r->opts.password = pass;
    return 0;
}

bool sp_redis_is_up(const struct sp_redis *r)
{
    return r != NULL && r->state == S_UP;
}

void sp_redis_reset(struct sp_redis *r, const char *why)
{
    if (r->state == S_UP || r->state == S_CONNECTING || r->state == S_RESOLVING)
        lost(r, why);
}

uint64_t sp_redis_connects(const struct sp_redis *r)
{
    return r->connects;
}

uint64_t sp_redis_losses(const struct sp_redis *r)
{
    return r->losses;
}
