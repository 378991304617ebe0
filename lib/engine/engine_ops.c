/* What the engine does for others: publishing, channel administration,
 * poll leases, and the store of used webhook ids. */
#include <event2/dns.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "engine/engine-internal.h"

/* ---- publishing -------------------------------------------------------------------------- */

/* WAIT's answer: how many replicas have everything written so far. */
static void on_waited(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    struct sp_engine *e = op->e;
    redisReply *r = reply;

    (void)ac;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER &&
        (uint64_t)r->integer >= e->env.config->redis.wait_replicas) {
        op->cb.published(op->arg, SP_HUB_OK, &op->res);
    } else {
        e->stats.not_replicated++;
        op->cb.published(op->arg, SP_HUB_NOT_REPLICATED, NULL);
    }
    free(op);
}

/* A new message waits until redis.wait_replicas replicas have it. Returns
 * 0 when WAIT was sent. */
static int wait_replicas(struct sp_engine *e, struct op *op, const struct sp_publish_result *res)
{
    char count[24], ms[24];
    const char *argv[3] = {"WAIT", count, ms};

    op->res = *res;
    snprintf(count, sizeof(count), "%" PRIu64, e->env.config->redis.wait_replicas);
    snprintf(ms, sizeof(ms), "%" PRIu64, e->env.config->redis.wait_timeout_ms);
    return sp_redis_command(e->cmd, on_waited, op, 3, argv, NULL);
}

static void on_published(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    struct sp_engine *e = op->e;
    redisReply *r = reply;
    struct sp_publish_result res = {0};

    if (!engine_reply_is(r, REDIS_REPLY_ARRAY, 5) || r->element[1]->type != REDIS_REPLY_STRING) {
        e->stats.publish_failures++;
        engine_script_failed(e, r);
        op->cb.published(op->arg, SP_HUB_UNAVAILABLE, NULL);
        free(op);
        return;
    }
    snprintf(res.id, sizeof(res.id), "%s", r->element[1]->str);
    res.duplicate = engine_reply_u64(r->element[2]) != 0;
    res.subscribers = (size_t)engine_reply_u64(r->element[3]); /* replicas */
    res.seq = engine_reply_u64(r->element[4]);
    e->stats.published += !res.duplicate;
    /* A duplicate was confirmed the first time. */
    if (e->env.config->redis.wait_replicas > 0 && !res.duplicate) {
        if (wait_replicas(e, op, &res) == 0)
            return;
        e->stats.not_replicated++;
        op->cb.published(op->arg, SP_HUB_NOT_REPLICATED, NULL);
        free(op);
        return;
    }
    op->cb.published(op->arg, SP_HUB_OK, &res);
    free(op);
}

int sp_engine_publish(struct sp_engine *e, const struct sp_engine_publish *p,
                      sp_engine_published cb, void *arg)
{
    char seqk[KEY_MAX], epochk[KEY_MAX], streamk[KEY_MAX], metak[KEY_MAX], dedupk[KEY_MAX * 2];
    char chan[KEY_MAX], under[KEY_MAX], history[24], ttl[24], meta_ttl[24], fresh[9];
    const char *keys[5] = {seqk, epochk, streamk, metak, dedupk};
    char *grip = NULL, *snap = NULL;
    int rc = sp_hub_check(e->env.hub, &p->pub);

    if (rc != SP_HUB_OK)
        return rc;
    if (!sp_redis_is_up(e->cmd) || e->scripts_loaded != S_COUNT || !e->hello_done) {
        e->stats.publish_failures++;
        return SP_HUB_UNAVAILABLE;
    }
    bool dedup = p->pub.dedup_id != NULL && p->pub.dedup_id[0] != '\0';
    engine_key(e, seqk, sizeof(seqk), "seq", NULL);
    engine_key(e, epochk, sizeof(epochk), "epoch", NULL);
    engine_key(e, streamk, sizeof(streamk), "s:", p->pub.channel);
    engine_key(e, metak, sizeof(metak), "m:", p->pub.channel);
    engine_key(e, chan, sizeof(chan), "c:", p->pub.channel);
    engine_key(e, under, sizeof(under), "under:", NULL);
    if (dedup) {
        char digest[SP_SHA256_HEX];
        sp_sha256_hex(p->pub.dedup_id, strlen(p->pub.dedup_id), digest);
        snprintf(dedupk, sizeof(dedupk), "%sd:%s:%s", e->prefix, p->pub.channel, digest);
    }
    /* The channel's own options: trimmed and expired in Redis as in the hub. */
    const struct sp_hub_options o = sp_hub_channel_options(e->env.hub, p->pub.channel);
    snprintf(history, sizeof(history), "%" PRIu64, o.last_value ? 1 : o.history);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, o.history_ttl_ms);
    snprintf(meta_ttl, sizeof(meta_ttl), "%" PRIu64, o.history_ttl_ms + META_EXTRA_MS);
    engine_fresh_epoch(fresh);
    if (p->pub.grip != NULL)
        grip = json_dumps(p->pub.grip, JSON_COMPACT);
    size_t snap_len = p->snapshot == SP_SNAPSHOT_DATA ? p->snapshot_len + 1 : 1;
    snap = malloc(snap_len);
    struct op *op = calloc(1, sizeof(*op));
    rc = SP_HUB_NO_MEMORY;
    if (snap == NULL || op == NULL || (p->pub.grip != NULL && grip == NULL))
        goto done;
    snap[0] = p->snapshot == SP_SNAPSHOT_DATA ? '+' : p->snapshot == SP_SNAPSHOT_SELF ? '=' : '-';
    if (p->snapshot == SP_SNAPSHOT_DATA && p->snapshot_len)
        memcpy(snap + 1, p->snapshot_data, p->snapshot_len);
    const char *event = p->pub.event ? p->pub.event : "";
    const char *origin = p->pub.origin ? p->pub.origin : "";
    const char *args[12] = {chan,
                            event,
                            p->pub.data ? p->pub.data : "",
                            history,
                            ttl,
                            fresh,
                            grip ? grip : "",
                            snap,
                            meta_ttl,
                            origin,
                            under,
                            p->pub.channel};
    size_t lens[12] = {
        strlen(chan),  strlen(event),           p->pub.len, strlen(history),  strlen(ttl),
        strlen(fresh), grip ? strlen(grip) : 0, snap_len,   strlen(meta_ttl), strlen(origin),
        strlen(under), strlen(p->pub.channel)};
    op->e = e;
    op->cb.published = cb;
    op->arg = arg;
    if (engine_eval(e, S_PUBLISH, on_published, op, dedup ? 5 : 4, keys, 12, args, lens) < 0) {
        e->stats.publish_failures++;
        rc = SP_HUB_UNAVAILABLE;
        goto done;
    }
    op = NULL;
    rc = SP_HUB_OK;
