#include "config/config.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/keys-internal.h"
#include "core/base64.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct walker {
    const char *file;
    struct sp_diags *diags;
    const struct key *keys;
    size_t nkeys;
    void *base;
    struct sp_config *config;
};

#define REPORT(w, node, ...)                                                                       \
    sp_diags_add((w)->diags, (w)->file, (node)->line, (node)->col, __VA_ARGS__)

/* ---- scalar conversion ----------------------------------------------------- */

static int parse_transports_list(const char *text, unsigned *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"sse", SP_TRANSPORT_SSE},
                 {"websocket", SP_TRANSPORT_WEBSOCKET},
                 {"longpoll", SP_TRANSPORT_LONGPOLL}};
    for (size_t i = 0; i < COUNT(names); i++) {
        if (strcmp(text, names[i].name) == 0) {
            *out |= names[i].bit;
            return 0;
        }
    }
    snprintf(err, errlen, "unknown transport '%s' (use sse, websocket, longpoll)", text);
    return -1;
}

static int check_url(const char *text, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int rc = -1;

    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, text, 0) != CURLUE_OK) {
        snprintf(err, errlen, "invalid URL '%s'", text);
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "URL '%s' must start with http:// or https://", text);
    } else if (strchr(text, '?') != NULL || strchr(text, '#') != NULL) {
        snprintf(err, errlen, "backend URL '%s' must not have a query or fragment", text);
    } else {
        rc = 0;
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* The app beside sidepush: http://host[:port][/prefix], or unix:/path of
 * its socket (gunicorn, puma, php-fpm behind a socket). */
static int check_backend_url(const char *text, char *err, size_t errlen)
{
    if (strncmp(text, "unix:", 5) != 0)
        return check_url(text, err, errlen);
    if (text[5] != '/' || strlen(text + 5) >= 108) {
        snprintf(err, errlen, "'%s' must be unix: and an absolute socket path of at most 107 bytes",
                 text);
        return -1;
    }
    return 0;
}

static int set_string(char **slot, const char *text)
{
    char *copy = strdup(text);
    if (copy == NULL)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

/* Converts text for key k into base. Used for both defaults and YAML values. */
static int convert(const struct key *k, const char *text, void *base, char *err, size_t errlen)
{
    void *slot = (char *)base + k->offset;
    uint64_t v = 0;
    int rc = 0;

    switch (k->type) {
    case T_STRING:
    case T_PATH:
    case T_URL:
    case T_BACKEND_URL:
        if (text[0] == '\0') {
            snprintf(err, errlen, "'%s' must not be empty", k->name);
            return -1;
        }
        if (k->type == T_PATH && text[0] != '/') {
            snprintf(err, errlen, "'%s' must start with '/'", k->name);
            return -1;
        }
        if (k->type == T_URL && check_url(text, err, errlen) < 0)
            return -1;
        if (k->type == T_BACKEND_URL && check_backend_url(text, err, errlen) < 0)
            return -1;
        return set_string(slot, text);
    case T_BOOL:
        if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0) {
            snprintf(err, errlen, "'%s' must be true or false, not '%s'", k->name, text);
            return -1;
        }
        *(bool *)slot = text[0] == 't';
        return 0;
    case T_SWITCH:
        if (strcmp(text, "on") != 0 && strcmp(text, "off") != 0) {
            snprintf(err, errlen, "'%s' must be on or off, not '%s'", k->name, text);
            return -1;
        }
        *(bool *)slot = text[1] == 'n';
        return 0;
    case T_WORKERS:
        if (strcmp(text, "auto") == 0) {
            *(uint64_t *)slot = 0;
            return 0;
        }
        /* fall through */
    case T_UINT: {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(text, &end, 10);
        if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0) {
            snprintf(err, errlen, "'%s' must be %sa whole number, not '%s'", k->name,
                     k->type == T_WORKERS ? "auto or " : "", text);
            return -1;
        }
        v = n;
        break;
    }
    case T_DURATION:
        rc = sp_parse_duration(text, &v, err, errlen);
        break;
    case T_SIZE:
        rc = sp_parse_size(text, &v, err, errlen);
        break;
    case T_ADDRESS:
        return sp_parse_address(text, slot, err, errlen);
    case T_LOG_LEVEL:
        if (sp_log_level_parse(text, slot) < 0) {
            snprintf(err, errlen, "unknown log level '%s' (use error, warn, info, debug)", text);
            return -1;
        }
        return 0;
    case T_TRANSPORTS: {
        /* Only defaults arrive here, written as "[a, b, c]". */
        char list[128];
        unsigned bits = 0;
        snprintf(list, sizeof(list), "%s", text);
        for (char *save, *tok = strtok_r(list, "[], ", &save); tok != NULL;
             tok = strtok_r(NULL, "[], ", &save)) {
            if (parse_transports_list(tok, &bits, err, errlen) < 0)
                return -1;
        }
        *(unsigned *)slot = bits;
        return 0;
    }
    case T_MODE:
        if (strcmp(text, "history") != 0 && strcmp(text, "last_value") != 0) {
            snprintf(err, errlen, "'%s' must be history or last_value, not '%s'", k->name, text);
            return -1;
        }
        *(bool *)slot = text[0] == 'l';
        return 0;
    case T_START:
        if (strcmp(text, "newest") != 0 && strcmp(text, "oldest") != 0) {
            snprintf(err, errlen, "'%s' must be newest or oldest, not '%s'", k->name, text);
            return -1;
        }
        *(enum sp_start *)slot = text[0] == 'o' ? SP_START_OLDEST : SP_START_NEWEST;
        return 0;
    case T_OPT_STRING:
        return set_string(slot, text);
    case T_STRING_LIST:
    case T_CIDR_LIST:
    case T_EVENT_LIST:
        return 0; /* only "[]" as a default; lists are walked by walk_string_list */
    case T_SECTION:
    case T_ROUTES:
        return 0;
    }
    if (rc < 0)
        return -1;
    if (v < k->min || v > k->max) {
        snprintf(err, errlen, "'%s' = '%s' is out of range", k->name, text);
        return -1;
    }
    *(uint64_t *)slot = v;
    return 0;
}

