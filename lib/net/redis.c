#include "net/redis.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/clock.h"

#define BACKOFF_FIRST_MS 100

enum state {
    S_WAITING,    /* for the reconnect timer */
    S_RESOLVING,  /* evdns */
    S_CONNECTING, /* TCP (and TLS), then AUTH and SELECT */
    S_UP,
};

/* A command waiting for its reply: replies come in the order sent. */
struct pending {
    struct pending *next;
    redisCallbackFn *fn;
    void *privdata;
};

struct sp_redis {
    struct event_base *base;
    struct evdns_base *dns;
    struct sp_redis_options opts;
    const struct sp_redis_ops *ops;
    void *ctx;
    enum state state;
    SSL_CTX *tls; /* NULL: plain TCP */
    struct bufferevent *bev;
    redisReader *reader;
    struct pending *head, **tail;
    /* A subscribed connection's messages (and its SUBSCRIBE and
     * UNSUBSCRIBE confirmations) go to the last SUBSCRIBE's callback. */
    redisCallbackFn *push_fn;
    void *push_arg;
    bool reading;    /* inside on_read: a loss or a free waits for its end */
    bool free_later; /* sp_redis_free was called while reading */
    struct bufferevent *dead_bev;
    redisReader *dead_reader;
    struct evdns_getaddrinfo_request *resolving;
    struct sockaddr_storage addr;
    ev_socklen_t addrlen;
    struct event *retry;  /* reconnect after the backoff */
    struct event *watch;  /* timeouts and idle pings */
    uint64_t deadline_ms; /* of the connect in progress */
    uint64_t progress_ms; /* last reply, or when the oldest pending command was sent */
    unsigned pending;     /* commands without a reply */
    unsigned handshake;   /* AUTH / SELECT replies still expected */
    uint64_t backoff_ms;
    bool confirmed; /* confirm_target: the next attempt may go ahead */
    bool held;      /* confirm_target: an attempt was due before that */
    uint64_t connects, losses;
    char ip[INET6_ADDRSTRLEN];
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

static void free_connection(struct bufferevent *bev, redisReader *reader)
{
    if (bev != NULL)
        bufferevent_free(bev); /* closes the socket, and frees its SSL */
    if (reader != NULL)
        redisReaderFree(reader);
}

/* Closes the connection (after the read in progress, if any) and runs the
 * callbacks of the commands it carried with a NULL reply. */
static void drop_connection(struct sp_redis *r)
{
    struct pending *p;

    if (r->reading) {
        r->dead_bev = r->bev;
        r->dead_reader = r->reader;
        if (r->bev != NULL)
            bufferevent_disable(r->bev, EV_READ | EV_WRITE);
    } else {
        free_connection(r->bev, r->reader);
    }
    r->bev = NULL;
    r->reader = NULL;
    r->push_fn = NULL;
    r->pending = 0;
    r->handshake = 0;
    while ((p = r->head) != NULL) {
        r->head = p->next;
        if (p->fn != NULL)
            p->fn(NULL, NULL, p->privdata);
        free(p);
    }
    r->tail = &r->head;
}

/* Drops the connection (whatever stage it is in) and schedules the next. */
static void lost(struct sp_redis *r, const char *why)
{
    bool was_up = r->state == S_UP;

    if (r->resolving != NULL) {
        struct evdns_getaddrinfo_request *req = r->resolving;
        r->resolving = NULL;
        evdns_getaddrinfo_cancel(req);
    }
    r->state = S_WAITING;
    r->confirmed = false; /* an answer from before the loss does not count */
    drop_connection(r);
    if (was_up)
        r->losses++;
    uint64_t ms = next_backoff(r);
    struct timeval tv = sp_timeval_ms(ms);
    evtimer_add(r->retry, &tv);
    r->ops->down(r->ctx, why, ms);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct sp_redis *r = arg;

    (void)fd;
    (void)what;
    if (r->opts.confirm_target && !r->confirmed) {
        r->held = true; /* until sp_redis_set_target */
        return;
    }
    connect_now(r);
}

/* ---- commands and replies ------------------------------------------------------------------ */

static bool is_push(const redisReply *rep)
{
    static const char *const kinds[] = {"message",  "subscribe",  "unsubscribe",
                                        "pmessage", "psubscribe", "punsubscribe"};

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return false;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcasecmp(rep->element[0]->str, kinds[i]) == 0)
            return true;
    return false;
}

