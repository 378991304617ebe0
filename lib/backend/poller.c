#include "backend/poller.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hmap.h"
#include "net/mailbox.h"
#include "core/clock.h"
#include "core/digest.h"
#include "engine/engine.h"
#include "push/push.h"

struct poller {
    struct sp_polls *polls;
    const struct sp_route_config *route; /* its configuration held */
    char *channel;
    char *url;
    struct curl_slist *client_headers; /* per-client polls only */
    CURL *easy;                        /* in flight */
    struct curl_slist *request_headers;
    struct evbuffer *body;
    bool body_too_big;
    struct event timer;       /* next poll, or the end of the linger */
    struct event lease_timer; /* with Redis: take or renew the lease */
    bool leader;              /* with Redis: this replica holds the lease and polls */
    bool running;
    bool lingering;
    size_t subscribers;
    unsigned errors;  /* consecutive */
    uint64_t next_ms; /* set by Retry-After or Cache-Control: max-age */
    char etag[256];
    char last_modified[80];
    unsigned char hash[SHA256_DIGEST_LENGTH];
    bool have_hash;
    char *last_body; /* for merge patches */
};

struct sp_poll_stats {
    uint64_t requests;
    uint64_t changes;   /* published */
    uint64_t unchanged; /* 304 or the same body */
    uint64_t errors;    /* failures, non-2xx */
    uint64_t pollers;   /* running now */
    uint64_t leases;    /* with Redis: poll leases this replica holds (it polls those) */
};

struct sp_polls {
    const struct sp_backend *backend; /* the main loop's: pollers run there */
    struct sp_mailbox *main;          /* its mailbox, for other workers' subscribers */
    struct sp_hmap *by_channel;
    struct sp_poll_stats stats;
};

static void schedule(struct poller *p, uint64_t ms);
static void poll_now(struct poller *p);
static void lease_start(struct poller *p);
static void lease_stop(struct poller *p);

/* ---- lifecycle ------------------------------------------------------------------------ */

static void poller_free(struct poller *p)
{
    lease_stop(p);
    event_del(&p->timer);
    if (p->easy) {
        sp_curlm_remove(p->polls->backend->curlm, p->easy);
        curl_easy_cleanup(p->easy);
    }
    if (p->running)
        p->polls->stats.pollers--;
    curl_slist_free_all(p->request_headers);
    curl_slist_free_all(p->client_headers);
    if (p->body)
        evbuffer_free(p->body);
    free(p->last_body);
    free(p->url);
    free(p->channel);
    if (p->route != NULL)
        sp_config_release(p->route->owner);
    free(p);
}

static void drop(struct poller *p)
{
    sp_hmap_del(p->polls->by_channel, p->channel);
    poller_free(p);
}

static void start_linger(struct poller *p)
{
    p->lingering = true;
    lease_stop(p);
    event_del(&p->timer);
    if (p->easy) {
        sp_curlm_remove(p->polls->backend->curlm, p->easy);
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
    }
    uint64_t ms = p->route->poll.linger_ms;
    struct timeval tv = sp_timeval_ms(ms);
    evtimer_add(&p->timer, &tv);
}

/* ---- one poll --------------------------------------------------------------------------- */

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    struct poller *p = arg;
    size_t len = size * n;

    if (evbuffer_get_length(p->body) + len > p->polls->backend->config->channels.max_message_size) {
        p->body_too_big = true;
        return 0; /* aborts the transfer */
    }
    evbuffer_add(p->body, buf, len);
    return len;
}

/* Seconds in Retry-After (delta-seconds or an HTTP-date), or 0. */
static uint64_t retry_after_ms(const char *v)
{
    char *end;
    long secs = strtol(v, &end, 10);
    if (end != v && secs >= 0)
        return (uint64_t)secs * 1000;
    time_t when = curl_getdate(v, NULL);
    time_t now = time(NULL);
    return when > now ? (uint64_t)(when - now) * 1000 : 0;
}

