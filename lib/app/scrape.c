/* The metrics scrape: every worker counts its own figures, the asker sums
 * them. */

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/poller.h"
#include "backend/webhooks.h"

#include "app/app-internal.h"

/* ---- metrics: every worker counts its own, the asker sums them ---------------------------
 *
 * A scrape asks every worker for its figures (each copies them on its own
 * thread, so nothing is read while it changes); the main loop's also writes
 * what is process-wide. Each answer comes back to the asking worker (sp_ask); the
 * last one in sums and answers, if its client is still there. */

struct figures {
    size_t clients, streams;
    struct sp_push_figures push;
    struct sp_proxy_stats proxy;
    struct sp_token_stats tokens;
};

struct gather;

struct collect {
    struct sp_ask ask; /* to worker index, and back to the asker */
    struct gather *g;
    unsigned index;
};

struct gather {
    struct worker *asker;
    struct sp_http_conn *conn; /* NULL once the client has gone */
    atomic_uint pending;
    atomic_bool dropped; /* a collect was dropped: shutting down, nobody answers */
    size_t publishers;
    struct evbuffer *main_text; /* written by the main loop's collect */
    struct figures *figures;    /* one per worker */
    struct collect collects[];
};

static void gather_free(struct gather *g)
{
    if (g->main_text)
        evbuffer_free(g->main_text);
    free(g->figures);
    free(g);
}

static void token_metrics(const struct sp_token_stats *t, struct evbuffer *out)
{
    char labels[48];

    sp_metric_one(out, "sidepush_tokens_accepted_total", "counter",
                  "Subscriber tokens (subscribe.token) accepted.", (double)t->accepted);
    sp_metric_head(out, "sidepush_tokens_refused_total", "counter",
                   "Subscriber tokens refused (401, or 403 for channels), by reason.");
    for (int r = 0; r < 9; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", sp_token_reasons[r]);
        sp_metric_value(out, "sidepush_tokens_refused_total", labels, (double)t->refused[r]);
    }
    sp_metric_head(out, "sidepush_jwks_fetches_total", "counter",
                   "JWK Set fetches (subscribe.token.jwks_url), by result.");
    sp_metric_value(out, "sidepush_jwks_fetches_total", "result=\"ok\"",
                    (double)(t->jwks_fetches - t->jwks_failures));
    sp_metric_value(out, "sidepush_jwks_fetches_total", "result=\"failed\"",
                    (double)t->jwks_failures);
}

