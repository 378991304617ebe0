/* Shared by the Redis engine's files only: engine.c (connections, scripts,
 * lifecycle), engine_sync.c (following channels: SUBSCRIBE, reading
 * streams, pub/sub messages, waiting subscribers), engine_ops.c
 * (publishing, channel administration, poll leases, webhook ids) and
 * engine_share.c (presence and occupancy shared across replicas). */
#ifndef SP_ENGINE_ENGINE_INTERNAL_H
#define SP_ENGINE_ENGINE_INTERNAL_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/delay.h"

#include "core/hmap.h"
#include "net/redis.h"
#include "channel/hub.h"
#include "channel/occupancy.h"
#include "channel/presence.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "engine/engine.h"
#include "metrics/metrics.h"

/* A channel stays subscribed this long after its last local subscriber
 * left: long-poll clients come back between their requests, and a channel
 * that is still followed needs no new read of its stream. */
#define LINGER_MS 5000

/* Meta keys (a channel's floor and last id) outlive its stream by this
 * much, so a client returning after the stream expired learns it missed
 * messages rather than getting nothing. */
#define META_EXTRA_MS ((uint64_t)24 * 3600 * 1000)

#define KEY_MAX (SP_CHANNEL_MAX + 512)

enum script {
    S_HELLO,
    S_PUBLISH,
    S_LOAD,
    S_DELETE,
    S_INFO,
    S_LEASE,
    S_RELEASE,
    S_SHARE,
    S_MEMBERS,
    S_PATTERN_LOAD,
    S_COUNT
};

enum chan_state {
    C_IDLE,          /* not subscribed in Redis */
    C_SUBSCRIBING,   /* SUBSCRIBE sent */
    C_LOADING,       /* subscribed; reading the stream (pub/sub messages are buffered) */
    C_SYNCED,        /* the hub holds the stream; pub/sub messages go to it */
    C_UNSUBSCRIBING, /* UNSUBSCRIBE sent */
};

struct buffered {
    struct buffered *next;
    struct sp_msg *msg;
    char *snapshot; /* the "s" field, or NULL */
    size_t snapshot_len;
};

/* A channel followed, or a pattern ("under:<prefix>"): a pattern's state is
 * the same, its load reads every channel under it, and its messages are
 * kept in the hub for channels no one follows by name. */
struct echan {
    char *name;
    bool pattern;
    enum chan_state state;
    size_t subs;    /* local subscribers (the hub's count) */
    size_t pins;    /* waiters */
    bool resync;    /* the hub has its history: the next load delivers what is new */
    bool loading;   /* a load is in flight */
    uint64_t after; /* the next load reads entries after this seq */
    struct buffered *head, **tail;
    struct sp_delay_entry linger; /* unwanted: unsubscribed when it is due */
    bool lingered;
    struct sp_engine *e;
};

struct sp_engine_wait {
    struct sp_engine *e;
    LIST_ENTRY(sp_engine_wait) link;
    sp_engine_synced cb;
    void *arg;
    struct event *timer;
    size_t count;
    char *names[]; /* count of them, one allocation each */
};

struct engine_stats {
    uint64_t published;         /* not counting duplicates */
    struct sp_histogram fanout; /* a pub/sub message to the hub's hand-off */
    struct sp_histogram lag;    /* Redis's clock at publish to this replica's at receipt */
    uint64_t gaps, backfilled;  /* resyncs that found messages missed, and those messages */
    uint64_t up_transitions, down_transitions;
    uint64_t publish_failures;
    uint64_t loads, resyncs, epoch_changes;
    uint64_t primary_changes; /* Sentinel named another primary */
    uint64_t not_replicated;  /* publishes redis.wait_replicas did not confirm */
};

struct sp_engine {
    struct sp_engine_env env;
    struct sp_delay *lingering; /* channels unwanted for less than LINGER_MS */
    struct evdns_base *dns;
    struct sp_redis *cmd, *sub;
    char sha[S_COUNT][41];
    unsigned scripts_loaded;
    bool hello_done;
    atomic_bool up; /* read by every worker's readiness probe */
    bool freeing;
    bool epoch_known;            /* adopted Redis's epoch once */
    bool cmd_was_up, sub_was_up; /* for logging a loss once, then retries at debug */
    char *prefix;
    char *glob_prefix; /* the prefix with glob characters escaped (SCAN) */
    char replica[24];
    /* From the configuration at start: the redis section needs a restart. */
    uint64_t subscribe_wait_ms, poll_lease_ms;
    bool required_for_ready;
    struct sp_hmap *chans;
    LIST_HEAD(, sp_engine_wait) waits;
    struct engine_stats stats;
    struct engine_share *share;
    struct engine_sentinel *sentinel; /* NULL without redis.sentinels */
};

