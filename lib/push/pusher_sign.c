#include "push/pusher_sign.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "http/parser.h"

/* Pusher's SDKs sign a handful of parameters; a query with more, or longer,
 * is not one of theirs. */
#define MAX_PARAMS 32
#define MAX_PARAM 1024

/* ---- subscription and sign-in auth ------------------------------------------------------- */

/* auth is key ":" hex(HMAC(secret, parts)). */
static bool auth_valid(const char *key, const char *secret, const struct sp_hmac_part *parts,
                       size_t nparts, const char *auth)
{
    size_t key_len = strlen(key);
    char want[SP_SHA256_HEX];

    if (auth == NULL || strncmp(auth, key, key_len) != 0 || auth[key_len] != ':')
        return false;
    if (sp_hmac_sha256_hex(secret, strlen(secret), parts, nparts, want) < 0)
        return false;
    return sp_hex_equal(auth + key_len + 1, want, SP_SHA256_HEX - 1);
}

bool sp_pusher_channel_auth_valid(const char *key, const char *secret, const char *socket_id,
                                  const char *channel, const char *channel_data, const char *auth)
{
    const struct sp_hmac_part parts[] = {
        {socket_id, strlen(socket_id)},
        {":", 1},
        {channel, strlen(channel)},
        {":", channel_data ? 1 : 0},
        {channel_data, channel_data ? strlen(channel_data) : 0},
    };
    return auth_valid(key, secret, parts, 5, auth);
}

bool sp_pusher_user_auth_valid(const char *key, const char *secret, const char *socket_id,
                               const char *user_data, const char *auth)
{
    const struct sp_hmac_part parts[] = {
        {socket_id, strlen(socket_id)},
        {"::user::", 8},
        {user_data, strlen(user_data)},
    };
    return auth_valid(key, secret, parts, 3, auth);
}

/* ---- API requests ------------------------------------------------------------------------- */

struct param {
    char name[64];
    char value[MAX_PARAM];
};

struct params {
    struct param p[MAX_PARAMS];
    size_t n;
    const char *signature; /* into p[], or NULL */
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct param *)a)->name, ((const struct param *)b)->name);
}

/* Decodes every pair, names lower-cased; auth_signature is set aside (it is
 * not signed). A name given twice is refused: which one was signed would
 * be ambiguous. */
static int read_params(struct sp_slice query, struct params *out)
{
    struct sp_slice rest = query, name, value;

    out->n = 0;
    out->signature = NULL;
    while (sp_http_query_next(&rest, &name, &value)) {
        struct param *p = &out->p[out->n];
        if (out->n == MAX_PARAMS || sp_http_query_decode(name, p->name, sizeof(p->name)) <= 0 ||
            sp_http_query_decode(value, p->value, sizeof(p->value)) < 0)
            return -1;
        for (char *c = p->name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        for (size_t i = 0; i < out->n; i++) {
            if (strcmp(out->p[i].name, p->name) == 0)
                return -1;
        }
        out->n++;
    }
    qsort(out->p, out->n, sizeof(out->p[0]), by_name);
    for (size_t i = 0; i < out->n; i++) {
        if (strcmp(out->p[i].name, "auth_signature") == 0)
            out->signature = out->p[i].value;
    }
    return 0;
}

static const char *param(const struct params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->p[i].name, name) == 0)
            return ps->p[i].value;
    }
    return NULL;
}

/* METHOD "\n" path "\n" k=v&... (without auth_signature). */
static int signed_text(struct sp_slice method, struct sp_slice path, const struct params *ps,
                       char *out, size_t size)
{
    size_t n = 0;
    int w =
        snprintf(out, size, "%.*s\n%.*s\n", (int)method.len, method.ptr, (int)path.len, path.ptr);
    const char *sep = "";

    if (w < 0 || (size_t)w >= size)
        return -1;
    n = (size_t)w;
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->p[i].name, "auth_signature") == 0)
            continue;
        w = snprintf(out + n, size - n, "%s%s=%s", sep, ps->p[i].name, ps->p[i].value);
        sep = "&";
        if (w < 0 || (size_t)w >= size - n)
            return -1;
        n += (size_t)w;
    }
    return (int)n;
}

