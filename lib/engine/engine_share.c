/* Presence and occupancy across replicas (lua/share.lua).
 *
 * Each replica keeps in Redis what it holds: its members with their
 * connection counts, and the channels it occupies. Redis counts the
 * replicas behind each, so a member is added when the first replica holds
 * it and removed when the last lets go, and the replica whose call made
 * that happen is the one that tells (the join/leave message, which every
 * replica's subscribers get, and the backend's webhook): once for the
 * deployment. The local graces (presence.leave_grace, the vacancy grace)
 * run before a replica lets go, so a client moving to another replica
 * within them changes nothing.
 *
 * Changes are marked dirty and sent in one call at the end of the loop's
 * turn, one call in flight (what changes meanwhile goes in the next): a
 * storm of joins costs a few round trips, and the state sent is always the
 * newest. The same call is the heartbeat (every third of
 * redis.replica_timeout) and reaps replicas that missed theirs: a replica
 * killed with SIGKILL has its members removed after the timeout. A replica
 * reaped by mistake (cut off from Redis that long) hears so in the answer
 * and sends all it holds again. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "core/log.h"
#include "engine/engine-internal.h"

#define BATCH_MAX 256 /* entries per call */
#define ENTRY_ARGS 5
#define HEAD_ARGS 6    /* EVALSHA sha 0 prefix replica timeout */
#define EVENT_FIELDS 5 /* what channel user info members */

struct dirty {
    TAILQ_ENTRY(dirty) link;
    char *user; /* points into key, or NULL for occupancy */
    char *channel;
    char key[]; /* "m<channel>\n<user>" or "o<channel>", then channel and user */
};

TAILQ_HEAD(dirty_list, dirty);

/* The arguments of one call, kept here rather than allocated at every
 * heartbeat (hiredis copies them out at once). */
struct call {
    const char *argv[HEAD_ARGS + BATCH_MAX * ENTRY_ARGS];
    size_t lens[HEAD_ARGS + BATCH_MAX * ENTRY_ARGS];
    char counts[BATCH_MAX][16];
    char timeout[24];
};

struct engine_share {
    struct sp_engine *e;
    struct call call;
    struct sp_hmap *dirty; /* key -> struct dirty, in order */
    struct dirty_list order;
    struct dirty_list sent; /* in the call in flight */
    bool in_flight;
    struct event *soon; /* the end of this turn */
    struct event *beat;
    uint64_t timeout_ms;
};

static void flush(struct engine_share *s);

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
    flush(arg);
}

static void mark(struct engine_share *s, const char *channel, const char *user)
{
    char key[KEY_MAX];
    int n = snprintf(key, sizeof(key), "%c%s%s%s", user ? 'm' : 'o', channel, user ? "\n" : "",
                     user ? user : "");

    if (n < 0 || (size_t)n >= sizeof(key) || sp_hmap_get(s->dirty, key) != NULL)
        return; /* already to be sent (as it is then) */
    size_t c = strlen(channel) + 1, u = user ? strlen(user) + 1 : 0;
    struct dirty *d = malloc(sizeof(*d) + (size_t)n + 1 + c + u);
    if (d == NULL)
        return; /* out of memory: the next full send (a reap, a restart) mends it */
    memcpy(d->key, key, (size_t)n + 1);
    d->channel = memcpy(d->key + n + 1, channel, c);
    d->user = user ? memcpy(d->channel + c, user, u) : NULL;
    if (sp_hmap_put(s->dirty, d->key, d) < 0) {
        free(d);
        return;
    }
    TAILQ_INSERT_TAIL(&s->order, d, link);
    if (!s->in_flight)
        event_active(s->soon, EV_TIMEOUT, 0);
}

static void mark_member(const char *channel, const char *user_id, void *ctx)
{
    mark(ctx, channel, user_id);
}

static void mark_occupancy(const char *channel, void *ctx)
{
    mark(ctx, channel, NULL);
}

/* Everything this replica holds, for a Redis that has none of it. */
static void mark_all(struct engine_share *s)
{
    const struct sp_engine_env *env = &s->e->env;

    sp_presence_each(env->presence, mark_member, s);
    if (env->occupancy != NULL)
        sp_occupancy_each(env->occupancy, mark_occupancy, s);
}

