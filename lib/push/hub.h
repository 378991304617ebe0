/* Channels, their bounded history, and their subscribers.
 *
 * Message ids are "<epoch>-<seq>": the epoch is drawn at random when the hub
 * starts, the sequence counts every publish of this hub. Ids therefore order
 * within a channel (and across channels, so one cursor serves a connection
 * subscribed to several), and an id from before a restart carries an epoch
 * the hub does not know, which is reported as missed history rather than
 * replayed wrongly.
 *
 * The hub belongs to one event loop (sidepush runs one for now); sp_msg is
 * reference-counted atomically so that messages can later be handed to
 * other loops.
 */
#ifndef SP_PUSH_HUB_H
#define SP_PUSH_HUB_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "push/msg.h"

#define SP_CHANNEL_MAX 256

struct sp_hub;
struct sp_channel;
struct sp_sub;

struct sp_sub_ops {
    /* A new message for the subscriber's channel. */
    void (*deliver)(struct sp_sub *sub, struct sp_msg *msg);
    /* The channel was deleted; the hub has already unlinked sub. */
    void (*deleted)(struct sp_sub *sub);
};

/* Embedded in a transport's subscriber; fields are the hub's. */
struct sp_sub {
    TAILQ_ENTRY(sp_sub) link;
    struct sp_channel *channel;
    const struct sp_sub_ops *ops;
};

struct sp_hub_options {
    uint64_t history;        /* messages kept per channel */
    uint64_t history_ttl_ms; /* and for how long */
    uint64_t max_message_size;
};

enum sp_hub_error {
    SP_HUB_OK = 0,
    SP_HUB_BAD_CHANNEL = -1, /* empty, too long, or outside [A-Za-z0-9_.:@~=+-] */
    SP_HUB_TOO_BIG = -2,
    SP_HUB_BAD_EVENT = -3, /* event names: printable ASCII, no ':', at most 128 */
    SP_HUB_NO_MEMORY = -4,
    SP_HUB_NO_CHANNEL = -5,
    SP_HUB_UNAVAILABLE = -6, /* the shared engine (Redis) cannot take it now */
};

struct sp_hub *sp_hub_new(struct event_base *base, const struct sp_hub_options *opts);
/* Subscribers must have unsubscribed first. */
void sp_hub_free(struct sp_hub *hub);

bool sp_hub_channel_name_valid(const char *name, size_t len);
const char *sp_hub_error_text(int err);

struct sp_publish {
    const char *channel;
    const char *event; /* may be NULL */
    const void *data;
    size_t len;
    const char *dedup_id; /* may be NULL */
    void *grip;           /* GRIP formats (json_t *) to attach, or NULL */
};

struct sp_publish_result {
    char id[SP_MSG_ID_MAX];
    uint64_t seq;
    size_t subscribers; /* reached */
    bool duplicate;     /* dedup_id seen before: nothing stored or sent */
};

/* Checks a publish without storing it: SP_HUB_OK or the error
 * sp_hub_publish() would return. */
int sp_hub_check(const struct sp_hub *hub, const struct sp_publish *p);

/* Stores the message in the channel's history and hands it to every
 * subscriber of the channel. Returns SP_HUB_OK and fills *res, or an error. */
int sp_hub_publish(struct sp_hub *hub, const struct sp_publish *p, struct sp_publish_result *res);

/* Links sub into the channel (created if need be). ops must outlive sub. */
int sp_hub_subscribe(struct sp_hub *hub, struct sp_sub *sub, const char *channel,
                     const struct sp_sub_ops *ops);
/* Unlinks sub; harmless if it is not subscribed. */
void sp_hub_unsubscribe(struct sp_hub *hub, struct sp_sub *sub);

/* A resume position. */
struct sp_cursor {
    bool latest;     /* no cursor, and the client wants the current state */
    bool present;    /* the client gave one */
    bool this_epoch; /* issued by this hub (since its start) */
    uint64_t seq;    /* last message the client has */
};