static void dispatch(struct sp_redis *r, redisReply *rep)
{
    r->progress_ms = sp_now_ms();
    if (r->push_fn != NULL && is_push(rep)) {
        r->push_fn(NULL, rep, r->push_arg);
        return;
    }
    struct pending *p = r->head;
    if (p == NULL) {
        lost(r, "Redis sent a reply to no command");
        return;
    }
    r->head = p->next;
    if (r->head == NULL)
        r->tail = &r->head;
    r->pending--;
    if (p->fn != NULL)
        p->fn(NULL, rep, p->privdata);
    free(p);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sp_redis *r = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    redisReader *reader = r->reader;
    struct evbuffer_iovec v;
    void *reply = NULL;

    if (bev != r->bev || reader == NULL)
        return;
    while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
        if (redisReaderFeed(reader, v.iov_base, v.iov_len) != REDIS_OK) {
            lost(r, "out of memory");
            return;
        }
        evbuffer_drain(in, v.iov_len);
    }
    r->reading = true;
    while (r->reader == reader && !r->free_later) {
        if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
            lost(r, reader->errstr[0] ? reader->errstr : "unreadable reply");
            break;
        }
        if (reply == NULL)
            break;
        dispatch(r, reply);
        freeReplyObject(reply);
    }
    r->reading = false;
    free_connection(r->dead_bev, r->dead_reader);
    r->dead_bev = NULL;
    r->dead_reader = NULL;
    if (r->free_later)
        sp_redis_free(r);
}

static int send_argv(struct sp_redis *r, redisCallbackFn *fn, void *privdata, int argc,
                     const char **argv, const size_t *argvlen)
{
    /* Their replies, and every message after, are the subscription's. */
    bool subscription = argc > 0 && (strcasecmp(argv[0], "SUBSCRIBE") == 0 ||
                                     strcasecmp(argv[0], "UNSUBSCRIBE") == 0);
    struct pending *p = subscription ? NULL : malloc(sizeof(*p));
    char *cmd;
    int len;

    if ((!subscription && p == NULL) || r->bev == NULL) {
        free(p);
        return -1;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        free(p);
        return -1;
    }
    int rc = bufferevent_write(r->bev, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc < 0) {
        free(p);
        return -1;
    }
    if (subscription) {
        r->push_fn = fn;
        r->push_arg = privdata;
        return 0;
    }
    *p = (struct pending){NULL, fn, privdata};
    *r->tail = p;
    r->tail = &p->next;
    if (r->pending++ == 0)
        r->progress_ms = sp_now_ms();
    return 0;
}

int sp_redis_command(struct sp_redis *r, redisCallbackFn *fn, void *privdata, int argc,
                     const char **argv, const size_t *argvlen)
{
    if (r == NULL || r->state != S_UP || r->bev == NULL)
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

    (void)ac;
    if (rep == NULL)
        return; /* lost meanwhile; already handled */
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "Redis refused the handshake: %s", rep->str);
        lost(r, why);
        return;
    }
    if (--r->handshake == 0)
        became_up(r);
}

/* ROLE's answer: a primary says "master"; a replica (a primary that came
 * back after a failover as one) is never written to. */
static void on_role(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_redis *r = arg;
    redisReply *rep = reply;
    char why[160];

    (void)ac;
    if (rep == NULL)
        return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "master") != 0) {
        snprintf(why, sizeof(why), "not a primary (ROLE: %s)",
                 rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                         rep->element[0]->type == REDIS_REPLY_STRING
                     ? rep->element[0]->str
                     : "unreadable");
        lost(r, why);
        return;
    }
    if (--r->handshake == 0)
        became_up(r);
}