static void apply_defaults(const struct key *keys, size_t n, void *base)
{
    char err[256];

    for (size_t i = 0; i < n; i++) {
        if (keys[i].def != NULL && convert(&keys[i], keys[i].def, base, err, sizeof(err)) < 0)
            abort(); /* a broken default is a bug in this table, caught by every test */
    }
}

/* ---- walking the tree ------------------------------------------------------ */

static unsigned edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[64];

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const struct key *find_key(const struct walker *w, const char *section, const char *name)
{
    for (size_t i = 0; i < w->nkeys; i++) {
        if (strcmp(w->keys[i].section, section) == 0 && strcmp(w->keys[i].name, name) == 0)
            return &w->keys[i];
    }
    return NULL;
}

static void report_unknown(struct walker *w, const struct sp_ynode *key, const char *section)
{
    const char *suggestion = NULL;
    unsigned best = 3;

    for (size_t i = 0; i < w->nkeys; i++) {
        unsigned d = edit_distance(key->value, w->keys[i].name);
        if (strcmp(w->keys[i].section, section) == 0 && d < best) {
            best = d;
            suggestion = w->keys[i].name;
        }
    }
    if (suggestion != NULL)
        REPORT(w, key, "unknown key '%s'%s%s (did you mean '%s'?)", key->value,
               section[0] ? " in " : "", section, suggestion);
    else
        REPORT(w, key, "unknown key '%s'%s%s", key->value, section[0] ? " in " : "", section);
}

static void walk_map(struct walker *w, const struct sp_ynode *map, const char *section);
static void walk_routes(struct walker *w, const struct sp_ynode *seq);

static void walk_transports(struct walker *w, const struct key *k, const struct sp_ynode *val)
{
    char err[256];
    unsigned bits = 0;

    if (val->kind != SP_YNODE_SEQ) {
        REPORT(w, val, "'%s' must be a list, e.g. [sse, websocket, longpoll]", k->name);
        return;
    }
    for (size_t i = 0; i < val->count; i++) {
        const struct sp_ynode *item = val->items[i];
        if (item->kind != SP_YNODE_SCALAR) {
            REPORT(w, item, "transport must be a name");
        } else if (parse_transports_list(item->value, &bits, err, sizeof(err)) < 0) {
            REPORT(w, item, "%s", err);
        }
    }
    if (val->count == 0)
        REPORT(w, val, "'%s' must name at least one transport", k->name);
    *(unsigned *)((char *)w->base + k->offset) = bits;
}

