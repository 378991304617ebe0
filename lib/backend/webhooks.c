#include "backend/webhooks.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/hmap.h"
#include "metrics/metrics.h"
#include "push/webhook_sig.h"

#define BATCH_MAX 100        /* events per POST */
#define BACKOFF_FIRST_MS 500 /* after the first failure; doubles */
#define DROP_LOG_EVERY_MS 10000

struct item {
    TAILQ_ENTRY(item) link;
    const char *name; /* static */
    bool member;      /* member_added/removed: a budget of its own */
    char *channel;
    char *user_id;  /* NULL for occupancy */
    json_t *client; /* a client_event's event, data, socket_id; else NULL */
};

TAILQ_HEAD(item_queue, item);

struct sp_webhooks {
    const struct sp_backend *backend;
    struct item_queue queue;
    struct sp_webhooks_stats stats;
    struct event *timer; /* the batch window, or the backoff before a retry */
    /* the POST in flight or to retry: its first `sending` items, as sent */
    CURL *easy;
    size_t sending;
    char *body;
    char webhook_id[32];
    struct curl_slist *headers;
    char *url;
    unsigned attempts; /* of the batch being sent */
    uint64_t backoff_ms;
    uint64_t last_drop_log_ms;
    size_t queued_members; /* of stats.queued */
};

static const char *event_name(enum sp_presence_event e)
{
    switch (e) {
    case SP_EVENT_OCCUPIED:
        return "channel_occupied";
    case SP_EVENT_VACATED:
        return "channel_vacated";
    case SP_EVENT_MEMBER_ADDED:
        return "member_added";
    case SP_EVENT_MEMBER_REMOVED:
        return "member_removed";
    case SP_EVENT_CACHE_MISS:
        return "cache_miss";
    default:
        return "client_event";
    }
}

static void item_free(struct item *it)
{
    free(it->channel);
    free(it->user_id);
    json_decref(it->client);
    free(it);
}

/* ---- sending --------------------------------------------------------------------------------- */

static void send_batch(struct sp_webhooks *w);

static void arm(struct sp_webhooks *w, uint64_t ms)
{
    struct timeval tv = sp_timeval_ms(ms);
    evtimer_add(w->timer, &tv);
}

/* Something waits and nothing is under way: the batch window starts. */
static void kick(struct sp_webhooks *w)
{
    if (w->sending == 0 && !TAILQ_EMPTY(&w->queue) && !evtimer_pending(w->timer, NULL))
        arm(w, w->backend->config->webhooks.batch_ms);
}

static void batch_clear(struct sp_webhooks *w)
{
    free(w->body);
    w->body = NULL;
    curl_slist_free_all(w->headers);
    w->headers = NULL;
    w->sending = 0;
}

/* The first BATCH_MAX items as Pusher's body, under a new webhook-id. */
static int batch_build(struct sp_webhooks *w)
{
    struct timespec now;
    json_t *events = json_array();
    struct item *it;
    size_t n = 0;

    clock_gettime(CLOCK_REALTIME, &now);
    TAILQ_FOREACH (it, &w->queue, link) {
        if (n == BATCH_MAX)
            break;
        json_t *e = json_pack("{s:s, s:s}", "name", it->name, "channel", it->channel);
        if (it->user_id != NULL)
            json_object_set_new(e, "user_id", json_string(it->user_id));
        if (it->client != NULL)
            json_object_update(e, it->client);
        json_array_append_new(events, e);
        n++;
    }
    json_int_t ms = (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    json_t *doc = json_pack("{s:I, s:o}", "time_ms", ms, "events", events);
    w->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (w->body == NULL)
        return -1;
    w->sending = n;
    w->attempts = 0;
    memcpy(w->webhook_id, "msg_", 4);
    sp_random_base36(w->webhook_id + 4, 24);
    return 0;
}

/* Every attempt is signed anew, with the time it is sent and the secret of
 * now: a receiver refuses a timestamp older than its tolerance (5 minutes in
 * the Standard Webhooks libraries), and a rotated secret applies to the
 * retries of a batch it failed. Only the webhook-id stays, so the receiver
 * can drop a repeat. */
static int sign_attempt(struct sp_webhooks *w)
{
    const struct sp_config *c = w->backend->config;
    char ts[24], sig[128];

    curl_slist_free_all(w->headers);
    w->headers = NULL;
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    if (sp_backend_add_header(&w->headers, "Content-Type", 16, "application/json") < 0 ||
        sp_backend_add_header(&w->headers, "webhook-id", strlen(w->webhook_id), w->webhook_id) <
            0 ||
        sp_backend_add_header(&w->headers, "webhook-timestamp", strlen(ts), ts) < 0)
        return -1;
    if (c->webhooks.secret != NULL &&
        (sp_webhook_sign(c->webhooks.secret, w->webhook_id, ts, w->body, strlen(w->body), sig,
                         sizeof(sig)) < 0 ||
         sp_backend_add_header(&w->headers, "webhook-signature", strlen(sig), sig) < 0))
        return -1;
    /* As Pusher signs: the app's Pusher SDK (webhook().isValid()) checks it. */
    const struct sp_hmac_part body = {w->body, strlen(w->body)};
    if (c->webhooks.pusher_signature && c->pusher.enabled &&
        (sp_hmac_sha256_hex(c->pusher.secret, strlen(c->pusher.secret), &body, 1, sig) < 0 ||
         sp_backend_add_header(&w->headers, "X-Pusher-Key", strlen(c->pusher.key), c->pusher.key) <
             0 ||
         sp_backend_add_header(&w->headers, "X-Pusher-Signature", strlen(sig), sig) < 0))
        return -1;
    return 0;
}

/* Takes the first n items off the queue. */
static void drop_sent(struct sp_webhooks *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct item *it = TAILQ_FIRST(&w->queue);
        TAILQ_REMOVE(&w->queue, it, link);
        if (it->member)
            w->queued_members--;
        w->stats.queued--;
        item_free(it);
    }
}

