/* What is process-wide in the push: the hub, presence, occupancy, the
 * replay store, the engine, and the hooks the app plugs in. Made by the app
 * before any worker's push, freed after the last; it runs on the loop it is
 * given, and the workers reach it by mail (never by being that loop). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "core/clock.h"
#include "core/hmap.h"
#include "core/digest.h"
#include "core/log.h"
#include "net/mailbox.h"
#include "push/push-internal.h"

#define TOLD_MISSES_MAX 10000
#define MISS_TOLD_EVERY_MS 60000

/* ---- telling the backend and the subscribers ----------------------------------------------- */

static void ignore_published(void *arg, int rc, const struct sp_publish_result *res)
{
    (void)arg;
    (void)rc;
    (void)res;
}

void sp_push_member_origin(const char *user_id, char out[SP_MEMBER_ORIGIN])
{
    char hex[SP_SHA256_HEX];

    sp_sha256_hex(user_id, strlen(user_id), hex);
    snprintf(out, SP_MEMBER_ORIGIN, "u:%.32s", hex);
}

/* A member came or went for everyone (this process, or with Redis the
 * deployment): a message of the channel for its subscribers
 * (sidepush-join / sidepush-leave, data {"user_id":..,"user_info":..}), and
 * the events hook for the backend. */
static void tell_member(struct sp_push_shared *sh, bool joined, const char *channel,
                        const char *user_id, const char *info, size_t members)
{
    /* Every join told to every subscriber is N^2 deliveries as N arrive;
     * beyond the limit only the list and the webhooks tell. */
    bool announce = (joined ? members : members + 1) <= sh->config->presence.announce_limit;
    json_t *info_doc = announce && info ? json_loads(info, 0, NULL) : NULL;
    json_t *doc = announce ? json_pack("{s:s, s:o}", "user_id", user_id, "user_info",
                                       info_doc ? info_doc : json_null())
                           : NULL;
    char *data = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    char origin[SP_MEMBER_ORIGIN];

    json_decref(doc);
    sp_push_member_origin(user_id, origin);
    if (data != NULL) {
        struct sp_engine_publish p = {
            .pub = {.channel = channel,
                    .event = joined ? "sidepush-join" : "sidepush-leave",
                    .data = data,
                    .len = strlen(data),
                    .origin = origin},
        };
        if (sp_push_shared_publish(sh, &sh->stats, &p, ignore_published, NULL) < 0)
            sp_log_warn(sh->log, "presence_publish_failed", "%s: %s not told", channel,
                        joined ? "a join" : "a leave");
    }
    free(data);
    if (sh->events != NULL) {
        const struct sp_push_event e = {.kind = joined ? SP_EVENT_MEMBER_ADDED
                                                       : SP_EVENT_MEMBER_REMOVED,
                                        .channel = channel,
                                        .user_id = user_id};
        sh->events(sh->events_ctx, &e);
    }
}

static void tell_occupancy(struct sp_push_shared *sh, bool occupied, const char *channel)
{
    const struct sp_push_event e = {.kind = occupied ? SP_EVENT_OCCUPIED : SP_EVENT_VACATED,
                                    .channel = channel};

    if (sh->events != NULL)
        sh->events(sh->events_ctx, &e);
}

/* A channel's occupancy changed (after the vacancy grace): the backend is
 * told, or with Redis the deployment's count, which tells it once for all
 * replicas. */
static void occupancy_changed(void *ctx, const char *channel, bool occupied)
{
    struct sp_push_shared *sh = ctx;

    if (sh->engine != NULL)
        sp_engine_share_occupancy(sh->engine, channel);
    else
        tell_occupancy(sh, occupied, channel);
}

/* This process's members changed. With Redis the replica's share is
 * updated, and Redis says whether the deployment's changed. */
