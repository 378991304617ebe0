#include "backend/authorize.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "core/clock.h"
#include "core/digest.h"

#define CACHE_MAX 10000

/* One cache of verdicts for every worker: a client allowed on one worker
 * is not asked about again on another. */
struct verdicts {
    pthread_mutex_t lock;
    struct sp_cache *cache; /* key -> int status (0: allowed) */
    unsigned users;         /* under lock */
};

struct sp_auth {
    const struct sp_backend *backend;
    struct verdicts *verdicts;
};

static void verdict_put(struct verdicts *v, const char *key, int status, uint64_t ttl)
{
    uint64_t now = sp_now_ms();

    pthread_mutex_lock(&v->lock);
    sp_cache_put(v->cache, key, &status, sizeof(status), now + ttl, now, true);
    pthread_mutex_unlock(&v->lock);
}

/* Returns true and *status when a fresh verdict is cached. */
static bool verdict_get(struct verdicts *v, const char *key, int *status)
{
    pthread_mutex_lock(&v->lock);
    const int *found = sp_cache_get(v->cache, key, sp_now_ms(), NULL);
    if (found != NULL)
        *status = *found;
    pthread_mutex_unlock(&v->lock);
    return found != NULL;
}

/* What the authorizer is sent; the cache key is a digest of all of it, so
 * a verdict is only ever reused for a request the backend would see as the
 * same one. */
struct question {
    char *url;
    struct curl_slist *headers;
    char key[SP_SHA256_HEX];
};

struct pending {
    struct sp_auth *auth;
    const struct sp_route_config *route;
    struct sp_http_conn *conn;
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    char *spec;
    struct question q;
    CURL *easy;
    sp_auth_allowed allowed;
    void *allowed_ctx;
    /* the answer's Cache-Control, for the verdict's lifetime */
    bool no_store;
    int64_t max_age_s; /* -1: none given */
};

static const struct sp_http_ops pending_ops;

/* ---- the question and its cache key ---------------------------------------------------- */

static void question_clear(struct question *q)
{
    free(q->url);
    curl_slist_free_all(q->headers);
    *q = (struct question){0};
}

static int question_build(const struct sp_backend *b, const struct sp_route_config *route,
                          const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                          const struct sp_http_request *req, struct question *q)
{
    char route_id[32];

    *q = (struct question){0};
    q->url = sp_backend_url(b, route, route->authorize.url, caps);
    /* Every Cookie and Authorization field the client sent goes along, with
     * the request target exactly as received and the channels. */
    if (q->url == NULL || sp_backend_copy_header(&q->headers, req, "Cookie") < 0 ||
        sp_backend_copy_header(&q->headers, req, "Authorization") < 0 ||
        sp_backend_add_header(&q->headers, "X-Original-URI", req->target.len, req->target.ptr) <
            0 ||
        sp_backend_add_header(&q->headers, "Sidepush-Channels", strlen(spec), spec) < 0)
        goto fail;
    struct sp_digest *d = sp_digest_new();
    if (d == NULL)
        goto fail;
    snprintf(route_id, sizeof(route_id), "%p", (const void *)route);
    sp_digest_field(d, route_id, strlen(route_id));
    sp_digest_field(d, q->url, strlen(q->url));
    for (const struct curl_slist *l = q->headers; l != NULL; l = l->next)
        sp_digest_field(d, l->data, strlen(l->data));
    sp_digest_finish(d, q->key);
    return 0;
fail:
    question_clear(q);
    return -1;
}

/* The verdict's lifetime: the answer's own Cache-Control when it has one
 * (no-store and no-cache mean never reuse it; max-age sets it), else authorize.cache.
 * authorize.cache: 0 turns caching off whatever the backend says. */
static uint64_t verdict_ttl_ms(const struct pending *p)
{
    uint64_t configured = p->route->authorize.cache_ms;

    if (configured == 0 || p->no_store)
        return 0;
    if (p->max_age_s >= 0)
        return (uint64_t)p->max_age_s * 1000;
    return configured;
}

/* ---- verdicts --------------------------------------------------------------------------- */

/* A verdict, fresh or cached (status 0: allowed): the client carries on,
 * or is answered. */
static void proceed(int status, const struct sp_route_config *route,
                    const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                    struct sp_http_conn *conn, sp_auth_allowed allowed, void *ctx)
{
    if (status == 401 || status == 403)
        sp_http_respond_error(conn, status, "the backend did not authorize this subscription");
    else if (status != 0)
        sp_http_respond_error(conn, 503, "subscriber authorization is unavailable");
    else
        allowed(ctx, route, caps, spec, conn, sp_http_request(conn));
}

static void pending_free(struct pending *p)
{
    if (p->easy) {
        sp_curlm_remove(p->auth->backend->curlm, p->easy);
        curl_easy_cleanup(p->easy);
    }
    question_clear(&p->q);
    free(p->spec);
    free(p);
}