static void handshake(struct sp_redis *r)
{
    char db[24];
    const char *auth[3] = {"AUTH", r->opts.username, r->opts.password};
    const char *select[2] = {"SELECT", db};
    int keepalive = 1;

    setsockopt(bufferevent_getfd(r->bev), SOL_SOCKET, SO_KEEPALIVE, &keepalive, sizeof(keepalive));
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
    if (r->opts.require_primary) {
        const char *role[1] = {"ROLE"};
        if (send_argv(r, on_role, r, 1, role, NULL) < 0)
            goto fail;
        r->handshake++;
    }
    /* Over TLS 1.3 a server refuses a client certificate only after the
     * client's side of the handshake: one round trip before "up". */
    if (r->handshake == 0 && r->tls != NULL) {
        const char *ping[1] = {"PING"};
        if (send_argv(r, on_handshake, r, 1, ping, NULL) < 0)
            goto fail;
        r->handshake++;
    }
    if (r->handshake == 0)
        became_up(r);
    return;
fail:
    lost(r, "out of memory");
}

/* Why a TLS connection failed, as OpenSSL says it. */
static void tls_failure(struct bufferevent *bev, char *why, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    unsigned long e = bufferevent_get_openssl_error(bev);
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (verify != X509_V_OK)
        snprintf(why, size, "TLS: the server's certificate is refused: %s",
                 X509_verify_cert_error_string(verify));
    else if (e != 0 && ERR_reason_error_string(e) != NULL)
        snprintf(why, size, "TLS: %s", ERR_reason_error_string(e));
    else
        snprintf(why, size, "TLS: the server closed the connection during the handshake");
    while (bufferevent_get_openssl_error(bev) != 0)
        ; /* the rest of the queue belongs to this failure too */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sp_redis *r = arg;
    char why[300];

    if (bev != r->bev)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        handshake(r);
        return;
    }
    if (r->tls != NULL && r->state == S_CONNECTING)
        tls_failure(bev, why, sizeof(why));
    else if (what & BEV_EVENT_ERROR)
        snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else
        snprintf(why, sizeof(why), "connection closed by Redis");
    lost(r, why);
}

/* A TLS session for the host: its name sent (SNI) and checked against the
 * certificate, unless opts say otherwise. */
static SSL *tls_session(struct sp_redis *r)
{
    const char *name = r->opts.tls_server_name ? r->opts.tls_server_name : r->opts.host;
    struct in6_addr ip;
    bool is_ip = inet_pton(AF_INET, name, &ip) == 1 || inet_pton(AF_INET6, name, &ip) == 1;
    SSL *ssl = SSL_new(r->tls);

    if (ssl == NULL)
        return NULL;
    if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        goto fail;
    if (r->opts.tls_verify_hostname) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1 : SSL_set1_host(ssl, name) != 1)
            goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

static void open_connection(struct sp_redis *r)
{
    SSL *ssl = NULL;

    if (r->tls != NULL && (ssl = tls_session(r)) == NULL) {
        lost(r, "TLS: cannot make a session for the server's name");
        return;
    }
    r->bev = ssl ? bufferevent_openssl_socket_new(r->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                  BEV_OPT_CLOSE_ON_FREE)
                 : bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
    r->reader = redisReaderCreate();
    if (r->bev == NULL || r->reader == NULL) {
        if (r->bev == NULL)
            SSL_free(ssl);
        lost(r, "out of memory");
        return;
    }
    r->state = S_CONNECTING;
    bufferevent_setcb(r->bev, on_read, NULL, on_event, r);
    bufferevent_enable(r->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&r->addr, (int)r->addrlen) < 0 &&
        r->state == S_CONNECTING) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        lost(r, why);
    }
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
    struct sp_redis *r = arg;
    char why[300];

    if (err == EVUTIL_EAI_CANCEL)
        return; /* r may be gone */
    r->resolving = NULL;
    if (err != 0 || res == NULL || res->ai_addrlen > sizeof(r->addr)) {
        snprintf(why, sizeof(why), "cannot resolve '%s': %s", r->opts.host,
                 evutil_gai_strerror(err));
        if (res)
            evutil_freeaddrinfo(res);
        lost(r, why);
        return;
    }
    memcpy(&r->addr, res->ai_addr, res->ai_addrlen);
    r->addrlen = (ev_socklen_t)res->ai_addrlen;
    if (res->ai_family == AF_INET6)
        ((struct sockaddr_in6 *)&r->addr)->sin6_port = htons((uint16_t)r->opts.port);
    else
        ((struct sockaddr_in *)&r->addr)->sin_port = htons((uint16_t)r->opts.port);
    const void *addr = res->ai_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    evutil_inet_ntop(res->ai_family, addr, r->ip, sizeof(r->ip));
    evutil_freeaddrinfo(res);
    open_connection(r);
}

