/* The running sidecar: its worker threads, the listeners and HTTP servers
 * on them, and what answers each request (health, routes, the proxy). cmd/
 * builds one from a loaded configuration, starts it and runs the main loop
 * (the first worker's) on its own thread.
 *
 * Threading: every worker owns one event loop and its own client socket
 * (SO_REUSEPORT), connections, streams, proxied transfers and timers; no
 * thread touches another's. What is process-wide is the app's, made before
 * the workers and freed after them, and runs on the main loop: the publish
 * and admin listeners, the pollers, the webhooks, and the push's shared
 * part (the hub, presence, the Redis engine, the replay store). The hub
 * (channels and their history) takes calls from every worker behind a
 * lock; everything else is reached by mail (net/mailbox.h).
 */
#ifndef SP_APP_APP_H
#define SP_APP_APP_H

#include <event2/event.h>

#include "config/config.h"
#include "core/log.h"

struct sp_app;

/* A worker's event loop (the caller makes the main one with it); a plain
 * event_base, since nothing relies on priorities. */
struct event_base *sp_app_base_new(void);

/* Builds nworkers workers (at least 1), the first on base (the main loop)
 * and each other on a loop of its own, and binds every listener. Returns the app (free with
 * sp_app_free), or NULL with the reason in err (e.g. the address is in
 * use). config must outlive the app. */
struct sp_app *sp_app_new(struct event_base *base, const struct sp_config *config,
                          unsigned nworkers, const struct sp_log *log, char *err, size_t errlen);
/* Starts the threads of the workers other than the first. 0, or -1 with err. */
int sp_app_start(struct sp_app *app, char *err, size_t errlen);
/* Once the main loop has returned: stops and joins the other workers, then
 * frees everything. Accepts NULL. */
void sp_app_free(struct sp_app *app);
unsigned sp_app_workers(const struct sp_app *app);

/* SIGHUP with a valid new configuration, on the main loop: every worker's
 * new requests follow config from now on; connections open now keep theirs
 * (so the old configuration must stay alive too). Listen addresses and the
 * number of workers change only with a restart (logged). */
/* Returns 0, or -1 with the reason in err when config cannot be applied (its
 * backend does not resolve): then nothing of it was applied. */
int sp_app_reconfigure(struct sp_app *app, const struct sp_config *config, char *err,
                       size_t errlen);

/* SIGTERM, on the main loop: readiness turns false, every worker closes its
 * listeners (new clients are refused, never answered 503), sends its
 * subscribers away over shutdown_grace and lets requests in flight finish;
 * done(ctx) runs on the main loop once every worker has no connection left
 * or the grace is over. */
void sp_app_drain(struct sp_app *app, void (*done)(void *ctx), void *ctx);

#endif
