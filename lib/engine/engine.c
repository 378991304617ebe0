#include "engine/engine.h"

#include <event2/dns.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "engine/engine-internal.h"

/* ---- the scripts ---------------------------------------------------------------------------
 *
 * Keys are passed as KEYS (so the scripts say what they touch); every one of
 * them starts with redis.key_prefix. Stream ids are "<seq>-0": the shared
 * sequence orders them. Entries hold t (Redis time, ms), e (event), d (data),
 * g (GRIP formats, JSON) and s (a snapshot: "-" none, "=" the message itself,
 * "+" and the whole state). */
/* Each script lives in lib/engine/lua/<name>.lua (read it there, or run it
 * with redis-cli --eval), embedded here at build time. */
#include "engine/lua/engine_scripts.h"

static const char *const scripts[S_COUNT] = {
    engine_script_hello,   engine_script_publish,     engine_script_load,    engine_script_delete,
    engine_script_info,    engine_script_lease,       engine_script_release, engine_script_share,
    engine_script_members, engine_script_pattern_load};

/* ---- keys and small helpers -------------------------------------------------------------- */

int engine_key(const struct sp_engine *e, char *out, size_t size, const char *kind,
               const char *channel)
{
    int n = snprintf(out, size, "%s%s%s", e->prefix, kind, channel ? channel : "");
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* text with Redis's glob characters escaped, for SCAN's MATCH. */
static char *glob_escape(const char *text)
{
    char *out = malloc(2 * strlen(text) + 1), *o = out;

    for (const char *t = text; out != NULL && *t != '\0'; t++) {
        if (strchr("*?[]\\", *t) != NULL)
            *o++ = '\\';
        *o++ = *t;
    }
    if (out != NULL)
        *o = '\0';
    return out;
}

void engine_fresh_epoch(char out[9])
{
    sp_random_base36(out, 8);
}

bool engine_reply_is(const redisReply *r, int type, size_t min_elements)
{
    return r != NULL && r->type == type &&
           (type != REDIS_REPLY_ARRAY || r->elements >= min_elements);
}

uint64_t engine_reply_u64(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

int engine_eval(struct sp_engine *e, enum script s, redisCallbackFn *fn, void *privdata, int nkeys,
                const char **keys, int nargs, const char **args, const size_t *arglens)
{
    const char *argv[32];
    size_t lens[32];
    char nk[12];
    int argc = 0;

    /* Publishing needs only this connection, not the pub/sub one. */
    if (e->scripts_loaded != S_COUNT || (!e->hello_done && s != S_HELLO) ||
        3 + nkeys + nargs > (int)(sizeof(argv) / sizeof(argv[0])))
        return -1;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[argc] = "EVALSHA", lens[argc++] = 7;
    argv[argc] = e->sha[s], lens[argc++] = 40;
    argv[argc] = nk, lens[argc++] = strlen(nk);
    for (int i = 0; i < nkeys; i++)
        argv[argc] = keys[i], lens[argc++] = strlen(keys[i]);
    for (int i = 0; i < nargs; i++)
        argv[argc] = args[i], lens[argc++] = arglens ? arglens[i] : strlen(args[i]);
    return sp_redis_command(e->cmd, fn, privdata, argc, argv, lens);
}

/* A script answered an error (NOSCRIPT after a SCRIPT FLUSH, or a bug):
 * the connection is remade, which loads the scripts again. */
void engine_script_failed(struct sp_engine *e, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR && !e->freeing) {
        sp_log_error(e->env.log, "redis_script_error", "%s", r->str);
        sp_redis_reset(e->cmd, "script error");
    }
}

/* ---- up and down ---------------------------------------------------------------------------- */

void engine_update_up(struct sp_engine *e, const char *why)
{
    bool up = sp_redis_is_up(e->cmd) && sp_redis_is_up(e->sub) && e->scripts_loaded == S_COUNT &&
              e->hello_done;

    if (up == e->up)
        return;
    e->up = up;
    if (up) {
        e->stats.up_transitions++;
        sp_log_info(e->env.log, "redis_up", "Redis at %s:%u is available",
                    e->env.config->redis.host, e->env.config->redis.port);
        engine_share_up(e->share);
    } else {
        e->stats.down_transitions++;
        sp_log_warn(e->env.log, "redis_down",
                    "Redis unavailable (%s): reconnecting; subscribers stay connected", why);
    }
}

void engine_each_chan(struct sp_engine *e, void (*fn)(const char *, void *, void *))
{
    sp_hmap_each(e->chans, fn, e);
}

/* The hub's history is from an epoch Redis no longer has (it lost its data):
 * every synced channel reads its stream again from the start and delivers
 * it, since all of it is new to this replica. */
static void mark_reload(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    struct sp_engine *e = arg;

    (void)name;
    c->after = 0;
    if (c->state == C_SYNCED) {
        c->state = C_LOADING;
        engine_load_channel(e, c);
    }
}

void engine_epoch_changed(struct sp_engine *e, const char *epoch, uint64_t seq)
{
    bool first = !e->epoch_known;

    e->epoch_known = true;
    if (!sp_hub_set_epoch(e->env.hub, epoch, seq) || first)
        return;
    e->stats.epoch_changes++;
    sp_log_warn(e->env.log, "redis_epoch",
                "Redis has a new epoch '%s' (its data was lost or restored): history restarts, "
                "resuming clients are told they missed messages",
                epoch);
    engine_each_chan(e, mark_reload);
}

static void start_pending_loads(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    (void)name;
    if (c->state == C_LOADING && !c->loading)
        engine_load_channel(arg, c);
}

static void on_hello(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_engine *e = arg;
    redisReply *r = reply;

    if (r == NULL || e->freeing)
        return;
    if (!engine_reply_is(r, REDIS_REPLY_ARRAY, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= 16) {
        engine_script_failed(e, r);
        return;
    }
    e->hello_done = true;
    engine_epoch_changed(e, r->element[0]->str, engine_reply_u64(r->element[1]));
    engine_each_chan(e, start_pending_loads);
    engine_update_up(e, "ok");
    engine_check_waits(e);
}

static void send_hello(struct sp_engine *e)
{
    char seqk[KEY_MAX], epochk[KEY_MAX], fresh[9], seq[24];
    const char *keys[2] = {seqk, epochk};
    const char *args[3] = {fresh, sp_hub_epoch(e->env.hub), seq};

    engine_key(e, seqk, sizeof(seqk), "seq", NULL);
    engine_key(e, epochk, sizeof(epochk), "epoch", NULL);
    engine_fresh_epoch(fresh);
    struct sp_cursor now = sp_hub_now(e->env.hub);
    snprintf(seq, sizeof(seq), "%" PRIu64, now.seq);
    if (engine_eval(e, S_HELLO, on_hello, e, 2, keys, 3, args, NULL) < 0)
        sp_redis_reset(e->cmd, "cannot send");
}

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    struct sp_engine *e = op->e;
    redisReply *r = reply;
    enum script which = op->script;

    free(op);
    if (r == NULL || e->freeing)
        return;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        engine_script_failed(e, r);
        return;
    }
    memcpy(e->sha[which], r->str, 40);
    e->sha[which][40] = '\0';
    if (++e->scripts_loaded == S_COUNT)
        send_hello(e);
}