/* Parses an id the client sent back. Returns 0, or -1 if it is not an id
 * at all (a foreign epoch still parses, with this_epoch false). NULL or ""
 * is "no cursor". */
int sp_hub_parse_cursor(const struct sp_hub *hub, const char *text, struct sp_cursor *c);

/* The cursor of the newest message published so far (for "from now on"). */
struct sp_cursor sp_hub_now(const struct sp_hub *hub);
void sp_hub_format_id(const struct sp_hub *hub, uint64_t seq, char out[SP_MSG_ID_MAX]);

/* Messages after cur in the subscribed channels, oldest first, at most max,
 * (with cur->latest: each channel's snapshot, else its newest message),
 * each with a reference the caller drops. *missed is set when some messages
 * after cur can no longer be had (expired, evicted, or another epoch).
 * Returns the count, or -1 on allocation failure. */
int sp_hub_backlog(struct sp_hub *hub, struct sp_sub *const *subs, size_t nsubs,
                   const struct sp_cursor *cur, struct sp_msg **out, size_t max, bool *missed);

struct sp_channel_info {
    size_t subscribers;
    size_t messages;
    char first_id[SP_MSG_ID_MAX]; /* "" when empty */
    char last_id[SP_MSG_ID_MAX];
};

int sp_hub_channel_info(struct sp_hub *hub, const char *channel, struct sp_channel_info *info);
/* Ends every subscription of the channel (their deleted() runs) and drops
 * its history. Returns the number of subscribers closed, or
 * SP_HUB_NO_CHANNEL. */
int sp_hub_channel_delete(struct sp_hub *hub, const char *channel);

size_t sp_hub_channel_count(const struct sp_hub *hub);

/* The channel's current state for new subscribers asking for "latest" (a
 * poll route's whole body when it publishes patches). Takes a reference;
 * NULL clears. The channel must exist (have subscribers or messages). */
void sp_hub_set_snapshot(struct sp_hub *hub, const char *channel, struct sp_msg *msg);

/* New options (a reload): the history size applies to channels made from
 * now on; the age and size limits to everything from now on. */
void sp_hub_set_options(struct sp_hub *hub, const struct sp_hub_options *opts);

/* Called after a channel's subscriber count changed (count is the new one). */
typedef void (*sp_hub_watch)(void *ctx, const char *channel, size_t count);
void sp_hub_set_watch(struct sp_hub *hub, sp_hub_watch watch, void *ctx);

/* ---- a shared engine (Redis) assigns the ids --------------------------------------------
 *
 * With an engine, publishes do not go through sp_hub_publish(): the engine
 * numbers them (one sequence and epoch for all replicas) and hands every
 * message to every replica's hub with these calls, in order. */

const char *sp_hub_epoch(const struct sp_hub *hub);
/* Adopts the engine's epoch. A different one means the engine lost its
 * data: every channel's history is dropped (floors reset), since its ids
 * belong to the old epoch. Returns true if the epoch changed. */
bool sp_hub_set_epoch(struct sp_hub *hub, const char *epoch, uint64_t seq);
/* The engine's sequence has reached seq (cursors up to it are this epoch's). */
void sp_hub_note_seq(struct sp_hub *hub, uint64_t seq);
/* Replaces the channel's history by nothing, with the given floor (the
 * channel is made if need be). */
int sp_hub_reset_channel(struct sp_hub *hub, const char *channel, uint64_t floor);
/* Drops the channel's history (if it exists), e.g. once the engine stops
 * following it. */
void sp_hub_drop_history(struct sp_hub *hub, const char *channel);
/* Stores msg (numbered by the engine) in its channel's history and, with
 * deliver, hands it to the channel's subscribers. Returns how many were
 * reached, or SP_HUB_NO_MEMORY. */
int sp_hub_inject(struct sp_hub *hub, struct sp_msg *msg, bool deliver);

#endif
