#include "backend/authorize.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "core/clock.h"
#include "core/digest.h"

#define CACHE_MAX 10000
#define USER_ID_MAX 128
#define USER_INFO_MAX 4096
#define BODY_MAX (16 * 1024) /* of an answer, read for its identity */

/* One cache of verdicts for every worker: a client allowed on one worker
 * is not asked about again on another. */
struct verdicts {
    pthread_mutex_t lock;
    struct sp_cache *cache; /* key -> struct verdict */
    unsigned users;         /* under lock */
};

struct sp_auth {
    const struct sp_backend *backend;
    struct verdicts *verdicts;
    const struct sp_log *log;
};

/* A verdict as cached: the status (0: allowed) and the identity, both
 * strings NUL-terminated ("" for none). */
struct verdict {
    int status;
    char user_id[USER_ID_MAX + 1];
    char user_info[USER_INFO_MAX + 1];
};

static void verdict_put(struct verdicts *v, const char *key, const struct verdict *verdict,
                        uint64_t ttl)
{
    uint64_t now = sp_now_ms();
    /* Only what is used is stored: most verdicts name nobody. */
    size_t len = offsetof(struct verdict, user_info) + strlen(verdict->user_info) + 1;

    pthread_mutex_lock(&v->lock);
    sp_cache_put(v->cache, key, verdict, len, now + ttl, now, true);
    pthread_mutex_unlock(&v->lock);
}