static bool webhook_event_known(const char *name)
{
    static const char *const known[] = {"channel_occupied", "channel_vacated", "member_added",
                                        "member_removed",   "client_event",    "cache_miss"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(name, known[i]) == 0)
            return true;
    }
    return false;
}

static void walk_string_list(struct walker *w, const struct key *k, const struct sp_ynode *val)
{
    struct sp_strlist *list = (struct sp_strlist *)((char *)w->base + k->offset);

    if (val->kind != SP_YNODE_SEQ) {
        REPORT(w, val, "'%s' must be a list of strings", k->name);
        return;
    }
    list->items = calloc(val->count ? val->count : 1, sizeof(char *));
    if (list->items == NULL)
        return;
    for (size_t i = 0; i < val->count; i++) {
        const struct sp_ynode *item = val->items[i];
        if (item->kind != SP_YNODE_SCALAR || sp_ynode_is_null(item)) {
            REPORT(w, item, "'%s' entries must be strings", k->name);
            continue;
        }
        char err[160];
        struct sp_cidr block;
        if (k->type == T_CIDR_LIST && sp_parse_cidr(item->value, &block, err, sizeof(err)) < 0) {
            REPORT(w, item, "%s", err);
            continue;
        }
        if (k->type == T_EVENT_LIST && !webhook_event_known(item->value)) {
            REPORT(w, item,
                   "'%s' is not channel_occupied, channel_vacated, member_added, "
                   "member_removed, client_event or cache_miss",
                   item->value);
            continue;
        }
        list->items[list->count] = strdup(item->value);
        if (list->items[list->count] != NULL)
            list->count++;
    }
}

static int redis_url_check(const char *url, char *err, size_t errlen)
{
    char *host, *user, *password;
    unsigned port;
    long db;
    bool tls;

    if (sp_config_parse_redis_url(url, &host, &port, &user, &password, &db, &tls, err, errlen) < 0)
        return -1;
    free(host);
    free(user);
    free(password);
    return 0;
}

/* Splits redis.url into host, port, credentials and database (after the
 * walk, so the explicit keys win whatever their order in the file). */
static int redis_url_apply(struct sp_config *c, char *err, size_t errlen)
{
    char *host = NULL, *user = NULL, *password = NULL;
    unsigned port;
    long db;

    if (sp_config_parse_redis_url(c->redis.url, &host, &port, &user, &password, &db, &c->redis.tls,
                                  err, errlen) < 0)
        return -1;
    free(c->redis.host);
    c->redis.host = host;
    c->redis.port = port;
    if (user != NULL && c->redis.username == NULL)
        c->redis.username = user;
    else
        free(user);
    if (password != NULL && c->redis.password == NULL)
        c->redis.password = password;
    else
        free(password);
    if (db >= 0)
        c->redis.database = (uint64_t)db;
    return 0;
}

static void walk_value(struct walker *w, const struct key *k, const struct sp_ynode *val,
                       const char *section)
{
    char err[256];

    switch (k->type) {
    case T_STRING_LIST:
    case T_CIDR_LIST:
    case T_EVENT_LIST:
        walk_string_list(w, k, val);
        return;
    case T_SECTION: {
        if (val->kind != SP_YNODE_MAP) {
            REPORT(w, val, "'%s' must be a mapping", k->name);
            return;
        }
        char nested[128];
        snprintf(nested, sizeof(nested), "%s%s%s", section, section[0] ? "." : "", k->name);
        if (k->offset != NO_OFFSET)
            *(bool *)((char *)w->base + k->offset) = true;
        walk_map(w, val, nested);
        return;
    }
    case T_ROUTES:
        walk_routes(w, val);
        return;
    case T_TRANSPORTS:
        walk_transports(w, k, val);
        return;
    default:
        break;
    }
    if (val->invalid)
        return;
    if (val->kind != SP_YNODE_SCALAR) {
        REPORT(w, val, "'%s' must be a single value, not a %s", k->name,
               val->kind == SP_YNODE_MAP ? "mapping" : "list");
        return;
    }
    if (sp_ynode_is_null(val) && !(k->type == T_OPT_STRING && !val->plain)) {
        REPORT(w, val, "'%s' needs a value", k->name);
        return;
    }
    if (convert(k, val->value, w->base, err, sizeof(err)) < 0)
        REPORT(w, val, "%s", err);
    else if (w->base == w->config && k->offset == C(metrics.listen))
        w->config->metrics.has_listen = true;
    else if (w->base == w->config && k->offset == C(redis.url) &&
             redis_url_check(w->config->redis.url, err, sizeof(err)) < 0)
        REPORT(w, val, "%s", err);
}

