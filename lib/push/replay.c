#include "push/replay.h"

#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "core/clock.h"
#include "push/push-internal.h"

/* About 200 bytes each: a full store is 200 MB, and only holders of the
 * secret can fill it. Past it, signed requests get 503 rather than a
 * forgotten id that could be replayed. */
#define REPLAYS_MAX 1000000

struct sp_replays {
    struct sp_push_shared *shared; /* whose engine, if any, keeps the ids */
    struct sp_cache *ids;          /* digest of the webhook-id -> fingerprint */
};

struct claim {
    char fingerprint[SP_SHA256_HEX];
    sp_replay_done cb;
    void *arg;
};

struct sp_replays *sp_replays_new(struct sp_push_shared *shared)
{
    struct sp_replays *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->shared = shared;
    if ((r->ids = sp_cache_new(REPLAYS_MAX)) == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void sp_replays_free(struct sp_replays *r)
{
    if (r == NULL)
        return;
    sp_cache_free(r->ids);
    free(r);
}

int sp_replay_fingerprint(const struct sp_http_request *req, const void *body, size_t len,
                          char out[SP_SHA256_HEX])
{
    struct sp_digest *d = sp_digest_new();

    if (d == NULL)
        return -1;
    sp_digest_field(d, req->method.ptr, req->method.len);
    sp_digest_field(d, req->target.ptr, req->target.len);
    sp_digest_field(d, body, len);
    sp_digest_finish(d, out);
    return 0;
}

static enum sp_replay_verdict judge(const char *fingerprint, const char *prior)
{
    if (prior == NULL)
        return SP_REPLAY_FIRST;
    return strcmp(prior, fingerprint) == 0 ? SP_REPLAY_RETRY : SP_REPLAY_REUSED;
}

static void on_claimed(void *arg, int rc, const char *prior)
{
    struct claim *c = arg;

    c->cb(c->arg, rc == SP_HUB_OK ? judge(c->fingerprint, prior) : SP_REPLAY_UNAVAILABLE);
    free(c);
}

static uint64_t lifetime_ms(const struct sp_replays *r)
{
    uint64_t tolerance = r->shared->config->publish_auth.timestamp_tolerance_ms;
    return 2 * (tolerance > 0 ? tolerance : 1000);
}

void sp_replay_claim(struct sp_replays *r, const char *webhook_id,
                     const char fingerprint[SP_SHA256_HEX], sp_replay_done cb, void *arg)
{
    char key[SP_SHA256_HEX];
    uint64_t now = sp_now_ms();

    sp_sha256_hex(webhook_id, strlen(webhook_id), key);
    if (r->shared->engine != NULL) {
        struct claim *c = malloc(sizeof(*c));
        if (c == NULL) {
            cb(arg, SP_REPLAY_UNAVAILABLE);
            return;
        }
        memcpy(c->fingerprint, fingerprint, SP_SHA256_HEX);
        c->cb = cb;
        c->arg = arg;
        if (sp_engine_claim(r->shared->engine, key, fingerprint, lifetime_ms(r), on_claimed, c) < 0)
            on_claimed(c, SP_HUB_UNAVAILABLE, NULL);
        return;
    }
    const char *prior = sp_cache_get(r->ids, key, now, NULL);
    if (prior != NULL) {
        cb(arg, judge(fingerprint, prior));
        return;
    }
    int rc =
        sp_cache_put(r->ids, key, fingerprint, SP_SHA256_HEX, now + lifetime_ms(r), now, false);
    cb(arg, rc == 0 ? SP_REPLAY_FIRST : SP_REPLAY_UNAVAILABLE);
}