static void presence_changed(void *ctx, enum sp_presence_change change, const char *channel,
                             const char *user_id, const char *info)
{
    struct sp_push_shared *sh = ctx;

    if (sh->engine != NULL)
        sp_engine_share_member(sh->engine, channel, user_id);
    else if (change != SP_PRESENCE_COUNTED)
        tell_member(sh, change == SP_PRESENCE_JOINED, channel, user_id, info,
                    sp_presence_count(sh->presence, channel));
}

static void engine_told_member(void *ctx, bool joined, const char *channel, const char *user_id,
                               const char *info, size_t members)
{
    tell_member(ctx, joined, channel, user_id, info, members);
}

static void engine_told_occupancy(void *ctx, bool occupied, const char *channel)
{
    tell_occupancy(ctx, occupied, channel);
}

static uint64_t vacancy_grace(const struct sp_config *c)
{
    return c->webhooks.vacated_grace_ms + c->presence.leave_grace_ms;
}

void sp_push_shared_set_events(struct sp_push_shared *sh, sp_push_events events, void *ctx)
{
    sh->events = events;
    sh->events_ctx = ctx;
    if (events != NULL && sh->occupancy == NULL) {
        sh->occupancy =
            sp_occupancy_new(sh->base, vacancy_grace(sh->config), occupancy_changed, sh);
        if (sh->engine != NULL && sh->occupancy != NULL)
            sp_engine_share_occupancies(sh->engine, sh->occupancy);
    }
}

/* ---- following subscriber counts ------------------------------------------------------------ */

/* A channel gained its first subscriber or lost its last: the engine's
 * subscriptions in Redis and the app's watcher (the pollers) follow the
 * count as it is now. */
static void watch_now(struct sp_push_shared *sh, const char *channel)
{
    size_t count = sp_hub_subscribers(sh->hub, channel);

    if (sh->watch != NULL)
        sh->watch(sh->watch_ctx, channel, count);
    if (sh->engine != NULL)
        sp_engine_watch(sh->engine, channel, count);
    /* A pattern is no channel to be occupied. */
    if (sh->occupancy != NULL && strchr(channel, '*') == NULL)
        sp_occupancy_count(sh->occupancy, channel, count);
}

struct watch_mail {
    struct sp_mail mail;
    struct sp_push_shared *sh;
    char channel[];
};

static void watch_mail_run(struct sp_mail *mail)
{
    struct watch_mail *w = (struct watch_mail *)mail;
    watch_now(w->sh, w->channel);
    free(w);
}

static void mail_free(struct sp_mail *mail)
{
    free(mail);
}

/* The hub's watch, on the thread of the worker whose subscriber came or
 * went: mailed to the shared loop from every worker alike, so that counts
 * are followed in the order they changed (and never inside a delivery). */
static void watch(void *arg, unsigned port, const char *channel, size_t count)
{
    struct sp_push_shared *sh = arg;
    size_t len = strlen(channel) + 1;
    struct watch_mail *w = malloc(sizeof(*w) + len);

    (void)port;
    (void)count;
    if (w == NULL)
        return; /* out of memory: the pollers and Redis follow at the next change */
    w->sh = sh;
    memcpy(w->channel, channel, len);
    sp_mailbox_post(sh->mailbox, &w->mail, watch_mail_run, mail_free);
}

void sp_push_shared_set_watch(struct sp_push_shared *sh, sp_push_watch fn, void *ctx)
{
    sh->watch = fn;
    sh->watch_ctx = ctx;
}

/* ---- publishing ----------------------------------------------------------------------------- */

static void set_snapshot(struct sp_push_shared *sh, const struct sp_engine_publish *p,
                         const struct sp_publish_result *res)
{
    const void *data = p->snapshot == SP_SNAPSHOT_SELF ? p->pub.data : p->snapshot_data;
    size_t len = p->snapshot == SP_SNAPSHOT_SELF ? p->pub.len : p->snapshot_len;

    if (p->snapshot == SP_SNAPSHOT_NONE || res->duplicate)
        return;
    /* New subscribers get the whole current state under the id of the last
     * change, so resuming from it afterwards is exact. */
    struct sp_msg *snap =
        sp_msg_new(p->pub.channel, res->seq, res->id, p->pub.event, data, len, sp_now_ms());
    if (snap != NULL) {
        sp_hub_set_snapshot(sh->hub, p->pub.channel, snap);
        sp_msg_unref(snap);
    }
}

