/* Poll routes: sidepush polls a backend URL on its subscribers' behalf, once
 * per channel however many subscribe, and publishes an event only when the
 * answer changes (conditional requests, then a body hash). Pollers start with
 * a channel's first subscriber and stop a linger after its last. */
#ifndef SP_BACKEND_POLLER_H
#define SP_BACKEND_POLLER_H

#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/request.h"
#include "http/server.h"

struct sp_polls;

struct sp_mailbox;

/* The process's pollers, on the main loop: b is the main loop worker's and main_mailbox its
 * mailbox (both must outlive the returned object). NULL on allocation
 * failure. */
struct sp_polls *sp_polls_new(const struct sp_backend *b, struct sp_mailbox *main_mailbox);
/* Accepts NULL. The push must not call sp_polls_watch any more, and its
 * engine must be stopped (publishes in flight call back here). */
void sp_polls_free(struct sp_polls *polls);

/* A request on a poll route (caps are the path's captures), on the worker
 * whose backend is b: makes sure its channel has a poller (on the main
 * loop), then subscribes the client to it (on its own). */
void sp_polls_subscribe(struct sp_polls *polls, const struct sp_backend *b,
                        const struct sp_route_config *route,
                        const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], struct sp_http_conn *conn,
                        const struct sp_http_request *req);

/* The push's subscriber-count watch (see sp_push_set_watch). */
void sp_polls_watch(void *polls, const char *channel, size_t subscribers);

void sp_polls_metrics(const struct sp_polls *polls, struct evbuffer *out);

/* RFC 7396: the merge patch turning JSON text old into new, as compact JSON
 * text (malloc'd), or NULL when either is not a JSON object (send new whole).
 * Pure; exposed for tests. */
char *sp_merge_patch(const char *old_json, const char *new_json);

#endif