static void cmd_up(void *arg)
{
    struct sp_engine *e = arg;

    e->cmd_was_up = true;
    e->scripts_loaded = 0;
    e->hello_done = false;
    for (int i = 0; i < S_COUNT; i++) {
        struct op *op = calloc(1, sizeof(*op));
        const char *argv[3] = {"SCRIPT", "LOAD", scripts[i]};
        if (op == NULL) {
            sp_redis_reset(e->cmd, "out of memory");
            return;
        }
        op->e = e;
        op->script = (enum script)i;
        if (sp_redis_command(e->cmd, on_script_loaded, op, 3, argv, NULL) < 0) {
            free(op);
            sp_redis_reset(e->cmd, "cannot send");
            return;
        }
    }
}

static void cmd_down(void *arg, const char *why, uint64_t retry_ms)
{
    struct sp_engine *e = arg;

    e->scripts_loaded = 0;
    e->hello_done = false;
    if (e->freeing)
        return;
    sp_log_write(e->env.log, e->cmd_was_up ? SP_LOG_WARN : SP_LOG_DEBUG, "redis_connection",
                 "commands: %s; reconnecting in %llu ms", why, (unsigned long long)retry_ms);
    e->cmd_was_up = false;
    engine_update_up(e, why);
    engine_sentinel_ask(e->sentinel); /* a failover, or a primary turned replica */
}

static const struct sp_redis_ops cmd_ops = {cmd_up, cmd_down};

/* ---- lifecycle --------------------------------------------------------------------------- */

bool sp_engine_up(const struct sp_engine *e)
{
    return e != NULL && e->up;
}

bool sp_engine_ready_for_traffic(const struct sp_engine *e)
{
    return e->up || !e->required_for_ready;
}

uint64_t sp_engine_lease_ms(const struct sp_engine *e)
{
    return e->poll_lease_ms;
}

