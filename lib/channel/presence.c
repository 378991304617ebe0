#include "channel/presence.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/delay.h"
#include "core/hmap.h"

struct room;

struct member {
    char *user_id; /* the room's key for it */
    char *info;    /* JSON object text, or NULL */
    unsigned connections;
    struct room *room;
    struct sp_delay_entry leaving; /* queued while connections == 0 */
};

struct room {
    char *channel; /* the table's key for it */
    struct sp_hmap *members;
};

struct sp_presence {
    pthread_mutex_t lock; /* rooms and counts; changes come from its loop only */
    struct sp_hmap *rooms;
    size_t total;
    struct sp_delay *leaving; /* members without connections, until their grace ends */
    uint64_t grace_ms;
    sp_presence_changed changed;
    void *ctx;
};

static void member_free(struct member *m)
{
    free(m->user_id);
    free(m->info);
    free(m);
}

static void room_free(struct room *r)
{
    free(r->channel);
    sp_hmap_free(r->members);
    free(r);
}

/* Under the lock: takes m out of its room, the room out of the table when
 * it empties. The caller frees m. */
static void unlink_member(struct sp_presence *p, struct member *m)
{
    struct room *r = m->room;

    sp_hmap_del(r->members, m->user_id);
    p->total--;
    if (sp_hmap_count(r->members) == 0) {
        sp_hmap_del(p->rooms, r->channel);
        room_free(r);
    }
}

/* A member whose grace is over leaves; the callback hears of it. */
static void left(void *ctx, struct sp_delay_entry *e)
{
    struct sp_presence *p = ctx;
    struct member *m = SP_DELAY_OWNER(e, struct member, leaving);
    char *channel = strdup(m->room->channel);

    pthread_mutex_lock(&p->lock);
    unlink_member(p, m);
    pthread_mutex_unlock(&p->lock);
    if (channel != NULL)
        p->changed(p->ctx, SP_PRESENCE_LEFT, channel, m->user_id, m->info);
    free(channel);
    member_free(m);
}

struct sp_presence *sp_presence_new(struct event_base *base, uint64_t leave_grace_ms,
                                    sp_presence_changed changed, void *ctx)
{
    struct sp_presence *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->grace_ms = leave_grace_ms;
    p->changed = changed;
    p->ctx = ctx;
    p->rooms = sp_hmap_new();
    p->leaving = sp_delay_new(base, left, p);
    if (p->rooms == NULL || p->leaving == NULL || pthread_mutex_init(&p->lock, NULL) != 0) {
        sp_delay_free(p->leaving);
        sp_hmap_free(p->rooms);
        free(p);
        return NULL;
    }
    return p;
}

static void free_member_entry(const char *key, void *value, void *ctx)
{
    member_free(value);
}

static void free_room_entry(const char *key, void *value, void *ctx)
{
    struct room *r = value;
    sp_hmap_each(r->members, free_member_entry, NULL);
    room_free(r);
}

void sp_presence_free(struct sp_presence *p)
{
    if (p == NULL)
        return;
    sp_delay_free(p->leaving);
    sp_hmap_each(p->rooms, free_room_entry, NULL);
    sp_hmap_free(p->rooms);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void sp_presence_set_grace(struct sp_presence *p, uint64_t leave_grace_ms)
{
    p->grace_ms = leave_grace_ms;
}

/* Under the lock: the channel's room and the user's entry in it, made if
 * need be. NULL when out of memory. */
static struct member *find_or_add(struct sp_presence *p, const char *channel, const char *user_id,
                                  const char *info, bool *added)
{
    struct room *r = sp_hmap_get(p->rooms, channel);
    bool new_room = r == NULL;

    *added = false;
    if (new_room) {
        r = calloc(1, sizeof(*r));
        if (r == NULL || (r->channel = strdup(channel)) == NULL ||
            (r->members = sp_hmap_new()) == NULL || sp_hmap_put(p->rooms, r->channel, r) < 0) {
            if (r)
                room_free(r);
            return NULL;
        }
    }
    struct member *m = sp_hmap_get(r->members, user_id);
    if (m != NULL)
        return m;
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->user_id = strdup(user_id)) == NULL ||
        (info != NULL && (m->info = strdup(info)) == NULL) ||
        sp_hmap_put(r->members, m->user_id, m) < 0) {
        if (m)
            member_free(m);
        if (new_room) {
            sp_hmap_del(p->rooms, r->channel);
            room_free(r);
        }
        return NULL;
    }
    m->room = r;
    p->total++;
    *added = true;
    return m;
}

