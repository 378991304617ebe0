#include "app/app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/authorize.h"
#include "backend/poller.h"
#include "backend/ws_forward.h"
#include "http/proxy.h"
#include "http/server.h"
#include "net/curlm.h"
#include "net/listener.h"
#include "metrics/metrics.h"
#include "net/stream.h"
#include "push/push.h"

struct sp_app {
    struct event_base *base;
    const struct sp_config *config;
    const struct sp_log *log;
    struct sp_curlm *curlm;
    struct sp_proxy *proxy;
    struct sp_flusher *flusher;
    struct sp_push *push;
    struct sp_backend backend; /* what the backend modules share */
    struct sp_auth *auth;
    struct sp_polls *polls;
    struct sp_http_server *clients;
    struct sp_http_server *publishers;
    /* Each listener has its own cap, so clients at theirs never starve
     * publishing or the probes. */
    struct sp_listener *client_listener;
    struct sp_listener *publish_listener;
    struct sp_listener *admin_listener; /* metrics.listen, optional */
    struct sp_http_server *admins;
    bool ready;
    /* draining */
    struct event *drain_check;
    uint64_t drain_deadline;
    void (*drained)(void *ctx);
    void *drained_ctx;
};

/* ---- connection caps ---------------------------------------------------------------- */

static size_t open_connections(const struct sp_app *app)
{
    return sp_http_server_connections(app->clients) + sp_http_server_connections(app->publishers) +
           sp_flusher_count(app->flusher);
}

static void update_accepting(struct sp_app *app)
{
    const struct sp_config *cfg = app->config;

    /* A browser's EventSource waits out a stalled connect, but gives up for
     * good on an error status: so the backlog, never a 503. */
    sp_listener_cap(app->client_listener,
                    sp_http_server_connections(app->clients) + sp_flusher_count(app->flusher),
                    cfg->limits.max_connections, "limits.max_connections");
    sp_listener_cap(app->publish_listener, sp_http_server_connections(app->publishers),
                    cfg->publish.max_connections, "publish.max_connections");
    if (app->admins != NULL)
        sp_listener_cap(app->admin_listener, sp_http_server_connections(app->admins),
                        cfg->metrics.max_connections, "metrics.max_connections");
}

static void on_conn_gone(void *ctx)
{
    update_accepting(ctx);
}

/* ---- request handlers ---------------------------------------------------------------- */

static bool serve_health(struct sp_app *app, struct sp_http_conn *conn,
                         const struct sp_http_request *req)
{
    bool live = sp_slice_eq(req->path, app->config->health.liveness_path);
    bool ready = sp_slice_eq(req->path, app->config->health.readiness_path);

    if (!live && !ready)
        return false;
    if (!sp_slice_eq(req->method, "GET") && !sp_slice_eq(req->method, "HEAD")) {
        sp_http_respond_not_allowed(conn, "GET, HEAD", "health endpoints answer GET and HEAD");
        return true;
    }
    if (live || (app->ready && (app->push == NULL || sp_push_engine_ready(app->push)))) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        sp_http_respond(conn, 200, "application/json", ok, sizeof(ok) - 1);
    } else {
        sp_http_respond_error(conn, 503, "not ready");
    }
    return true;
}

static void serve_metrics(struct sp_app *app, struct sp_http_conn *conn)
{
    struct evbuffer *out = evbuffer_new();
    struct evbuffer *headers = evbuffer_new();
    const struct sp_proxy_stats *px = sp_proxy_stats(app->proxy);
    static const char *const classes[] = {"failed", "1xx", "2xx", "3xx", "4xx", "5xx"};
    char labels[48];

    if (out == NULL || headers == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        goto done;
    }
    sp_metric_head(out, "sidepush_connections", "gauge",
                   "Open connections, by listener (subscribers after their head: streams).");
    sp_metric_value(out, "sidepush_connections", "listener=\"client\"",
                    (double)sp_http_server_connections(app->clients));
    sp_metric_value(out, "sidepush_connections", "listener=\"publish\"",
                    (double)sp_http_server_connections(app->publishers));
    sp_metric_value(out, "sidepush_connections", "listener=\"stream\"",
                    (double)sp_flusher_count(app->flusher));
    sp_push_metrics(app->push, out);
    sp_polls_metrics(app->polls, out);
    sp_metric_head(out, "sidepush_proxy_requests_total", "counter",
                   "Requests proxied to the backend, by status class.");
    for (int i = 0; i < 6; i++) {
        snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
        sp_metric_value(out, "sidepush_proxy_requests_total", labels, (double)px->by_class[i]);
    }
    sp_metric_histogram(out, "sidepush_proxy_request_duration_seconds",
                        "Proxied requests, start to end of response.", &px->latency);
    sp_metric_one(out, "sidepush_process_open_fds", "gauge", "Open file descriptors.",
                  (double)sp_process_open_fds());
    sp_metric_one(out, "sidepush_process_resident_memory_bytes", "gauge", "Resident memory.",
                  (double)sp_process_rss_bytes());
    sp_metric_one(out, "sidepush_ready", "gauge", "1 while ready to serve.", app->ready ? 1 : 0);
    evbuffer_add_printf(headers, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                 "Cache-Control: no-store\r\n");
    sp_http_begin(conn, 200, NULL, headers, (int64_t)evbuffer_get_length(out));
    sp_http_write_buffer(conn, out);
    sp_http_finish(conn);
done:
    if (out)
        evbuffer_free(out);
    if (headers)
        evbuffer_free(headers);
}

