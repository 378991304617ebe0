/* Which handler answers a request: on the client listener health, a
 * route (forward-auth, then a poll route or a subscription), metrics from
 * the allowed, else the proxy; on the admin listener metrics and drain; on
 * the publish listener the publish API. */

#include <stdatomic.h>

#include "backend/poller.h"
#include "core/clock.h"
#include "push/pusher_sign.h"

#include "app/app-internal.h"

/* ---- health ------------------------------------------------------------------------- */

static bool abandoned_drain(struct sp_app *app)
{
    unsigned long long at = atomic_load(&app->shed_at_ms);

    return at != 0 && sp_now_ms() - at > 2 * app->config->shutdown_grace_ms;
}

static bool serve_health(struct worker *w, struct sp_http_conn *conn,
                         const struct sp_http_request *req)
{
    bool live = sp_slice_eq(req->path, w->config->health.liveness_path);
    bool ready = sp_slice_eq(req->path, w->config->health.readiness_path);

    if (!live && !ready)
        return false;
    if (!sp_slice_eq(req->method, "GET") && !sp_slice_eq(req->method, "HEAD")) {
        sp_http_respond_not_allowed(conn, "GET, HEAD", "health endpoints answer GET and HEAD");
        return true;
    }
    if (live && abandoned_drain(w->app)) {
        sp_http_respond_error(conn, 503,
                              "drained by POST /drain and never stopped: restart the container");
    } else if (live || (atomic_load(&w->app->ready) && sp_push_engine_ready(w->push))) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        sp_http_respond(conn, 200, "application/json", ok, sizeof(ok) - 1);
    } else {
        sp_http_respond_error(conn, 503, "not ready");
    }
    return true;
}

/* ---- request handlers ---------------------------------------------------------------- */

/* A client allowed on a route (by forward-auth, or with none configured). */
static void subscribe(void *ctx, const struct sp_route_config *route,
                      const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                      struct sp_http_conn *conn, const struct sp_http_request *req,
                      const struct sp_identity *who)
{
    struct worker *w = ctx;

    if (route->has_poll)
        sp_polls_subscribe(w->app->polls, &w->backend, route, caps, conn, req);
    else
        sp_push_subscribe(w->push, route, spec, conn, req, who);
}

/* /app/{key} with a WebSocket upgrade is a Pusher client; anything else
 * under /app/ (the app's own pages) is the backend's. */
static bool serve_pusher(struct worker *w, struct sp_http_conn *conn,
                         const struct sp_http_request *req)
{
    struct sp_slice path = req->path;

    if (!w->config->pusher.enabled || path.len <= 5 || memcmp(path.ptr, "/app/", 5) != 0 ||
        memchr(path.ptr + 5, '/', path.len - 5) != NULL ||
        !sp_http_request_has_token(req, "Upgrade", "websocket"))
        return false;
    sp_push_pusher_connect(w->push, conn, req);
    return true;
}

static bool serve_route(struct worker *w, struct sp_http_conn *conn,
                        const struct sp_http_request *req)
{
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];

    for (size_t i = 0; i < w->config->nroutes; i++) {
        const struct sp_route_config *r = &w->config->routes[i];
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
        /* A backend that authorizes channels may never have seen a pattern:
         * a route takes them only when it says so. */
        if (strchr(spec, '*') != NULL && !(r->has_subscribe && r->subscribe.patterns)) {
            sp_http_respond_error(conn, 400,
                                  "this route takes no channel patterns (subscribe.patterns)");
            return true;
        }
        /* Pusher clients reach these only with the app's signature: a native
         * route without its own authorization must not be a way around it. */
        bool token = r->has_subscribe && r->subscribe.token.enabled;
        if (w->config->pusher.enabled && !r->has_poll && !r->has_authorize && !token &&
            sp_pusher_spec_protected(spec)) {
            sp_http_respond_error(conn, 403,
                                  "private- and presence- channels are Pusher's signed ones: "
                                  "this route has no authorize section");
            return true;
        }
        bool preflight = sp_slice_eq(req->method, "OPTIONS");
        /* A token decides when there is one; without, the backend (if the
         * route asks it), else the client is refused. */
        if (token && !preflight &&
            sp_token_check(w->tokens, r, caps, spec, conn, req, subscribe, w))
            return true;
        if (r->has_authorize && !preflight)
            sp_auth_check(w->auth, r, caps, spec, conn, req, subscribe, w);
        else if (token && !preflight)
            sp_http_respond_error(conn, 401, "a token is required");
        else
            subscribe(w, r, caps, spec, conn, req, NULL);
        return true;
    }
    return false;
}