struct sp_engine *sp_engine_new(const struct sp_engine_env *env)
{
    const struct sp_config *cfg = env->config;
    struct sp_engine *e = calloc(1, sizeof(*e));
    struct sp_redis_options opts = {
        .host = cfg->redis.host,
        .port = cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .database = (unsigned)cfg->redis.database,
        .connect_timeout_ms = cfg->redis.connect_timeout_ms,
        .timeout_ms = cfg->redis.timeout_ms,
        .reconnect_max_ms = cfg->redis.reconnect_max_ms,
        .tls = cfg->redis.tls,
        .tls_ca_file = cfg->redis.tls_files.ca_file,
        .tls_cert_file = cfg->redis.tls_files.cert_file,
        .tls_key_file = cfg->redis.tls_files.key_file,
        .tls_server_name = cfg->redis.tls_files.server_name,
        .tls_verify_hostname = cfg->redis.tls_files.verify_hostname,
        /* With Sentinel, the server is whichever it names the primary. */
        .require_primary = cfg->redis.sentinels.count > 0,
        .confirm_target = cfg->redis.sentinels.count > 0,
    };
    if (cfg->redis.sentinels.count > 0)
        opts.host = NULL;

    if (e == NULL)
        return NULL;
    e->env = *env;
    e->cmd_was_up = e->sub_was_up = true; /* a first failure to connect is worth a warning */
    LIST_INIT(&e->waits);
    snprintf(e->replica, sizeof(e->replica), "%08x%08x", sp_random(), sp_random());
    e->prefix = strdup(cfg->redis.key_prefix);
    e->glob_prefix = glob_escape(cfg->redis.key_prefix);
    e->subscribe_wait_ms = cfg->redis.subscribe_wait_ms;
    e->poll_lease_ms = cfg->redis.poll_lease_ms;
    e->required_for_ready = cfg->redis.required_for_ready;
    e->chans = sp_hmap_new();
    e->lingering = sp_delay_new(env->base, engine_lingered, e);
    e->dns = evdns_base_new(env->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (e->dns == NULL) /* no resolv.conf: numeric addresses and /etc/hosts still work */
        e->dns = evdns_base_new(env->base, 0);
    e->share = engine_share_new(e);
    if (e->prefix == NULL || e->glob_prefix == NULL || e->chans == NULL || e->lingering == NULL ||
        e->dns == NULL || e->share == NULL)
        goto fail;
    opts.ping = true; /* notices a Redis that stopped answering */
    e->cmd = sp_redis_new(env->base, e->dns, &opts, &cmd_ops, e);
    opts.ping = false; /* a subscribed connection takes no PING in RESP2 hiredis */
    e->sub = sp_redis_new(env->base, e->dns, &opts, &engine_sub_ops, e);
    if (e->cmd == NULL || e->sub == NULL)
        goto fail;
    if (cfg->redis.sentinels.count > 0 && (e->sentinel = engine_sentinel_new(e)) == NULL)
        goto fail;
    return e;
fail:
    sp_engine_free(e);
    return NULL;
}

static void free_chan(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    (void)name;
    (void)arg;
    engine_buffered_clear(c); /* its linger goes with the queue */
    free(c->name);
    free(c);
}

void sp_engine_free(struct sp_engine *e)
{
    if (e == NULL)
        return;
    while (!LIST_EMPTY(&e->waits))
        engine_wait_finish(LIST_FIRST(&e->waits), false);
    /* Callbacks in flight run now with no reply, while e is whole. */
    engine_sentinel_free(e->sentinel);
    e->sentinel = NULL;
    sp_redis_free(e->cmd);
    sp_redis_free(e->sub);
    e->cmd = e->sub = NULL;
    e->freeing = true;
    engine_share_free(e->share);
    if (e->chans)
        sp_hmap_each(e->chans, free_chan, NULL);
    sp_hmap_free(e->chans);
    sp_delay_free(e->lingering);
    if (e->dns)
        evdns_base_free(e->dns, 1);
    free(e->prefix);
    free(e->glob_prefix);
    free(e);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static void count_subscribed(const char *name, void *value, void *arg)
{
    const struct echan *c = value;
    (void)name;
    *(size_t *)arg += c->state == C_SYNCED;
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

void sp_engine_reconfigure(struct sp_engine *e, const struct sp_config *config)
{
    const struct sp_config *old = e->env.config;

    e->env.config = config;
    /* A rotated password (a Secret read with ${file:}) takes effect at the
     * next connection; the ones up stay, as Redis keeps them authenticated. */
    if (same_text(old->redis.username, config->redis.username) &&
        same_text(old->redis.password, config->redis.password))
        return;
    if (sp_redis_set_auth(e->cmd, config->redis.username, config->redis.password) < 0 ||
        sp_redis_set_auth(e->sub, config->redis.username, config->redis.password) < 0)
        sp_log_error(e->env.log, "redis_auth",
                     "out of memory: the new Redis credentials are not used");
    else
        sp_log_info(e->env.log, "redis_auth",
                    "new Redis credentials: used from the next connection");
}

void sp_engine_share_occupancies(struct sp_engine *e, struct sp_occupancy *occupancy)
{
    e->env.occupancy = occupancy;
}

void sp_engine_add_figures(const struct sp_engine *e, uint64_t *published,
                           struct sp_histogram *fanout)
{
    *published += e->stats.published;
    sp_histogram_add(fanout, &e->stats.fanout);
}

/* The server written to, as a label: Sentinel's primary changes. */
static void server_info(const struct sp_engine *e, struct evbuffer *out)
{
    char target[300], labels[400];

    sp_redis_target(e->cmd, target, sizeof(target));
    if (strpbrk(target, "\"\\\n") != NULL)
        snprintf(target, sizeof(target), "unprintable");
    snprintf(labels, sizeof(labels), "mode=\"%s\",address=\"%s\"",
             e->sentinel ? "sentinel" : "single", target);
    sp_metric_head(out, "sidepush_redis_primary_info", "gauge",
                   "The Redis primary written to now (1), by how it was found and its address.");
    sp_metric_value(out, "sidepush_redis_primary_info", labels, 1);
}

void sp_engine_metrics(const struct sp_engine *e, struct evbuffer *out)
{
    const struct engine_stats *st = &e->stats;
    size_t subscribed = 0;

    sp_hmap_each(e->chans, count_subscribed, &subscribed);
    sp_metric_one(out, "sidepush_redis_up", "gauge",
                  "1 while both Redis connections are ready, else 0.", e->up ? 1 : 0);
    sp_metric_head(out, "sidepush_redis_transitions_total", "counter",
                   "Changes of sidepush_redis_up, by new state.");
    sp_metric_value(out, "sidepush_redis_transitions_total", "to=\"up\"",
                    (double)st->up_transitions);
    sp_metric_value(out, "sidepush_redis_transitions_total", "to=\"down\"",
                    (double)st->down_transitions);
    sp_metric_head(out, "sidepush_redis_connections_total", "counter",
                   "Redis connections made and lost, by connection.");
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"commands\",event=\"made\"",
                    (double)sp_redis_connects(e->cmd));
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"commands\",event=\"lost\"",
                    (double)sp_redis_losses(e->cmd));
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"pubsub\",event=\"made\"",
                    (double)sp_redis_connects(e->sub));
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"pubsub\",event=\"lost\"",
                    (double)sp_redis_losses(e->sub));
    sp_metric_one(out, "sidepush_redis_publish_failures_total", "counter",
                  "Publishes refused with 503 because Redis was unavailable.",
                  (double)st->publish_failures);
    sp_metric_head(out, "sidepush_redis_channel_loads_total", "counter",
                   "Channel streams read from Redis, by reason.");
    sp_metric_value(out, "sidepush_redis_channel_loads_total", "reason=\"subscribe\"",
                    (double)(st->loads - st->resyncs));
    sp_metric_value(out, "sidepush_redis_channel_loads_total", "reason=\"resync\"",
                    (double)st->resyncs);
    sp_metric_one(out, "sidepush_redis_primary_changes_total", "counter",
                  "Times Sentinel named another primary (a failover).",
                  (double)st->primary_changes);
    sp_metric_one(out, "sidepush_redis_not_replicated_total", "counter",
                  "Publishes answered 503 because redis.wait_replicas did not confirm them.",
                  (double)st->not_replicated);
    sp_metric_histogram(out, "sidepush_redis_pubsub_lag_seconds",
                        "From the publish in Redis (its clock) to this replica's receipt of "
                        "the pub/sub message (this host's clock).",
                        &st->lag);
    sp_metric_one(out, "sidepush_redis_gaps_filled_total", "counter",
                  "Pub/sub gaps (a lost subscription connection, a failover) after which "
                  "the channel's stream held messages this replica had not received.",
                  (double)st->gaps);
    sp_metric_one(out, "sidepush_redis_backfilled_messages_total", "counter",
                  "Messages delivered from a channel's stream to fill a pub/sub gap.",
                  (double)st->backfilled);
    server_info(e, out);
    sp_metric_one(out, "sidepush_redis_epoch_changes_total", "counter",
                  "Times Redis was found to have lost its data (a new epoch).",
                  (double)st->epoch_changes);
    sp_metric_one(out, "sidepush_redis_channels", "gauge",
                  "Channels this replica is subscribed to in Redis and in step with.",
                  (double)subscribed);
}
