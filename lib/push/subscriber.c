/* A subscriber, whatever its transport: its channels (one subscription
 * for one or more), where it resumes (cursors from the request, the
 * position a stream opens with), what it replays, CORS for its page, and
 * the one path by which a message reaches its stream. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hmap.h"
#include "net/mailbox.h"
#include "push/push-internal.h"

/* Messages one stream replays when it opens, at most. */
#define BACKLOG_MAX 1024

/* ---- subscriptions: one client, its channels ---------------------------------------------- */

struct entry {
    struct sp_sub sub; /* first: the hub hands back &sub */
    struct sp_subscription *parent;
};

struct sp_subscription {
    struct sp_push *push;
    sp_subscription_deliver deliver;
    sp_subscription_deleted deleted;
    void *owner;
    char *member;             /* the user id on a presence route, else NULL */
    char *user;               /* counted for limits.max_connections_per_user, or NULL */
    char **channels;          /* with member: the channels' names (a deleted one's too) */
    struct members_ask *asks; /* member lists asked of the shared loop */
    /* The last message handed on: one reaching the owner through a pattern
     * and its channel (or two patterns) comes that many times in a row. */
    uint64_t last_seq;
    size_t count;
    struct entry entries[];
};

/* A member list is asked of the shared loop (with Redis, of the engine
 * there: the deployment's list) and answered by mail. Only the asking worker touches waiter,
 * next, write and ctx; the shared loop only json. */
struct members_ask {
    struct sp_ask ask;
    struct sp_push *from;
    struct sp_subscription *waiter; /* NULL once the subscription closed */
    struct members_ask *next;
    void (*write)(void *ctx, const char *json);
    void *ctx;
    char *json; /* NULL: Redis was unavailable */
    char channel[];
};

/* ---- presence: joins and leaves, on the shared loop ------------------------------------------ */

struct presence_mail {
    struct sp_mail mail;
    struct sp_push_shared *shared;
    bool join;
    char *info;    /* points into text, or NULL */
    char *user_id; /* points into text */
    char text[];   /* channel, user id, info */
};

static void presence_run(struct sp_mail *mail)
{
    struct presence_mail *m = (struct presence_mail *)mail;

    if (m->join)
        sp_presence_join(m->shared->presence, m->text, m->user_id, m->info);
    else
        sp_presence_leave(m->shared->presence, m->text, m->user_id);
    free(m);
}

static void presence_drop(struct sp_mail *mail)
{
    free(mail);
}

/* Mailed from every worker alike, the shared loop's own included, so that
 * joins and leaves keep their order (and never run inside a delivery). */
static void presence_post(struct sp_push *push, bool join, const char *channel, const char *user_id,
                          const char *info)
{
    size_t c = strlen(channel) + 1, u = strlen(user_id) + 1, i = info ? strlen(info) + 1 : 0;
    struct presence_mail *m = malloc(sizeof(*m) + c + u + i);

    if (m == NULL)
        return; /* out of memory: this connection is not counted */
    m->shared = push->shared;
    m->join = join;
    memcpy(m->text, channel, c);
    m->user_id = memcpy(m->text + c, user_id, u);
    m->info = info ? memcpy(m->text + c + u, info, i) : NULL;
    sp_mailbox_post(push->shared->mailbox, &m->mail, presence_run, presence_drop);
}

static void on_deliver(struct sp_sub *sub, struct sp_msg *msg)
{
    struct sp_subscription *s = ((struct entry *)sub)->parent;
    uint64_t seq = sp_msg_seq(msg);

    if (seq != 0 && seq == s->last_seq)
        return;
    s->last_seq = seq;
    s->deliver(s->owner, msg);
}

static void on_deleted(struct sp_sub *sub)
{
    struct sp_subscription *s = ((struct entry *)sub)->parent;
    s->deleted(s->owner);
}

static const struct sp_sub_ops entry_ops = {on_deliver, on_deleted};

/* Splits spec at commas into names (pointing into copy), merging repeats. */
static int split_channels(char *copy, char **names, size_t max, size_t *count)
{
    size_t n = 0;

    for (char *save, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], tok) == 0;
        if (seen)
            continue;
        if (n == max || !sp_hub_subscription_name_valid(tok, strlen(tok)))
            return SP_HUB_BAD_CHANNEL;
        names[n++] = tok;
    }
    if (n == 0)
        return SP_HUB_BAD_CHANNEL;
    *count = n;
    return 0;
}

int sp_subscription_error_status(int rc)
{
    return rc == SP_HUB_BAD_CHANNEL ? 400 : rc == SP_HUB_USER_FULL ? 429 : 500;
}

/* s is user_id's: counted against limits.max_connections_per_user, for
 * the process, until s closes. Returns 0 or SP_HUB_USER_FULL. */
