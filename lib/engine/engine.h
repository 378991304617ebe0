/* Redis as the shared engine of several replicas (the `redis` section).
 *
 * Every publish runs one Lua script in Redis that numbers it from one
 * sequence shared by all replicas (ids stay "<epoch>-<seq>", the epoch kept
 * in Redis), appends it to the channel's stream (trimmed to
 * channels.history entries; entries older than channels.history_ttl are
 * left out when the stream is read, and the key expires after that much
 * silence), remembers its de-duplication
 * id, and PUBLISHes it on the channel's pub/sub channel. Each replica is
 * SUBSCRIBEd to the channels it has local subscribers for, only while it has
 * them; a channel becomes "synced" when the subscription is confirmed and
 * its stream has been read into the local hub, and from then on every
 * pub/sub message is handed to the hub in order. A replica therefore holds
 * exactly the history every other replica holds, and a client resumes on
 * any of them.
 *
 * When Redis is lost, nothing is published (503), subscribers stay
 * connected, and on reconnection each channel reads what it missed from its
 * stream and delivers it. Two connections: one for commands, one for
 * pub/sub (hiredis on the loop it is given: the main loop, through net/redis).
 */
#ifndef SP_ENGINE_ENGINE_H
#define SP_ENGINE_ENGINE_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "channel/hub.h"
#include "metrics/metrics.h"

struct sp_config;
struct sp_log;
struct sp_occupancy;
struct sp_presence;
struct sp_engine;

/* What the deployment's presence and occupancy did, as Redis answered a
 * replica's share (see sp_engine_share_member): the facade tells its
 * subscribers and the backend's webhooks. */
struct sp_engine_events {
    void (*member)(void *ctx, bool joined, const char *channel, const char *user_id,
                   const char *info, size_t members);
    void (*occupancy)(void *ctx, bool occupied, const char *channel);
    void *ctx;
};

/* What the engine works with, all owned by the caller and outliving it:
 * the loop it runs on, the hub it feeds, the tables it shares (read when
 * sent), and the configuration until sp_engine_reconfigure. */
struct sp_engine_env {
    struct event_base *base;
    const struct sp_log *log;
    const struct sp_config *config; /* config->redis must be enabled */
    struct sp_hub *hub;
    struct sp_presence *presence;
    struct sp_occupancy *occupancy; /* or NULL until sp_engine_share_occupancies */
    struct sp_engine_events events;
};

/* Starts connecting. */
struct sp_engine *sp_engine_new(const struct sp_engine_env *env);
/* Operations in flight complete with SP_HUB_UNAVAILABLE first. Accepts NULL. */
void sp_engine_free(struct sp_engine *e);
/* A reload: channel options apply to the next publish and load; the redis
 * section itself takes a restart. */
void sp_engine_reconfigure(struct sp_engine *e, const struct sp_config *config);

/* Both connections are up and the scripts are loaded. */
bool sp_engine_up(const struct sp_engine *e);
/* Up, or redis.required_for_ready is off (for the readiness probe). */
bool sp_engine_ready_for_traffic(const struct sp_engine *e);
/* redis.poll_lease as it was at start. */
uint64_t sp_engine_lease_ms(const struct sp_engine *e);

/* The hub's subscriber-count watch: subscribes channels, and unsubscribes
 * them a few seconds after their last local subscriber left. */
void sp_engine_watch(struct sp_engine *e, const char *channel, size_t count);

/* ---- publishing ---------------------------------------------------------------------- */

/* rc is SP_HUB_OK (res filled) or SP_HUB_UNAVAILABLE. */
typedef void (*sp_engine_published)(void *arg, int rc, const struct sp_publish_result *res);

/* A poll route's publish also carries the channel's new whole state for
 * replicas' new subscribers: SNAPSHOT_SELF when the message is it. */
enum sp_engine_snapshot { SP_SNAPSHOT_NONE, SP_SNAPSHOT_SELF, SP_SNAPSHOT_DATA };

struct sp_engine_publish {
    struct sp_publish pub;
    enum sp_engine_snapshot snapshot;
    const void *snapshot_data; /* SP_SNAPSHOT_DATA */
    size_t snapshot_len;
};

/* Validates, then sends. Returns 0 (cb runs later, exactly once) or a
 * negative SP_HUB_ error now (cb never runs). */
int sp_engine_publish(struct sp_engine *e, const struct sp_engine_publish *p,
                      sp_engine_published cb, void *arg);

/* ---- waiting for channels to be synced --------------------------------------------------- */

struct sp_engine_wait;
/* ok false: not synced within redis.subscribe_wait (or the engine went away). */
typedef void (*sp_engine_synced)(void *arg, bool ok);