/* Returns true and *out when a fresh verdict is cached. */
static bool verdict_get(struct verdicts *v, const char *key, struct verdict *out)
{
    size_t len = 0;

    pthread_mutex_lock(&v->lock);
    const void *found = sp_cache_get(v->cache, key, sp_now_ms(), &len);
    if (found != NULL)
        memcpy(out, found, len < sizeof(*out) ? len : sizeof(*out));
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
    const struct sp_route_config *route; /* its configuration held */
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
    /* the answer's identity: its headers, or its body */
    char *user_header, *info_header;
    struct evbuffer *body;
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
static void proceed(const struct verdict *v, const struct sp_route_config *route,
                    const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                    struct sp_http_conn *conn, sp_auth_allowed allowed, void *ctx)
{
    struct sp_identity who = {v->user_id, v->user_info[0] ? v->user_info : NULL, 0};

    if (v->status == 401 || v->status == 403)
        sp_http_respond_error(conn, v->status, "the backend did not authorize this subscription");
    else if (v->status != 0)
        sp_http_respond_error(conn, 503, "subscriber authorization is unavailable");
    else
        allowed(ctx, route, caps, spec, conn, sp_http_request(conn), v->user_id[0] ? &who : NULL);
}

/* ---- the identity an answer names ------------------------------------------------------- */

static bool user_id_valid(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > USER_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    json_t *s = json_string(id); /* NULL unless UTF-8 */
    json_decref(s);
    return s != NULL;
}

/* info: a JSON object, kept compact. Returns 0, or -1 with why. */
static int take_info(json_t *info, struct verdict *v, const char **why)
{
    if (info == NULL || json_is_null(info))
        return 0;
    char *text = json_is_object(info) ? json_dumps(info, JSON_COMPACT) : NULL;
    if (text == NULL || strlen(text) > USER_INFO_MAX) {
        *why = text ? "user info over 4 KiB" : "user info is not a JSON object";
        free(text);
        return -1;
    }
    strcpy(v->user_info, text);
    free(text);
    return 0;
}

/* The identity of a 2xx: Sidepush-User and Sidepush-User-Info, else a JSON
 * body's user_id and user_info. Returns 0 (possibly naming nobody), or -1
 * with why when what the backend sent cannot be used. */
static int identity(const struct pending *p, struct verdict *v, const char **why)
{
    json_t *doc = NULL;
    int rc = 0;

    if (p->user_header != NULL) {
        snprintf(v->user_id, sizeof(v->user_id), "%s", p->user_header);
        if (strlen(p->user_header) > USER_ID_MAX || !user_id_valid(v->user_id)) {
            *why = "Sidepush-User must be 1-128 bytes of UTF-8 without controls";
            return -1;
        }
        if (p->info_header != NULL) {
            json_t *info = json_loads(p->info_header, 0, NULL);
            rc = info ? take_info(info, v, why) : (*why = "Sidepush-User-Info is not JSON", -1);
            json_decref(info);
        }
        return rc;
    }
    size_t len = evbuffer_get_length(p->body);
    if (len == 0 || len > BODY_MAX)
        return 0; /* no body, or not an identity (too long to be one) */
    doc = json_loadb((const char *)evbuffer_pullup(p->body, -1), len, 0, NULL);
    json_t *id = json_object_get(doc, "user_id");
    if (json_is_string(id)) {
        snprintf(v->user_id, sizeof(v->user_id), "%s", json_string_value(id));
        if (json_string_length(id) > USER_ID_MAX || !user_id_valid(v->user_id))
            rc = (*why = "user_id must be 1-128 bytes without controls", -1);
    } else if (json_is_integer(id)) {
        snprintf(v->user_id, sizeof(v->user_id), "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    } else if (id != NULL) {
        rc = (*why = "user_id must be a string or an integer", -1);
    }
    if (rc == 0 && v->user_id[0])
        rc = take_info(json_object_get(doc, "user_info"), v, why);
    json_decref(doc);
    return rc;
}

static void pending_free(struct pending *p)
{
    if (p->easy) {
        sp_curlm_remove(p->auth->backend->curlm, p->easy);
        curl_easy_cleanup(p->easy);
    }
    question_clear(&p->q);
    if (p->route != NULL)
        sp_config_release(p->route->owner);
    free(p->spec);
    free(p->user_header);
    free(p->info_header);
    if (p->body)
        evbuffer_free(p->body);
    free(p);
}

static void on_answer(CURL *easy, CURLcode result, void *ctx)
{
    struct pending *p = ctx;
    long code = 0;
    struct verdict v;
    const char *why = NULL;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(easy);
    p->easy = NULL;
    v.user_id[0] = v.user_info[0] = '\0';
    if (result == CURLE_OK && code >= 200 && code < 300)
        v.status = identity(p, &v, &why) < 0 ? 503 : 0;
    else if (result == CURLE_OK && (code == 401 || code == 403))
        v.status = (int)code;
    else
        v.status = 503;
    if (why != NULL)
        sp_log_warn(p->auth->log, "authorize_identity_invalid", "%s: %s (the client got 503)",
                    p->q.url, why);
    /* Only real answers are cached: an outage must not lock clients out. */
    uint64_t ttl = verdict_ttl_ms(p);
    if (v.status != 503 && ttl > 0)
        verdict_put(p->auth->verdicts, p->q.key, &v, ttl);
    sp_http_set_ops(p->conn, NULL, NULL);
    proceed(&v, p->route, p->caps, p->spec, p->conn, p->allowed, p->allowed_ctx);
    pending_free(p);
}

static void on_client_gone(void *ctx)
{
    pending_free(ctx);
}

static const struct sp_http_ops pending_ops = {NULL, NULL, on_client_gone, NULL};

/* The body, kept only as far as an identity could reach. */
static size_t keep_body(char *buf, size_t size, size_t n, void *arg)
{
    struct pending *p = arg;

    if (evbuffer_get_length(p->body) <= BODY_MAX)
        evbuffer_add(p->body, buf, size * n);
    return size * n;
}

static char *header_value(struct sp_slice line, size_t name_len)
{
    struct sp_slice v = {line.ptr + name_len, line.len - name_len};

    while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t'))
        v.ptr++, v.len--;
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return strndup(v.ptr, v.len);
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
        free(p->user_header);
        free(p->info_header);
        p->user_header = p->info_header = NULL;
    } else if (line.len > 14 && strncasecmp(line.ptr, "Sidepush-User:", 14) == 0) {
        free(p->user_header);
        p->user_header = header_value(line, 14);
    } else if (line.len > 19 && strncasecmp(line.ptr, "Sidepush-User-Info:", 19) == 0) {
        free(p->info_header);
        p->info_header = header_value(line, 19);
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
    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
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
    struct verdict v;
    if (verdict_get(a->verdicts, q.key, &v)) {
        question_clear(&q);
        proceed(&v, route, caps, spec, conn, allowed, ctx);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->spec = strdup(spec)) == NULL || (p->body = evbuffer_new()) == NULL) {
        if (p)
            free(p->spec);
        free(p);
        question_clear(&q);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    p->auth = a;
    p->route = route;
    sp_config_hold(route->owner);
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

struct sp_auth *sp_auth_new(const struct sp_backend *b, struct sp_auth *share,
                            const struct sp_log *log)
{
    struct sp_auth *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->backend = b;
    a->log = log;
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