static void copy_value(char *dst, size_t size, const char *v, size_t len)
{
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len >= size)
        len = size - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct poller *p = arg;
    size_t len = size * n;
    char value[256];

    const char *colon = memchr(buf, ':', len);
    if (colon == NULL)
        return len;
    size_t name_len = (size_t)(colon - buf);
    const char *v = colon + 1;
    while (v < buf + len && *v == ' ')
        v++;
    copy_value(value, sizeof(value), v, (size_t)(buf + len - v));
    if (name_len == 4 && strncasecmp(buf, "ETag", 4) == 0) {
        snprintf(p->etag, sizeof(p->etag), "%s", value);
    } else if (name_len == 13 && strncasecmp(buf, "Last-Modified", 13) == 0) {
        copy_value(p->last_modified, sizeof(p->last_modified), value, strlen(value));
    } else if (name_len == 11 && strncasecmp(buf, "Retry-After", 11) == 0) {
        p->next_ms = retry_after_ms(value);
    } else if (name_len == 13 && strncasecmp(buf, "Cache-Control", 13) == 0) {
        const char *ma = strstr(value, "max-age=");
        if (ma != NULL)
            p->next_ms = (uint64_t)strtoul(ma + 8, NULL, 10) * 1000;
    }
    return len;
}

/* A publish in flight; the poller may be gone when it is answered. */
struct published {
    struct sp_polls *polls;
    bool change; /* a new body (not an error event) */
    char channel[];
};

static void save_state(struct poller *p)
{
    struct sp_engine *engine = sp_push_engine(p->polls->backend->push);
    struct sp_engine_poll_state st = {p->etag, p->last_modified, p->last_body, p->hash,
                                      p->last_body ? strlen(p->last_body) : 0};

    if (engine != NULL && p->leader && p->have_hash)
        sp_engine_save_poll_state(engine, p->channel, &st);
}

/* A change that was not stored is published again by the next poll. */
static void forget_change(struct poller *p)
{
    p->have_hash = false;
    free(p->last_body);
    p->last_body = NULL;
}

static void on_published(void *arg, int rc, const struct sp_publish_result *res)
{
    struct published *pub = arg;
    struct poller *p = sp_hmap_get(pub->polls->by_channel, pub->channel);

    if (p != NULL && pub->change) {
        if (rc == SP_HUB_OK)
            save_state(p);
        else
            forget_change(p);
    }
    free(pub);
}

static void publish_event(struct poller *p, const struct sp_engine_publish *ep, bool change)
{
    struct published *pub = malloc(sizeof(*pub) + strlen(p->channel) + 1);

    if (pub == NULL) {
        if (change)
            forget_change(p);
        return;
    }
    pub->polls = p->polls;
    pub->change = change;
    strcpy(pub->channel, p->channel);
    if (sp_push_publish(p->polls->backend->push, ep, on_published, pub) < 0) {
        if (change)
            forget_change(p);
        free(pub);
    }
}

/* A 2xx body: publish it (or its merge patch) if it differs from the last. */
static void on_body_complete(struct poller *p)
{
    size_t len = evbuffer_get_length(p->body);
    evbuffer_add(p->body, "", 1); /* a terminating NUL for the JSON parser */
    const char *body = (const char *)evbuffer_pullup(p->body, -1);
    unsigned char hash[SHA256_DIGEST_LENGTH];
    const char *event = p->route->poll.event;

    SHA256((const unsigned char *)body, len, hash);
    if (p->have_hash && memcmp(hash, p->hash, sizeof(hash)) == 0) {
        p->polls->stats.unchanged++;
        return;
    }
    char *patch = p->route->poll.diff && p->last_body ? sp_merge_patch(p->last_body, body) : NULL;
    /* The whole body becomes the channel's snapshot, for new subscribers. */
    struct sp_engine_publish ep = {
        .pub = {.channel = p->channel,
                .event = event,
                .data = patch ? patch : body,
                .len = patch ? strlen(patch) : len},
        .snapshot = patch ? SP_SNAPSHOT_DATA : SP_SNAPSHOT_SELF,
        .snapshot_data = body,
        .snapshot_len = len,
    };
    /* Taken as the last state now (a failed publish forgets it again), so
     * the answer from Redis need not be waited for. */
    memcpy(p->hash, hash, sizeof(hash));
    p->have_hash = true;
    p->polls->stats.changes++;
    free(p->last_body);
    p->last_body = strndup(body, len);
    publish_event(p, &ep, true);
    free(patch);
}