static int claim_user(struct sp_subscription *s, const char *user_id)
{
    struct sp_push_shared *sh = s->push->shared;
    uint64_t max = s->push->config->limits.max_connections_per_user;
    int rc = 0;

    if (user_id == NULL || max == 0 || s->user != NULL)
        return 0;
    pthread_mutex_lock(&sh->users_lock);
    struct user_count *u = sp_hmap_get(sh->users, user_id);
    if (u == NULL && (u = calloc(1, sizeof(*u) + strlen(user_id) + 1)) != NULL) {
        strcpy(u->id, user_id);
        if (sp_hmap_put(sh->users, u->id, u) < 0) {
            free(u);
            u = NULL;
        }
    }
    if (u != NULL && u->count >= max) {
        s->push->stats.users_refused++; /* the worker's own: counted on its thread */
        rc = SP_HUB_USER_FULL;
    } else if (u != NULL && (s->user = strdup(user_id)) != NULL) {
        u->count++;
    }
    pthread_mutex_unlock(&sh->users_lock);
    return rc;
}

static void release_user(struct sp_subscription *s)
{
    struct sp_push_shared *sh = s->push->shared;

    if (s->user == NULL)
        return;
    pthread_mutex_lock(&sh->users_lock);
    struct user_count *u = sp_hmap_get(sh->users, s->user);
    if (u != NULL && --u->count == 0) {
        sp_hmap_del(sh->users, u->id);
        free(u);
    }
    pthread_mutex_unlock(&sh->users_lock);
    free(s->user);
}

int sp_subscription_open(struct sp_push *push, const char *spec, sp_subscription_deliver deliver,
                         sp_subscription_deleted deleted, void *owner,
                         const struct sp_identity *member, const char *user,
                         struct sp_subscription **out)
{
    size_t max = push->config->limits.max_channels_per_connection;
    char *names[256];
    size_t count;
    char *copy = strdup(spec);
    int rc;

    if (copy == NULL)
        return SP_HUB_NO_MEMORY;
    rc = split_channels(copy, names, max < 256 ? max : 256, &count);
    if (rc < 0)
        goto done;
    struct sp_subscription *s = calloc(1, sizeof(*s) + count * sizeof(struct entry));
    if (s == NULL) {
        rc = SP_HUB_NO_MEMORY;
        goto done;
    }
    *s = (struct sp_subscription){
        .push = push, .deliver = deliver, .deleted = deleted, .owner = owner};
    /* Before any join: a user refused here was never a member. */
    if ((rc = claim_user(s, user)) < 0) {
        free(s);
        goto done;
    }
    if (member != NULL && member->user_id != NULL &&
        ((s->member = strdup(member->user_id)) == NULL ||
         (s->channels = calloc(count, sizeof(*s->channels))) == NULL)) {
        free(s->member);
        release_user(s);
        free(s);
        rc = SP_HUB_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        s->entries[i].parent = s;
        rc = sp_hub_subscribe(push->port, &s->entries[i].sub, names[i], &entry_ops);
        if (rc < 0) {
            sp_subscription_close(s);
            goto done;
        }
        s->count++;
        if (s->member != NULL && (s->channels[i] = strdup(names[i])) != NULL)
            presence_post(push, true, names[i], s->member, member->user_info);
    }
    *out = s;
    rc = 0;
done:
    free(copy);
    return rc;
}

void sp_subscription_close(struct sp_subscription *s)
{
    if (s == NULL)
        return;
    release_user(s);
    for (struct members_ask *a = s->asks; a != NULL; a = a->next)
        a->waiter = NULL; /* its answer is dropped */
    for (size_t i = 0; i < s->count; i++) {
        if (s->member != NULL && s->channels[i] != NULL)
            presence_post(s->push, false, s->channels[i], s->member, NULL);
        sp_hub_unsubscribe(s->push->port, &s->entries[i].sub);
    }
    for (size_t i = 0; s->channels != NULL && i < s->count; i++)
        free(s->channels[i]);
    free(s->channels);
    free(s->member);
    free(s);
}

static void ask_free(struct sp_ask *ask)
{
    struct members_ask *a = (struct members_ask *)ask;
    free(a->json);
    free(a);
}

/* Back on the asking worker. */
static void members_answered(struct sp_ask *ask)
{
    struct members_ask *a = (struct members_ask *)ask;
    struct sp_subscription *s = a->waiter;

    if (s != NULL) {
        for (struct members_ask **p = &s->asks; *p != NULL; p = &(*p)->next)
            if (*p == a) {
                *p = a->next;
                break;
            }
        if (a->json != NULL)
            a->write(a->ctx, a->json);
    }
    ask_free(ask);
}