static void sent_clear(struct engine_share *s, bool again)
{
    struct dirty *d;

    while ((d = TAILQ_FIRST(&s->sent)) != NULL) {
        TAILQ_REMOVE(&s->sent, d, link);
        if (again && sp_hmap_get(s->dirty, d->key) == NULL && sp_hmap_put(s->dirty, d->key, d) == 0)
            TAILQ_INSERT_TAIL(&s->order, d, link);
        else
            free(d);
    }
}

static const char *str_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? r->str : "";
}

static void tell(const struct sp_engine_events *events, const redisReply *const *ev)
{
    const char *what = str_of(ev[0]), *channel = str_of(ev[1]), *user = str_of(ev[2]);
    const char *info = str_of(ev[3]);

    if (strcmp(what, "added") == 0 || strcmp(what, "removed") == 0)
        events->member(events->ctx, what[0] == 'a', channel, user, info[0] ? info : NULL,
                       (size_t)engine_reply_u64(ev[4]));
    else
        events->occupancy(events->ctx, strcmp(what, "occupied") == 0, channel);
}

static void on_shared(redisAsyncContext *ac, void *reply, void *arg)
{
    struct engine_share *s = arg;
    redisReply *r = reply;
    bool ok = engine_reply_is(r, REDIS_REPLY_ARRAY, 1) && (r->elements - 1) % EVENT_FIELDS == 0;

    s->in_flight = false;
    if (!ok) {
        engine_script_failed(s->e, r);
        sent_clear(s, true); /* sent again once the engine is up */
        return;
    }
    sent_clear(s, false);
    for (size_t i = 1; i + EVENT_FIELDS - 1 < r->elements; i += EVENT_FIELDS)
        tell(&s->e->env.events, (const redisReply *const *)&r->element[i]);
    if (engine_reply_u64(r->element[0]) == 0)
        mark_all(s);
    if (!TAILQ_EMPTY(&s->order) && !s->e->freeing)
        flush(s);
}

/* The entry's five arguments as they are now (not as when it was marked). */
static void entry_args(const struct sp_engine_env *env, const struct dirty *d, const char **argv,
                       size_t *lens, char count[16])
{
    unsigned conns = 0;
    const char *info = NULL;
    long n;

    if (d->user != NULL)
        n = sp_presence_lookup(env->presence, d->channel, d->user, &conns, &info) ? (long)conns
                                                                                  : -1;
    else
        n = env->occupancy != NULL && sp_occupancy_held(env->occupancy, d->channel) ? 1 : -1;
    snprintf(count, 16, "%ld", n);
    argv[0] = d->user ? "m" : "o";
    argv[1] = d->channel;
    argv[2] = d->user ? d->user : "";
    argv[3] = count;
    argv[4] = info ? info : "";
    for (int i = 0; i < ENTRY_ARGS; i++)
        lens[i] = strlen(argv[i]);
}

static void flush(struct engine_share *s)
{
    struct sp_engine *e = s->e;
    struct call *c = &s->call;
    size_t n = 0;
    struct dirty *d;

    if (s->in_flight || !e->up || e->freeing)
        return;
    snprintf(c->timeout, sizeof(c->timeout), "%" PRIu64, s->timeout_ms);
    const char *head[HEAD_ARGS] = {"EVALSHA", e->sha[S_SHARE], "0",
                                   e->prefix, e->replica,      c->timeout};
    for (int i = 0; i < HEAD_ARGS; i++)
        c->argv[i] = head[i], c->lens[i] = strlen(head[i]);
    while (n < BATCH_MAX && (d = TAILQ_FIRST(&s->order)) != NULL) {
        TAILQ_REMOVE(&s->order, d, link);
        sp_hmap_del(s->dirty, d->key);
        TAILQ_INSERT_TAIL(&s->sent, d, link);
        size_t at = HEAD_ARGS + n * ENTRY_ARGS;
        entry_args(&e->env, d, c->argv + at, c->lens + at, c->counts[n]);
        n++;
    }
    if (sp_redis_command(e->cmd, on_shared, s, (int)(HEAD_ARGS + n * ENTRY_ARGS), c->argv,
                         c->lens) < 0)
        sent_clear(s, true);
    else
        s->in_flight = true;
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
    flush(arg); /* with nothing dirty, only the heartbeat and the reaping */
}