static uint64_t jitter(uint64_t ms)
{
    /* 75% to 125% of ms: retries of many pollers spread out. */
    return ms * 3 / 4 + (ms / 2 ? sp_random() % (ms / 2 + 1) : 0);
}

static void on_error(struct poller *p, long status, const char *why)
{
    char data[256];
    const struct sp_route_config *r = p->route;

    p->polls->stats.errors++;
    if (p->errors++ == 0 && r->poll.error_event[0] != '\0') {
        int n = snprintf(data, sizeof(data), "{\"status\":%ld,\"error\":\"%s\"}", status, why);
        struct sp_engine_publish ep = {.pub = {.channel = p->channel,
                                               .event = r->poll.error_event,
                                               .data = data,
                                               .len = (size_t)n}};
        publish_event(p, &ep, false);
    }
    sp_log_warn(p->polls->backend->log, "poll_error", "%s: %s (status %ld)", p->url, why, status);
    uint64_t backoff = r->poll.interval_ms;
    for (unsigned i = 0; i < p->errors && backoff < r->poll.max_backoff_ms; i++)
        backoff *= 2;
    if (backoff > r->poll.max_backoff_ms)
        backoff = r->poll.max_backoff_ms;
    backoff = jitter(backoff);
    schedule(p, p->next_ms > backoff ? p->next_ms : backoff);
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
    struct poller *p = arg;
    long status = 0;

    p->easy = NULL;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(easy);
    curl_slist_free_all(p->request_headers);
    p->request_headers = NULL;
    if (result != CURLE_OK) {
        on_error(p, p->body_too_big ? 413 : 502,
                 p->body_too_big ? "answer larger than channels.max_message_size"
                                 : curl_easy_strerror(result));
        return;
    }
    if (status == 304) {
        p->polls->stats.unchanged++;
    } else if (status >= 200 && status < 300) {
        on_body_complete(p);
    } else {
        on_error(p, status, "backend answered an error");
        return;
    }
    p->errors = 0;
    uint64_t next = p->route->poll.interval_ms;
    schedule(p, p->next_ms > next ? p->next_ms : next);
}