/* Is address in the blocks of list, or on loopback when the list is empty? */
static bool peer_in(const struct sp_strlist *list, const char *address)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1"};
    const char *const *blocks = list->count ? (const char *const *)list->items : loopback;
    size_t n = list->count ? list->count : 2;
    char err[160];

    for (size_t i = 0; i < n; i++) {
        struct sp_cidr block;
        if (sp_parse_cidr(blocks[i], &block, err, sizeof(err)) == 0 &&
            sp_cidr_match(&block, 1, address))
            return true;
    }
    return false;
}

static bool is_metrics(const struct worker *w, const struct sp_http_request *req)
{
    return sp_slice_eq(req->path, w->config->metrics.path) &&
           (sp_slice_eq(req->method, "GET") || sp_slice_eq(req->method, "HEAD"));
}

void app_handle_client(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct worker *w = ctx;

    if (!w->config->metrics.has_listen && is_metrics(w, req)) {
        if (peer_in(&w->config->metrics.allow_from, sp_http_peer(conn)))
            app_serve_metrics(w, conn);
        else
            sp_http_respond_error(conn, 403,
                                  "metrics on the client listener are for metrics.allow_from "
                                  "(loopback); set metrics.listen for a scraper");
        return;
    }
    if (serve_health(w, conn, req) || serve_pusher(w, conn, req) || serve_route(w, conn, req))
        return;
    sp_proxy_handle(w->proxy, conn, req);
}

static void shed_worker(struct worker *w, void *arg)
{
    (void)arg;
    sp_push_drain(w->push, w->config->shutdown_grace_ms);
}

/* POST /drain, for a preStop hook: readiness turns false (the Service
 * stops sending new clients) and subscribers are sent away as a drain sends
 * them, spread over shutdown_grace, while sidepush goes on serving and
 * proxying until the pod's SIGTERM. A second call changes nothing. */
static void shed(struct sp_app *app)
{
    if (app->shedding || app->draining)
        return;
    app->shedding = true;
    atomic_store(&app->shed_at_ms, sp_now_ms());
    atomic_store(&app->ready, false);
    sp_log_info(app->log, "shedding",
                "POST /drain: not ready; subscribers sent away over %llu ms, still serving",
                (unsigned long long)app->config->shutdown_grace_ms);
    for (unsigned i = 1; i < app->nworkers; i++)
        app_call_on(&app->workers[i], shed_worker, NULL); /* out of memory: its drain at SIGTERM */
    shed_worker(app_main_worker(app), NULL);
}

/* Who may drain: a peer in metrics.drain_from (loopback when empty: the
 * pod's own preStop hook), or anyone with metrics.drain_token. Any pod that
 * reaches the admin port could otherwise take every replica out of its
 * Service. */
static bool may_drain(struct worker *w, struct sp_http_conn *conn,
                      const struct sp_http_request *req)
{
    const char *token = w->config->metrics.drain_token;

    if (token != NULL && sp_http_bearer_is(req, token))
        return true;
    return peer_in(&w->config->metrics.drain_from, sp_http_peer(conn));
}

static void serve_drain(struct worker *w, struct sp_http_conn *conn,
                        const struct sp_http_request *req)
{
    static const char answer[] = "{\"status\":\"draining\"}\n";

    if (!may_drain(w, conn, req)) {
        sp_log_warn(w->app->log, "drain_refused",
                    "POST /drain from %s: not in metrics.drain_from "
                    "and no metrics.drain_token",
                    sp_http_peer(conn));
        sp_http_respond_error(conn, 403,
                              "POST /drain is allowed from metrics.drain_from (loopback) or "
                              "with metrics.drain_token");
        return;
    }
    shed(w->app);
    sp_http_respond(conn, 202, "application/json", answer, sizeof(answer) - 1);
}

/* The admin listener (main loop): metrics, health, and the drain a preStop hook
 * asks for. */
void app_handle_admin(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct worker *w = ctx;

    if (is_metrics(w, req)) {
        app_serve_metrics(w, conn);
        return;
    }
    if (sp_slice_eq(req->path, "/drain")) {
        if (sp_slice_eq(req->method, "POST"))
            serve_drain(w, conn, req);
        else
            sp_http_respond_not_allowed(conn, "POST", "POST /drain starts a drain");
        return;
    }
    if (!serve_health(w, conn, req))
        sp_http_respond_error(conn, 404,
                              "the admin listener serves metrics, health and POST /drain only");
}

void app_handle_publisher(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct worker *w = ctx;

    if (w->config->pusher.enabled && req->path.len > 6 && memcmp(req->path.ptr, "/apps/", 6) == 0)
        sp_push_pusher_api(w->push, conn, req);
    else
        sp_push_publish_request(w->push, conn, req);
}