struct engine_share *engine_share_new(struct sp_engine *e)
{
    struct engine_share *s = calloc(1, sizeof(*s));
    struct event_base *base = e->env.base;

    if (s == NULL)
        return NULL;
    s->e = e;
    s->timeout_ms = e->env.config->redis.replica_timeout_ms;
    TAILQ_INIT(&s->order);
    TAILQ_INIT(&s->sent);
    s->dirty = sp_hmap_new();
    s->soon = event_new(base, -1, 0, on_soon, s);
    s->beat = event_new(base, -1, EV_PERSIST, on_beat, s);
    struct timeval every = sp_timeval_ms(s->timeout_ms / 3);
    if (s->dirty == NULL || s->soon == NULL || s->beat == NULL || event_add(s->beat, &every) < 0) {
        engine_share_free(s);
        return NULL;
    }
    return s;
}

void engine_share_free(struct engine_share *s)
{
    struct dirty *d;

    if (s == NULL)
        return;
    sent_clear(s, false);
    while ((d = TAILQ_FIRST(&s->order)) != NULL) {
        TAILQ_REMOVE(&s->order, d, link);
        free(d);
    }
    sp_hmap_free(s->dirty);
    if (s->soon)
        event_free(s->soon);
    if (s->beat)
        event_free(s->beat);
    free(s);
}

void engine_share_up(struct engine_share *s)
{
    flush(s);
}

void sp_engine_share_member(struct sp_engine *e, const char *channel, const char *user_id)
{
    mark(e->share, channel, user_id);
}

void sp_engine_share_occupancy(struct sp_engine *e, const char *channel)
{
    mark(e->share, channel, NULL);
}

/* ---- the deployment's members ---------------------------------------------------------------- */

struct members_op {
    struct sp_engine *e;
    sp_engine_members_done cb;
    void *arg;
    size_t max;
    char channel[SP_CHANNEL_MAX + 1];
};

/* One hash value, "<replicas> <connections> <info>", as a member. */
static json_t *member_json(const char *user_id, const char *value)
{
    char *end;
    strtoul(value, &end, 10);
    long conns = *end == ' ' ? strtol(end + 1, &end, 10) : 0;
    const char *info_text = *end == ' ' ? end + 1 : "";
    json_t *info = info_text[0] ? json_loads(info_text, 0, NULL) : NULL;

    return json_pack("{s:s, s:o, s:I}", "user_id", user_id, "user_info", info ? info : json_null(),
                     "connections", (json_int_t)(conns > 0 ? conns : 0));
}

static void on_members(redisAsyncContext *ac, void *reply, void *arg)
{
    struct members_op *op = arg;
    redisReply *r = reply;
    json_t *list = json_array(), *doc = NULL;
    char *text = NULL;

    if (engine_reply_is(r, REDIS_REPLY_ARRAY, 2) && r->element[1]->type == REDIS_REPLY_ARRAY &&
        list != NULL) {
        const redisReply *m = r->element[1];
        for (size_t i = 0; i + 1 < m->elements && json_array_size(list) < op->max; i += 2)
            if (m->element[i]->type == REDIS_REPLY_STRING &&
                m->element[i + 1]->type == REDIS_REPLY_STRING)
                json_array_append_new(list,
                                      member_json(m->element[i]->str, m->element[i + 1]->str));
        doc = json_pack("{s:s, s:I, s:O}", "channel", op->channel, "count",
                        (json_int_t)engine_reply_u64(r->element[0]), "members", list);
        text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    } else {
        engine_script_failed(op->e, r);
    }
    op->cb(op->arg, text);
    free(text);
    json_decref(doc);
    json_decref(list);
    free(op);
}

int sp_engine_members(struct sp_engine *e, const char *channel, size_t max,
                      sp_engine_members_done cb, void *arg)
{
    char key[KEY_MAX];
    struct members_op *op = calloc(1, sizeof(*op));

    if (op == NULL || !e->up || engine_key(e, key, sizeof(key), "p:", channel) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    *op = (struct members_op){e, cb, arg, max, {0}};
    snprintf(op->channel, sizeof(op->channel), "%s", channel);
    char most[24];
    snprintf(most, sizeof(most), "%zu", max);
    const char *keys[1] = {key}, *args[1] = {most};
    if (engine_eval(e, S_MEMBERS, on_members, op, 1, keys, 1, args, NULL) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    return SP_HUB_OK;
}