static void poll_now(struct poller *p)
{
    char line[400];

    p->next_ms = 0;
    p->body_too_big = false;
    evbuffer_drain(p->body, evbuffer_get_length(p->body));
    for (const struct curl_slist *h = p->client_headers; h; h = h->next)
        p->request_headers = curl_slist_append(p->request_headers, h->data);
    if (p->etag[0]) {
        snprintf(line, sizeof(line), "If-None-Match: %s", p->etag);
        p->request_headers = curl_slist_append(p->request_headers, line);
    }
    if (p->last_modified[0]) {
        snprintf(line, sizeof(line), "If-Modified-Since: %s", p->last_modified);
        p->request_headers = curl_slist_append(p->request_headers, line);
    }
    CURL *e = sp_backend_request(p->polls->backend, p->url, p->request_headers);
    if (e == NULL) {
        on_error(p, 0, "out of memory");
        return;
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* any the backend offers, decoded */
    p->polls->stats.requests++;
    if (sp_curlm_add(p->polls->backend->curlm, e, on_done, p) < 0) {
        curl_easy_cleanup(e);
        on_error(p, 0, "could not start the request");
        return;
    }
    p->easy = e;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct poller *p = arg;

    if (p->lingering) {
        drop(p); /* nobody came back */
        return;
    }
    poll_now(p);
}

static void schedule(struct poller *p, uint64_t ms)
{
    struct timeval tv = sp_timeval_ms(ms);
    evtimer_add(&p->timer, &tv);
}

/* ---- leases: with Redis, one replica polls each channel ------------------------------------
 *
 * Every replica with subscribers of a poll channel tries to take its lease
 * every third of redis.poll_lease; the holder renews it as often and is the
 * only one that polls. If it dies, its lease expires and the next try of
 * another replica takes over, within about one lease period. */

static void stop_polling(struct poller *p)
{
    event_del(&p->timer);
    if (p->easy) {
        sp_curlm_remove(p->polls->backend->curlm, p->easy);
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
    }
}

static void lose_lease(struct poller *p)
{
    if (!p->leader)
        return;
    p->leader = false;
    p->polls->stats.leases--;
    stop_polling(p);
}

static void on_leased(void *arg, const char *channel, bool held, bool fresh,
                      const struct sp_engine_poll_state *st)
{
    struct sp_polls *polls = arg;
    struct poller *p = sp_hmap_get(polls->by_channel, channel);

    if (p == NULL || p->lingering || !p->running) {
        if (held && sp_push_engine(polls->backend->push) != NULL)
            sp_engine_release(sp_push_engine(polls->backend->push),
                              channel); /* nobody here wants it now */
        return;
    }
    if (!held) {
        lose_lease(p);
        return;
    }
    if (fresh || !p->leader) {
        /* Taken over: start from where the last holder was, so an
         * unchanged answer publishes nothing. */
        if (st->etag)
            snprintf(p->etag, sizeof(p->etag), "%s", st->etag);
        if (st->last_modified)
            snprintf(p->last_modified, sizeof(p->last_modified), "%s", st->last_modified);
        if (st->hash) {
            memcpy(p->hash, st->hash, sizeof(p->hash));
            p->have_hash = true;
            free(p->last_body);
            p->last_body = st->body ? strndup(st->body, st->body_len) : NULL;
        }
        if (!p->leader) {
            p->leader = true;
            polls->stats.leases++;
            sp_log_info(polls->backend->log, "poll_lease", "this replica now polls %s", p->url);
            if (p->easy == NULL)
                poll_now(p);
        }
    }
}

static void on_lease_timer(evutil_socket_t fd, short what, void *arg)
{
    struct poller *p = arg;
    struct sp_engine *engine = sp_push_engine(p->polls->backend->push);

    if (sp_engine_lease(engine, p->channel, on_leased, p->polls) < 0)
        lose_lease(p); /* Redis is away: nobody can publish; the lease runs out */
}

static void lease_start(struct poller *p)
{
    uint64_t ms = sp_engine_lease_ms(sp_push_engine(p->polls->backend->push)) / 3;
    struct timeval tv = sp_timeval_ms(ms);

    event_add(&p->lease_timer, &tv);
    on_lease_timer(-1, 0, p);
}

static void lease_stop(struct poller *p)
{
    struct sp_engine *engine = sp_push_engine(p->polls->backend->push);

    if (engine == NULL)
        return;
    event_del(&p->lease_timer);
    if (p->leader) {
        lose_lease(p);
        sp_engine_release(engine, p->channel);
    }
}

/* Polling starts (or resumes after a linger): at once without Redis, under
 * the lease with it. */
static void begin(struct poller *p)
{
    if (sp_push_engine(p->polls->backend->push) != NULL)
        lease_start(p);
    else if (p->easy == NULL)
        poll_now(p);
}

/* ---- registry -------------------------------------------------------------------------------- */

/* Makes sure channel has a poller for url (an absolute URL) with the given
 * extra request headers (for per-client polls; may be NULL, copied). It
 * starts polling once the channel has a subscriber. Returns 0 or -1. */
static int polls_ensure(struct sp_polls *polls, const struct sp_route_config *route,
                        const char *channel, const char *url, const struct curl_slist *headers)
{
    struct poller *p = sp_hmap_get(polls->by_channel, channel);

    if (p != NULL)
        return 0;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    p->polls = polls;
    p->route = route;
    sp_config_hold(route->owner);
    p->channel = strdup(channel);
    p->url = strdup(url);
    p->body = evbuffer_new();
    for (const struct curl_slist *h = headers; h; h = h->next)
        p->client_headers = curl_slist_append(p->client_headers, h->data);
    evtimer_assign(&p->timer, polls->backend->base, on_timer, p);
    event_assign(&p->lease_timer, polls->backend->base, -1, EV_PERSIST, on_lease_timer, p);
    if (p->channel == NULL || p->url == NULL || p->body == NULL ||
        sp_hmap_put(polls->by_channel, p->channel, p) < 0) {
        poller_free(p);
        return -1;
    }
    return 0;
}

void sp_polls_watch(void *arg, const char *channel, size_t subscribers)
{
    struct sp_polls *polls = arg;
    struct poller *p = sp_hmap_get(polls->by_channel, channel);

    if (p == NULL)
        return;
    p->subscribers = subscribers;
    if (subscribers == 0) {
        start_linger(p);
        return;
    }
    if (p->lingering) {
        /* Back within the linger: the poll that was cut short runs now. */
        p->lingering = false;
        event_del(&p->timer);
    } else if (p->running) {
        return;
    }
    if (!p->running) {
        p->running = true;
        polls->stats.pollers++;
    }
    begin(p);
}

/* After a subscription attempt: a poller nobody subscribed to lingers out. */
static void polls_settle(struct sp_polls *polls, const char *channel)
{
    struct poller *p = sp_hmap_get(polls->by_channel, channel);

    if (p != NULL && p->subscribers == 0 && !p->lingering)
        start_linger(p);
}

/* ---- poll routes: clients subscribe to what is polled --------------------------------------- */

/* The channel of a poll: named by a digest of what is polled (and, for
 * per-client polls, with whose credentials), so equal polls share it and
 * different clients never do. */
static void poll_channel(const char *url, const struct curl_slist *headers, char out[48])
{
    struct sp_digest *d = sp_digest_new();
    char hex[SP_SHA256_HEX];

    if (d != NULL) {
        sp_digest_update(d, url, strlen(url));
        for (const struct curl_slist *h = headers; h; h = h->next) {
            sp_digest_update(d, "\n", 1);
            sp_digest_update(d, h->data, strlen(h->data));
        }
    }
    sp_digest_finish(d, hex);
    /* Half the digest is plenty to keep polls apart, and names short. */
    snprintf(out, 48, "poll-%.32s", hex);
}

static struct curl_slist *client_headers(const struct sp_route_config *route,
                                         const struct sp_http_request *req)
{
    struct curl_slist *list = NULL;

    if (!route->poll.per_client)
        return NULL;
    for (size_t i = 0; i < route->poll.forward_headers.count; i++)
        sp_backend_copy_header(&list, req, route->poll.forward_headers.items[i]);
    return list;
}

/* A poll to make sure of, mailed to the main loop by another worker. */
struct ensure {
    struct sp_mail mail;
    struct sp_polls *polls;
    const struct sp_route_config *route; /* its configuration held */
    struct curl_slist *headers;
    char channel[48];
    char url[];
};

static void ensure_free(struct sp_mail *mail)
{
    struct ensure *e = (struct ensure *)mail;
    curl_slist_free_all(e->headers);
    sp_config_release(e->route->owner);
    free(e);
}

/* On the main loop. The subscriber may already be counted (its worker
 * subscribed meanwhile) or not yet: the poller follows the count as it is. */
static void ensure_run(struct sp_mail *mail)
{
    struct ensure *e = (struct ensure *)mail;
    struct sp_polls *polls = e->polls;

    if (polls_ensure(polls, e->route, e->channel, e->url, e->headers) == 0) {
        size_t count = sp_push_channel_subscribers(polls->backend->push, e->channel);
        if (count > 0)
            sp_polls_watch(polls, e->channel, count);
        else
            polls_settle(polls, e->channel);
    }
    ensure_free(mail);
}

static int ensure_on_main(struct sp_polls *polls, const struct sp_route_config *route,
                          const char *channel, const char *url, struct curl_slist *headers)
{
    size_t len = strlen(url) + 1;
    struct ensure *e = calloc(1, sizeof(*e) + len);

    if (e == NULL)
        return -1;
    e->polls = polls;
    e->route = route;
    sp_config_hold(route->owner);
    e->headers = headers;
    snprintf(e->channel, sizeof(e->channel), "%s", channel);
    memcpy(e->url, url, len);
    sp_mailbox_post(polls->main, &e->mail, ensure_run, ensure_free);
    return 0;
}

void sp_polls_subscribe(struct sp_polls *polls, const struct sp_backend *b,
                        const struct sp_route_config *route,
                        const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], struct sp_http_conn *conn,
                        const struct sp_http_request *req)
{
    char channel[48];
    char *url = sp_backend_url(b, route, route->poll.url, caps);
    struct curl_slist *headers = client_headers(route, req);

    if (url == NULL) {
        sp_http_respond_error(conn, 500, "cannot build the poll URL");
        curl_slist_free_all(headers);
        return;
    }
    poll_channel(url, headers, channel);
    if (b != polls->backend) {
        /* The poller is the main loop's; the subscriber stays on its own worker. */
        if (ensure_on_main(polls, route, channel, url, headers) < 0) {
            curl_slist_free_all(headers);
            sp_http_respond_error(conn, 503, "out of memory");
        } else {
            sp_push_subscribe(b->push, route, channel, conn, req, NULL);
        }
        free(url);
        return;
    }
    if (polls_ensure(polls, route, channel, url, headers) < 0) {
        sp_http_respond_error(conn, 503, "out of memory");
    } else {
        sp_push_subscribe(polls->backend->push, route, channel, conn, req, NULL);
        polls_settle(polls, channel);
    }
    free(url);
    curl_slist_free_all(headers);
}