static void render_metrics(struct gather *g, struct evbuffer *out)
{
    struct sp_app *app = g->asker->app;
    struct figures sum = {0};
    static const char *const classes[] = {"failed", "1xx", "2xx", "3xx", "4xx", "5xx"};
    char labels[48];

    for (unsigned i = 0; i < app->nworkers; i++) {
        const struct figures *f = &g->figures[i];
        sum.clients += f->clients;
        sum.streams += f->streams;
        sp_push_figures_add(&sum.push, &f->push);
        for (int c = 0; c < 6; c++)
            sum.proxy.by_class[c] += f->proxy.by_class[c];
        sp_histogram_add(&sum.proxy.latency, &f->proxy.latency);
        sum.proxy.upstream_connects += f->proxy.upstream_connects;
        sum.proxy.upstream_reuses += f->proxy.upstream_reuses;
        sum.proxy.upstream_retries += f->proxy.upstream_retries;
        sum.proxy.upstream_bad += f->proxy.upstream_bad;
        sum.proxy.upstream_stale += f->proxy.upstream_stale;
        sum.proxy.upstream_unpooled += f->proxy.upstream_unpooled;
        sum.proxy.tunnels_open += f->proxy.tunnels_open;
        sum.proxy.tunnels_opened += f->proxy.tunnels_opened;
        sum.proxy.tunnel_bytes_to_backend += f->proxy.tunnel_bytes_to_backend;
        sum.proxy.tunnel_bytes_to_client += f->proxy.tunnel_bytes_to_client;
        sum.tokens.accepted += f->tokens.accepted;
        for (int r = 0; r < 9; r++)
            sum.tokens.refused[r] += f->tokens.refused[r];
        sum.tokens.jwks_fetches += f->tokens.jwks_fetches;
        sum.tokens.jwks_failures += f->tokens.jwks_failures;
    }
    sp_metric_head(out, "sidepush_connections", "gauge",
                   "Open connections, by listener (subscribers after their head: streams).");
    sp_metric_value(out, "sidepush_connections", "listener=\"client\"", (double)sum.clients);
    sp_metric_value(out, "sidepush_connections", "listener=\"publish\"", (double)g->publishers);
    sp_metric_value(out, "sidepush_connections", "listener=\"stream\"", (double)sum.streams);
    sp_metric_one(out, "sidepush_workers", "gauge", "Worker threads (event loops).",
                  (double)app->nworkers);
    sp_metric_head(out, "sidepush_worker_connections", "gauge",
                   "Client connections and streams open on each worker.");
    for (unsigned i = 0; i < app->nworkers; i++) {
        snprintf(labels, sizeof(labels), "worker=\"%u\"", i);
        sp_metric_value(out, "sidepush_worker_connections", labels,
                        (double)(g->figures[i].clients + g->figures[i].streams));
    }
    sp_push_metrics(g->asker->push, &sum.push, out);
    evbuffer_add_buffer(out, g->main_text);
    sp_metric_head(out, "sidepush_proxy_requests_total", "counter",
                   "Requests proxied to the backend, by status class.");
    for (int i = 0; i < 6; i++) {
        snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
        sp_metric_value(out, "sidepush_proxy_requests_total", labels,
                        (double)sum.proxy.by_class[i]);
    }
    sp_metric_histogram(out, "sidepush_proxy_request_duration_seconds",
                        "Proxied requests, start to end of response.", &sum.proxy.latency);
    sp_metric_head(out, "sidepush_proxy_upstream_total", "counter",
                   "The proxy's backend connections: opened, requests on a kept one, retries after "
                   "a kept one was found closed, answers refused as malformed or ambiguous, idle "
                   "ones closed on a stray byte or the backend's close, answers after which reuse "
                   "was not safe (request not fully sent, a bodiless answer announcing a body).");
    sp_metric_value(out, "sidepush_proxy_upstream_total", "event=\"connect\"",
                    (double)sum.proxy.upstream_connects);
    sp_metric_value(out, "sidepush_proxy_upstream_total", "event=\"reuse\"",
                    (double)sum.proxy.upstream_reuses);
    sp_metric_value(out, "sidepush_proxy_upstream_total", "event=\"retry\"",
                    (double)sum.proxy.upstream_retries);
    sp_metric_value(out, "sidepush_proxy_upstream_total", "event=\"bad_response\"",
                    (double)sum.proxy.upstream_bad);
    sp_metric_value(out, "sidepush_proxy_upstream_total", "event=\"stale\"",
                    (double)sum.proxy.upstream_stale);
    sp_metric_value(out, "sidepush_proxy_upstream_total", "event=\"unpooled\"",
                    (double)sum.proxy.upstream_unpooled);
    sp_metric_one(out, "sidepush_proxy_tunnels", "gauge",
                  "Upgraded connections (WebSocket and others) tunnelled to the backend now.",
                  (double)sum.proxy.tunnels_open);
    sp_metric_one(out, "sidepush_proxy_tunnels_total", "counter",
                  "Upgraded connections tunnelled to the backend.",
                  (double)sum.proxy.tunnels_opened);
    sp_metric_head(out, "sidepush_proxy_tunnel_bytes_total", "counter",
                   "Bytes copied through tunnels, by direction.");
    sp_metric_value(out, "sidepush_proxy_tunnel_bytes_total", "direction=\"to_backend\"",
                    (double)sum.proxy.tunnel_bytes_to_backend);
    sp_metric_value(out, "sidepush_proxy_tunnel_bytes_total", "direction=\"to_client\"",
                    (double)sum.proxy.tunnel_bytes_to_client);
    token_metrics(&sum.tokens, out);
    sp_metric_one(out, "sidepush_process_open_fds", "gauge", "Open file descriptors.",
                  (double)sp_process_open_fds());
    sp_metric_one(out, "sidepush_process_resident_memory_bytes", "gauge", "Resident memory.",
                  (double)sp_process_rss_bytes());
    sp_metric_one(out, "sidepush_ready", "gauge", "1 while ready to serve.",
                  atomic_load(&app->ready) ? 1 : 0);
}