/* A client allowed on a route (by forward-auth, or with none configured). */
static void subscribe(void *ctx, const struct sp_route_config *route,
                      const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                      struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct sp_app *app = ctx;

    if (route->has_poll)
        sp_polls_subscribe(app->polls, route, caps, conn, req);
    else
        sp_push_subscribe(app->push, route, spec, conn, req);
}

static bool serve_route(struct sp_app *app, struct sp_http_conn *conn,
                        const struct sp_http_request *req)
{
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];

    for (size_t i = 0; i < app->config->nroutes; i++) {
        const struct sp_route_config *r = &app->config->routes[i];
        if (!sp_tmpl_match(r->tmpl, req->path.ptr, req->path.len, caps))
            continue;
        char channel[4096];
        const char *spec = channel;
        /* For a poll route, the backend is asked about the path it polls. */
        const char *tmpl = r->has_poll ? r->poll.url : r->subscribe.channel;
        if (sp_tmpl_expand(r->tmpl, tmpl, caps, channel, sizeof(channel)) < 0) {
            sp_http_respond_error(conn, 400, "channel name too long");
            return true;
        }
        if (r->has_authorize && !sp_slice_eq(req->method, "OPTIONS"))
            sp_auth_check(app->auth, r, caps, spec, conn, req, subscribe, app);
        else
            subscribe(app, r, caps, spec, conn, req);
        return true;
    }
    return false;
}

static void grip_hold(void *ctx, struct sp_http_conn *conn, const struct sp_grip_hold *hold)
{
    struct sp_app *app = ctx;
    sp_push_grip_hold(app->push, conn, hold);
}

static void handle_client(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct sp_app *app = ctx;

    if (!app->config->metrics.has_listen && sp_slice_eq(req->path, app->config->metrics.path) &&
        (sp_slice_eq(req->method, "GET") || sp_slice_eq(req->method, "HEAD"))) {
        serve_metrics(app, conn);
        return;
    }
    if (serve_health(app, conn, req) || serve_route(app, conn, req))
        return;
    sp_proxy_handle(app->proxy, conn, req);
}

/* The admin listener: metrics and health only. */
static void handle_admin(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct sp_app *app = ctx;

    if (sp_slice_eq(req->path, app->config->metrics.path) &&
        (sp_slice_eq(req->method, "GET") || sp_slice_eq(req->method, "HEAD"))) {
        serve_metrics(app, conn);
        return;
    }
    if (!serve_health(app, conn, req))
        sp_http_respond_error(conn, 404, "the admin listener serves metrics and health only");
}

static void handle_publisher(void *ctx, struct sp_http_conn *conn,
                             const struct sp_http_request *req)
{
    struct sp_app *app = ctx;
    sp_push_publish_request(app->push, conn, req);
}

/* ---- listeners ------------------------------------------------------------------------ */

static void on_accept(void *ctx, struct sp_listener *l, evutil_socket_t fd, struct sockaddr *peer,
                      int len)
{
    struct sp_app *app = ctx;
    struct sp_http_server *server = l == app->client_listener    ? app->clients
                                    : l == app->publish_listener ? app->publishers
                                                                 : app->admins;

    if (sp_http_server_adopt(server, fd, peer, len) < 0)
        sp_log_error(app->log, "accept_failed", "could not set up a connection");
    update_accepting(app);
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
        .idle_timeout_ms = config->limits.idle_timeout_ms,
        .output_buffer = config->limits.proxy_buffer_size,
        .access_log = config->log.access,
    };
}

static struct sp_proxy_options proxy_options(struct sp_app *app, const struct sp_config *config)
{
    return (struct sp_proxy_options){
        .grip = grip_hold,
        .grip_ctx = app,
        .backend_url = config->backend.url,
        .connect_timeout_ms = config->backend.connect_timeout_ms,
        .response_timeout_ms = config->backend.timeout_ms,
        .preserve_host = config->backend.preserve_host,
        .buffer_size = config->limits.proxy_buffer_size,
    };
}

void sp_app_reconfigure(struct sp_app *app, const struct sp_config *config)
{
    const struct sp_http_limits limits = http_limits(config);
    const struct sp_proxy_options proxy = proxy_options(app, config);

    if (memcmp(&config->listen, &app->config->listen, sizeof(config->listen)) != 0 ||
        memcmp(&config->publish_listen, &app->config->publish_listen,
               sizeof(config->publish_listen)) != 0)
        sp_log_warn(app->log, "reload", "listen and publish_listen change only with a restart");
    sp_http_server_set_limits(app->clients, &limits);
    sp_http_server_set_limits(app->publishers, &limits);
    if (app->admins)
        sp_http_server_set_limits(app->admins, &limits);
    if (sp_proxy_reconfigure(app->proxy, &proxy) < 0)
        sp_log_error(app->log, "reload", "backend settings not applied: out of memory");
    sp_push_reconfigure(app->push, config);
    app->backend.config = config;
    app->config = config;
    update_accepting(app);
}

