/* The app's own files share the worker and the app: app.c (building,
 * threads, connection caps, reloads, draining, freeing), routing.c (which
 * handler answers a request: health, routes, the proxy, metrics, drain)
 * and scrape.c (the metrics, gathered from every worker). */
#ifndef SP_APP_APP_INTERNAL_H
#define SP_APP_APP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "app/app.h"
#include "backend/authorize.h"
#include "backend/request.h"
#include "backend/token.h"
#include "http/proxy.h"
#include "http/server.h"
#include "net/mailbox.h"
#include "push/push.h"

/* One event loop on one thread, and everything it owns: its client
 * connections (its own listening socket), their streams, proxied
 * transfers, requests to the backend, timers. Worker 0 runs on the
 * caller's loop, the main loop, where what is process-wide (the app's)
 * runs too. */
struct worker {
    struct sp_app *app;
    unsigned index;
    struct event_base *base;
    bool own_base; /* made here (not the caller's) */
    pthread_t thread;
    bool started;
    const struct sp_config *config; /* the one in force on this worker */
    struct sp_mailbox *mailbox;
    struct sp_curlm *curlm;
    struct sp_proxy *proxy;
    struct sp_flusher *flusher;
    struct sp_push *push;
    struct sp_backend backend; /* what this worker's backend modules share */
    struct sp_auth *auth;
    struct sp_tokens *tokens;
    struct sp_http_server *clients;
    struct sp_listener *client_listener;
    atomic_size_t open; /* clients and streams, for the process-wide cap */
    struct event *drain_check;
    uint64_t drain_deadline;
};

struct sp_app {
    const struct sp_config *config; /* the latest reload's */
    const struct sp_log *log;
    unsigned nworkers;
    struct worker *workers;
    atomic_bool ready;
    atomic_int paused;      /* client listeners paused at limits.max_connections */
    atomic_ullong accepted; /* client connections, ever */
    unsigned long long accepted_at_trim;
    struct event *trimmer;
    /* what is process-wide: made before the workers, freed after, on the main loop */
    struct sp_push_shared *shared; /* the hub, presence, the engine */
    struct sp_polls *polls;
    struct sp_webhooks *webhooks; /* webhooks section: occupancy and presence */
    struct sp_http_server *publishers;
    struct sp_flusher *publish_streams; /* the publishers' sockets (caps, drain) */
    struct sp_listener *publish_listener;
    struct sp_listener *admin_listener; /* metrics.listen, optional */
    struct sp_http_server *admins;
    struct sp_flusher *admin_streams;
    bool draining;
    bool shedding; /* POST /drain: not ready, subscribers sent away, still serving */
    /* When POST /drain came, while no SIGTERM followed it (0: none): past
     * twice shutdown_grace, liveness fails so the kubelet restarts the
     * container, the way back from a drain nobody followed with a stop. */
    atomic_ullong shed_at_ms;
    bool freeing; /* connections closing now change no caps */
    unsigned workers_drained;
    void (*drained)(void *ctx);
    void *drained_ctx;
};

/* The worker on the main loop. */
static inline struct worker *app_main_worker(struct sp_app *app)
{
    return &app->workers[0];
}

/* ---- app.c ------------------------------------------------------------------------------- */

/* A mail with nothing to free but itself. */
void app_mail_free(struct sp_mail *mail);
/* Runs fn(w, arg) on w's loop, by mail. Returns 0 or -1 (out of memory). */
int app_call_on(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg);

/* ---- routing.c ----------------------------------------------------------------------------- */

/* The servers' request handlers (ctx: the worker). */
void app_handle_client(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req);
void app_handle_admin(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req);
void app_handle_publisher(void *ctx, struct sp_http_conn *conn, const struct sp_http_request *req);

/* ---- scrape.c ------------------------------------------------------------------------------ */

/* GET /metrics: every worker's figures, summed, answered on conn later. */
void app_serve_metrics(struct worker *w, struct sp_http_conn *conn);

#endif