static bool duplicate_before(const struct sp_ynode *map, size_t i)
{
    for (size_t j = 0; j < i; j += 2) {
        if (map->items[j]->kind == SP_YNODE_SCALAR &&
            strcmp(map->items[j]->value, map->items[i]->value) == 0)
            return true;
    }
    return false;
}

static void walk_map(struct walker *w, const struct sp_ynode *map, const char *section)
{
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        const struct sp_ynode *key = map->items[i];
        if (key->kind != SP_YNODE_SCALAR || duplicate_before(map, i))
            continue; /* reported by the loader */
        const struct key *k = find_key(w, section, key->value);
        if (k == NULL)
            report_unknown(w, key, section);
        else
            walk_value(w, k, map->items[i + 1], section);
    }
    for (size_t i = 0; i < w->nkeys; i++) {
        const struct key *k = &w->keys[i];
        if (!(k->flags & F_REQUIRED) || strcmp(k->section, section) != 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j + 1 < map->count && !seen; j += 2)
            seen = map->items[j]->kind == SP_YNODE_SCALAR &&
                   strcmp(map->items[j]->value, k->name) == 0;
        if (!seen)
            REPORT(w, map, "missing required key '%s%s%s'", section, section[0] ? "." : "",
                   k->name);
    }
}

/* subscribe.token: at least one source of keys, each readable now (the
 * secret and PEM keys become r's key set; the JWK Set is fetched later). */
static void check_token(struct walker *w, struct sp_route_config *r, const struct sp_ynode *node)
{
    struct sp_token_config *t = &r->subscribe.token;
    const char *why = NULL;

    if (t->secret == NULL && t->public_keys == NULL && t->jwks_url == NULL) {
        REPORT(w, node, "subscribe.token needs secret, public_keys or jwks_url");
        return;
    }
    if ((t->keys = sp_jwt_keys_new()) == NULL) {
        REPORT(w, node, "out of memory");
        return;
    }
    if (t->secret != NULL && strlen(t->secret) < 32)
        REPORT(w, node, "subscribe.token.secret must be at least 32 bytes (HS256 wants 256 bits)");
    else if (t->secret != NULL && sp_jwt_keys_add_secret(t->keys, t->secret, strlen(t->secret)) < 0)
        REPORT(w, node, "out of memory");
    if (t->public_keys != NULL && sp_jwt_keys_add_pem(t->keys, t->public_keys, &why) < 0)
        REPORT(w, node, "subscribe.token.public_keys: %s", why);
    if (t->jwks_url != NULL && t->jwks_url[0] != '/' &&
        strncasecmp(t->jwks_url, "http://", 7) != 0 && strncasecmp(t->jwks_url, "https://", 8) != 0)
        REPORT(w, node, "subscribe.token.jwks_url must be an http(s):// URL or a backend path");
}