/* On the asker's loop, once every worker's figures are in. */
static void gather_answer(struct gather *g)
{
    struct sp_http_conn *conn = g->conn;
    struct evbuffer *out = evbuffer_new();
    struct evbuffer *headers = evbuffer_new();

    if (conn == NULL)
        goto done;
    sp_http_set_ops(conn, NULL, NULL);
    if (out == NULL || headers == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        goto done;
    }
    render_metrics(g, out);
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
    gather_free(g);
}

/* The last collect back answers (on the asker's loop); if one was dropped
 * (shutting down), the last frees. */
static void collected(struct gather *g, bool dropped)
{
    if (dropped)
        g->dropped = true;
    if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) != 1)
        return;
    if (g->dropped)
        gather_free(g);
    else
        gather_answer(g);
}

static void collect_back(struct sp_ask *ask)
{
    collected(((struct collect *)ask)->g, false);
}

static void collect_run(struct sp_ask *ask)
{
    struct collect *c = (struct collect *)ask;
    struct gather *g = c->g;
    struct worker *w = &g->asker->app->workers[c->index];
    struct figures *f = &g->figures[c->index];

    /* Every socket of the worker's engine is a connection still the HTTP
     * server's or a stream it became (or one finishing its last answer). */
    f->clients = sp_http_server_connections(w->clients);
    f->streams = sp_flusher_count(w->flusher) - f->clients;
    sp_push_add_figures(w->push, &f->push);
    sp_proxy_stats(w->proxy, &f->proxy);
    f->tokens = *sp_tokens_stats(w->tokens);
    if (c->index == 0) {
        struct sp_app *app = w->app;
        g->publishers = sp_http_server_connections(app->publishers);
        sp_polls_metrics(app->polls, g->main_text);
        sp_webhooks_metrics(app->webhooks, g->main_text);
        sp_push_shared_metrics(app->shared, g->main_text);
        sp_push_shared_add_figures(app->shared, &f->push);
    }
    sp_ask_answer(ask);
}

static void collect_dropped(struct sp_ask *ask)
{
    collected(((struct collect *)ask)->g, true);
}

static void on_scraper_gone(void *ctx)
{
    ((struct gather *)ctx)->conn = NULL;
}

static const struct sp_http_ops scraper_ops = {NULL, NULL, on_scraper_gone, NULL};

void app_serve_metrics(struct worker *w, struct sp_http_conn *conn)
{
    struct sp_app *app = w->app;
    struct gather *g = calloc(1, sizeof(*g) + app->nworkers * sizeof(struct collect));

    if (g == NULL || (g->figures = calloc(app->nworkers, sizeof(*g->figures))) == NULL ||
        (g->main_text = evbuffer_new()) == NULL) {
        if (g)
            gather_free(g);
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    g->asker = w;
    g->conn = conn;
    atomic_init(&g->pending, app->nworkers);
    sp_http_set_ops(conn, &scraper_ops, g);
    for (unsigned i = 0; i < app->nworkers; i++) {
        g->collects[i] = (struct collect){.g = g, .index = i};
        sp_ask_post(&g->collects[i].ask, app->workers[i].mailbox, w->mailbox, collect_run,
                    collect_back, collect_dropped);
    }
}
