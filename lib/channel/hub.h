/* Channels, their bounded history, and their subscribers.
 *
 * Message ids are "<epoch>-<seq>": the epoch is drawn at random when the hub
 * starts, the sequence counts every publish of this hub. Ids therefore order
 * within a channel (and across channels, so one cursor serves a connection
 * subscribed to several), and an id from before a restart carries an epoch
 * the hub does not know, which is reported as missed history rather than
 * replayed wrongly.
 *
 * One hub serves the whole process: every channel's history, the id
 * sequence and the de-duplication ids are kept once, behind one mutex, and
 * every function here may be called from any thread. Subscribers belong to
 * the worker thread they connected on. Each worker has a port: a publish is
 * numbered and stored once, then mailed (a reference to the message, in
 * order) to each port whose worker has subscribers on the channel, and
 * that worker hands it to its own subscribers. sp_msg is reference-counted
 * atomically for this.
 *
 * Each channel counts the messages stored and deletions it has seen (its
 * serial), and a subscriber remembers the serial it last had: a subscriber
 * whose backlog was taken after a message was stored skips that message
 * when it arrives by mail, so a subscribe racing a publish on another
 * worker gets neither a gap nor a duplicate.
 */
#ifndef SP_CHANNEL_HUB_H
#define SP_CHANNEL_HUB_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "channel/msg.h"

#define SP_CHANNEL_MAX 256

struct sp_hub;
struct sp_channel;
struct sp_hub_port;
struct sp_hub_local;
struct sp_sub;
struct sp_mailbox;

struct sp_sub_ops {
    /* A new message for the subscriber's channel. */
    void (*deliver)(struct sp_sub *sub, struct sp_msg *msg);
    /* The channel was deleted; the hub has already unlinked sub. */
    void (*deleted)(struct sp_sub *sub);
};

/* Embedded in a transport's subscriber; fields are the hub's, touched only
 * by the subscriber's worker thread. */
struct sp_sub {
    TAILQ_ENTRY(sp_sub) link;
    struct sp_hub_local *local; /* the port's entry for the channel; NULL: not subscribed */
    const struct sp_sub_ops *ops;
    uint64_t seen; /* the channel's serial this subscriber is up to */
};

struct sp_hub_options {
    uint64_t history;        /* messages kept per channel */
    uint64_t history_ttl_ms; /* and for how long */
    uint64_t max_message_size;
    /* Only the newest message is kept; a subscriber starting from now gets
     * it first, and a resume is never told of missed history. */
    bool last_value;
};

/* A kind of channel: the names a template makes ("price.{symbol}": each
 * capture any run of name characters) and their options. */
struct sp_hub_class {
    const char *names;
    struct sp_hub_options opts;
};

enum sp_hub_error {
    SP_HUB_OK = 0,
    SP_HUB_BAD_CHANNEL = -1, /* empty, too long, or outside [A-Za-z0-9_.:@~=+-] */
    SP_HUB_TOO_BIG = -2,
    SP_HUB_BAD_EVENT = -3, /* event names: printable ASCII, no ':', at most 128 */
    SP_HUB_NO_MEMORY = -4,
    SP_HUB_NO_CHANNEL = -5,
    SP_HUB_UNAVAILABLE = -6,    /* the shared engine (Redis) cannot take it now */
    SP_HUB_USER_FULL = -7,      /* the user has limits.max_connections_per_user subscribers */
    SP_HUB_NOT_REPLICATED = -8, /* stored by the Redis primary, not confirmed by its replicas */
};

/* base runs the expiry sweep (any one loop); nports is the number of
 * worker ports that will be opened. */
struct sp_hub *sp_hub_new(struct event_base *base, const struct sp_hub_options *opts,
                          unsigned nports);
/* Subscribers must have unsubscribed and ports been freed first. */
void sp_hub_free(struct sp_hub *hub);

/* A worker's port, numbered index (below nports): the hub's mail for it goes
 * to mailbox (which must outlive the port). NULL on allocation failure. */
struct sp_hub_port *sp_hub_port_new(struct sp_hub *hub, unsigned index, struct sp_mailbox *mailbox);
/* On the port's thread, once its subscribers have unsubscribed. Mail still
 * on its way is dropped by the mailbox. Accepts NULL. */
void sp_hub_port_free(struct sp_hub_port *port);

bool sp_hub_channel_name_valid(const char *name, size_t len);
/* A pattern: a channel name's beginning up to a separator ('.', ':' or
 * '-'), then '*'. It names every channel that begins so and goes on:
 * "orders.42.*" covers "orders.42.paid" and "orders.42.items.7", not
 * "orders.42" itself. Subscriptions may name one; publishes may not. */
bool sp_hub_pattern_valid(const char *name, size_t len);
/* A channel's name or a pattern: what a subscription may name. */
bool sp_hub_subscription_name_valid(const char *name, size_t len);
const char *sp_hub_error_text(int err);

