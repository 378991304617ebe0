/* Occupancy: the channels that have subscribers, each told once when it
 * gains its first and once when it loses its last, whatever the workers.
 *
 * A vacancy is told only after a grace (webhooks.vacated_grace plus
 * presence.leave_grace, so a presence channel's members are told gone
 * first); a subscriber coming back within it cancels it and nothing is
 * told. With Redis the grace runs here, before the replica tells Redis, so
 * a client that reconnects to another replica does not flap the
 * deployment's occupancy either.
 *
 * On the loop it was made on only.
 */
#ifndef SP_CHANNEL_OCCUPANCY_H
#define SP_CHANNEL_OCCUPANCY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_occupancy;

typedef void (*sp_occupancy_changed)(void *ctx, const char *channel, bool occupied);

struct sp_occupancy *sp_occupancy_new(struct event_base *base, uint64_t grace_ms,
                                      sp_occupancy_changed changed, void *ctx);
/* Nothing more is told. Accepts NULL. */
void sp_occupancy_free(struct sp_occupancy *o);
void sp_occupancy_set_grace(struct sp_occupancy *o, uint64_t grace_ms);

/* The channel's subscriber count is now count. */
void sp_occupancy_count(struct sp_occupancy *o, const char *channel, size_t count);
/* Occupied, or vacated within the grace (not yet told). */
bool sp_occupancy_held(const struct sp_occupancy *o, const char *channel);
/* Calls fn for every channel held. */
void sp_occupancy_each(struct sp_occupancy *o, void (*fn)(const char *channel, void *ctx),
                       void *ctx);

#endif