struct sp_app *sp_app_new(struct event_base *base, const struct sp_config *config,
                          const struct sp_log *log, char *err, size_t errlen)
{
    struct sp_app *app = calloc(1, sizeof(*app));
    const struct sp_http_limits limits = http_limits(config);
    const struct sp_proxy_options proxy = proxy_options(app, config);

    if (app == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    app->base = base;
    app->config = config;
    app->log = log;
    app->curlm = sp_curlm_new(base);
    app->proxy = app->curlm ? sp_proxy_new(base, app->curlm, &proxy, log) : NULL;
    app->flusher = sp_flusher_new(base, on_conn_gone, app);
    app->push = app->flusher && app->curlm
                    ? sp_push_new(base, config, app->curlm, app->flusher, log)
                    : NULL;
    app->backend = (struct sp_backend){base, app->curlm, log, config, app->push};
    app->auth = sp_auth_new(&app->backend);
    app->polls = sp_polls_new(&app->backend);
    if (app->push != NULL && app->polls != NULL) {
        sp_push_set_watch(app->push, sp_polls_watch, app->polls);
        sp_push_set_forwarder(app->push, &sp_ws_forward_ops, &app->backend);
    }
    app->clients = sp_http_server_new(base, &limits, handle_client, app, on_conn_gone, app, log);
    app->publishers =
        sp_http_server_new(base, &limits, handle_publisher, app, on_conn_gone, app, log);
    if (app->proxy == NULL || app->push == NULL || app->auth == NULL || app->polls == NULL ||
        app->clients == NULL || app->publishers == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    app->client_listener = sp_listener_new(base, &config->listen, on_accept, app, log, err, errlen);
    if (app->client_listener == NULL)
        goto fail;
    app->publish_listener =
        sp_listener_new(base, &config->publish_listen, on_accept, app, log, err, errlen);
    if (app->publish_listener == NULL)
        goto fail;
    if (config->metrics.has_listen) {
        app->admins = sp_http_server_new(base, &limits, handle_admin, app, on_conn_gone, app, log);
        app->admin_listener = app->admins ? sp_listener_new(base, &config->metrics.listen,
                                                            on_accept, app, log, err, errlen)
                                          : NULL;
        if (app->admin_listener == NULL)
            goto fail;
    }
    app->ready = true;
    return app;

fail:
    sp_app_free(app);
    return NULL;
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct sp_app *app = arg;

    if (open_connections(app) > 0 && sp_now_ms() < app->drain_deadline)
        return;
    if (open_connections(app) > 0)
        sp_log_warn(app->log, "drain_timeout", "%zu connections left at the end of shutdown_grace",
                    open_connections(app));
    event_del(app->drain_check);
    if (app->drained)
        app->drained(app->drained_ctx);
}

void sp_app_drain(struct sp_app *app, void (*done)(void *ctx), void *ctx)
{
    struct timeval tick = {0, 100 * 1000};

    if (app->drain_check != NULL)
        return;
    app->ready = false;
    app->drained = done;
    app->drained_ctx = ctx;
    app->drain_deadline = sp_now_ms() + app->config->shutdown_grace_ms;
    /* Closed listeners make new connections fail fast: a browser's
     * EventSource retries a refused connection, but gives up on a 503. */
    sp_listener_free(app->client_listener);
    sp_listener_free(app->publish_listener);
    app->client_listener = app->publish_listener = NULL;
    sp_log_info(app->log, "draining", "sending %zu subscribers away over %llu ms",
                sp_push_subscribers(app->push), (unsigned long long)app->config->shutdown_grace_ms);
    sp_push_drain(app->push, app->config->shutdown_grace_ms);
    sp_http_server_drain(app->clients);
    sp_http_server_drain(app->publishers);
    app->drain_check = event_new(app->base, -1, EV_PERSIST, drain_check, app);
    if (app->drain_check == NULL || event_add(app->drain_check, &tick) < 0) {
        if (done)
            done(ctx);
    }
}

void sp_app_free(struct sp_app *app)
{
    if (app == NULL)
        return;
    if (app->drain_check)
        event_free(app->drain_check);
    sp_listener_free(app->client_listener);
    sp_listener_free(app->publish_listener);
    sp_listener_free(app->admin_listener);
    /* The engine first (its operations in flight call back into the
     * pollers), then the pollers, subscriptions, connections (closing one
     * ends its proxied transfer or authorization check), then what they
     * used. */
    if (app->push != NULL) {
        sp_push_stop_engine(app->push);
        sp_push_set_watch(app->push, NULL, NULL);
    }
    sp_polls_free(app->polls);
    sp_push_free(app->push);
    sp_http_server_free(app->clients);
    sp_http_server_free(app->publishers);
    sp_http_server_free(app->admins);
    sp_auth_free(app->auth);
    sp_flusher_free(app->flusher);
    sp_proxy_free(app->proxy);
    sp_curlm_free(app->curlm);
    free(app);
}
