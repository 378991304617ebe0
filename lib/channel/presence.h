/* Presence: the members of a channel, i.e. the distinct user ids with at
 * least one live subscription on a presence route, each with the info the
 * backend's forward-auth answer gave and a connection count.
 *
 * One table for the process, changed only on the loop it was made on (the
 * other workers mail their joins and leaves there), read from any thread
 * under its lock. A member whose last connection closes is removed after
 * leave_grace, so a reconnect within it (a cut, a page reload, a second tab
 * opened as the first closes) changes nothing anyone sees.
 */
#ifndef SP_CHANNEL_PRESENCE_H
#define SP_CHANNEL_PRESENCE_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_presence;

/* COUNTED: a member's connections changed, it neither came nor went. */
enum sp_presence_change { SP_PRESENCE_JOINED, SP_PRESENCE_LEFT, SP_PRESENCE_COUNTED };

/* A member came or went (on its loop, outside the lock). info is its
 * JSON object text, or NULL. */
typedef void (*sp_presence_changed)(void *ctx, enum sp_presence_change change, const char *channel,
                                    const char *user_id, const char *info);

struct sp_presence *sp_presence_new(struct event_base *base, uint64_t leave_grace_ms,
                                    sp_presence_changed changed, void *ctx);
/* Members still there are dropped silently. Accepts NULL. */
void sp_presence_free(struct sp_presence *p);
void sp_presence_set_grace(struct sp_presence *p, uint64_t leave_grace_ms);

/* On its loop: one connection of user_id joined channel, or left it.
 * info (a JSON object, or NULL) is kept from the member's first join. */
int sp_presence_join(struct sp_presence *p, const char *channel, const char *user_id,
                     const char *info);
void sp_presence_leave(struct sp_presence *p, const char *channel, const char *user_id);

/* On its loop: whether user_id is a member of channel (in its grace
 * too, with 0 connections); *info (its JSON or NULL) stays valid until the
 * member leaves. */
bool sp_presence_lookup(struct sp_presence *p, const char *channel, const char *user_id,
                        unsigned *connections, const char **info);
/* On its loop: fn for every member of every channel. */
void sp_presence_each(struct sp_presence *p,
                      void (*fn)(const char *channel, const char *user_id, void *ctx), void *ctx);

/* From any thread: members of channel now (0 for none). */
size_t sp_presence_count(struct sp_presence *p, const char *channel);
size_t sp_presence_total(struct sp_presence *p);
size_t sp_presence_rooms(struct sp_presence *p);
/* From any thread: appends {"channel":..,"count":n,"members":[{"user_id":..,
 * "user_info":{..},"connections":n}, ...]} with at most max members listed. */
void sp_presence_write_json(struct sp_presence *p, const char *channel, size_t max,
                            struct evbuffer *out);

#endif