done:
    free(op);
    free(grip);
    free(snap);
    return rc;
}

/* ---- channel administration ----------------------------------------------------------------- */

static void format_id(const char *epoch, const redisReply *seq, char out[SP_MSG_ID_MAX])
{
    out[0] = '\0';
    if (seq->type == REDIS_REPLY_STRING && seq->len > 0)
        snprintf(out, SP_MSG_ID_MAX, "%s-%s", epoch, seq->str);
}

static void on_info(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;
    struct sp_engine_channel info = {.rc = SP_HUB_UNAVAILABLE};

    if (engine_reply_is(r, REDIS_REPLY_ARRAY, 5) && r->element[1]->type == REDIS_REPLY_STRING) {
        info.messages = (size_t)engine_reply_u64(r->element[0]);
        info.members = (size_t)engine_reply_u64(r->element[4]);
        info.rc = SP_HUB_OK;
        format_id(r->element[1]->str, r->element[2], info.first_id);
        format_id(r->element[1]->str, r->element[3], info.last_id);
    } else {
        engine_script_failed(op->e, r);
    }
    op->cb.channel_done(op->arg, &info);
    free(op);
}

static void on_deleted(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;
    struct sp_engine_channel info = {.rc = SP_HUB_UNAVAILABLE};

    if (engine_reply_is(r, REDIS_REPLY_ARRAY, 2)) {
        info.rc = engine_reply_u64(r->element[0]) ? SP_HUB_OK : SP_HUB_NO_CHANNEL;
        info.replicas = (size_t)engine_reply_u64(r->element[1]);
    } else {
        engine_script_failed(op->e, r);
    }
    op->cb.channel_done(op->arg, &info);
    free(op);
}