static void members_fetched(void *arg, const char *json)
{
    struct members_ask *a = arg;

    a->json = json ? strdup(json) : NULL;
    sp_ask_answer(&a->ask);
}

/* Every opening lists up to this many: beyond the announce limit, listing
 * all to each of N subscribers would be the N^2 the limit avoids. */
static size_t opening_list_max(const struct sp_config *c)
{
    uint64_t max = c->presence.max_members, announce = c->presence.announce_limit;
    return (size_t)(announce > 0 && announce < max ? announce : max);
}

/* The process's own list, on the shared loop: after every join and leave
 * mailed before the question (one mailbox, in order), the asker's own
 * included. */
static void local_members(struct members_ask *a, struct sp_push_shared *sh)
{
    struct evbuffer *buf = evbuffer_new();

    if (buf != NULL) {
        sp_presence_write_json(sh->presence, a->channel, opening_list_max(sh->config), buf);
        evbuffer_add(buf, "", 1);
    }
    members_fetched(a, buf ? (const char *)evbuffer_pullup(buf, -1) : NULL);
    if (buf)
        evbuffer_free(buf);
}

/* On the shared loop. */
static void members_asked(struct sp_ask *ask)
{
    struct members_ask *a = (struct members_ask *)ask;
    struct sp_push_shared *sh = a->from->shared;

    if (!sh->uses_engine) {
        local_members(a, sh);
        return;
    }
    if (sh->engine == NULL ||
        sp_engine_members(sh->engine, a->channel, opening_list_max(sh->config), members_fetched,
                          a) < 0)
        members_fetched(a, NULL);
}

static void ask_members(struct sp_subscription *s, const char *channel,
                        void (*write)(void *ctx, const char *json), void *ctx)
{
    size_t len = strlen(channel) + 1;
    struct members_ask *a = calloc(1, sizeof(*a) + len);

    if (a == NULL)
        return; /* out of memory: no list, the joins still come */
    a->from = s->push;
    a->waiter = s;
    a->write = write;
    a->ctx = ctx;
    memcpy(a->channel, channel, len);
    a->next = s->asks;
    s->asks = a;
    sp_ask_post(&a->ask, s->push->shared->mailbox, s->push->mailbox, members_asked,
                members_answered, ask_free);
}

void sp_subscription_members(struct sp_subscription *s, void (*write)(void *ctx, const char *json),
                             void *ctx)
{
    if (s->member == NULL)
        return;
    /* Asked of the shared loop even in memory: the list is made there after
     * this subscriber's own join (mailed at open), so it holds everyone
     * whose list came before it. */
    for (size_t i = 0; i < s->count; i++)
        if (s->channels[i] != NULL)
            ask_members(s, s->channels[i], write, ctx);
}

int sp_subscription_backlog(struct sp_subscription *s, const struct sp_cursor *cur,
                            struct sp_msg **out, size_t max, bool *missed)
{
    struct sp_sub *subs[256];

    for (size_t i = 0; i < s->count; i++)
        subs[i] = &s->entries[i].sub;
    int n = sp_hub_backlog(s->push->hub, subs, s->count, cur, out, max, missed);
    if (n >= 0 && *missed)
        s->push->stats.missed_history++;
    return n;
}

int sp_subscription_replay(struct sp_subscription *s, const struct sp_cursor *cur,
                           struct sp_stream *stream, struct sp_wire wire,
                           sp_replay_preamble preamble, void *ctx)
{
    struct sp_msg *backlog[BACKLOG_MAX];
    char position[SP_MSG_ID_MAX];
    bool missed = false;
    int n = sp_subscription_backlog(s, cur, backlog, BACKLOG_MAX, &missed);

    if (n < 0)
        return -1;
    sp_subscription_position(s, backlog, n, position);
    int rc = preamble(ctx, position, (size_t)n, missed, n > 0 ? sp_msg_id(backlog[0]) : "");
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = sp_push_send_msg(s->push, stream, backlog[i], wire);
        sp_msg_unref(backlog[i]);
    }
    return rc;
}

void sp_subscription_position(struct sp_subscription *s, struct sp_msg *const *backlog, int n,
                              char out[SP_MSG_ID_MAX])
{
    uint64_t seq = n > 0 ? sp_msg_seq(backlog[0]) - 1 : sp_hub_now(s->push->hub).seq;
    sp_hub_format_id(s->push->hub, seq, out);
}

/* ---- requests: cursors, start, CORS -------------------------------------------------- */

uint64_t sp_identity_expiry(const struct sp_identity *who)
{
    struct timespec wall;

    if (who == NULL || who->expires_ms == 0)
        return UINT64_MAX;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t now_wall = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
    uint64_t now = sp_now_ms();
    return who->expires_ms > now_wall ? now + (who->expires_ms - now_wall) : now;
}