static void check_route(struct walker *w, struct sp_route_config *r, const struct sp_ynode *node)
{
    char err[256];

    if (!r->has_subscribe && !r->has_poll) {
        REPORT(w, node, "a route needs 'subscribe' or 'poll'");
        return;
    }
    if (r->has_poll && r->poll.forward_headers.count > 0 && !r->poll.per_client)
        REPORT(w, node,
               "poll.forward_headers needs poll.per_client: true (a shared poll "
               "carries no client credentials)");
    if (r->path == NULL)
        return;
    if (sp_tmpl_compile(r->path, &r->tmpl, err, sizeof(err)) < 0) {
        REPORT(w, node, "%s", err);
        return;
    }
    /* A poll route's channel comes from what it polls; subscribe only tunes
     * its transports there. */
    if (r->has_subscribe && !r->has_poll &&
        sp_tmpl_check_refs(r->tmpl, r->subscribe.channel, err, sizeof(err)) < 0)
        REPORT(w, node, "subscribe.channel: %s", err);
    if (r->has_subscribe && r->subscribe.websocket.forward != NULL &&
        sp_tmpl_check_refs(r->tmpl, r->subscribe.websocket.forward, err, sizeof(err)) < 0)
        REPORT(w, node, "subscribe.websocket.forward: %s", err);
    if (r->has_subscribe && r->subscribe.websocket.forward != NULL &&
        r->subscribe.websocket.forward[0] != '/')
        REPORT(w, node, "subscribe.websocket.forward must be a backend path starting with '/'");
    if (r->has_subscribe && r->subscribe.presence && !r->has_authorize &&
        !r->subscribe.token.enabled)
        REPORT(w, node,
               "subscribe.presence needs authorize or subscribe.token: members are the user ids "
               "they name");
    if (r->has_poll && r->subscribe.channels.set)
        REPORT(w, node,
               "subscribe.channels is for subscribe routes: a poll route's channel is "
               "what it polls, with the channels section's options");
    if (r->has_subscribe && r->subscribe.patterns && (r->subscribe.presence || r->has_poll))
        REPORT(w, node,
               "subscribe.patterns cannot go with %s: a pattern is no channel to be a member of, "
               "or to poll",
               r->has_poll ? "poll" : "subscribe.presence");
    if (r->has_subscribe && r->subscribe.token.enabled)
        check_token(w, r, node);
    if (r->has_authorize && r->authorize.url != NULL &&
        sp_tmpl_check_refs(r->tmpl, r->authorize.url, err, sizeof(err)) < 0)
        REPORT(w, node, "authorize.url: %s", err);
    if (r->has_poll && r->poll.url != NULL &&
        sp_tmpl_check_refs(r->tmpl, r->poll.url, err, sizeof(err)) < 0)
        REPORT(w, node, "poll.url: %s", err);
}

static void walk_routes(struct walker *w, const struct sp_ynode *seq)
{
    struct sp_config *c = w->config;

    if (seq->kind != SP_YNODE_SEQ) {
        REPORT(w, seq, "'routes' must be a list");
        return;
    }
    c->routes = calloc(seq->count ? seq->count : 1, sizeof(*c->routes));
    if (c->routes == NULL) {
        REPORT(w, seq, "out of memory");
        return;
    }
    c->nroutes = seq->count;
    for (size_t i = 0; i < seq->count; i++) {
        const struct sp_ynode *item = seq->items[i];
        struct sp_route_config *r = &c->routes[i];
        struct walker rw = {w->file, w->diags, sp_route_keys, sp_route_nkeys, r, c};

        r->owner = c;
        r->line = item->line;
        r->col = item->col;
        apply_defaults(sp_route_keys, sp_route_nkeys, r);
        /* Unset: the channels section's (sp_route_channels). */
        r->subscribe.channels.history = SP_UNSET;
        r->subscribe.channels.history_ttl_ms = SP_UNSET;
        r->subscribe.channels.max_message_size = SP_UNSET;
        if (item->kind != SP_YNODE_MAP) {
            REPORT(w, item, "each route must be a mapping with 'path' and 'subscribe' or 'poll'");
            continue;
        }
        walk_map(&rw, item, "");
        check_route(w, r, item);
    }
}

/* ---- cross-field checks ---------------------------------------------------- */

/* Standard Webhooks secrets are base64 keys, optionally prefixed "whsec_". */
static bool webhook_secret_valid(const char *secret)
{
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    char *key;
    size_t len;

    if (b64[0] == '\0' || sp_base64_decode(b64, strlen(b64), &key, &len) < 0)
        return false;
    free(key);
    return len > 0;
}

/* Names that go into paths as they are: letters, digits, '-', '_', '.'. */
static bool path_safe(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    }
    return true;
}

static void check_pusher(struct walker *w, const struct sp_ynode *root)
{
    const struct sp_config *c = w->config;

    if (c->webhooks.pusher_signature && !c->pusher.enabled)
        REPORT(w, root,
               "webhooks.pusher_signature signs with pusher.secret: add the pusher section");
    if (!c->pusher.enabled)
        return;
    if (c->pusher.app_id != NULL && !path_safe(c->pusher.app_id))
        REPORT(w, root, "pusher.app_id may hold only letters, digits, '-', '_' and '.'");
    if (c->pusher.key != NULL && !path_safe(c->pusher.key))
        REPORT(w, root, "pusher.key may hold only letters, digits, '-', '_' and '.'");
    if (c->pusher.secret != NULL && c->pusher.secret[0] == '\0')
        REPORT(w, root, "pusher.secret must not be empty");
    if (c->pusher.max_event_size > c->channels.max_message_size)
        REPORT(w, root, "pusher.max_event_size must not exceed channels.max_message_size");
}

