/* Subscriber authorization: before a subscription is accepted, the backend is
 * asked (GET authorize.url with the client's Cookie and Authorization, the
 * original URI and the channel names) whether this client may subscribe.
 * 2xx allows; 401 and 403 are passed to the client; anything else, or no
 * answer within backend.timeout, is 503. Answers are cached per credentials,
 * channels and route for authorize.cache. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "core/hmap.h"
#include "push/push-internal.h"

#define CACHE_MAX 10000

struct verdict {
    TAILQ_ENTRY(verdict) link;
    uint64_t expires_ms;
    int status; /* 0: allowed; else the status to answer */
    char key[65];
};

TAILQ_HEAD(verdict_list, verdict);

struct sp_auth {
    struct sp_push *push;
    struct sp_hmap *cache;
    struct verdict_list order;
    size_t count;
    uint64_t backend_requests;
};

struct pending {
    struct sp_auth *auth;
    const struct sp_route_config *route;
    struct sp_http_conn *conn;
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    char *spec;
    char key[65];
    CURL *easy;
    struct curl_slist *headers;
};

static const struct sp_http_ops pending_ops;

/* ---- cache ----------------------------------------------------------------------------- */

static void cache_key(const struct sp_route_config *route, const struct sp_http_request *req,
                      const char *spec, char out[65])
{
    static const char *const names[] = {"Cookie", "Authorization"};
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char route_id[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    memset(digest, 0, sizeof(digest));
    snprintf(route_id, sizeof(route_id), "%p", (const void *)route);
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_DigestUpdate(ctx, route_id, strlen(route_id));
        EVP_DigestUpdate(ctx, "\n", 1);
        EVP_DigestUpdate(ctx, spec, strlen(spec));
        for (size_t i = 0; i < 2; i++) {
            const struct sp_http_header *h = sp_http_find_header(req, names[i]);
            /* A length prefix keeps "a" + "bc" apart from "ab" + "c". */
            char n[24];
            snprintf(n, sizeof(n), "\n%zu:", h ? h->value.len : (size_t)-1);
            EVP_DigestUpdate(ctx, n, strlen(n));
            if (h)
                EVP_DigestUpdate(ctx, h->value.ptr, h->value.len);
        }
        EVP_DigestFinal_ex(ctx, digest, &len);
    }
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static struct verdict *cache_get(struct sp_auth *a, const char *key)
{
    struct verdict *v = sp_hmap_get(a->cache, key);
    if (v != NULL && v->expires_ms <= sp_now_ms()) {
        TAILQ_REMOVE(&a->order, v, link);
        sp_hmap_del(a->cache, v->key);
        a->count--;
        free(v);
        return NULL;
    }
    return v;
}

static void cache_put(struct sp_auth *a, const char *key, int status, uint64_t ttl_ms)
{
    if (ttl_ms == 0 || cache_get(a, key) != NULL)
        return;
    struct verdict *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return;
    snprintf(v->key, sizeof(v->key), "%s", key);
    v->status = status;
    v->expires_ms = sp_now_ms() + ttl_ms;
    if (sp_hmap_put(a->cache, v->key, v) < 0) {
        free(v);
        return;
    }
    TAILQ_INSERT_TAIL(&a->order, v, link);
    if (++a->count > CACHE_MAX) {
        struct verdict *old = TAILQ_FIRST(&a->order);
        TAILQ_REMOVE(&a->order, old, link);
        sp_hmap_del(a->cache, old->key);
        a->count--;
        free(old);
    }
}

/* ---- verdicts --------------------------------------------------------------------------- */

static void proceed(struct sp_push *push, const struct sp_route_config *route,
                    const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                    struct sp_http_conn *conn, int status)
{
    const struct sp_http_request *req = sp_http_request(conn);

    if (status == 401 || status == 403)
        sp_http_respond_error(conn, status, "the backend did not authorize this subscription");
    else if (status != 0)
        sp_http_respond_error(conn, 503, "subscriber authorization is unavailable");
    else if (route->has_poll)
        sp_push_poll_subscribe(push, route, caps, conn, req);
    else
        sp_push_subscribe(push, route, spec, conn, req);
}

static void pending_free(struct pending *p)
{
    if (p->easy) {
        sp_curlm_remove(p->auth->push->curlm, p->easy);
        curl_easy_cleanup(p->easy);
    }
    curl_slist_free_all(p->headers);
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
    if (status != 503)
        cache_put(p->auth, p->key, status, p->route->authorize.cache_ms);
    sp_http_set_ops(p->conn, NULL, NULL);
    proceed(p->auth->push, p->route, p->caps, p->spec, p->conn, status);
    pending_free(p);
}

static void on_client_gone(void *ctx)
{
    pending_free(ctx);
}

static const struct sp_http_ops pending_ops = {NULL, NULL, on_client_gone};

static size_t discard(char *buf, size_t size, size_t n, void *arg)
{
    return size * n;
}

static int add(struct curl_slist **list, const char *name, const char *fmt, size_t len,
               const char *value)
{
    char line[8192];
    snprintf(line, sizeof(line), fmt, name, (int)len, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return -1;
    *list = l;
    return 0;
}

static int ask_backend(struct pending *p, const struct sp_http_request *req)
{
    const struct sp_config *cfg = p->auth->push->config;
    static const char *const copied[] = {"Cookie", "Authorization"};
    char *url = sp_push_backend_url(p->auth->push, p->route, p->route->authorize.url, p->caps);
    int rc = -1;

    if (url == NULL)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        const struct sp_http_header *h = sp_http_find_header(req, copied[i]);
        if (h && add(&p->headers, copied[i], "%s: %.*s", h->value.len, h->value.ptr) < 0)
            goto done;
    }
    if (add(&p->headers, "X-Original-URI", "%s: %.*s", req->target.len, req->target.ptr) < 0 ||
        add(&p->headers, "Sidepush-Channels", "%s: %.*s", strlen(p->spec), p->spec) < 0)
        goto done;
    p->easy = curl_easy_init();
    if (p->easy == NULL)
        goto done;
    curl_easy_setopt(p->easy, CURLOPT_URL, url);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->easy, CURLOPT_PROXY, "");
    curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->backend.connect_timeout_ms);
    curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)cfg->backend.timeout_ms);
    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, discard);
    if (sp_curlm_add(p->auth->push->curlm, p->easy, on_answer, p) < 0) {
        curl_easy_cleanup(p->easy);
        p->easy = NULL;
        goto done;
    }
    p->auth->backend_requests++;
    rc = 0;