int sp_push_shared_publish(struct sp_push_shared *sh, struct sp_push_stats *stats,
                           const struct sp_engine_publish *p, sp_push_published cb, void *arg)
{
    struct sp_publish_result res;
    struct timespec a, b;

    if (sh->engine != NULL)
        return sp_engine_publish(sh->engine, p, cb, arg);
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = sp_hub_publish(sh->hub, &p->pub, &res);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc != SP_HUB_OK)
        return rc;
    if (!res.duplicate) {
        stats->published++;
        sp_histogram_observe(&stats->fanout,
                             (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    }
    set_snapshot(sh, p, &res);
    cb(arg, SP_HUB_OK, &res);
    return 0;
}

/* ---- publishing from a worker ------------------------------------------------------------ */

struct publish_mail {
    struct sp_mail mail;
    struct sp_push_shared *shared;
    struct sp_publish pub; /* pointing into text */
    const char *user_id;   /* in text too, or NULL */
    char text[];
};

/* Published, and told to the backend (the client_event webhook) once: by
 * the replica the sender is connected to. */
static void publish_run(struct sp_mail *mail)
{
    struct publish_mail *m = (struct publish_mail *)mail;
    struct sp_push_shared *sh = m->shared;
    const struct sp_engine_publish p = {.pub = m->pub};
    const struct sp_push_event e = {SP_EVENT_CLIENT, m->pub.channel, m->user_id,
                                    m->pub.event,    m->pub.data,    m->pub.origin};

    if (sp_push_shared_publish(sh, &sh->stats, &p, ignore_published, NULL) == 0 &&
        sh->events != NULL)
        sh->events(sh->events_ctx, &e);
    free(m);
}

static void drop_mail(struct sp_mail *mail)
{
    free(mail);
}

static char *copy_into(char **at, const char *s, size_t len)
{
    char *start = *at;

    memcpy(start, s, len);
    start[len] = '\0';
    *at += len + 1;
    return start;
}

int sp_push_client_event(struct sp_push *push, const struct sp_publish *pub, const char *user_id)
{
    size_t c = strlen(pub->channel), e = pub->event ? strlen(pub->event) : 0;
    size_t o = pub->origin ? strlen(pub->origin) : 0, u = user_id ? strlen(user_id) : 0;
    struct publish_mail *m = malloc(sizeof(*m) + c + e + o + u + pub->len + 5);

    if (m == NULL)
        return -1;
    char *at = m->text;
    m->shared = push->shared;
    m->pub = (struct sp_publish){.len = pub->len};
    m->pub.channel = copy_into(&at, pub->channel, c);
    m->pub.event = pub->event ? copy_into(&at, pub->event, e) : NULL;
    m->pub.origin = pub->origin ? copy_into(&at, pub->origin, o) : NULL;
    m->pub.data = copy_into(&at, pub->data, pub->len);
    m->user_id = user_id ? copy_into(&at, user_id, u) : NULL;
    sp_mailbox_post(push->shared->mailbox, &m->mail, publish_run, drop_mail);
    return 0;
}

/* ---- cache misses --------------------------------------------------------------------------- */

struct miss_mail {
    struct sp_mail mail;
    struct sp_push_shared *shared;
    char channel[];
};

/* Pusher de-duplicates cache_miss webhooks: a channel many clients find
 * empty at once is told once a minute. */
static void miss_run(struct sp_mail *mail)
{
    struct miss_mail *m = (struct miss_mail *)mail;
    struct sp_push_shared *sh = m->shared;
    const struct sp_push_event e = {.kind = SP_EVENT_CACHE_MISS, .channel = m->channel};
    uint64_t now = sp_now_ms();

    if (sp_cache_get(sh->told_misses, m->channel, now, NULL) == NULL &&
        sp_cache_put(sh->told_misses, m->channel, "", 1, now + MISS_TOLD_EVERY_MS, now, true) ==
            0 &&
        sh->events != NULL)
        sh->events(sh->events_ctx, &e);
    free(m);
}

void sp_push_cache_miss(struct sp_push *push, const char *channel)
{
    size_t len = strlen(channel) + 1;
    struct miss_mail *m = malloc(sizeof(*m) + len);

    if (m == NULL)
        return; /* out of memory: the backend is not told */
    m->shared = push->shared;
    memcpy(m->channel, channel, len);
    sp_mailbox_post(push->shared->mailbox, &m->mail, miss_run, drop_mail);
}

/* ---- figures --------------------------------------------------------------------------------- */

void sp_push_shared_add_figures(const struct sp_push_shared *sh, struct sp_push_figures *sum)
{
    struct sp_push_figures mine = {.stats = sh->stats};

    if (sh->engine != NULL)
        sp_engine_add_figures(sh->engine, &mine.stats.published, &mine.stats.fanout);
    sp_push_figures_add(sum, &mine);
}

void sp_push_shared_metrics(const struct sp_push_shared *sh, struct evbuffer *out)
{
    sp_metric_one(out, "sidepush_presence_members", "gauge",
                  "Members of presence channels (distinct users per channel), summed.",
                  (double)sp_presence_total(sh->presence));
    sp_metric_one(out, "sidepush_presence_channels", "gauge", "Presence channels with members.",
                  (double)sp_presence_rooms(sh->presence));
    if (sh->engine != NULL)
        sp_engine_metrics(sh->engine, out);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static struct sp_hub_options hub_options(const struct sp_config *config)
{
    return (struct sp_hub_options){
        .history = config->channels.history,
        .history_ttl_ms = config->channels.history_ttl_ms,
        .max_message_size = config->channels.max_message_size,
    };
}

static struct sp_engine *engine_new(struct sp_push_shared *sh)
{
    const struct sp_engine_env env = {
        .base = sh->base,
        .log = sh->log,
        .config = sh->config,
        .hub = sh->hub,
        .presence = sh->presence,
        .events = {engine_told_member, engine_told_occupancy, sh},
    };
    return sp_engine_new(&env);
}

/* The kinds of channel, first match wins: Pusher's cache channels (last
 * value, for pusher.cache_ttl), then each subscribe route's channels in file
 * order, up to the last route with subscribe.channels (past it, every name
 * has the channels section's options anyway, and a publish matches no
 * template). */
static void set_classes(struct sp_push_shared *sh, const struct sp_config *c)
{
    static const char *const cache[] = {"cache-{name}", "private-cache-{name}",
                                        "private-encrypted-cache-{name}", "presence-cache-{name}"};
    struct sp_hub_class *classes = calloc(c->nroutes + 4, sizeof(*classes));
    size_t n = 0, last = 0;

    if (classes == NULL) {
        sp_log_error(sh->log, "channels", "out of memory: route channel options not applied");
        return;
    }
    for (size_t i = 0; c->pusher.enabled && i < 4; i++)
        classes[n++] = (struct sp_hub_class){
            cache[i], {1, c->pusher.cache_ttl_ms, c->channels.max_message_size, true}};
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].subscribe.channels.set && !c->routes[i].has_poll)
            last = i + 1;
    for (size_t i = 0; i < last; i++) {
        const struct sp_route_config *r = &c->routes[i];
        struct sp_channel_options o = sp_route_channels(c, r);
        if (r->has_subscribe && !r->has_poll)
            classes[n++] = (struct sp_hub_class){
                r->subscribe.channel,
                {o.history, o.history_ttl_ms, o.max_message_size, o.last_value}};
    }
    if (sp_hub_set_classes(sh->hub, classes, n) < 0)
        sp_log_error(sh->log, "channels", "out of memory: route channel options not applied");
    free(classes);
}