/* redis.tls goes with a rediss:// url, a client certificate with its key,
 * and every file named is readable now (it is read at the start). */
static void check_redis_tls(struct walker *w, const struct sp_ynode *root)
{
    const struct sp_config *c = w->config;
    const char *files[3][2] = {{"ca_file", c->redis.tls_files.ca_file},
                               {"cert_file", c->redis.tls_files.cert_file},
                               {"key_file", c->redis.tls_files.key_file}};

    if (c->redis.tls_files.set && !c->redis.tls)
        REPORT(w, root, "redis.tls needs a rediss:// redis.url (TLS)");
    if ((c->redis.tls_files.cert_file == NULL) != (c->redis.tls_files.key_file == NULL))
        REPORT(w, root, "redis.tls.cert_file and key_file go together (a client certificate)");
    for (size_t i = 0; i < 3; i++)
        if (files[i][1] != NULL && access(files[i][1], R_OK) != 0)
            REPORT(w, root, "redis.tls.%s: cannot read '%s': %s", files[i][0], files[i][1],
                   strerror(errno));
}

/* Each sentinel a host[:port]; a master name with them. */
static void check_sentinels(struct walker *w, const struct sp_ynode *root)
{
    const struct sp_config *c = w->config;
    char err[256];

    if (c->redis.sentinels.count > 0 && c->redis.sentinel_master == NULL)
        REPORT(w, root, "redis.sentinels needs redis.sentinel_master (the name they monitor)");
    for (size_t i = 0; i < c->redis.sentinels.count; i++) {
        const char *s = c->redis.sentinels.items[i];
        char *host, *user, *password;
        unsigned port;
        long db;
        bool tls;
        if (strstr(s, "://") != NULL ||
            sp_config_parse_redis_url(s, &host, &port, &user, &password, &db, &tls, err,
                                      sizeof(err)) < 0) {
            REPORT(w, root, "redis.sentinels: '%s' must be host[:port]", s);
            continue;
        }
        free(host);
        free(user);
        free(password);
    }
}

static void check_config(struct walker *w, const struct sp_ynode *root)
{
    struct sp_config *c = w->config;

    char err[256];
    if (c->redis.enabled && redis_url_apply(c, err, sizeof(err)) < 0)
        REPORT(w, root, "%s", err); /* the default URL; a bad given one was reported already */
    if (c->redis.enabled) {
        check_redis_tls(w, root);
        check_sentinels(w, root);
    }
    if (c->publish_auth.hmac_secret != NULL && !webhook_secret_valid(c->publish_auth.hmac_secret))
        REPORT(w, root, "publish.auth.hmac_secret must be base64 (optionally after whsec_)");
    if (c->webhooks.secret != NULL && !webhook_secret_valid(c->webhooks.secret))
        REPORT(w, root, "webhooks.secret must be base64 (optionally after whsec_)");
    check_pusher(w, root);

    if (c->backend.url != NULL && strncasecmp(c->backend.url, "http://", 7) != 0 &&
        strncmp(c->backend.url, "unix:", 5) != 0)
        REPORT(w, root,
               "backend.url must be an http:// URL or unix:/path: sidepush proxies to "
               "the app beside it over plain HTTP/1.1");
    if (memcmp(&c->listen, &c->publish_listen, sizeof(c->listen)) == 0)
        REPORT(w, root, "'listen' and 'publish_listen' must differ");
    if (c->metrics.has_listen &&
        (memcmp(&c->metrics.listen, &c->listen, sizeof(c->listen)) == 0 ||
         memcmp(&c->metrics.listen, &c->publish_listen, sizeof(c->listen)) == 0))
        REPORT(w, root, "'metrics.listen' must differ from 'listen' and 'publish_listen'");
    if (c->backend.request_buffer > c->limits.proxy_buffer_size)
        REPORT(w, root, "backend.request_buffer must not exceed limits.proxy_buffer_size");
    if (c->limits.subscriber_max_unsent < c->channels.max_message_size)
        REPORT(w, root, "limits.subscriber_max_unsent must be at least channels.max_message_size");
    if (strcmp(c->health.liveness_path, c->health.readiness_path) == 0)
        REPORT(w, root, "health.liveness_path and health.readiness_path must differ");
    for (size_t i = 0; i < c->nroutes; i++) {
        for (size_t j = 0; j < i; j++) {
            if (c->routes[i].path && c->routes[j].path &&
                strcmp(c->routes[i].path, c->routes[j].path) == 0)
                sp_diags_add(w->diags, w->file, c->routes[i].line, c->routes[i].col,
                             "route path '%s' is already used at line %u", c->routes[i].path,
                             c->routes[j].line);
        }
    }
}