int sp_presence_join(struct sp_presence *p, const char *channel, const char *user_id,
                     const char *info)
{
    bool added;

    pthread_mutex_lock(&p->lock);
    struct member *m = find_or_add(p, channel, user_id, info, &added);
    if (m != NULL)
        m->connections++;
    pthread_mutex_unlock(&p->lock);
    if (m == NULL)
        return -1;
    sp_delay_cancel(p->leaving, &m->leaving); /* back within the grace: nobody was told */
    p->changed(p->ctx, added ? SP_PRESENCE_JOINED : SP_PRESENCE_COUNTED, channel, user_id, m->info);
    return 0;
}

void sp_presence_leave(struct sp_presence *p, const char *channel, const char *user_id)
{
    pthread_mutex_lock(&p->lock);
    struct room *r = sp_hmap_get(p->rooms, channel);
    struct member *m = r ? sp_hmap_get(r->members, user_id) : NULL;
    if (m != NULL && m->connections > 0)
        m->connections--;
    pthread_mutex_unlock(&p->lock);
    if (m == NULL)
        return;
    p->changed(p->ctx, SP_PRESENCE_COUNTED, channel, user_id, m->info);
    if (m->connections > 0 || m->leaving.queued)
        return;
    sp_delay_add(p->leaving, &m->leaving, p->grace_ms);
}

bool sp_presence_lookup(struct sp_presence *p, const char *channel, const char *user_id,
                        unsigned *connections, const char **info)
{
    struct room *r = sp_hmap_get(p->rooms, channel); /* changed on this loop only */
    struct member *m = r ? sp_hmap_get(r->members, user_id) : NULL;

    if (m == NULL)
        return false;
    *connections = m->connections;
    *info = m->info;
    return true;
}

struct each {
    void (*fn)(const char *, const char *, void *);
    void *ctx;
    const char *channel;
};

static void each_member(const char *key, void *value, void *ctx)
{
    struct each *e = ctx;
    e->fn(e->channel, key, e->ctx);
}

static void each_room(const char *key, void *value, void *ctx)
{
    struct each *e = ctx;
    struct room *r = value;

    e->channel = r->channel;
    sp_hmap_each(r->members, each_member, e);
}

void sp_presence_each(struct sp_presence *p,
                      void (*fn)(const char *channel, const char *user_id, void *ctx), void *ctx)
{
    struct each e = {fn, ctx, NULL};
    sp_hmap_each(p->rooms, each_room, &e);
}

size_t sp_presence_count(struct sp_presence *p, const char *channel)
{
    pthread_mutex_lock(&p->lock);
    struct room *r = sp_hmap_get(p->rooms, channel);
    size_t n = r ? sp_hmap_count(r->members) : 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}

size_t sp_presence_total(struct sp_presence *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->total;
    pthread_mutex_unlock(&p->lock);
    return n;
}

size_t sp_presence_rooms(struct sp_presence *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = sp_hmap_count(p->rooms);
    pthread_mutex_unlock(&p->lock);
    return n;
}

struct listing {
    json_t *array;
    size_t max;
};

static void list_member(const char *key, void *value, void *ctx)
{
    struct listing *l = ctx;
    const struct member *m = value;

    if (json_array_size(l->array) >= l->max)
        return;
    json_t *info = m->info ? json_loads(m->info, 0, NULL) : NULL;
    json_array_append_new(l->array, json_pack("{s:s, s:o, s:I}", "user_id", m->user_id, "user_info",
                                              info ? info : json_null(), "connections",
                                              (json_int_t)m->connections));
}

void sp_presence_write_json(struct sp_presence *p, const char *channel, size_t max,
                            struct evbuffer *out)
{
    struct listing l = {json_array(), max};
    size_t count = 0;

    pthread_mutex_lock(&p->lock);
    struct room *r = sp_hmap_get(p->rooms, channel);
    if (r != NULL && l.array != NULL) {
        count = sp_hmap_count(r->members);
        sp_hmap_each(r->members, list_member, &l);
    }
    pthread_mutex_unlock(&p->lock);
    json_t *doc = json_pack("{s:s, s:I, s:o}", "channel", channel, "count", (json_int_t)count,
                            "members", l.array ? l.array : json_array());
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text != NULL)
        evbuffer_add(out, text, strlen(text));
    else
        evbuffer_add_printf(out, "{\"count\":%zu,\"members\":[]}", count);
    free(text);
    json_decref(doc);
}
