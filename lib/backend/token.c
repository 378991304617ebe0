#include "backend/token.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "core/clock.h"
#include "core/jwt.h"
#include "http/parser.h"

#define TOKEN_MAX 8192
#define JWKS_MAX (256 * 1024)
#define JWKS_RETRY_MS                                                                              \
    10000 /* a fetch for an unknown kid, or after a failure, at most this often                    \
           */
#define USER_ID_MAX 128
#define INFO_MAX 4096

enum reason {
    R_MALFORMED,
    R_ALGORITHM,
    R_NO_KEY,
    R_SIGNATURE,
    R_EXPIRED,
    R_NOT_YET,
    R_ISSUER,
    R_AUDIENCE,
    R_CHANNELS,
};

const char *const sp_token_reasons[9] = {"malformed", "algorithm", "no_key",
                                         "signature", "expired",   "not_yet_valid",
                                         "issuer",    "audience",  "channels"};

struct waiting;
TAILQ_HEAD(waiting_list, waiting);

/* One JWK Set, as this worker last fetched it. */
struct jwks {
    LIST_ENTRY(jwks) link;
    struct sp_tokens *owner;
    char *url;                /* as configured */
    struct sp_jwt_keys *keys; /* NULL until fetched */
    uint64_t fetched_ms, tried_ms;
    CURL *easy; /* the fetch in flight */
    char *full_url;
    struct evbuffer *body;
    struct waiting_list waiting;
};

/* A request held while its route's set is fetched. */
struct waiting {
    TAILQ_ENTRY(waiting) link;
    struct jwks *set;
    const struct sp_route_config *route; /* its configuration held */
    struct sp_http_conn *conn;
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    sp_auth_allowed allowed;
    void *ctx;
    char *spec;
    char *token;
};

struct sp_tokens {
    const struct sp_backend *backend;
    const struct sp_log *log;
    LIST_HEAD(, jwks) sets;
    struct sp_token_stats stats;
};

static void fetch(struct jwks *set);

/* ---- the token ---------------------------------------------------------------------------- */

/* Authorization: Bearer, then the query parameter, then the cookie. */
static bool find_token(const struct sp_token_config *tc, const struct sp_http_request *req,
                       char *out, size_t size)
{
    const struct sp_http_header *h = sp_http_find_header(req, "Authorization");

    if (h != NULL && h->value.len > 7 && strncasecmp(h->value.ptr, "Bearer ", 7) == 0 &&
        h->value.len - 7 < size) {
        memcpy(out, h->value.ptr + 7, h->value.len - 7);
        out[h->value.len - 7] = '\0';
        return true;
    }
    if (tc->query[0] != '\0' && sp_http_query_get(req->query, tc->query, out, size) > 0)
        return true;
    size_t name_len = strlen(tc->cookie);
    for (size_t i = 0; name_len > 0 && i < req->nheaders; i++) {
        const struct sp_http_header *c = &req->headers[i];
        struct sp_slice rest = c->value;
        if (!sp_slice_caseeq(c->name, "Cookie"))
            continue;
        while (rest.len > 0) { /* "a=1; b=2" */
            const char *semi = memchr(rest.ptr, ';', rest.len);
            struct sp_slice pair = {rest.ptr, semi ? (size_t)(semi - rest.ptr) : rest.len};
            rest = semi ? (struct sp_slice){semi + 1, rest.len - pair.len - 1}
                        : (struct sp_slice){NULL, 0};
            while (pair.len > 0 && pair.ptr[0] == ' ')
                pair.ptr++, pair.len--;
            if (pair.len > name_len + 1 && memcmp(pair.ptr, tc->cookie, name_len) == 0 &&
                pair.ptr[name_len] == '=' && pair.len - name_len - 1 < size) {
                memcpy(out, pair.ptr + name_len + 1, pair.len - name_len - 1);
                out[pair.len - name_len - 1] = '\0';
                return true;
            }
        }
    }
    return false;
}