struct sp_push_shared *sp_push_shared_new(const struct sp_push_shared_env *env)
{
    struct sp_push_shared *sh = calloc(1, sizeof(*sh));
    const struct sp_hub_options hub = hub_options(env->config);

    if (sh == NULL)
        return NULL;
    sh->base = env->base;
    sh->mailbox = env->mailbox;
    sh->config = sp_config_hold(env->config);
    sh->log = env->log;
    sh->uses_engine = env->config->redis.enabled;
    sh->hub = sp_hub_new(env->base, &hub, env->nworkers);
    sh->presence =
        sp_presence_new(env->base, env->config->presence.leave_grace_ms, presence_changed, sh);
    sh->told_misses = sp_cache_new(TOLD_MISSES_MAX);
    sh->users = sp_hmap_new();
    pthread_mutex_init(&sh->users_lock, NULL);
    if (sh->hub == NULL || sh->presence == NULL || sh->told_misses == NULL || sh->users == NULL ||
        (sh->replays = sp_replays_new(sh)) == NULL)
        goto fail;
    set_classes(sh, env->config);
    if (sh->uses_engine && (sh->engine = engine_new(sh)) == NULL)
        goto fail;
    sp_hub_set_watch(sh->hub, watch, sh);
    return sh;
fail:
    sp_push_shared_free(sh);
    return NULL;
}