/* webhooks.max_attempts failed: the batch is dropped (counted, logged) so a
 * batch the receiver will never take cannot hold up the ones behind it. */
static void give_up(struct sp_webhooks *w, const char *why, long code)
{
    sp_log_warn(w->backend->log, "webhook_given_up",
                "%s: %s (HTTP %ld) after %u attempts; %zu events dropped", w->url, why, code,
                w->attempts, w->sending);
    w->stats.events_given_up += w->sending;
    drop_sent(w, w->sending);
    batch_clear(w);
    w->backoff_ms = 0;
    w->attempts = 0;
    kick(w);
}

static void on_sent(CURL *easy, CURLcode result, void *ctx)
{
    struct sp_webhooks *w = ctx;
    const struct sp_config *c = w->backend->config;
    long code = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(easy);
    w->easy = NULL;
    if (result == CURLE_OK && code >= 200 && code < 300) {
        w->stats.posts_ok++;
        w->stats.events_sent += w->sending;
        drop_sent(w, w->sending);
        batch_clear(w);
        w->backoff_ms = 0;
        kick(w);
        return;
    }
    /* The same batch goes again (same body, same webhook-id) after the backoff. */
    w->stats.posts_failed++;
    if (++w->attempts >= c->webhooks.max_attempts) {
        give_up(w, result == CURLE_OK ? "not 2xx" : curl_easy_strerror(result), code);
        return;
    }
    w->backoff_ms = w->backoff_ms == 0 ? BACKOFF_FIRST_MS : w->backoff_ms * 2;
    if (w->backoff_ms > c->webhooks.max_backoff_ms)
        w->backoff_ms = c->webhooks.max_backoff_ms;
    uint64_t wait = w->backoff_ms / 2 + sp_random() % (w->backoff_ms / 2 + 1);
    sp_log_warn(w->backend->log, "webhook_failed", "%s: %s (HTTP %ld); %zu events again in %llu ms",
                w->url, result == CURLE_OK ? "not 2xx" : curl_easy_strerror(result), code,
                w->sending, (unsigned long long)wait);
    arm(w, wait);
}

static void send_batch(struct sp_webhooks *w)
{
    if (w->easy != NULL || TAILQ_EMPTY(&w->queue))
        return;
    if ((w->sending == 0 && batch_build(w) < 0) || sign_attempt(w) < 0) {
        batch_clear(w);
        arm(w, BACKOFF_FIRST_MS); /* out of memory: later */
        return;
    }
    free(w->url);
    w->url = sp_backend_url_of(w->backend, w->backend->config->webhooks.url);
    w->easy = w->url ? sp_backend_request(w->backend, w->url, w->headers) : NULL;
    if (w->easy == NULL) {
        arm(w, BACKOFF_FIRST_MS);
        return;
    }
    curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->body);
    curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body));
    if (sp_curlm_add(w->backend->curlm, w->easy, on_sent, w) < 0) {
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
        arm(w, BACKOFF_FIRST_MS);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    send_batch(arg);
}

/* ---- queueing -------------------------------------------------------------------------------- */

/* Is this event one webhooks.events asks for? The default ("[]") is every
 * event but client_event, which is sent only when named: every client's
 * every keystroke would otherwise become a POST. */