/* Does the claim cover name (an entry equal to it, or a prefix ending in "*")? */
static bool claim_covers(json_t *claim, const char *name, size_t len)
{
    size_t i;
    json_t *e;

    if (json_is_string(claim))
        claim = json_pack("[O]", claim);
    else
        json_incref(claim);
    bool covered = false;
    json_array_foreach(claim, i, e)
    {
        const char *entry = json_string_value(e);
        size_t n = entry ? strlen(entry) : 0;
        if (entry == NULL)
            continue;
        if ((n == len && memcmp(entry, name, len) == 0) ||
            (n > 0 && entry[n - 1] == '*' && len >= n - 1 && memcmp(entry, name, n - 1) == 0)) {
            covered = true;
            break;
        }
    }
    json_decref(claim);
    return covered;
}

static bool covers_spec(json_t *claim, const char *spec)
{
    while (*spec != '\0') {
        size_t len = strcspn(spec, ",");
        if (len > 0 && !claim_covers(claim, spec, len))
            return false;
        spec += len + (spec[len] == ',');
    }
    return true;
}

static enum reason reason_of(int err)
{
    switch (err) {
    case SP_JWT_ALGORITHM:
        return R_ALGORITHM;
    case SP_JWT_NO_KEY:
        return R_NO_KEY;
    case SP_JWT_SIGNATURE:
        return R_SIGNATURE;
    case SP_JWT_EXPIRED:
        return R_EXPIRED;
    case SP_JWT_NOT_YET:
        return R_NOT_YET;
    case SP_JWT_ISSUER:
        return R_ISSUER;
    case SP_JWT_AUDIENCE:
        return R_AUDIENCE;
    default:
        return R_MALFORMED;
    }
}

static void refuse(struct sp_tokens *t, struct sp_http_conn *conn, enum reason r)
{
    t->stats.refused[r]++;
    if (r == R_CHANNELS)
        sp_http_respond_error(conn, 403, "the token does not allow these channels");
    else
        sp_http_respond_error(conn, 401, r == R_EXPIRED ? "token expired" : "invalid token");
}

static int verify(const struct sp_token_config *tc, const struct sp_jwt_keys *jwks,
                  const char *token, json_t **claims)
{
    const struct sp_jwt_check check = {(uint64_t)time(NULL), tc->leeway_ms / 1000, tc->issuer,
                                       tc->audience};
    int rc = sp_jwt_verify(tc->keys, token, strlen(token), &check, claims);

    /* Not the route's own keys': the set's say (NO_KEY there fetches it again). */
    if ((rc == SP_JWT_NO_KEY || rc == SP_JWT_SIGNATURE) && jwks != NULL)
        rc = sp_jwt_verify(jwks, token, strlen(token), &check, claims);
    return rc;
}

/* A verified token's claims: the channels, then the member it names. */
static void admit(struct sp_tokens *t, const struct sp_route_config *route,
                  const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                  struct sp_http_conn *conn, json_t *claims, sp_auth_allowed allowed, void *ctx)
{
    const struct sp_token_config *tc = &route->subscribe.token;
    json_t *sub = json_object_get(claims, "sub"), *info = json_object_get(claims, tc->info_claim);
    char number[32], *info_text = NULL;
    const char *user = json_string_value(sub);

    if (!covers_spec(json_object_get(claims, tc->channels_claim), spec)) {
        refuse(t, conn, R_CHANNELS);
        return;
    }
    if (json_is_integer(sub)) {
        snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT, json_integer_value(sub));
        user = number;
    }
    if (user != NULL && (user[0] == '\0' || strlen(user) > USER_ID_MAX))
        user = NULL;
    if (user != NULL && json_is_object(info))
        info_text = json_dumps(info, JSON_COMPACT);
    if (info_text != NULL && strlen(info_text) > INFO_MAX) {
        free(info_text);
        info_text = NULL;
    }
    /* The stream ends when the token would no longer be accepted. */
    double exp = json_number_value(json_object_get(claims, "exp"));
    const struct sp_identity who = {user, info_text, (uint64_t)(exp * 1000) + tc->leeway_ms};
    t->stats.accepted++;
    allowed(ctx, route, caps, spec, conn, sp_http_request(conn), &who);
    free(info_text);
}

