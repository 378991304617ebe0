#include "app/app.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/authorize.h"
#include "core/clock.h"
#include "backend/poller.h"
#include "backend/webhooks.h"
#include "backend/ws_forward.h"
#include "http/proxy.h"
#include "http/server.h"
#include "net/curlm.h"
#include "net/listener.h"
#include "net/mailbox.h"
#include "metrics/metrics.h"
#include "net/stream.h"
#include "push/push.h"

#include "app/app-internal.h"

void app_mail_free(struct sp_mail *mail)
{
    free(mail);
}

/* A small mail that runs fn on a worker. */
struct call {
    struct sp_mail mail;
    struct worker *w;
    void (*fn)(struct worker *w, void *arg);
    void *arg;
};

static void call_run(struct sp_mail *mail)
{
    struct call *c = (struct call *)mail;
    c->fn(c->w, c->arg);
    free(c);
}

/* Runs fn(w, arg) on w's loop: now when that is this one (the main
 * loop only knows), else by mail. Returns 0 or -1 (out of memory). */
int app_call_on(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg)
{
    struct call *c = malloc(sizeof(*c));

    if (c == NULL)
        return -1;
    *c = (struct call){.w = w, .fn = fn, .arg = arg};
    sp_mailbox_post(w->mailbox, &c->mail, call_run, app_mail_free);
    return 0;
}

/* ---- connection caps ---------------------------------------------------------------- */

/* Every client socket of w: HTTP connections and the subscriber streams
 * they became are the engine's, tunnels the proxy's. */
static size_t worker_open(const struct worker *w)
{
    return sp_flusher_count(w->flusher) + sp_proxy_tunnels(w->proxy);
}

static size_t process_open(struct sp_app *app)
{
    size_t n = 0;

    for (unsigned i = 0; i < app->nworkers; i++)
        n += atomic_load(&app->workers[i].open);
    return n;
}

static void cap_clients(struct worker *w, bool tell_others);

static void recheck(struct worker *w, void *arg)
{
    (void)arg;
    cap_clients(w, false);
}

/* limits.max_connections is the process's: each worker pauses its own
 * socket when the sum over workers reaches it, and one that makes room
 * wakes the paused ones. */
static void cap_clients(struct worker *w, bool tell_others)
{
    struct sp_app *app = w->app;
    const struct sp_config *cfg = w->config;
    bool was = sp_listener_accepting(w->client_listener);

    /* Sequentially consistent: of two workers accepting at once, at least
     * one sees the other's count (x86 would otherwise let both miss it). */
    atomic_store(&w->open, worker_open(w));
    size_t total = process_open(app);
    /* A browser's EventSource waits out a stalled connect, but gives up for
     * good on an error status: so the backlog, never a 503. */
    sp_listener_cap(w->client_listener, total, cfg->limits.max_connections,
                    tell_others ? "limits.max_connections" : NULL);
    bool now = sp_listener_accepting(w->client_listener);
    if (w->client_listener != NULL && was != now)
        atomic_fetch_add(&app->paused, now ? -1 : 1);
    /* This one just paused (the others pause too), or there is room again
     * while some are paused (they resume). */
    bool tell = (was && !now && w->client_listener != NULL) ||
                (total < cfg->limits.max_connections && atomic_load(&app->paused) > 0);
    for (unsigned i = 0; tell_others && tell && i < app->nworkers; i++) {
        if (&app->workers[i] != w)
            app_call_on(&app->workers[i], recheck, NULL);
    }
}

static void update_accepting(struct worker *w)
{
    struct sp_app *app = w->app;

    cap_clients(w, true);
    if (w->index == 0) {
        sp_listener_cap(app->publish_listener, sp_flusher_count(app->publish_streams),
                        app->config->publish.max_connections, "publish.max_connections");
        if (app->admins != NULL)
            sp_listener_cap(app->admin_listener, sp_flusher_count(app->admin_streams),
                            app->config->metrics.max_connections, "metrics.max_connections");
    }
}

