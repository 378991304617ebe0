/* The running sidecar: listeners, the HTTP servers on them, and what answers
 * each request (health, routes, the proxy). cmd/ builds one from a loaded
 * configuration and runs its event loop.
 */
#ifndef SP_APP_APP_H
#define SP_APP_APP_H

#include <event2/event.h>

#include "config/config.h"
#include "core/log.h"

struct sp_app;

/* An event loop set up the way sidepush's modules need it (priorities for
 * the output flusher). */
struct event_base *sp_app_base_new(void);

/* Binds both listeners on base. Returns the app (free with sp_app_free), or
 * NULL with the reason in err (e.g. the address is in use). config must
 * outlive the app. */
struct sp_app *sp_app_new(struct event_base *base, const struct sp_config *config,
                          const struct sp_log *log, char *err, size_t errlen);
void sp_app_free(struct sp_app *app);

/* SIGHUP with a valid new configuration: new requests follow config from now
 * on; connections open now keep theirs (so the old configuration must stay
 * alive too). Listen addresses change only with a restart (logged). */
void sp_app_reconfigure(struct sp_app *app, const struct sp_config *config);

/* SIGTERM: readiness turns false, the listeners close (new clients are
 * refused, never answered 503), subscribers are sent away over
 * shutdown_grace, requests in flight finish; done(ctx) runs once every
 * connection is gone or the grace is over. */
void sp_app_drain(struct sp_app *app, void (*done)(void *ctx), void *ctx);

#endif