/* ---- JWK Sets ----------------------------------------------------------------------------- */

static struct jwks *set_of(struct sp_tokens *t, const char *url)
{
    struct jwks *set;

    LIST_FOREACH (set, &t->sets, link)
        if (strcmp(set->url, url) == 0)
            return set;
    set = calloc(1, sizeof(*set));
    if (set == NULL || (set->url = strdup(url)) == NULL) {
        free(set);
        return NULL;
    }
    set->owner = t;
    TAILQ_INIT(&set->waiting);
    LIST_INSERT_HEAD(&t->sets, set, link);
    return set;
}

static void waiting_free(struct waiting *w)
{
    TAILQ_REMOVE(&w->set->waiting, w, link);
    sp_config_release(w->route->owner);
    free(w->spec);
    free(w->token);
    free(w);
}

static void on_waiting_gone(void *ctx)
{
    waiting_free(ctx);
}

static const struct sp_http_ops waiting_ops = {NULL, NULL, on_waiting_gone, NULL};

/* The set came (or did not): every waiting request is decided with what
 * there is now. */
static void release_waiting(struct jwks *set)
{
    struct waiting *w;

    while ((w = TAILQ_FIRST(&set->waiting)) != NULL) {
        json_t *claims = NULL;
        sp_http_set_ops(w->conn, NULL, NULL);
        int rc = verify(&w->route->subscribe.token, set->keys, w->token, &claims);
        if (rc != SP_JWT_OK)
            refuse(set->owner, w->conn, reason_of(rc));
        else
            admit(set->owner, w->route, w->caps, w->spec, w->conn, claims, w->allowed, w->ctx);
        json_decref(claims);
        waiting_free(w);
    }
}

static size_t keep_body(char *buf, size_t size, size_t n, void *arg)
{
    struct jwks *set = arg;

    if (evbuffer_get_length(set->body) + size * n > JWKS_MAX)
        return 0; /* too large: the transfer fails */
    evbuffer_add(set->body, buf, size * n);
    return size * n;
}

static void on_fetched(CURL *easy, CURLcode result, void *ctx)
{
    struct jwks *set = ctx;
    struct sp_tokens *t = set->owner;
    long code = 0;
    const char *why = "not 2xx";

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(easy);
    set->easy = NULL;
    struct sp_jwt_keys *keys = sp_jwt_keys_new();
    size_t len = evbuffer_get_length(set->body);
    if (result == CURLE_OK && code >= 200 && code < 300 && keys != NULL &&
        sp_jwt_keys_add_jwks(keys, (const char *)evbuffer_pullup(set->body, -1), len, &why) > 0) {
        sp_jwt_keys_free(set->keys);
        set->keys = keys;
        set->fetched_ms = sp_now_ms();
    } else {
        t->stats.jwks_failures++;
        sp_log_warn(t->log, "jwks_failed", "%s: %s (HTTP %ld); keeping the keys fetched before",
                    set->full_url, result != CURLE_OK ? curl_easy_strerror(result) : why, code);
        sp_jwt_keys_free(keys);
    }
    evbuffer_free(set->body);
    set->body = NULL;
    release_waiting(set);
}