int sp_pusher_string_to_sign(struct sp_slice method, struct sp_slice path, struct sp_slice query,
                             char *out, size_t size)
{
    struct params *ps = malloc(sizeof(*ps));
    int n = ps && read_params(query, ps) == 0 ? signed_text(method, path, ps, out, size) : -1;

    free(ps);
    return n;
}

static int check(const char *key, const char *secret, struct sp_slice method, struct sp_slice path,
                 const struct params *ps, const void *body, size_t len, uint64_t now_s,
                 uint64_t tolerance_s, const char **why)
{
    const char *auth_key = param(ps, "auth_key"), *stamp = param(ps, "auth_timestamp");
    const char *md5 = param(ps, "body_md5"), *version = param(ps, "auth_version");
    char text[MAX_PARAMS * (MAX_PARAM + 64) / 4], want[SP_SHA256_HEX], body_md5[SP_MD5_HEX];
    char *end;

    if (auth_key == NULL || stamp == NULL || ps->signature == NULL) {
        *why = "sign the request: auth_key, auth_timestamp and auth_signature are required";
        return SP_PUSHER_REQUEST_UNSIGNED;
    }
    if (strcmp(auth_key, key) != 0) {
        *why = "unknown auth_key";
        return SP_PUSHER_REQUEST_UNKNOWN_KEY;
    }
    if (version != NULL && strcmp(version, "1.0") != 0) {
        *why = "auth_version must be 1.0";
        return SP_PUSHER_REQUEST_UNSIGNED;
    }
    unsigned long long t = strtoull(stamp, &end, 10);
    if (*stamp == '\0' || *end != '\0' || (t > now_s ? t - now_s : now_s - t) > tolerance_s) {
        *why = "auth_timestamp is not within pusher.timestamp_tolerance of the server's clock";
        return SP_PUSHER_REQUEST_STALE;
    }
    if (len > 0 || md5 != NULL) {
        sp_md5_hex(body, len, body_md5);
        if (md5 == NULL || !sp_hex_equal(md5, body_md5, SP_MD5_HEX - 1)) {
            *why = "body_md5 is missing or not the MD5 of the body";
            return SP_PUSHER_REQUEST_BODY_MD5;
        }
    }
    int n = signed_text(method, path, ps, text, sizeof(text));
    const struct sp_hmac_part part = {text, n > 0 ? (size_t)n : 0};
    if (n < 0 || sp_hmac_sha256_hex(secret, strlen(secret), &part, 1, want) < 0 ||
        !sp_hex_equal(ps->signature, want, SP_SHA256_HEX - 1)) {
        *why = "invalid auth_signature";
        return SP_PUSHER_REQUEST_BAD_SIGNATURE;
    }
    return SP_PUSHER_REQUEST_OK;
}

int sp_pusher_request_check(const char *key, const char *secret, struct sp_slice method,
                            struct sp_slice path, struct sp_slice query, const void *body,
                            size_t len, uint64_t now_s, uint64_t tolerance_s, const char **why)
{
    struct params *ps = malloc(sizeof(*ps));
    int rc;

    if (ps == NULL || read_params(query, ps) < 0) {
        *why = ps ? "the query string cannot be read" : "out of memory";
        free(ps);
        return SP_PUSHER_REQUEST_BAD_QUERY;
    }
    rc = check(key, secret, method, path, ps, body, len, now_s, tolerance_s, why);
    free(ps);
    return rc;
}

static bool protected_name(const char *name, size_t len)
{
    static const char *const prefixes[] = {"private-", "presence-", "#"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (len >= n && memcmp(name, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

bool sp_pusher_spec_protected(const char *spec)
{
    while (*spec != '\0') {
        size_t len = strcspn(spec, ",");
        if (protected_name(spec, len))
            return true;
        spec += len + (spec[len] == ',');
    }
    return false;
}