static void on_answer(CURL *easy, CURLcode result, void *ctx)
{
    struct pending *p = ctx;
    long code = 0;
    int status;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(easy);
    p->easy = NULL;
    if (result == CURLE_OK && code >= 200 && code < 300)
        status = 0;
    else if (result == CURLE_OK && (code == 401 || code == 403))
        status = (int)code;
    else
        status = 503;
    /* Only real answers are cached: an outage must not lock clients out. */
    uint64_t ttl = verdict_ttl_ms(p);
    if (status != 503 && ttl > 0)
        verdict_put(p->auth->verdicts, p->q.key, status, ttl);
    sp_http_set_ops(p->conn, NULL, NULL);
    proceed(status, p->route, p->caps, p->spec, p->conn, p->allowed, p->allowed_ctx);
    pending_free(p);
}

static void on_client_gone(void *ctx)
{
    pending_free(ctx);
}

static const struct sp_http_ops pending_ops = {NULL, NULL, on_client_gone, NULL};

static size_t discard(char *buf, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* Cache-Control of the final answer (a new status line starts over). */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct pending *p = arg;
    size_t len = size * n;
    struct sp_slice line = {buf, len};

    while (line.len > 0 && (line.ptr[line.len - 1] == '\r' || line.ptr[line.len - 1] == '\n'))
        line.len--;
    if (line.len >= 5 && memcmp(line.ptr, "HTTP/", 5) == 0) {
        p->no_store = false;
        p->max_age_s = -1;
    } else if (line.len > 14 && strncasecmp(line.ptr, "Cache-Control:", 14) == 0) {
        struct sp_slice value = {line.ptr + 14, line.len - 14};
        int64_t max_age = -1;
        /* "private" is no bar: each verdict is keyed on one client's credentials. */
        if (sp_http_list_has_token(value, "no-store") || sp_http_list_has_token(value, "no-cache"))
            p->no_store = true;
        if (sp_http_list_param_int(value, "max-age", &max_age) == 0 &&
            (p->max_age_s < 0 || max_age < p->max_age_s))
            p->max_age_s = max_age;
    }
    return len;
}

static int ask_backend(struct pending *p)
{
    p->easy = sp_backend_request(p->auth->backend, p->q.url, p->q.headers);
    if (p->easy == NULL)
        return -1;
    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(p->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(p->easy, CURLOPT_HEADERDATA, p);
    if (sp_curlm_add(p->auth->backend->curlm, p->easy, on_answer, p) < 0) {
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
        return -1;
    }
    return 0;
}

void sp_auth_check(struct sp_auth *a, const struct sp_route_config *route,
                   const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                   struct sp_http_conn *conn, const struct sp_http_request *req,
                   sp_auth_allowed allowed, void *ctx)
{
    struct question q;

    if (question_build(a->backend, route, caps, spec, req, &q) < 0) {
        sp_http_respond_error(conn, 503, "subscriber authorization is unavailable");
        return;
    }
    int status;
    if (verdict_get(a->verdicts, q.key, &status)) {
        question_clear(&q);
        proceed(status, route, caps, spec, conn, allowed, ctx);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->spec = strdup(spec)) == NULL) {
        free(p);
        question_clear(&q);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    p->auth = a;
    p->route = route;
    p->conn = conn;
    p->q = q;
    p->allowed = allowed;
    p->allowed_ctx = ctx;
    p->max_age_s = -1;
    memcpy(p->caps, caps, sizeof(p->caps));
    if (ask_backend(p) < 0) {
        pending_free(p);
        sp_http_respond_error(conn, 503, "subscriber authorization is unavailable");
        return;
    }
    sp_http_set_ops(conn, &pending_ops, p);
}

struct sp_auth *sp_auth_new(const struct sp_backend *b, struct sp_auth *share)
{
    struct sp_auth *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->backend = b;
    if (share != NULL) {
        a->verdicts = share->verdicts;
        pthread_mutex_lock(&a->verdicts->lock);
        a->verdicts->users++;
        pthread_mutex_unlock(&a->verdicts->lock);
        return a;
    }
    a->verdicts = calloc(1, sizeof(*a->verdicts));
    if (a->verdicts == NULL || (a->verdicts->cache = sp_cache_new(CACHE_MAX)) == NULL ||
        pthread_mutex_init(&a->verdicts->lock, NULL) != 0) {
        if (a->verdicts)
            sp_cache_free(a->verdicts->cache);
        free(a->verdicts);
        free(a);
        return NULL;
    }
    a->verdicts->users = 1;
    return a;
}

void sp_auth_free(struct sp_auth *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->verdicts->lock);
    bool last = --a->verdicts->users == 0;
    pthread_mutex_unlock(&a->verdicts->lock);
    if (last) {
        sp_cache_free(a->verdicts->cache);
        pthread_mutex_destroy(&a->verdicts->lock);
        free(a->verdicts);
    }
    free(a);
}