static void fetch(struct jwks *set)
{
    struct sp_tokens *t = set->owner;

    if (set->easy != NULL)
        return;
    set->tried_ms = sp_now_ms();
    t->stats.jwks_fetches++;
    free(set->full_url);
    set->full_url = sp_backend_url_of(t->backend, set->url);
    set->body = evbuffer_new();
    set->easy =
        set->full_url && set->body ? sp_backend_request(t->backend, set->full_url, NULL) : NULL;
    if (set->easy != NULL) {
        curl_easy_setopt(set->easy, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(set->easy, CURLOPT_WRITEDATA, set);
        if (sp_curlm_add(t->backend->curlm, set->easy, on_fetched, set) == 0)
            return;
        curl_easy_cleanup(set->easy);
        set->easy = NULL;
    }
    if (set->body != NULL)
        evbuffer_free(set->body);
    set->body = NULL;
    t->stats.jwks_failures++;
    release_waiting(set);
}

/* Should a token wait for a fetch of its route's set? When there is none
 * yet, or it names a key the set lacks and the last try is old enough. */
static bool wants_fetch(const struct jwks *set, int rc, uint64_t now)
{
    if (set->easy != NULL)
        return true;
    if (set->keys == NULL)
        return now - set->tried_ms >= JWKS_RETRY_MS || set->tried_ms == 0;
    return rc == SP_JWT_NO_KEY && now - set->tried_ms >= JWKS_RETRY_MS;
}

static void hold(struct jwks *set, const struct sp_route_config *route,
                 const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                 struct sp_http_conn *conn, const char *token, sp_auth_allowed allowed, void *ctx)
{
    struct waiting *w = calloc(1, sizeof(*w));

    if (w == NULL || (w->spec = strdup(spec)) == NULL || (w->token = strdup(token)) == NULL) {
        if (w != NULL)
            free(w->spec);
        free(w);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    w->set = set;
    w->route = route;
    sp_config_hold(route->owner);
    w->conn = conn;
    memcpy(w->caps, caps, sizeof(w->caps));
    w->allowed = allowed;
    w->ctx = ctx;
    TAILQ_INSERT_TAIL(&set->waiting, w, link);
    sp_http_set_ops(conn, &waiting_ops, w);
    fetch(set);
}

/* ---- checking ----------------------------------------------------------------------------- */

bool sp_token_check(struct sp_tokens *t, const struct sp_route_config *route,
                    const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                    struct sp_http_conn *conn, const struct sp_http_request *req,
                    sp_auth_allowed allowed, void *ctx)
{
    const struct sp_token_config *tc = &route->subscribe.token;
    char *token = malloc(TOKEN_MAX);
    struct jwks *set = NULL;
    json_t *claims = NULL;
    uint64_t now = sp_now_ms();

    if (token == NULL || !find_token(tc, req, token, TOKEN_MAX)) {
        free(token);
        return false;
    }
    if (tc->jwks_url != NULL && (set = set_of(t, tc->jwks_url)) == NULL) {
        sp_http_respond_error(conn, 503, "out of memory");
        free(token);
        return true;
    }
    if (set != NULL && set->keys != NULL && now - set->fetched_ms >= tc->jwks_refresh_ms &&
        now - set->tried_ms >= JWKS_RETRY_MS)
        fetch(set); /* in the background: this token is checked with the keys there are */
    int rc = verify(tc, set ? set->keys : NULL, token, &claims);
    if (rc != SP_JWT_OK && set != NULL && (rc == SP_JWT_NO_KEY || set->keys == NULL) &&
        wants_fetch(set, rc, now))
        hold(set, route, caps, spec, conn, token, allowed, ctx);
    else if (rc != SP_JWT_OK)
        refuse(t, conn, reason_of(rc));
    else
        admit(t, route, caps, spec, conn, claims, allowed, ctx);
    json_decref(claims);
    free(token);
    return true;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

struct sp_tokens *sp_tokens_new(const struct sp_backend *b, const struct sp_log *log)
{
    struct sp_tokens *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->backend = b;
    t->log = log;
    LIST_INIT(&t->sets);
    return t;
}

void sp_tokens_free(struct sp_tokens *t)
{
    struct jwks *set;
    struct waiting *w;

    if (t == NULL)
        return;
    while ((set = LIST_FIRST(&t->sets)) != NULL) {
        LIST_REMOVE(set, link);
        while ((w = TAILQ_FIRST(&set->waiting)) != NULL) {
            sp_http_set_ops(w->conn, NULL, NULL);
            waiting_free(w);
        }
        if (set->easy != NULL) {
            sp_curlm_remove(t->backend->curlm, set->easy);
            curl_easy_cleanup(set->easy);
        }
        if (set->body != NULL)
            evbuffer_free(set->body);
        sp_jwt_keys_free(set->keys);
        free(set->full_url);
        free(set->url);
        free(set);
    }
    free(t);
}

const struct sp_token_stats *sp_tokens_stats(const struct sp_tokens *t)
{
    return &t->stats;
}