struct sp_publish {
    const char *channel;
    const char *event; /* may be NULL */
    const void *data;
    size_t len;
    const char *dedup_id; /* may be NULL */
    void *grip;           /* GRIP formats (json_t *) to attach, or NULL */
    const char *origin;   /* a Pusher socket_id not to deliver to, or NULL */
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

/* On the port's thread: links sub into the channel (created if need be),
 * or the pattern; messages stored from now on reach it. ops must outlive
 * sub. A message reaches a subscriber of a pattern through the pattern,
 * and again through its channel if the same owner subscribed to both. */
int sp_hub_subscribe(struct sp_hub_port *port, struct sp_sub *sub, const char *channel,
                     const struct sp_sub_ops *ops);
/* On the port's thread: unlinks sub; harmless if it is not subscribed. */
void sp_hub_unsubscribe(struct sp_hub_port *port, struct sp_sub *sub);
/* Subscribers of the channel over every port now. */
size_t sp_hub_subscribers(struct sp_hub *hub, const char *channel);

/* A resume position. */
struct sp_cursor {
    bool latest;     /* no cursor, and the client wants the current state */
    bool values;     /* from now on, but last-value channels' values first */
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
 * (with cur->latest: each channel's snapshot, else its newest message; a
 * pattern has neither). A pattern's backlog is that of every channel it
 * matches that the hub holds: *missed there means a message after cur was
 * evicted or expired from one (a channel forgotten whole, its history all
 * expired, is not known any more),
 * each with a reference the caller drops. *missed is set when some messages
 * after cur can no longer be had (expired, evicted, or another epoch).
 * Every sub is marked as having what its channel stored so far (those
 * messages are not delivered to it again). On the subs' thread. Returns the
 * count, or -1 on allocation failure. */
int sp_hub_backlog(struct sp_hub *hub, struct sp_sub *const *subs, size_t nsubs,
                   const struct sp_cursor *cur, struct sp_msg **out, size_t max, bool *missed);

struct sp_channel_info {
    size_t subscribers;
    size_t messages;
    char first_id[SP_MSG_ID_MAX]; /* "" when empty */
    char last_id[SP_MSG_ID_MAX];
};

int sp_hub_channel_info(struct sp_hub *hub, const char *channel, struct sp_channel_info *info);
/* Drops the channel's history and ends every subscription of it made so
 * far (their deleted() runs on their own threads, soon after). Returns the
 * number of subscribers ended, or SP_HUB_NO_CHANNEL. */
int sp_hub_channel_delete(struct sp_hub *hub, const char *channel);

size_t sp_hub_channel_count(const struct sp_hub *hub);
/* fn for every channel with subscribers (on any port) whose name starts
 * with prefix, under the hub's lock: fn must not call the hub. */
typedef void (*sp_hub_each_fn)(void *ctx, const char *channel, size_t subscribers);
void sp_hub_each_occupied(struct sp_hub *hub, const char *prefix, sp_hub_each_fn fn, void *ctx);

/* The channel's current state for new subscribers asking for "latest" (a
 * poll route's whole body when it publishes patches). Takes a reference;
 * NULL clears. The channel must exist (have subscribers or messages). */
void sp_hub_set_snapshot(struct sp_hub *hub, const char *channel, struct sp_msg *msg);

/* New options (a reload): the history size applies to channels made from
 * now on; the age and size limits to everything from now on. */
void sp_hub_set_options(struct sp_hub *hub, const struct sp_hub_options *opts);
/* The kinds of channel, in order (a reload replaces them): a channel has the
 * options of the first class whose names make it, else the hub's. As with
 * sp_hub_set_options, a history size applies to channels made from now on.
 * A template that does not compile makes no names. Returns 0, or -1 on
 * allocation failure (nothing changed). */
int sp_hub_set_classes(struct sp_hub *hub, const struct sp_hub_class *classes, size_t n);
/* The options a channel of that name has (for the engine's publishes). */
struct sp_hub_options sp_hub_channel_options(const struct sp_hub *hub, const char *channel);

/* Called, on the thread of the port that made the change and outside the
 * hub's lock, when a channel gains its first subscriber (over all ports) or
 * loses its last. count was the new total then; another thread may have
 * changed it since (sp_hub_subscribers says what it is now). */
typedef void (*sp_hub_watch)(void *ctx, unsigned port, const char *channel, size_t count);
void sp_hub_set_watch(struct sp_hub *hub, sp_hub_watch watch, void *ctx);

/* ---- a shared engine (Redis) assigns the ids --------------------------------------------
 *
 * With an engine, publishes do not go through sp_hub_publish(): the engine
 * numbers them (one sequence and epoch for all replicas) and hands every
 * message to every replica's hub with these calls, in order, from one
 * thread: the only one that changes the epoch. */

/* On the engine's thread only (the pointer is the hub's). */
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
 * deliver, hands it to the channel's subscribers (not to patterns': the
 * engine follows those itself). Returns how many were
 * reached, or SP_HUB_NO_MEMORY. */
int sp_hub_inject(struct sp_hub *hub, struct sp_msg *msg, bool deliver);
/* A message the engine got through a pattern it follows: with store, kept
 * in its channel's history (unless held already), and handed to that
 * pattern's subscribers only (a channel's own come through sp_hub_inject,
 * whose deliveries reach no pattern). Returns how many were reached. */
int sp_hub_inject_pattern(struct sp_hub *hub, const char *pattern, struct sp_msg *msg, bool store);
/* Drops the history of every channel under pattern that keep (called
 * under the hub's lock: it must not call the hub) does not keep. */
void sp_hub_drop_histories(struct sp_hub *hub, const char *pattern,
                           bool (*keep)(void *ctx, const char *channel), void *ctx);

#endif