static int channel_op(struct sp_engine *e, enum script s, const char *channel,
                      sp_engine_channel_done cb, void *arg)
{
    char streamk[KEY_MAX], second[KEY_MAX], presence[KEY_MAX], chan[KEY_MAX], meta_ttl[24];
    char under[KEY_MAX];
    const char *keys[3] = {streamk, second, presence};
    const char *args[4] = {chan, meta_ttl, under, channel};
    struct op *op = calloc(1, sizeof(*op));

    if (op == NULL)
        return SP_HUB_NO_MEMORY;
    *op = (struct op){.e = e, .arg = arg};
    op->cb.channel_done = cb;
    engine_key(e, streamk, sizeof(streamk), "s:", channel);
    engine_key(e, chan, sizeof(chan), "c:", channel);
    engine_key(e, presence, sizeof(presence), "p:", channel);
    engine_key(e, under, sizeof(under), "under:", NULL);
    if (s == S_INFO)
        engine_key(e, second, sizeof(second), "epoch", NULL);
    else
        engine_key(e, second, sizeof(second), "m:", channel);
    snprintf(meta_ttl, sizeof(meta_ttl), "%" PRIu64,
             sp_hub_channel_options(e->env.hub, channel).history_ttl_ms + META_EXTRA_MS);
    if (engine_eval(e, s, s == S_INFO ? on_info : on_deleted, op, s == S_INFO ? 3 : 2, keys,
                    s == S_INFO ? 0 : 4, args, NULL) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    return SP_HUB_OK;
}

int sp_engine_channel_info(struct sp_engine *e, const char *channel, sp_engine_channel_done cb,
                           void *arg)
{
    return channel_op(e, S_INFO, channel, cb, arg);
}

int sp_engine_channel_delete(struct sp_engine *e, const char *channel, sp_engine_channel_done cb,
                             void *arg)
{
    return channel_op(e, S_DELETE, channel, cb, arg);
}

/* ---- poll leases ------------------------------------------------------------------------- */

static void on_lease(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;
    struct sp_engine_poll_state st = {0};
    bool held = engine_reply_is(r, REDIS_REPLY_ARRAY, 2) && engine_reply_u64(r->element[0]) == 1;
    bool fresh = held && engine_reply_u64(r->element[1]) == 1;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        engine_script_failed(op->e, r);
    if (fresh && r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *f = r->element[2];
        struct sp_slice v;
        if ((v = engine_field(f, "etag")).len)
            st.etag = v.ptr;
        if ((v = engine_field(f, "last_modified")).len)
            st.last_modified = v.ptr;
        if ((v = engine_field(f, "hash")).len == 32)
            st.hash = (const unsigned char *)v.ptr;
        if ((v = engine_field(f, "body")).len || st.hash)
            st.body = v.ptr, st.body_len = v.len;
    }
    op->cb.leased(op->arg, op->channel, held, fresh, &st);
    free(op);
}

int sp_engine_lease(struct sp_engine *e, const char *channel, sp_engine_leased cb, void *arg)
{
    char leasek[KEY_MAX], statek[KEY_MAX], ms[24];
    const char *keys[2] = {leasek, statek};
    const char *args[2] = {e->replica, ms};
    struct op *op = calloc(1, sizeof(*op));

    if (op == NULL)
        return -1;
    *op = (struct op){.e = e, .arg = arg};
    op->cb.leased = cb;
    snprintf(op->channel, sizeof(op->channel), "%s", channel);
    engine_key(e, leasek, sizeof(leasek), "lease:", channel);
    engine_key(e, statek, sizeof(statek), "poll:", channel);
    snprintf(ms, sizeof(ms), "%" PRIu64, e->poll_lease_ms);
    if (engine_eval(e, S_LEASE, on_lease, op, 2, keys, 2, args, NULL) < 0) {
        free(op);
        return -1;
    }
    return 0;
}

void sp_engine_release(struct sp_engine *e, const char *channel)
{
    char leasek[KEY_MAX];
    const char *keys[1] = {leasek};
    const char *args[1] = {e->replica};

    engine_key(e, leasek, sizeof(leasek), "lease:", channel);
    engine_eval(e, S_RELEASE, NULL, NULL, 1, keys, 1, args, NULL);
}

void sp_engine_save_poll_state(struct sp_engine *e, const char *channel,
                               const struct sp_engine_poll_state *st)
{
    char statek[KEY_MAX], ms[24];
    const char *argv[10] = {"HSET",          statek,
                            "etag",          st->etag ? st->etag : "",
                            "last_modified", st->last_modified ? st->last_modified : "",
                            "hash",          (const char *)st->hash,
                            "body",          st->body ? st->body : ""};
    size_t lens[10] = {4,  0,
                       4,  strlen(argv[3]),
                       13, strlen(argv[5]),
                       4,  st->hash ? 32 : 0,
                       4,  st->body ? st->body_len : 0};
    const char *expire[3] = {"PEXPIRE", statek, ms};

    if (!sp_redis_is_up(e->cmd) || st->hash == NULL)
        return;
    engine_key(e, statek, sizeof(statek), "poll:", channel);
    lens[1] = strlen(statek);
    snprintf(ms, sizeof(ms), "%" PRIu64, e->env.config->channels.history_ttl_ms + META_EXTRA_MS);
    sp_redis_command(e->cmd, NULL, NULL, 10, argv, lens);
    sp_redis_command(e->cmd, NULL, NULL, 3, expire, NULL);
}

/* ---- signed webhook ids ---------------------------------------------------------------------- */

static void on_claimed(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_NIL)
        op->cb.claimed(op->arg, SP_HUB_OK, NULL);
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        op->cb.claimed(op->arg, SP_HUB_OK, r->str);
    else {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            sp_log_error(op->e->env.log, "redis_error", "SET NX GET (Redis 7 needed): %s", r->str);
        op->cb.claimed(op->arg, SP_HUB_UNAVAILABLE, NULL);
    }
    free(op);
}

int sp_engine_claim(struct sp_engine *e, const char *k, const char *value, uint64_t ttl_ms,
                    sp_engine_claimed cb, void *arg)
{
    char keyk[KEY_MAX], ms[24];
    struct op *op = calloc(1, sizeof(*op));

    if (op == NULL || !sp_redis_is_up(e->cmd) || engine_key(e, keyk, sizeof(keyk), "w:", k) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    *op = (struct op){.e = e, .arg = arg};
    op->cb.claimed = cb;
    snprintf(ms, sizeof(ms), "%" PRIu64, ttl_ms > 0 ? ttl_ms : 1);
    const char *argv[7] = {"SET", keyk, value, "NX", "PX", ms, "GET"};
    if (sp_redis_command(e->cmd, on_claimed, op, 7, argv, NULL) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    return SP_HUB_OK;
}