/* ---- public ---------------------------------------------------------------- */

int sp_config_parse(const char *file, const char *text, size_t len, sp_env_lookup env,
                    void *env_ctx, struct sp_config **out, struct sp_diags *diags)
{
    struct sp_ynode *root = NULL;
    size_t before = diags->count;
    struct sp_config *c = calloc(1, sizeof(*c));

    if (c != NULL)
        atomic_init(&c->refs, 1);
    if (c == NULL || (c->file = strdup(file)) == NULL) {
        sp_diags_add(diags, file, 1, 1, "out of memory");
        goto fail;
    }
    apply_defaults(sp_config_keys, sp_config_nkeys, c);
    sp_yaml_load(file, text, len, env, env_ctx, &root, diags, &c->sources);
    struct walker w = {file, diags, sp_config_keys, sp_config_nkeys, c, c};
    if (root == NULL) {
        if (diags->count == before)
            sp_diags_add(diags, file, 1, 1, "configuration is empty; 'backend.url' is required");
        goto fail;
    }
    if (root->kind != SP_YNODE_MAP) {
        REPORT(&w, root, "configuration must be a mapping of keys to values");
        goto fail;
    }
    walk_map(&w, root, "");
    if (diags->count == before)
        check_config(&w, root);
    if (diags->count != before)
        goto fail;
    sp_ynode_free(root);
    *out = c;
    return 0;

fail:
    sp_ynode_free(root);
    sp_config_release(c);
    return -1;
}

int sp_config_load(const char *path, struct sp_config **out, struct sp_diags *diags)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    int rc = -1;

    if (f == NULL) {
        sp_diags_add(diags, path, 0, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    /* Configuration files are small; a cap keeps a wrong path (a device, a
     * huge log) from being read into memory. */
    text = malloc(4 * MiB + 1);
    if (text == NULL)
        goto done;
    len = fread(text, 1, 4 * MiB + 1, f);
    if (ferror(f)) {
        sp_diags_add(diags, path, 0, 0, "cannot read: %s", strerror(errno));
        goto done;
    }
    if (len > 4 * MiB) {
        sp_diags_add(diags, path, 0, 0, "file is larger than 4 MiB");
        goto done;
    }
    rc = sp_config_parse(path, text, len, NULL, NULL, out, diags);
done:
    free(text);
    fclose(f);
    return rc;
}

static void free_strings(const struct key *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i].offset == NO_OFFSET)
            continue;
        void *slot = (char *)base + keys[i].offset;
        if (keys[i].type == T_STRING || keys[i].type == T_PATH || keys[i].type == T_URL ||
            keys[i].type == T_BACKEND_URL || keys[i].type == T_OPT_STRING)
            free(*(char **)slot);
        if (keys[i].type == T_STRING_LIST || keys[i].type == T_CIDR_LIST ||
            keys[i].type == T_EVENT_LIST) {
            struct sp_strlist *list = slot;
            for (size_t j = 0; j < list->count; j++)
                free(list->items[j]);
            free(list->items);
        }
    }
}

const struct sp_config *sp_config_hold(const struct sp_config *config)
{
    /* The count is the one field a holder changes: not a part of what the
     * configuration says. */
    atomic_fetch_add_explicit(&((struct sp_config *)config)->refs, 1, memory_order_relaxed);
    return config;
}

void sp_config_release(const struct sp_config *shared)
{
    struct sp_config *config = (struct sp_config *)shared;

    if (config == NULL || atomic_fetch_sub_explicit(&config->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < config->nroutes; i++) {
        free_strings(sp_route_keys, sp_route_nkeys, &config->routes[i]);
        sp_jwt_keys_free(config->routes[i].subscribe.token.keys);
        sp_tmpl_free(config->routes[i].tmpl);
    }
    free(config->routes);
    free_strings(sp_config_keys, sp_config_nkeys, config);
    free(config->redis.host);
    free(config->file);
    sp_sources_clear(&config->sources);
    free(config);
}