void sp_push_shared_stop_engine(struct sp_push_shared *sh)
{
    sp_engine_free(sh->engine);
    sh->engine = NULL;
}

static void free_user_count(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    free(value);
}

void sp_push_shared_free(struct sp_push_shared *sh)
{
    if (sh == NULL)
        return;
    if (sh->hub)
        sp_hub_set_watch(sh->hub, NULL, NULL);
    sp_push_shared_stop_engine(sh);
    sp_replays_free(sh->replays);
    sp_cache_free(sh->told_misses);
    if (sh->users != NULL)
        sp_hmap_each(sh->users, free_user_count, NULL);
    sp_hmap_free(sh->users);
    pthread_mutex_destroy(&sh->users_lock);
    sp_presence_free(sh->presence);
    sp_occupancy_free(sh->occupancy);
    sp_hub_free(sh->hub);
    sp_config_release(sh->config);
    free(sh);
}

void sp_push_shared_reconfigure(struct sp_push_shared *sh, const struct sp_config *config)
{
    const struct sp_hub_options hub = hub_options(config);
    const struct sp_config *old = sh->config;

    if (old->redis.enabled != config->redis.enabled ||
        (config->redis.enabled && (strcmp(old->redis.url, config->redis.url) != 0 ||
                                   strcmp(old->redis.key_prefix, config->redis.key_prefix) != 0)))
        sp_log_warn(sh->log, "reload", "changes to the redis section take effect after a restart");
    if (old->webhooks.enabled != config->webhooks.enabled)
        sp_log_warn(sh->log, "reload",
                    "adding or removing the webhooks section takes effect after a restart");
    sh->config = sp_config_hold(config);
    sp_hub_set_options(sh->hub, &hub);
    set_classes(sh, config);
    if (sh->engine != NULL)
        sp_engine_reconfigure(sh->engine, config);
    sp_presence_set_grace(sh->presence, config->presence.leave_grace_ms);
    if (sh->occupancy != NULL)
        sp_occupancy_set_grace(sh->occupancy, vacancy_grace(config));
    sp_config_release(old);
}

struct sp_engine *sp_push_shared_engine(const struct sp_push_shared *sh)
{
    return sh->engine;
}

bool sp_push_shared_ready(const struct sp_push_shared *sh)
{
    return sh->engine == NULL || sp_engine_ready_for_traffic(sh->engine);
}
