/* What pusher.c (a connection: its handshake, frames, liveness) and
 * pusher_channel.c (its channels: subscriptions, presence, users, client
 * events, subscription counts) share about a Pusher client. */
#ifndef SP_PUSH_PUSHER_INTERNAL_H
#define SP_PUSH_PUSHER_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <sys/queue.h>

#include "core/hmap.h"
#include "push/pusher.h"

/* Pusher's close codes (pusher-js getCloseAction: 4000-4099 do not come
 * back unchanged, 4100-4199 back off, 4200-4299 reconnect at once). */
enum {
    CLOSE_UNKNOWN_APP = 4001,
    CLOSE_BAD_VERSION = 4006,
    CLOSE_UNSUPPORTED_PROTOCOL = 4007,
    CLOSE_NO_PROTOCOL = 4008,
    CLOSE_UNAUTHORIZED = 4009,
    CLOSE_OVER_CAPACITY = 4100,
    CLOSE_RECONNECT = 4200,
    CLOSE_PONG_TIMEOUT = 4201,
    ERROR_CLIENT_EVENT_RATE = 4301, /* a pusher:error; the connection stays */
};

#define PUSHER_CHANNEL_MAX 164
#define BACKLOG_MAX 1024 /* messages a resuming client is given at most */
#define USER_ID_MAX 128

struct sp_pusher;

/* One subscribed channel of a connection. */
struct pchan {
    struct pchan *next;
    struct sp_pusher *conn;
    struct sp_subscription *subs; /* NULL while sync waits */
    struct sp_sync *sync;         /* with Redis: waiting for the channel to be synced */
    char *user_id;                /* on a presence channel: this connection's member */
    char *user_info;              /* and its info (JSON text, or NULL) */
    char *since;                  /* the message id a resuming client has seen last, or NULL */
    char *origin; /* on a presence channel: of its member's joins (sp_push_member_origin) */
    bool presence;
    bool ready;  /* subscription_succeeded sent: client events may come */
    bool hidden; /* the signed-in user's channel, not (or no longer) asked for */
    char name[];
};

/* A worker's Pusher connections. socket_ids are "<prefix>.<n>": the prefix
 * random per worker, so ids differ across workers and replicas. */
struct pusher_kind {
    struct sp_kind_state base;
    LIST_HEAD(, sp_pusher) all;
    uint32_t prefix;
    uint32_t next;
    struct sp_hmap *counts; /* pusher.subscription_count: channel -> struct count */
    uint64_t ticks;
};

/* A channel's subscriber count as last told to this worker's clients. */
struct count {
    size_t told, now;
    uint64_t tick; /* when now was read: the channel is still held */
    char channel[];
};

struct sp_pusher {
    struct pusher_kind *kind;
    struct sp_stream *stream;
    struct sp_ws_reader *reader;
    struct sp_wire wire; /* SP_FMT_PUSHER, compressed if negotiated */
    LIST_ENTRY(sp_pusher) link;
    struct pchan *channels;
    unsigned nchannels;
    uint64_t last_heard;  /* ms: the last frame from the client */
    uint64_t ping_sent;   /* ms: a pusher:ping waits for its pong (0: none) */
    uint64_t retire_ms;   /* limits.max_connection_age */
    uint64_t rate_second; /* the second (ms / 1000) client events are counted in */
    unsigned rate_used;
    char *user_id;  /* signed in (pusher:signin) as this user, or NULL */
    bool in_reader; /* inside sp_ws_reader_feed: freeing must wait */
    bool send_failed;
    unsigned want_close;
    const char *want_reason;
    char socket_id[24];
};

static inline struct sp_push *push_of(const struct sp_pusher *p)
{
    return p->kind->base.push;
}

static inline bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- pusher.c: sending and ending ---- */

/* {"event","channel","data"} (channel may be NULL); data goes as a JSON
 * string when string_data (protocol 7 double-encodes it). Takes data. */
int sp_pusher_send_event(struct sp_pusher *p, const char *event, const char *channel, json_t *data,
                         bool string_data);
/* pusher:error; code 0 sends null (an error that closes nothing). */
int sp_pusher_send_error(struct sp_pusher *p, unsigned code, const char *message);
/* Drops the connection (output over its limit); inside the frame reader,
 * once out of it. */
void sp_pusher_abort(struct sp_pusher *p);
/* Closes with a Pusher code after a pusher:error; inside the frame reader,
 * once out of it. */
void sp_pusher_close(struct sp_pusher *p, unsigned code, const char *reason);

/* ---- pusher_channel.c: a connection's channels ---- */

void sp_pusher_channel_free(struct pchan *c);
void sp_pusher_subscribe(struct sp_pusher *p, json_t *data);
void sp_pusher_unsubscribe(struct sp_pusher *p, json_t *data);
void sp_pusher_signin(struct sp_pusher *p, json_t *data);
void sp_pusher_client_event(struct sp_pusher *p, const char *event, json_t *msg);
/* Once a tick with pusher.subscription_count; _free at the kind's end. */
void sp_pusher_tell_counts(struct pusher_kind *kind);
void sp_pusher_counts_free(struct pusher_kind *kind);

#endif