void sp_polls_metrics(const struct sp_polls *polls, struct evbuffer *out)
{
    const struct sp_poll_stats *poll = &polls->stats;

    sp_metric_one(out, "sidepush_poll_requests_total", "counter", "Requests of poll routes.",
                  (double)poll->requests);
    sp_metric_head(out, "sidepush_poll_results_total", "counter", "Poll results, by kind.");
    sp_metric_value(out, "sidepush_poll_results_total", "result=\"changed\"",
                    (double)poll->changes);
    sp_metric_value(out, "sidepush_poll_results_total", "result=\"unchanged\"",
                    (double)poll->unchanged);
    sp_metric_value(out, "sidepush_poll_results_total", "result=\"error\"", (double)poll->errors);
    sp_metric_one(out, "sidepush_pollers", "gauge", "Pollers running.", (double)poll->pollers);
    if (sp_push_engine(polls->backend->push) != NULL)
        sp_metric_one(out, "sidepush_poll_leases", "gauge",
                      "Poll channels whose Redis lease this replica holds (it polls them).",
                      (double)poll->leases);
}

struct sp_polls *sp_polls_new(const struct sp_backend *backend, struct sp_mailbox *main_mailbox)
{
    struct sp_polls *polls = calloc(1, sizeof(*polls));

    if (polls == NULL)
        return NULL;
    polls->backend = backend;
    polls->main = main_mailbox;
    polls->by_channel = sp_hmap_new();
    if (polls->by_channel == NULL) {
        free(polls);
        return NULL;
    }
    return polls;
}