static void on_conn_gone(void *ctx)
{
    struct worker *w = ctx;

    if (!w->app->freeing)
        update_accepting(w);
}

/* ---- listeners ------------------------------------------------------------------------ */

static void on_accept(void *ctx, struct sp_listener *l, evutil_socket_t fd, struct sockaddr *peer,
                      int len)
{
    struct worker *w = ctx;
    struct sp_app *app = w->app;
    struct sp_http_server *server = l == w->client_listener      ? w->clients
                                    : l == app->publish_listener ? app->publishers
                                                                 : app->admins;

    if (sp_http_server_adopt(server, fd, peer, len) < 0)
        sp_log_error(app->log, "accept_failed", "could not set up a connection");
    atomic_fetch_add_explicit(&app->accepted, 1, memory_order_relaxed);
    update_accepting(w);
}

/* ---- memory after a storm of connections ---------------------------------------------------
 *
 * Thousands of clients connecting at once (a deploy, a network blip) leave
 * each worker's malloc arena with the freed requests and opening writes of
 * the storm between the small structs that stay, so RSS stays at the
 * storm's peak (measured: about 600 B more per subscriber with two workers
 * after 9,000 connections in a second). The main loop hands those pages back a
 * second after such a storm. */

#define TRIM_MS 1000
#define TRIM_AFTER_ACCEPTS 1000