static void connect_now(struct sp_redis *r)
{
    struct evutil_addrinfo hints = {0};

    if (r->opts.host == NULL) {
        r->state = S_WAITING; /* until sp_redis_set_target */
        return;
    }
    r->confirmed = false; /* one answer, one attempt */
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

/* The TLS settings every connection of r shares: the server's certificate
 * verified against the CA file (else the system's CAs), a client
 * certificate when given, TLS 1.2 at least. */
static SSL_CTX *tls_context(const struct sp_redis_options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if ((o->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, o->tls_ca_file, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx)) != 1)
        goto fail;
    if (o->tls_cert_file != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, o->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1))
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static bool copy_text(const char **slot, const char *text)
{
    *slot = text ? strdup(text) : NULL;
    return text == NULL || *slot != NULL;
}

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
    r->ops = ops;
    r->ctx = ctx;
    r->tail = &r->head;
    r->backoff_ms = BACKOFF_FIRST_MS;
    bool copied = copy_text(&r->opts.host, opts->host) &&
                  copy_text(&r->opts.username, opts->username) &&
                  copy_text(&r->opts.password, opts->password) &&
                  copy_text(&r->opts.tls_server_name, opts->tls_server_name);
    r->opts.tls_ca_file = r->opts.tls_cert_file = r->opts.tls_key_file = NULL; /* read now */
    r->retry = evtimer_new(base, on_retry, r);
    r->watch = event_new(base, -1, EV_PERSIST, on_watch, r);
    if (!copied || r->retry == NULL || r->watch == NULL ||
        (opts->tls && (r->tls = tls_context(opts)) == NULL) || event_add(r->watch, &tv) < 0) {
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
    if (r->reading) {
        /* From a reply's callback: the read's end frees r. */
        r->free_later = true;
        r->state = S_WAITING;
        drop_connection(r);
        return;
    }
    if (r->resolving != NULL)
        evdns_getaddrinfo_cancel(r->resolving);
    drop_connection(r);
    if (r->retry)
        event_free(r->retry);
    if (r->watch)
        event_free(r->watch);
    SSL_CTX_free(r->tls);
    free((char *)r->opts.host);
    free((char *)r->opts.username);
    free((char *)r->opts.password);
    free((char *)r->opts.tls_server_name);
    free(r);
}

int sp_redis_set_target(struct sp_redis *r, const char *host, unsigned port)
{
    char why[300];

    if (r->opts.host != NULL && strcmp(r->opts.host, host) == 0 && r->opts.port == port) {
        r->confirmed = true;
        if (r->held) {
            r->held = false;
            connect_now(r);
        }
        return 0;
    }
    char *copy = strdup(host);
    if (copy == NULL)
        return -1;
    free((char *)r->opts.host);
    r->opts.host = copy;
    r->opts.port = port;
    r->backoff_ms = BACKOFF_FIRST_MS;
    r->held = false;
    if (r->state != S_WAITING) {
        snprintf(why, sizeof(why), "the server is now %s:%u", host, port);
        lost(r, why);
        r->confirmed = true;
    } else if (!evtimer_pending(r->retry, NULL)) {
        connect_now(r); /* had none yet, or one was held */
    } else {
        r->confirmed = true;
    }
    return 0;
}

void sp_redis_target(const struct sp_redis *r, char *out, size_t size)
{
    bool v6 = r->opts.host != NULL && strchr(r->opts.host, ':') != NULL;

    snprintf(out, size, "%s%s%s:%u", v6 ? "[" : "", r->opts.host ? r->opts.host : "", v6 ? "]" : "",
             r->opts.port);
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