static void free_entry(const char *key, void *value, void *ctx)
{
    (void)key;
    (void)ctx;
    poller_free(value);
}

void sp_polls_free(struct sp_polls *polls)
{
    if (polls == NULL)
        return;
    sp_hmap_each(polls->by_channel, free_entry, NULL);
    sp_hmap_free(polls->by_channel);
    free(polls);
}

/* ---- RFC 7396 merge patch ---------------------------------------------------------------- */

static json_t *diff(json_t *old, json_t *new)
{
    json_t *patch = json_object();
    const char *key;
    json_t *v;

    json_object_foreach(old, key, v)
    {
        if (json_object_get(new, key) == NULL)
            json_object_set_new(patch, key, json_null()); /* removed */
    }
    json_object_foreach(new, key, v)
    {
        json_t *before = json_object_get(old, key);
        if (before != NULL && json_equal(before, v))
            continue;
        if (before != NULL && json_is_object(before) && json_is_object(v))
            json_object_set_new(patch, key, diff(before, v));
        else
            json_object_set(patch, key, v);
    }
    return patch;
}

static bool has_null(json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_null(v))
        return true;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            if (has_null(item))
                return true;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (has_null(item))
                return true;
        }
    }
    return false;
}

char *sp_merge_patch(const char *old_json, const char *new_json)
{
    json_t *old = json_loads(old_json, JSON_DECODE_ANY, NULL);
    json_t *new = json_loads(new_json, JSON_DECODE_ANY, NULL);
    char *text = NULL;

    /* A null inside the new document cannot be told from a removal in a
     * merge patch (RFC 7396 §1): such documents go out whole. */
    if (json_is_object(old) && json_is_object(new) && !has_null(new)) {
        json_t *patch = diff(old, new);
        text = json_dumps(patch, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(patch);
    }
    json_decref(old);
    json_decref(new);
    return text;
}
