/* Redis Sentinel: which server is the primary. Two connections to one
 * sentinel of the list, a command one asking SENTINEL
 * get-master-addr-by-name and a subscribed one hearing +switch-master,
 * moving to the next sentinel when the command one is lost. The answer is
 * the target of the engine's own two connections, which check with ROLE
 * that they reached a primary (a primary that came back as a replica after
 * a failover is never written to). The sentinel is asked again every
 * RECHECK_MS, in case a switch was announced while no one listened, and
 * whenever one of the engine's connections is lost: each attempt to
 * reconnect waits for an answer given after the loss (confirm_target), so
 * a primary that died and restarted empty, a master until Sentinel makes
 * it a replica, is not written to on the strength of an older answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine-internal.h"

#define RECHECK_MS 5000
#define SENTINEL_PORT 26379

struct engine_sentinel {
    struct sp_engine *e;
    struct sp_redis *cmd, *sub;
    size_t current; /* of redis.sentinels */
    struct event *recheck;
    char primary[300]; /* "host:port", "" before the first answer */
};

/* The i-th sentinel's host and port (26379 unless given). */
static int sentinel_at(const struct sp_config *c, size_t i, char **host, unsigned *port)
{
    const char *text = c->redis.sentinels.items[i];
    char *user, *password, err[256];
    long db;
    bool tls;

    if (sp_config_parse_redis_url(text, host, port, &user, &password, &db, &tls, err, sizeof(err)) <
        0)
        return -1;
    free(user);
    free(password);
    if (strrchr(text, ':') == NULL || (text[0] == '[' && strstr(text, "]:") == NULL))
        *port = SENTINEL_PORT;
    return 0;
}

/* Every answer goes to the engine's connections, a repeated one too: it is
 * what lets their next attempt go ahead (confirm_target). */
static void set_primary(struct engine_sentinel *s, const char *host, unsigned port)
{
    struct sp_engine *e = s->e;
    char now[300];

    snprintf(now, sizeof(now), "%s:%u", host, port);
    if (strcmp(now, s->primary) != 0) {
        sp_log_write(e->env.log, s->primary[0] ? SP_LOG_WARN : SP_LOG_INFO, "redis_primary",
                     "Sentinel: the primary of '%s' is %s%s%s",
                     e->env.config->redis.sentinel_master, now, s->primary[0] ? " (was " : "",
                     s->primary[0] ? s->primary : "");
        if (s->primary[0])
            e->stats.primary_changes++;
        snprintf(s->primary, sizeof(s->primary), "%s", now);
    }
    if (sp_redis_set_target(e->cmd, host, port) < 0 || sp_redis_set_target(e->sub, host, port) < 0)
        sp_log_error(e->env.log, "redis_primary", "out of memory: the primary is not followed");
}

static void on_master(redisAsyncContext *ac, void *reply, void *arg)
{
    struct engine_sentinel *s = arg;
    redisReply *r = reply;

    (void)ac;
    if (r == NULL)
        return; /* that sentinel was lost: the next is asked */
    if (!engine_reply_is(r, REDIS_REPLY_ARRAY, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        sp_log_warn(s->e->env.log, "redis_primary", "Sentinel does not know a master named '%s'",
                    s->e->env.config->redis.sentinel_master);
        return;
    }
    set_primary(s, r->element[0]->str, (unsigned)strtoul(r->element[1]->str, NULL, 10));
}

void engine_sentinel_ask(struct engine_sentinel *s)
{
    if (s == NULL)
        return;
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
                           s->e->env.config->redis.sentinel_master};
    sp_redis_command(s->cmd, on_master, s, 3, argv, NULL);
}

/* "+switch-master": "<name> <old ip> <old port> <new ip> <new port>". */
static void on_switch(redisAsyncContext *ac, void *reply, void *arg)
{
    struct engine_sentinel *s = arg;
    redisReply *r = reply;
    char name[256], old_ip[64], new_ip[64];
    unsigned old_port, new_port;

    (void)ac;
    if (!engine_reply_is(r, REDIS_REPLY_ARRAY, 3) || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (sscanf(r->element[2]->str, "%255s %63s %u %63s %u", name, old_ip, &old_port, new_ip,
               &new_port) == 5 &&
        strcmp(name, s->e->env.config->redis.sentinel_master) == 0)
        set_primary(s, new_ip, new_port);
}

static void cmd_up(void *arg)
{
    engine_sentinel_ask(arg);
}

static void cmd_down(void *arg, const char *why, uint64_t retry_ms)
{
    struct engine_sentinel *s = arg;
    const struct sp_config *c = s->e->env.config;
    char *host;
    unsigned port;

    (void)retry_ms;
    sp_log_debug(s->e->env.log, "redis_sentinel", "sentinel %s: %s",
                 c->redis.sentinels.items[s->current], why);
    s->current = (s->current + 1) % c->redis.sentinels.count;
    if (sentinel_at(c, s->current, &host, &port) == 0) {
        sp_redis_set_target(s->cmd, host, port);
        sp_redis_set_target(s->sub, host, port);
        free(host);
    }
}

static void sub_up(void *arg)
{
    struct engine_sentinel *s = arg;
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};

    sp_redis_command(s->sub, on_switch, s, 2, argv, NULL);
}

static void sub_down(void *arg, const char *why, uint64_t retry_ms)
{
    (void)arg;
    (void)why;
    (void)retry_ms; /* it follows the command connection's sentinel */
}

static const struct sp_redis_ops sentinel_cmd_ops = {cmd_up, cmd_down};
static const struct sp_redis_ops sentinel_sub_ops = {sub_up, sub_down};

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    engine_sentinel_ask(arg);
}

struct engine_sentinel *engine_sentinel_new(struct sp_engine *e)
{
    const struct sp_config *c = e->env.config;
    struct engine_sentinel *s = calloc(1, sizeof(*s));
    struct timeval every = sp_timeval_ms(RECHECK_MS);
    char *host = NULL;
    unsigned port;

    if (s == NULL || sentinel_at(c, 0, &host, &port) < 0)
        goto fail;
    s->e = e;
    struct sp_redis_options opts = {
        .host = host,
        .port = port,
        .password = c->redis.sentinel_password,
        .connect_timeout_ms = c->redis.connect_timeout_ms,
        .timeout_ms = c->redis.timeout_ms,
        .reconnect_max_ms = c->redis.reconnect_max_ms,
        .ping = true,
    };
    s->cmd = sp_redis_new(e->env.base, e->dns, &opts, &sentinel_cmd_ops, s);
    opts.ping = false;
    s->sub = sp_redis_new(e->env.base, e->dns, &opts, &sentinel_sub_ops, s);
    s->recheck = event_new(e->env.base, -1, EV_PERSIST, on_recheck, s);
    if (s->cmd == NULL || s->sub == NULL || s->recheck == NULL || event_add(s->recheck, &every) < 0)
        goto fail;
    free(host);
    return s;
fail:
    free(host);
    engine_sentinel_free(s);
    return NULL;
}

void engine_sentinel_free(struct engine_sentinel *s)
{
    if (s == NULL)
        return;
    if (s->recheck)
        event_free(s->recheck);
    sp_redis_free(s->cmd);
    sp_redis_free(s->sub);
    free(s);
}

const char *engine_sentinel_primary(const struct engine_sentinel *s)
{
    return s ? s->primary : "";
}