int sp_push_request_cursor(struct sp_push *push, const struct sp_http_request *req,
                           struct sp_cursor *cur)
{
    static const char *const params[] = {"last_event_id", "lastEventId", "evs_last_event_id",
                                         "cursor"};
    char text[SP_MSG_ID_MAX + 8];
    const struct sp_http_header *h = sp_http_find_header(req, "Last-Event-ID");

    if (h == NULL)
        h = sp_http_find_header(req, "Sidepush-Cursor");
    if (h != NULL) {
        if (h->value.len >= sizeof(text))
            return -1;
        memcpy(text, h->value.ptr, h->value.len);
        text[h->value.len] = '\0';
        return sp_hub_parse_cursor(push->hub, text, cur);
    }
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        int n = sp_http_query_get(req->query, params[i], text, sizeof(text));
        if (n == SP_HTTP_QUERY_BAD)
            return -1; /* too long for an id, or not decodable: not an id */
        if (n >= 0)
            return sp_hub_parse_cursor(push->hub, text, cur);
    }
    *cur = (struct sp_cursor){0};
    return 0;
}

struct sp_cursor sp_push_start(struct sp_push *push, const struct sp_route_config *route)
{
    if (route->has_poll && route->poll.initial)
        return (struct sp_cursor){.latest = true}; /* the current state first */
    if (route->subscribe.start == SP_START_OLDEST)
        return (struct sp_cursor){0}; /* no cursor: the whole history */
    struct sp_cursor now = sp_hub_now(push->hub);
    now.values = true; /* a last-value channel's value is its current state */
    return now;
}

/* The request's Origin, if it names a host other than the one requested. */
static bool cross_origin(const struct sp_http_request *req, struct sp_slice origin)
{
    const struct sp_http_header *host = sp_http_find_header(req, "Host");
    const char *sep = memmem(origin.ptr, origin.len, "://", 3);

    if (host == NULL || sep == NULL)
        return true;
    struct sp_slice o_host = {sep + 3, origin.len - (size_t)(sep + 3 - origin.ptr)};
    return !(o_host.len == host->value.len &&
             strncasecmp(o_host.ptr, host->value.ptr, o_host.len) == 0);
}

static bool origin_listed(struct sp_push *push, struct sp_slice origin, bool *wildcard)
{
    const struct sp_strlist *list = &push->config->cors.allow_origins;

    *wildcard = false;
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i], "*") == 0) {
            *wildcard = true;
            return true;
        }
        if (sp_slice_caseeq(origin, list->items[i]))
            return true;
    }
    return false;
}

bool sp_push_origin_allowed(struct sp_push *push, const struct sp_http_request *req)
{
    const struct sp_http_header *o = sp_http_find_header(req, "Origin");
    bool wildcard;

    if (o == NULL || !cross_origin(req, o->value))
        return true; /* not a browser, or the page's own origin */
    return origin_listed(push, o->value, &wildcard);
}

void sp_push_cors(struct sp_push *push, const struct sp_http_request *req, struct evbuffer *h)
{
    const struct sp_http_header *o = sp_http_find_header(req, "Origin");
    bool wildcard;

    if (o == NULL || !origin_listed(push, o->value, &wildcard))
        return;
    /* With credentials the origin must be named, never "*". */
    if (wildcard && !push->config->cors.allow_credentials)
        evbuffer_add_printf(h, "Access-Control-Allow-Origin: *\r\n");
    else if (sp_http_add_header(h, "Access-Control-Allow-Origin", o->value.ptr, o->value.len) == 0)
        evbuffer_add(h, "Vary: Origin\r\n", 14);
    if (push->config->cors.allow_credentials)
        evbuffer_add_printf(h, "Access-Control-Allow-Credentials: true\r\n");
    evbuffer_add_printf(h, "Access-Control-Expose-Headers: Sidepush-Cursor, Sidepush-Missed, "
                           "Last-Event-ID, ETag\r\n");
}

int sp_push_send_msg(struct sp_push *push, struct sp_stream *stream, struct sp_msg *msg,
                     struct sp_wire wire)
{
    size_t raw_len;
    struct sp_slice bytes = sp_msg_render_wire(msg, wire, &raw_len);

    if (bytes.len == 0)
        return -1;
    sp_msg_ref(msg);
    if (sp_stream_write_ref(stream, bytes.ptr, bytes.len, sp_msg_unref_cb, msg) < 0) {
        sp_msg_unref(msg);
        push->stats.slow_consumers++;
        return -1;
    }
    push->stats.delivered++;
    if (raw_len > 0) {
        push->stats.deflated_messages++;
        push->stats.deflate_bytes_before += raw_len;
        push->stats.deflate_bytes_after += bytes.len;
    }
    return 0;
}
