/* The hub's state, shared by its two files: hub.c (channels, ports,
 * publishing, subscribing, administration) and history.c (cursors,
 * backlogs, and the ids and history the Redis engine numbers). channel/
 * only. */
#ifndef SP_CHANNEL_HUB_INTERNAL_H
#define SP_CHANNEL_HUB_INTERNAL_H

#include <pthread.h>
#include <sys/queue.h>

#include "channel/hub.h"
#include "core/cache.h"
#include "core/hmap.h"
#include "core/template.h"
#include "net/mailbox.h"

TAILQ_HEAD(sub_list, sp_sub);

/* Small when idle: a channel of one subscriber that has carried nothing
 * costs this struct with its per-port counts and name inline, and its map
 * entry; the history ring grows with the messages it holds. Under the
 * hub's lock. */
struct sp_channel {
    /* History: a ring of the newest messages, oldest at head; len slots
     * allocated, growing by doubling up to cap. */
    struct sp_msg **ring;
    struct sp_msg *snapshot;
    /* Every message of this channel with seq <= floor that is not in the
     * ring is gone: evicted, expired, or from before the channel existed. */
    uint64_t floor;
    uint64_t serial;  /* messages stored and deletions, counted */
    const char *name; /* inline, after counts */
    uint32_t nsubs;   /* over all ports */
    uint32_t flags;   /* CH_* */
    uint32_t cap;     /* channels.history when the channel was made (a reload may change it) */
    uint32_t len, head, count;
    uint32_t counts[]; /* subscribers on each port */
};

/* A pattern subscription's entry: subscribers, never history. */
#define CH_PATTERN 1u
/* The floor is when the channel was made: nothing after it is known gone. */
#define CH_BIRTH_FLOOR 2u
/* The upper half of flags: the channel's class, 0 for the hub's options. */
#define CH_CLASS_SHIFT 16

struct hub_class {
    struct sp_tmpl *names;
    struct sp_hub_options opts;
};

/* A port's own entry for a channel it has subscribers on: only the port's
 * thread touches it. */
struct sp_hub_local {
    struct sub_list subs;
    struct sp_channel *shared; /* alive while subs is not empty: they count in it */
    uint32_t busy;             /* inside a fan-out: must not be freed under it */
    char name[];
};

struct sp_hub_port {
    struct sp_hub *hub;
    unsigned index;
    struct sp_mailbox *mailbox;
    struct sp_hmap *locals; /* name -> struct sp_hub_local */
};

/* What the hub mails a port: a message, or (msg NULL) a deletion. */
struct delivery {
    struct sp_mail mail;
    struct sp_hub_port *port;
    struct sp_msg *msg;
    uint64_t serial;
    bool named;
    char channel[]; /* deletions and patterns' mail: the entry it is for */
};

struct sp_hub {
    pthread_mutex_t lock; /* everything but the ports' locals */
    unsigned nports;
    struct sp_hub_port **ports;
    struct sp_hub_options opts;
    struct hub_class *classes;
    size_t nclasses;
    struct sp_hmap *channels;
    /* The patterns' segment trie, each node keyed by its whole path ("a.",
     * "a.b."): path -> struct pattern_node. */
    struct sp_hmap *patterns;
    /* "<channel>\n<SHA-256 of the dedup id>" -> the first message's id,
     * for channels.history_ttl */
    struct sp_cache *dedup;
    struct event *sweeper;
    sp_hub_watch watch;
    void *watch_ctx;
    uint64_t seq;
    char epoch[16];
};

/* The hub's lock guards state, not the API's constness. */
static inline void hub_lock(const struct sp_hub *hub)
{
    pthread_mutex_lock((pthread_mutex_t *)&hub->lock);
}

static inline void hub_unlock(const struct sp_hub *hub)
{
    pthread_mutex_unlock((pthread_mutex_t *)&hub->lock);
}

/* ---- hub.c: each under the hub's lock ------------------------------------------------- */

/* The options of ch: its class's, or the hub's. */
const struct sp_hub_options *hub_options_of(const struct sp_hub *hub, const struct sp_channel *ch);

/* The channel named name; made (create) when it is not there. NULL when it
 * is not there, or on allocation failure. */
struct sp_channel *hub_channel_get(struct sp_hub *hub, const char *name, bool create);
/* Drops ch once it has neither subscribers nor history. */
void hub_channel_maybe_remove(struct sp_hub *hub, struct sp_channel *ch);
/* Empties ch's history (its floor stays). */
void hub_forget_history(struct sp_channel *ch);
/* One more serial for ch, m mailed to every port with subscribers on it (m
 * NULL: the channel's deletion), so each port gets them in serial order. */
void hub_mail_ports(struct sp_hub *hub, struct sp_channel *ch, struct sp_msg *m);
/* The i-th oldest message of ch's history. */
struct sp_msg *hub_ring_at(const struct sp_channel *ch, size_t i);
/* Appends m to ch's history (taking a reference), the oldest giving way
 * past the channel's cap; with no history kept, only the floor moves. */
void hub_store(struct sp_channel *ch, struct sp_msg *m);

/* ---- pattern.c: each under the hub's lock ------------------------------------------------ */

/* Puts the pattern ch into the trie. Returns 0, or -1 on allocation failure. */
int hub_pattern_add(struct sp_hub *hub, struct sp_channel *ch);
/* Takes ch out of the trie; harmless if it is not there. */
void hub_pattern_remove(struct sp_hub *hub, struct sp_channel *ch);
/* Mails m to the subscribers of every pattern its channel matches. Returns
 * how many they are. */
size_t hub_mail_patterns(struct sp_hub *hub, struct sp_msg *m);
/* Adds to *out (growing it) every channel with history that the pattern
 * matches. Returns 0, or -1 on allocation failure. */
int hub_pattern_channels(struct sp_hub *hub, const struct sp_channel *pattern,
                         struct sp_channel ***out, size_t *n, size_t *cap);
/* Appends ch to *out (growing it). Returns 0, or -1. */
int hub_pattern_channels_add(struct sp_channel ***out, size_t *n, size_t *cap,
                             struct sp_channel *ch);
void hub_patterns_free(struct sp_hub *hub);

#endif