static bool wanted(const struct sp_config *c, const char *name)
{
    const struct sp_strlist *events = &c->webhooks.events;

    for (size_t i = 0; i < events->count; i++) {
        if (strcmp(events->items[i], name) == 0)
            return true;
    }
    return events->count == 0 && strcmp(name, "client_event") != 0;
}

/* Occupancy and members have a budget of webhooks.max_queue each: any
 * client can make occupancy churn (subscribing to channels nobody uses),
 * and that must never crowd out a real user's member_added. */
static void enqueue(struct sp_webhooks *w, const char *name, const struct sp_push_event *e)
{
    const struct sp_config *c = w->backend->config;
    const char *channel = e->channel, *user_id = e->user_id;
    bool member = e->kind == SP_EVENT_MEMBER_ADDED || e->kind == SP_EVENT_MEMBER_REMOVED;
    size_t used = member ? w->queued_members : w->stats.queued - w->queued_members;
    struct item *it;

    if (!wanted(c, name))
        return;
    if (used >= c->webhooks.max_queue) {
        uint64_t now = sp_now_ms();
        w->stats.events_dropped++;
        if (now - w->last_drop_log_ms >= DROP_LOG_EVERY_MS) {
            w->last_drop_log_ms = now;
            sp_log_warn(w->backend->log, "webhook_queue_full",
                        "%zu events wait for %s: new ones are dropped (%llu so far)",
                        w->stats.queued, c->webhooks.url,
                        (unsigned long long)w->stats.events_dropped);
        }
        return;
    }
    it = calloc(1, sizeof(*it));
    if (it == NULL || (it->channel = strdup(channel)) == NULL ||
        (user_id != NULL && (it->user_id = strdup(user_id)) == NULL) ||
        (e->kind == SP_EVENT_CLIENT &&
         (it->client = json_pack("{s:s, s:s, s:s}", "event", e->event, "data", e->data, "socket_id",
                                 e->socket_id)) == NULL)) {
        if (it)
            item_free(it);
        w->stats.events_dropped++;
        return;
    }
    it->name = name;
    it->member = member;
    TAILQ_INSERT_TAIL(&w->queue, it, link);
    w->stats.queued++;
    w->queued_members += member;
    kick(w);
}

void sp_webhooks_event(void *arg, const struct sp_push_event *e)
{
    enqueue(arg, event_name(e->kind), e);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

struct sp_webhooks *sp_webhooks_new(const struct sp_backend *b)
{
    struct sp_webhooks *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->backend = b;
    TAILQ_INIT(&w->queue);
    w->timer = evtimer_new(b->base, on_timer, w);
    if (w->timer == NULL) {
        sp_webhooks_free(w);
        return NULL;
    }
    return w;
}

void sp_webhooks_free(struct sp_webhooks *w)
{
    struct item *it;

    if (w == NULL)
        return;
    if (w->easy != NULL) {
        sp_curlm_remove(w->backend->curlm, w->easy);
        curl_easy_cleanup(w->easy);
    }
    while ((it = TAILQ_FIRST(&w->queue)) != NULL) {
        TAILQ_REMOVE(&w->queue, it, link);
        item_free(it);
    }
    if (w->timer)
        event_free(w->timer);
    batch_clear(w);
    free(w->url);
    free(w);
}

const struct sp_webhooks_stats *sp_webhooks_stats(const struct sp_webhooks *w)
{
    return &w->stats;
}

void sp_webhooks_metrics(const struct sp_webhooks *w, struct evbuffer *out)
{
    if (w == NULL)
        return;
    sp_metric_head(out, "sidepush_webhook_posts_total", "counter",
                   "Webhook POSTs to the backend, by result (each retry counts).");
    sp_metric_value(out, "sidepush_webhook_posts_total", "result=\"ok\"",
                    (double)w->stats.posts_ok);
    sp_metric_value(out, "sidepush_webhook_posts_total", "result=\"failed\"",
                    (double)w->stats.posts_failed);
    sp_metric_head(out, "sidepush_webhook_events_total", "counter",
                   "Occupancy and presence events: sent, dropped (their budget of the queue full), "
                   "given up (webhooks.max_attempts failed).");
    sp_metric_value(out, "sidepush_webhook_events_total", "result=\"sent\"",
                    (double)w->stats.events_sent);
    sp_metric_value(out, "sidepush_webhook_events_total", "result=\"dropped\"",
                    (double)w->stats.events_dropped);
    sp_metric_value(out, "sidepush_webhook_events_total", "result=\"given_up\"",
                    (double)w->stats.events_given_up);
    sp_metric_one(out, "sidepush_webhook_queue", "gauge", "Events waiting to be sent.",
                  (double)w->stats.queued);
}
