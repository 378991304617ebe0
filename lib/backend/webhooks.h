/* Webhooks to the backend about occupancy and presence: channel_occupied,
 * channel_vacated, member_added, member_removed, POSTed to webhooks.url in
 * Pusher's body shape ({"time_ms": .., "events": [{"name": .., "channel":
 * .., "user_id": ..}]}) and, with webhooks.secret, signed with Standard
 * Webhooks headers (webhook-id, webhook-timestamp, webhook-signature).
 *
 * Best effort, in order: events within webhooks.batch go in one POST, one
 * POST at a time; a failed one (no 2xx within backend.timeout) is sent
 * again, with the same webhook-id (the backend can drop a repeat) but
 * signed anew (the time of the attempt, the secret of now), after a
 * backoff that doubles from 500 ms up to webhooks.max_backoff, with jitter,
 * at most webhooks.max_attempts times; then it is given up (counted,
 * logged) so the events behind it go. Occupancy events and member events
 * each have webhooks.max_queue places; beyond that new ones of that kind
 * are dropped, counted and logged. webhooks.events chooses which are sent. The graces are push's
 * (channel/occupancy.h, channel/presence.h): events come here when they are to be told. Events are
 * lost when the process ends.
 *
 * On the loop it was made on only.
 */
#ifndef SP_BACKEND_WEBHOOKS_H
#define SP_BACKEND_WEBHOOKS_H

#include <event2/buffer.h>

#include "backend/request.h"
#include "push/push.h"

struct sp_webhooks;

struct sp_webhooks_stats {
    uint64_t posts_ok, posts_failed; /* POSTs answered 2xx; failed (each retry counts) */
    uint64_t events_sent, events_dropped;
    uint64_t events_given_up; /* in batches that failed webhooks.max_attempts times */
    size_t queued;
};

/* b (with its config) must outlive the webhooks. NULL on allocation failure. */
struct sp_webhooks *sp_webhooks_new(const struct sp_backend *b);
/* What is queued is dropped. Accepts NULL. */
void sp_webhooks_free(struct sp_webhooks *w);

/* The push's events hook (sp_push_set_events). */
void sp_webhooks_event(void *w, const struct sp_push_event *e);

const struct sp_webhooks_stats *sp_webhooks_stats(const struct sp_webhooks *w);
/* Its families in Prometheus text. Accepts NULL (webhooks off: nothing). */
void sp_webhooks_metrics(const struct sp_webhooks *w, struct evbuffer *out);

#endif