/* One command in flight. */
struct op {
    struct sp_engine *e;
    union {
        sp_engine_published published;
        sp_engine_channel_done channel_done;
        sp_engine_leased leased;
        sp_engine_claimed claimed;
    } cb;
    void *arg;
    enum script script; /* SCRIPT LOAD */
    char channel[SP_CHANNEL_MAX + 1];
    struct sp_publish_result res; /* a publish waiting for WAIT */
};

/* ---- engine.c ---------------------------------------------------------------------------- */

/* prefix + kind + channel into out. Returns 0, or -1 if it does not fit. */
int engine_key(const struct sp_engine *e, char *out, size_t size, const char *kind,
               const char *channel);
void engine_fresh_epoch(char out[9]);
/* The linger queue's due callback: an unwanted channel's time is up. */
void engine_lingered(void *ctx, struct sp_delay_entry *entry);
bool engine_reply_is(const redisReply *r, int type, size_t min_elements);
uint64_t engine_reply_u64(const redisReply *r);
/* EVALSHA of a loaded script on the command connection. Returns 0 or -1. */
int engine_eval(struct sp_engine *e, enum script s, redisCallbackFn *fn, void *privdata, int nkeys,
                const char **keys, int nargs, const char **args, const size_t *arglens);
void engine_script_failed(struct sp_engine *e, const redisReply *r);
void engine_update_up(struct sp_engine *e, const char *why);
void engine_epoch_changed(struct sp_engine *e, const char *epoch, uint64_t seq);
void engine_each_chan(struct sp_engine *e, void (*fn)(const char *, void *, void *));

/* ---- engine_sync.c ------------------------------------------------------------------------ */

extern const struct sp_redis_ops engine_sub_ops;
void engine_load_channel(struct sp_engine *e, struct echan *c);
/* A load's answer r (an array of elements, the epoch first and an array
 * last): the channel or pattern it was for, when it can be applied now;
 * else NULL (gone or unsubscribed meanwhile, the connection lost, a script
 * error, or Redis's data lost, and then it loads again). Frees op. */
struct echan *engine_load_answered(struct op *op, const redisReply *r, size_t elements);
void engine_check_waits(struct sp_engine *e);
bool engine_synced(struct sp_engine *e, const char *name);
struct sp_slice engine_field(const redisReply *fields, const char *name);
void engine_buffered_clear(struct echan *c);
/* A resync delivered missed messages (a pub/sub gap filled from history). */
void engine_count_gap(struct sp_engine *e, size_t missed);
void engine_wait_finish(struct sp_engine_wait *w, bool ok);
/* A pub/sub message's text as a message of channel; its "s" field in
 * *snap, *snap_len. NULL when unreadable or out of memory. */
struct sp_msg *engine_read_message(struct sp_engine *e, const char *channel, const char *p,
                                   size_t len, const char **snap, size_t *snap_len);
/* A load's stream entries as the hub's messages: calls fn with each that
 * is not past channels.history_ttl, and returns the floor they leave (an
 * entry past it raises floor). */
uint64_t engine_each_entry(struct sp_engine *e, const char *channel, const redisReply *entries,
                           uint64_t redis_now, uint64_t floor,
                           void (*fn)(struct sp_engine *e, struct sp_msg *m, struct sp_slice snap,
                                      void *ctx),
                           void *ctx);

/* ---- engine_sentinel.c -------------------------------------------------------------------- */
struct engine_sentinel *engine_sentinel_new(struct sp_engine *e);
void engine_sentinel_free(struct engine_sentinel *s);
/* Asks the sentinel which server is the primary now (accepts NULL). */
void engine_sentinel_ask(struct engine_sentinel *s);
/* "host:port" of the primary, "" before the first answer. */
const char *engine_sentinel_primary(const struct engine_sentinel *s);

/* ---- engine_pattern.c --------------------------------------------------------------------- */
/* The most channels one pattern's load reads into the hub. */
#define PATTERN_LOAD_MAX 10000
/* The answer to a pattern's load (engine_load_channel). */
void engine_pattern_loaded(redisAsyncContext *ac, void *reply, void *arg);
/* A message of channel that came through the pattern c. */
void engine_pattern_message(struct sp_engine *e, struct echan *c, const char *channel,
                            const char *p, size_t len);
/* Is channel under a pattern this replica follows (so its history in the
 * hub stays in step)? */
bool engine_pattern_covers(struct sp_engine *e, const char *channel);
/* The pattern c is no longer followed: the histories only it kept go. */
void engine_pattern_dropped(struct sp_engine *e, struct echan *c);
/* Does the channel's own subscription keep its history (loading or synced)? */
bool engine_channel_owned(struct sp_engine *e, const char *channel);

/* ---- engine_share.c ----------------------------------------------------------------------- */

struct engine_share *engine_share_new(struct sp_engine *e);
void engine_share_free(struct engine_share *s);
/* The engine came up: what changed while it was down is sent. */
void engine_share_up(struct engine_share *s);

#endif