done:
    free(url);
    return rc;
}

void sp_push_authorize(struct sp_push *push, const struct sp_route_config *route,
                       const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                       struct sp_http_conn *conn, const struct sp_http_request *req)
{
    struct sp_auth *a = push->auth;
    char key[65];

    cache_key(route, req, spec, key);
    struct verdict *v = cache_get(a, key);
    if (v != NULL) {
        proceed(push, route, caps, spec, conn, v->status);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->spec = strdup(spec)) == NULL) {
        free(p);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    p->auth = a;
    p->route = route;
    p->conn = conn;
    memcpy(p->caps, caps, sizeof(p->caps));
    memcpy(p->key, key, sizeof(p->key));
    if (ask_backend(p, req) < 0) {
        pending_free(p);
        sp_http_respond_error(conn, 503, "subscriber authorization is unavailable");
        return;
    }
    sp_http_set_ops(conn, &pending_ops, p);
}

struct sp_auth *sp_auth_new(struct sp_push *push)
{
    struct sp_auth *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->push = push;
    TAILQ_INIT(&a->order);
    a->cache = sp_hmap_new();
    if (a->cache == NULL) {
        free(a);
        return NULL;
    }
    return a;
}

void sp_auth_free(struct sp_auth *a)
{
    struct verdict *v;

    if (a == NULL)
        return;
    while ((v = TAILQ_FIRST(&a->order)) != NULL) {
        TAILQ_REMOVE(&a->order, v, link);
        free(v);
    }
    sp_hmap_free(a->cache);
    free(a);
}