static void trim(evutil_socket_t fd, short what, void *arg)
{
    struct sp_app *app = arg;
    unsigned long long now = atomic_load_explicit(&app->accepted, memory_order_relaxed);

    if (now - app->accepted_at_trim < TRIM_AFTER_ACCEPTS)
        return;
    app->accepted_at_trim = now;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

struct event_base *sp_app_base_new(void)
{
    return event_base_new();
}

static struct sp_http_limits http_limits(const struct sp_config *config)
{
    return (struct sp_http_limits){
        .max_header_size = config->limits.max_header_size,
        .max_headers = config->limits.max_headers,
        .max_body_size = config->limits.max_body_size,
        .header_timeout_ms = config->limits.header_timeout_ms,
        .body_timeout_ms = config->limits.body_timeout_ms,
        .idle_timeout_ms = config->limits.idle_timeout_ms,
        .max_age_ms = config->limits.max_connection_age_ms,
        .output_buffer = config->limits.proxy_buffer_size,
        .access_log = config->log.access,
    };
}

/* After w->push is made: GRIP holds go to it through the proxy's hook. */
static struct sp_proxy_options proxy_options(struct worker *w, const struct sp_config *config)
{
    void *hook_ctx = NULL;
    const struct sp_proxy_hook *hook = w->push ? sp_push_proxy_hook(w->push, &hook_ctx) : NULL;

    return (struct sp_proxy_options){
        .hook = hook,
        .hook_ctx = hook_ctx,
        .backend_url = config->backend.url,
        .connect_timeout_ms = config->backend.connect_timeout_ms,
        .response_timeout_ms = config->backend.timeout_ms,
        .preserve_host = config->backend.preserve_host,
        .buffer_size = config->limits.proxy_buffer_size,
        .keepalive = config->backend.keepalive,
        .keepalive_timeout_ms = config->backend.keepalive_timeout_ms,
        .keepalive_requests = config->backend.keepalive_requests,
        .body_timeout_ms = config->backend.body_timeout_ms,
        .tunnel_idle_ms = config->backend.tunnel_idle_timeout_ms,
        .request_buffer = config->backend.request_buffer,
        .trusted_proxies = (const char *const *)config->backend.trusted_proxies.items,
        .ntrusted_proxies = config->backend.trusted_proxies.count,
        .tunnel_gone = on_conn_gone,
        .tunnel_gone_ctx = w,
    };
}

/* ---- reloads ----------------------------------------------------------------------------- */

/* On w's loop: config is the reference the caller held for w, which now
 * keeps it in place of the one it had. */
static void reconfigure_worker(struct worker *w, const struct sp_config *config)
{
    const struct sp_http_limits limits = http_limits(config);
    const struct sp_proxy_options proxy = proxy_options(w, config);
    const struct sp_config *old = w->config;

    sp_http_server_set_limits(w->clients, &limits);
    if (sp_proxy_reconfigure(w->proxy, &proxy) < 0)
        sp_log_error(w->app->log, "reload",
                     "backend settings not applied (the old ones stay): out of memory, or %s "
                     "stopped resolving",
                     config->backend.url);
    sp_push_reconfigure(w->push, config);
    w->backend.config = config;
    w->config = config;
    update_accepting(w);
    sp_config_release(old);
}

/* A reload on its way to a worker: it holds the new configuration until
 * the worker takes it, or lets it go when the mail is dropped at exit. */
struct reconfig {
    struct sp_mail mail;
    struct worker *w;
    const struct sp_config *config;
};

static void reconfig_run(struct sp_mail *mail)
{
    struct reconfig *r = (struct reconfig *)mail;
    reconfigure_worker(r->w, r->config);
    free(r);
}

static void reconfig_drop(struct sp_mail *mail)
{
    struct reconfig *r = (struct reconfig *)mail;
    sp_config_release(r->config);
    free(r);
}

int sp_app_reconfigure(struct sp_app *app, const struct sp_config *config, char *err, size_t errlen)
{
    const struct sp_http_limits limits = http_limits(config);
    const struct sp_config *old = app->config;

    /* Checked before anything changes: a watched ConfigMap or a rotated
     * Secret reloads unattended, and must never leave a half-applied state. */
    if (sp_proxy_check_backend(config->backend.url, err, errlen) < 0)
        return -1;
    if (memcmp(&config->listen, &app->config->listen, sizeof(config->listen)) != 0 ||
        memcmp(&config->publish_listen, &app->config->publish_listen,
               sizeof(config->publish_listen)) != 0)
        sp_log_warn(app->log, "reload", "listen and publish_listen change only with a restart");
    if (config->workers != app->config->workers)
        sp_log_warn(app->log, "reload", "workers changes only with a restart");
    sp_http_server_set_limits(app->publishers, &limits);
    if (app->admins)
        sp_http_server_set_limits(app->admins, &limits);
    app->config = sp_config_hold(config);
    for (unsigned i = 1; i < app->nworkers; i++) {
        struct reconfig *r = malloc(sizeof(*r));
        if (r == NULL) {
            sp_log_error(app->log, "reload", "worker %u keeps its configuration: out of memory", i);
            continue;
        }
        *r = (struct reconfig){.w = &app->workers[i], .config = sp_config_hold(config)};
        sp_mailbox_post(r->w->mailbox, &r->mail, reconfig_run, reconfig_drop);
    }
    reconfigure_worker(app_main_worker(app), sp_config_hold(config));
    sp_push_shared_reconfigure(app->shared, config);
    sp_config_release(old);
    return 0;
}

/* ---- building ------------------------------------------------------------------------------ */

/* Each worker's loop and mailbox, before anything that runs on them. */
static int loops_new(struct sp_app *app, struct event_base *base, char *err, size_t errlen)
{
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct worker *w = &app->workers[i];
        w->app = app;
        w->index = i;
        w->own_base = i > 0;
        w->base = i == 0 ? base : sp_app_base_new();
        w->mailbox = w->base ? sp_mailbox_new(w->base) : NULL;
        if (w->mailbox == NULL) {
            snprintf(err, errlen, "cannot make an event loop");
            return -1;
        }
    }
    return 0;
}

/* What is process-wide in the push (the hub, presence, the engine), on the
 * main loop: made before any worker's push, freed after the last. */