/* For a subscription spec ("a" or "a,b"): returns 1 when every channel is
 * synced now (nothing to wait for), or 0 with *out (cb runs later, exactly
 * once, unless cancelled), or -1 on allocation failure. */
int sp_engine_wait(struct sp_engine *e, const char *spec, sp_engine_synced cb, void *arg,
                   struct sp_engine_wait **out);
void sp_engine_wait_cancel(struct sp_engine_wait *w);

/* ---- channel administration ---------------------------------------------------------------- */

struct sp_engine_channel {
    int rc;          /* SP_HUB_OK, SP_HUB_NO_CHANNEL or SP_HUB_UNAVAILABLE */
    size_t messages; /* in the shared history */
    char first_id[SP_MSG_ID_MAX], last_id[SP_MSG_ID_MAX];
    size_t replicas; /* delete: replicas that were told */
    size_t members;  /* info: of the channel's presence, in the deployment */
};
typedef void (*sp_engine_channel_done)(void *arg, const struct sp_engine_channel *info);

/* GET: the shared history's size and ids. DELETE: drops it everywhere and
 * every replica closes its subscribers of the channel. Return 0 (cb runs
 * later) or SP_HUB_UNAVAILABLE now. */
int sp_engine_channel_info(struct sp_engine *e, const char *channel, sp_engine_channel_done cb,
                           void *arg);
int sp_engine_channel_delete(struct sp_engine *e, const char *channel, sp_engine_channel_done cb,
                             void *arg);

/* ---- poll leases: one replica polls a channel ---------------------------------------------- */

struct sp_engine_poll_state {
    const char *etag, *last_modified, *body;
    const unsigned char *hash; /* 32 bytes, or NULL */
    size_t body_len;
};

/* held: this replica holds the lease for redis.poll_lease from now. With a
 * fresh lease (not a renewal) state is what the last holder saved (fields
 * NULL when unknown). */
typedef void (*sp_engine_leased)(void *arg, const char *channel, bool held, bool fresh,
                                 const struct sp_engine_poll_state *state);

/* Takes or renews the lease of channel. cb runs later with a copy of the
 * channel name (never with a pointer from before). Returns 0 or -1 when
 * the engine is down (not held). */
int sp_engine_lease(struct sp_engine *e, const char *channel, sp_engine_leased cb, void *arg);
/* Gives the lease up if this replica holds it (fire and forget). */
void sp_engine_release(struct sp_engine *e, const char *channel);
/* What the next holder starts from (fire and forget). */
void sp_engine_save_poll_state(struct sp_engine *e, const char *channel,
                               const struct sp_engine_poll_state *state);

/* ---- signed webhook ids: used once across all replicas --------------------------------------- */

/* prior is NULL when this call claimed key (it now holds value for ttl_ms),
 * else the value the first claim stored; rc is SP_HUB_OK or
 * SP_HUB_UNAVAILABLE (prior NULL). */
typedef void (*sp_engine_claimed)(void *arg, int rc, const char *prior);

/* SET key value NX PX ttl GET (Redis 7): one round trip that either claims
 * key or tells who did. Returns 0 (cb runs later, exactly once) or
 * SP_HUB_UNAVAILABLE now (cb never runs). */
int sp_engine_claim(struct sp_engine *e, const char *key, const char *value, uint64_t ttl_ms,
                    sp_engine_claimed cb, void *arg);

/* ---- presence and occupancy across replicas ------------------------------------------------- */

/* This replica's part changed: the member's connections (its state is read
 * from env->presence when sent), or the channel's occupancy
 * (from its occupancy). Redis answers with what changed for the
 * deployment, which this replica then tells (env->events). */
void sp_engine_share_member(struct sp_engine *e, const char *channel, const char *user_id);
void sp_engine_share_occupancy(struct sp_engine *e, const char *channel);
/* Occupancy is shared from now on, read from occupancy (the caller's, made
 * when webhooks were asked for). */
void sp_engine_share_occupancies(struct sp_engine *e, struct sp_occupancy *occupancy);

/* The deployment's members of channel: json is
 * {"channel":..,"count":n,"members":[{"user_id":..,"user_info":..,
 * "connections":n},...]} with at most max listed, or NULL when Redis was
 * unavailable. */
typedef void (*sp_engine_members_done)(void *arg, const char *json);
/* Returns 0 (cb runs later, exactly once) or SP_HUB_UNAVAILABLE now. */
int sp_engine_members(struct sp_engine *e, const char *channel, size_t max,
                      sp_engine_members_done cb, void *arg);

/* The engine's own figures, added to a sum: messages it published (not
 * duplicates) and the time from a pub/sub message to the hub's fan-out. */
void sp_engine_add_figures(const struct sp_engine *e, uint64_t *published,
                           struct sp_histogram *fanout);
void sp_engine_metrics(const struct sp_engine *e, struct evbuffer *out);

#endif