static int shared_new(struct sp_app *app, char *err, size_t errlen)
{
    struct worker *m = app_main_worker(app);
    const struct sp_push_shared_env env = {m->base, m->mailbox, app->nworkers, app->config,
                                           app->log};

    if ((app->shared = sp_push_shared_new(&env)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int worker_new(struct sp_app *app, struct worker *w, char *err, size_t errlen)
{
    const struct sp_config *config = app->config;
    const struct sp_http_limits limits = http_limits(config);
    struct event_base *base = w->base;

    w->config = sp_config_hold(config);
    w->curlm = sp_curlm_new(base);
    w->flusher = sp_flusher_new(base, on_conn_gone, w);
    if (w->curlm != NULL && w->flusher != NULL) {
        const struct sp_push_worker pw = {base, w->curlm, w->mailbox, w->index, app->shared};
        w->push = sp_push_new(&pw, config, app->log);
    }
    const struct sp_proxy_options proxy = proxy_options(w, config);
    w->proxy = w->curlm && w->push ? sp_proxy_new(base, &proxy, app->log) : NULL;
    w->backend = (struct sp_backend){base, w->curlm, app->log, config, w->push};
    w->auth = sp_auth_new(&w->backend, w->index ? app_main_worker(app)->auth : NULL, app->log);
    w->tokens = sp_tokens_new(&w->backend, app->log);
    w->clients = w->flusher
                     ? sp_http_server_new(base, w->flusher, &limits, app_handle_client, w, app->log)
                     : NULL;
    if (w->proxy == NULL || w->push == NULL || w->auth == NULL || w->tokens == NULL ||
        w->clients == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sp_push_set_forwarder(w->push, &sp_ws_forward_ops, &w->backend);
    return 0;
}

/* The client socket of every worker: with several, each its own socket on
 * the same address (SO_REUSEPORT), the kernel spreading connections. An
 * ordinary bind first proves the address is free (and makes port 0
 * concrete): another process's SO_REUSEPORT socket would otherwise be
 * joined silently and take a share of the clients. */
static int listen_clients(struct sp_app *app, char *err, size_t errlen)
{
    struct sp_address addr = app->config->listen;
    struct worker *h = app_main_worker(app);

    if (app->nworkers == 1) {
        h->client_listener = sp_listener_new(h->base, &addr, on_accept, h, app->log, err, errlen);
        return h->client_listener ? 0 : -1;
    }
    struct sp_listener *probe =
        sp_listener_new(h->base, &addr, on_accept, h, app->log, err, errlen);
    if (probe == NULL)
        return -1;
    int rc = sp_listener_address(probe, &addr);
    sp_listener_free(probe);
    if (rc < 0)
        addr = app->config->listen;
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct worker *w = &app->workers[i];
        w->client_listener =
            sp_listener_new_shared(w->base, &addr, on_accept, w, app->log, err, errlen);
        if (w->client_listener == NULL)
            return -1;
    }
    return 0;
}

static int process_wide_new(struct sp_app *app, char *err, size_t errlen)
{
    struct worker *w = app_main_worker(app);
    const struct sp_config *config = app->config;
    const struct sp_http_limits limits = http_limits(config);

    app->polls = sp_polls_new(&w->backend, w->mailbox);
    app->publish_streams = sp_flusher_new(w->base, on_conn_gone, w);
    app->publishers = app->publish_streams
                          ? sp_http_server_new(w->base, app->publish_streams, &limits,
                                               app_handle_publisher, w, app->log)
                          : NULL;
    if (app->polls == NULL || app->publishers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sp_push_shared_set_watch(app->shared, sp_polls_watch, app->polls);
    if (config->webhooks.enabled) {
        if ((app->webhooks = sp_webhooks_new(&w->backend)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        sp_push_shared_set_events(app->shared, sp_webhooks_event, app->webhooks);
    }
    app->publish_listener =
        sp_listener_new(w->base, &config->publish_listen, on_accept, w, app->log, err, errlen);
    if (app->publish_listener == NULL)
        return -1;
    if (config->metrics.has_listen) {
        app->admin_streams = sp_flusher_new(w->base, on_conn_gone, w);
        app->admins = app->admin_streams ? sp_http_server_new(w->base, app->admin_streams, &limits,
                                                              app_handle_admin, w, app->log)
                                         : NULL;
        app->admin_listener = app->admins ? sp_listener_new(w->base, &config->metrics.listen,
                                                            on_accept, w, app->log, err, errlen)
                                          : NULL;
        if (app->admin_listener == NULL)
            return -1;
    }
    return 0;
}

unsigned sp_app_workers(const struct sp_app *app)
{
    return app->nworkers;
}

struct sp_app *sp_app_new(struct event_base *base, const struct sp_config *config,
                          unsigned nworkers, const struct sp_log *log, char *err, size_t errlen)
{
    struct sp_app *app = calloc(1, sizeof(*app));

    if (app == NULL ||
        (app->workers = calloc(nworkers ? nworkers : 1, sizeof(struct worker))) == NULL) {
        free(app);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    app->config = sp_config_hold(config);
    app->log = log;
    app->nworkers = nworkers ? nworkers : 1;
    if (loops_new(app, base, err, errlen) < 0 || shared_new(app, err, errlen) < 0)
        goto fail;
    for (unsigned i = 0; i < app->nworkers; i++) {
        if (worker_new(app, &app->workers[i], err, errlen) < 0)
            goto fail;
    }
    if (process_wide_new(app, err, errlen) < 0 || listen_clients(app, err, errlen) < 0)
        goto fail;
    struct timeval every = sp_timeval_ms(TRIM_MS);
    app->trimmer = event_new(base, -1, EV_PERSIST, trim, app);
    if (app->trimmer == NULL || event_add(app->trimmer, &every) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    atomic_store(&app->ready, true);
    return app;

fail:
    sp_app_free(app);
    return NULL;
}

/* ---- threads -------------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_dispatch(w->base);
    return NULL;
}

int sp_app_start(struct sp_app *app, char *err, size_t errlen)
{
    for (unsigned i = 1; i < app->nworkers; i++) {
        struct worker *w = &app->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start worker %u: %s", i, strerror(rc));
            return -1;
        }
        w->started = true;
    }
    return 0;
}

static void stop_loop(struct worker *w, void *arg)
{
    (void)arg;
    event_base_loopexit(w->base, NULL);
}

/* ---- draining -------------------------------------------------------------------------------- */

static void worker_drained(struct worker *h, void *arg)
{
    struct sp_app *app = h->app;

    (void)arg;
    if (++app->workers_drained == app->nworkers && app->drained)
        app->drained(app->drained_ctx);
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct sp_app *app = w->app;
    size_t open = worker_open(w) + (w->index == 0 ? sp_flusher_count(app->publish_streams) : 0);

    if (open > 0 && sp_now_ms() < w->drain_deadline)
        return;
    if (open > 0)
        sp_log_warn(app->log, "drain_timeout",
                    "worker %u: %zu connections left at the end of shutdown_grace", w->index, open);
    event_del(w->drain_check);
    if (w->index == 0 || app_call_on(app_main_worker(app), worker_drained, NULL) < 0)
        worker_drained(app_main_worker(app), NULL);
}

static void drain_worker(struct worker *w, void *arg)
{
    struct timeval tick = {0, 100 * 1000};
    uint64_t grace = w->config->shutdown_grace_ms;

    (void)arg;
    w->drain_deadline = sp_now_ms() + grace;
    /* Closed listeners make new connections fail fast: a browser's
     * EventSource retries a refused connection, but gives up on a 503. */
    sp_listener_free(w->client_listener);
    w->client_listener = NULL;
    sp_push_drain(w->push, grace);
    sp_http_server_drain(w->clients);
    w->drain_check = event_new(w->base, -1, EV_PERSIST, drain_check, w);
    if (w->drain_check == NULL || event_add(w->drain_check, &tick) < 0)
        drain_check(-1, 0, w);
}

void sp_app_drain(struct sp_app *app, void (*done)(void *ctx), void *ctx)
{
    if (app->draining)
        return;
    app->draining = true;
    atomic_store(&app->shed_at_ms, 0); /* stopping now: alive until the end */
    atomic_store(&app->ready, false);
    app->drained = done;
    app->drained_ctx = ctx;
    sp_listener_free(app->publish_listener);
    app->publish_listener = NULL;
    sp_log_info(app->log, "draining", "sending the subscribers of %u workers away over %llu ms",
                app->nworkers, (unsigned long long)app->config->shutdown_grace_ms);
    sp_http_server_drain(app->publishers);
    for (unsigned i = 1; i < app->nworkers; i++) {
        if (app_call_on(&app->workers[i], drain_worker, NULL) < 0)
            worker_drained(app_main_worker(app), NULL); /* out of memory: it is cut at exit */
    }
    drain_worker(app_main_worker(app), NULL);
}

/* ---- freeing --------------------------------------------------------------------------------- */

/* Every loop has stopped: what a worker owns goes, its mailbox last (mail
 * other workers' teardown sends it is dropped there). */
static void worker_free_connections(struct worker *w)
{
    if (w->drain_check)
        event_free(w->drain_check);
    w->drain_check = NULL;
    sp_listener_free(w->client_listener);
    w->client_listener = NULL;
}

static void stop_threads(struct sp_app *app)
{
    for (unsigned i = 1; i < app->nworkers; i++) {
        struct worker *w = &app->workers[i];
        if (!w->started)
            continue;
        if (app_call_on(w, stop_loop, NULL) < 0)
            event_base_loopbreak(w->base); /* not thread-safe, but nothing else is left */
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void sp_app_free(struct sp_app *app)
{
    if (app == NULL)
        return;
    stop_threads(app);
    app->freeing = true;
    if (app->trimmer)
        event_free(app->trimmer);
    for (unsigned i = 0; i < app->nworkers; i++)
        worker_free_connections(&app->workers[i]);
    sp_listener_free(app->publish_listener);
    sp_listener_free(app->admin_listener);
    app->publish_listener = app->admin_listener = NULL;
    /* The engine first (its operations in flight call back into the
     * pollers), then the pollers, subscriptions, connections (closing one
     * ends its proxied transfer or authorization check), then what they
     * used; the shared part (the hub) after every push. */
    if (app->shared != NULL) {
        sp_push_shared_stop_engine(app->shared);
        sp_push_shared_set_watch(app->shared, NULL, NULL);
        sp_push_shared_set_events(app->shared, NULL, NULL);
    }
    sp_polls_free(app->polls);
    sp_webhooks_free(app->webhooks);
    for (unsigned i = app->nworkers; i-- > 0;) {
        struct worker *w = &app->workers[i];
        sp_push_free(w->push);
        w->push = NULL;
        sp_http_server_free(w->clients);
        w->clients = NULL;
        if (i == 0) {
            sp_http_server_free(app->publishers);
            sp_http_server_free(app->admins);
            app->publishers = app->admins = NULL;
            sp_flusher_free(app->publish_streams);
            sp_flusher_free(app->admin_streams);
            app->publish_streams = app->admin_streams = NULL;
        }
    }
    for (unsigned i = app->nworkers; i-- > 0;) {
        struct worker *w = &app->workers[i];
        sp_auth_free(w->auth);
        sp_tokens_free(w->tokens);
        sp_flusher_free(w->flusher);
        sp_proxy_free(w->proxy);
        sp_curlm_free(w->curlm);
    }
    sp_push_shared_free(app->shared); /* after every push: the hub they held ports on */
    for (unsigned i = 0; i < app->nworkers; i++)
        sp_mailbox_free(app->workers[i].mailbox);
    for (unsigned i = 0; i < app->nworkers; i++) {
        if (app->workers[i].own_base && app->workers[i].base)
            event_base_free(app->workers[i].base);
        sp_config_release(app->workers[i].config);
    }
    sp_config_release(app->config);
    free(app->workers);
    free(app);
}
