#include "config/config.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"

/* ---- the directive table ---------------------------------------------------
 *
 * One line per key: where it may appear (section), its type, bounds, default
 * and what it means. The walker below rejects unknown keys, wrong types and
 * wrong places from this table alone; `sidepush --help-config` prints it.
 */

enum type {
    T_SECTION,     /* a nested map; offset (if any) is a bool "present" flag */
    T_STRING,      /* char *, non-empty */
    T_PATH,        /* char *, starts with '/' */
    T_URL,         /* char *, http(s) URL checked by libcurl's URL parser */
    T_BACKEND_URL, /* char *, an http:// URL or unix:/path of a socket */
    T_BOOL,        /* bool: true or false */
    T_UINT,        /* uint64_t within [min, max] */
    T_DURATION,    /* uint64_t milliseconds within [min, max] */
    T_SIZE,        /* uint64_t bytes within [min, max] */
    T_ADDRESS,     /* struct sp_address */
    T_LOG_LEVEL,   /* enum sp_log_level */
    T_TRANSPORTS,  /* unsigned bits from a list of sse, websocket, longpoll */
    T_START,       /* enum sp_start: newest or oldest */
    T_OPT_STRING,  /* char *, may be empty */
    T_STRING_LIST, /* struct sp_strlist from a list of strings */
    T_CIDR_LIST,   /* struct sp_strlist of address blocks, each checked */
    T_EVENT_LIST,  /* struct sp_strlist of webhook event names, each checked */
    T_ROUTES,      /* the routes list, walked with route_keys[] */
    T_WORKERS,     /* uint64_t: "auto" (0) or a count within [min, max] */
};

enum { F_REQUIRED = 1 };

struct key {
    const char *section; /* "" for the top level, "a.b" for nested maps */
    const char *name;
    enum type type;
    size_t offset; /* into struct sp_config, or sp_route_config for route keys */
    uint64_t min, max;
    const char *def; /* default, written as it would be in YAML; NULL: none */
    unsigned flags;
    const char *doc;
};

#define C(field) offsetof(struct sp_config, field)
#define R(field) offsetof(struct sp_route_config, field)
#define NO_OFFSET ((size_t)-1)
#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * 1024 * 1024)
#define SEC 1000ULL
#define HOUR (3600ULL * 1000)

static const struct key config_keys[] = {
    {"", "listen", T_ADDRESS, C(listen), 0, 0, "0.0.0.0:8080", 0,
     "clients: subscriptions, health, and everything proxied to the backend"},
    {"", "publish_listen", T_ADDRESS, C(publish_listen), 0, 0, "127.0.0.1:8081", 0,
     "the backend's webhook publishes; loopback so only the pod can reach it"},
    {"", "workers", T_WORKERS, C(workers), 1, 256, "auto", 0,
     "event-loop threads: auto = the CPUs this process may use (affinity and cgroup quota)"},
    {"", "shutdown_grace", T_DURATION, C(shutdown_grace_ms), 0, HOUR, "20s", 0,
     "on SIGTERM, subscribers are sent away spread over this window, then sidepush exits"},
    {"", "watch_config", T_BOOL, C(watch_config), 0, 0, "true", 0,
     "reload when this file or a ${file:} it reads changes (a ConfigMap update), as on SIGHUP"},
    {"", "backend", T_SECTION, NO_OFFSET, 0, 0, NULL, F_REQUIRED, "the legacy app"},
    {"backend", "url", T_BACKEND_URL, C(backend.url), 0, 0, NULL, F_REQUIRED,
     "the app: http://127.0.0.1:3000 (a path prefixes every target) or unix:/run/app.sock"},
    {"backend", "connect_timeout", T_DURATION, C(backend.connect_timeout_ms), 1, HOUR, "2s", 0,
     "unreachable after this: 502"},
    {"backend", "timeout", T_DURATION, C(backend.timeout_ms), 1, 24 * HOUR, "30s", 0,
     "no response head after this: 504"},
    {"backend", "preserve_host", T_BOOL, C(backend.preserve_host), 0, 0, "true", 0,
     "send the client's Host header to the backend (else the backend URL's host)"},
    {"backend", "keepalive", T_UINT, C(backend.keepalive), 0, 10000, "64", 0,
     "idle connections to the backend kept per worker (0: a new connection per request)"},
    {"backend", "keepalive_timeout", T_DURATION, C(backend.keepalive_timeout_ms), 1, HOUR, "4s", 0,
     "a kept connection idle this long is closed (keep it below the backend's own)"},
    {"backend", "keepalive_requests", T_UINT, C(backend.keepalive_requests), 0, 100000000, "1000",
     0, "requests per kept connection, then it is closed (0: no limit)"},
    {"backend", "tunnel_idle_timeout", T_DURATION, C(backend.tunnel_idle_timeout_ms), 0, 24 * HOUR,
     "1h", 0,
     "an upgraded connection (a WebSocket to the app) idle this long is closed (0: never)"},
    {"backend", "body_timeout", T_DURATION, C(backend.body_timeout_ms), 0, 24 * HOUR, "0s", 0,
     "the backend's response body stalling this long between bytes: cut (0: never); a slow "
     "client's pause does not count"},
    {"backend", "request_buffer", T_SIZE, C(backend.request_buffer), 0, 64 * MiB, "64KiB", 0,
     "request bodies up to this size are read whole before the backend is asked, so a slow "
     "upload never holds one of its workers; larger ones stream (0: always stream)"},
    {"backend", "trusted_proxies", T_CIDR_LIST, C(backend.trusted_proxies), 0, 0, "[]", 0,
     "clients (an ingress) whose X-Forwarded-Proto is passed on; from others it is 'http'"},
    {"", "publish", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "the publish API on publish_listen"},
    {"publish", "max_body_size", T_SIZE, C(publish.max_body_size), 1 * KiB, 256 * MiB, "1MiB", 0,
     "POST /publish (JSON, batches) bodies; larger: 413"},
    {"publish", "max_connections", T_UINT, C(publish.max_connections), 1, 1000000, "1000", 0,
     "publisher connections held at once (apart from limits.max_connections)"},
    {"publish", "auth", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "optional publisher auth"},
    {"publish.auth", "bearer_token", T_STRING, C(publish_auth.bearer_token), 0, 0, NULL, 0,
     "require 'Authorization: Bearer <token>'; ${VAR} or ${file:PATH} keep it out of the file"},
    {"publish.auth", "hmac_secret", T_STRING, C(publish_auth.hmac_secret), 0, 0, NULL, 0,
     "require Standard Webhooks signatures with this secret (whsec_… base64)"},
    {"publish.auth", "timestamp_tolerance", T_DURATION, C(publish_auth.timestamp_tolerance_ms),
     1 * SEC, 24 * HOUR, "5m", 0, "reject signed webhooks older or newer than this"},
    {"", "channels", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "channel history"},
    {"channels", "history", T_UINT, C(channels.history), 0, 1000000, "100", 0,
     "messages kept per channel for resume"},
    {"channels", "history_ttl", T_DURATION, C(channels.history_ttl_ms), 1 * SEC, 30 * 24 * HOUR,
     "5m", 0, "messages older than this leave the history"},
    {"channels", "max_message_size", T_SIZE, C(channels.max_message_size), 1, 64 * MiB, "64KiB", 0,
     "larger publishes are refused with 413"},
    {"", "cors", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "cross-origin subscribers (browsers)"},
    {"cors", "allow_origins", T_STRING_LIST, C(cors.allow_origins), 0, 0, "[]", 0,
     "origins allowed to subscribe, or [\"*\"]; empty: same origin only"},
    {"cors", "allow_credentials", T_BOOL, C(cors.allow_credentials), 0, 0, "false", 0,
     "let cross-origin pages send cookies (EventSource withCredentials)"},
    {"cors", "max_age", T_DURATION, C(cors.max_age_ms), 0, 24 * HOUR, "10m", 0,
     "how long browsers may cache a preflight answer"},
    {"", "health", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "probe endpoints on listen, never proxied"},
    {"health", "liveness_path", T_PATH, C(health.liveness_path), 0, 0, "/healthz", 0,
     "200 while the process runs"},
    {"health", "readiness_path", T_PATH, C(health.readiness_path), 0, 0, "/readyz", 0,
     "200 while listening and configured, 503 otherwise"},
    {"", "metrics", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "Prometheus metrics on listen"},
    {"metrics", "path", T_PATH, C(metrics.path), 0, 0, "/metrics", 0,
     "Prometheus text format; never proxied"},
    {"metrics", "listen", T_ADDRESS, C(metrics.listen), 0, 0, NULL, 0,
     "a separate admin listener for metrics and health (default: on listen)"},
    {"metrics", "max_connections", T_UINT, C(metrics.max_connections), 1, 100000, "100", 0,
     "admin listener connections held at once (apart from limits.max_connections)"},
    {"metrics", "allow_from", T_CIDR_LIST, C(metrics.allow_from), 0, 0, "[]", 0,
     "without metrics.listen, /metrics on listen answers these address blocks only ([]: "
     "loopback); others get 403"},
    {"metrics", "drain_from", T_CIDR_LIST, C(metrics.drain_from), 0, 0, "[]", 0,
     "address blocks POST /drain is taken from ([]: loopback only, the pod's own preStop hook)"},
    {"metrics", "drain_token", T_STRING, C(metrics.drain_token), 0, 0, NULL, 0,
     "POST /drain with 'Authorization: Bearer <token>' is taken from anywhere; ${file:PATH}"},
    {"", "limits", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "protection against bad clients"},
    {"limits", "max_connections", T_UINT, C(limits.max_connections), 1, 10000000, "10000", 0,
     "connections on listen (streams included); past it new ones wait in the listen backlog"},
    {"limits", "max_header_size", T_SIZE, C(limits.max_header_size), 1 * KiB, 1 * MiB, "16KiB", 0,
     "request line plus headers; larger: 431"},
    {"limits", "max_headers", T_UINT, C(limits.max_headers), 1, 1000, "100", 0,
     "header fields per request; more: 431"},
    {"limits", "max_body_size", T_SIZE, C(limits.max_body_size), 0, 1024 * GiB, "10MiB", 0,
     "request body; larger: 413"},
    {"limits", "header_timeout", T_DURATION, C(limits.header_timeout_ms), 100, HOUR, "10s", 0,
     "a request head must arrive within this (slowloris): 408"},
    {"limits", "body_timeout", T_DURATION, C(limits.body_timeout_ms), 100, HOUR, "60s", 0,
     "a request body stalling this long between reads: 408 (nginx's client_body_timeout)"},
    {"limits", "idle_timeout", T_DURATION, C(limits.idle_timeout_ms), 100, 24 * HOUR, "75s", 0,
     "keep-alive connections idle this long are closed"},
    {"limits", "proxy_buffer_size", T_SIZE, C(limits.proxy_buffer_size), 4 * KiB, 64 * MiB,
     "256KiB", 0, "unsent bytes per proxied transfer before the other side is paused"},
    {"limits", "subscriber_max_unsent", T_SIZE, C(limits.subscriber_max_unsent), 4 * KiB, 1 * GiB,
     "1MiB", 0, "a subscriber this far behind is disconnected (it resumes by id)"},
    {"limits", "max_connection_age", T_DURATION, C(limits.max_connection_age_ms), 0, 30 * 24 * HOUR,
     "0s", 0,
     "streams and keep-alive connections older than this (less up to a tenth) are ended as a "
     "drain ends them, so load spreads to new pods (0: never)"},
    {"limits", "max_channels_per_connection", T_UINT, C(limits.max_channels_per_connection), 1, 255,
     "16", 0, "channels one subscription may name (comma-separated)"},
    {"", "presence", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "who is subscribed (presence routes)"},
    {"presence", "leave_grace", T_DURATION, C(presence.leave_grace_ms), 0, HOUR, "5s", 0,
     "a member whose last connection closed leaves after this (a reconnect within it: no flap)"},
    {"presence", "max_members", T_UINT, C(presence.max_members), 1, 10000000, "10000", 0,
     "members listed per channel (beyond it, members are counted, not listed)"},
    {"presence", "announce_limit", T_UINT, C(presence.announce_limit), 0, 10000000, "1000", 0,
     "joins and leaves are told to subscribers while the channel has at most this many members"},
    {"", "webhooks", T_SECTION, C(webhooks.enabled), 0, 0, NULL, 0,
     "optional: tell the backend about occupancy and presence (Pusher-shaped, signed)"},
    {"webhooks", "url", T_STRING, C(webhooks.url), 0, 0, NULL, F_REQUIRED,
     "backend path (or absolute URL) events are POSTed to"},
    {"webhooks", "secret", T_STRING, C(webhooks.secret), 0, 0, NULL, 0,
     "Standard Webhooks signing secret (whsec_… base64); unset: unsigned"},
    {"webhooks", "batch", T_DURATION, C(webhooks.batch_ms), 0, 60 * SEC, "250ms", 0,
     "events within this window go in one POST"},
    {"webhooks", "vacated_grace", T_DURATION, C(webhooks.vacated_grace_ms), 0, HOUR, "5s", 0,
     "a channel's last subscriber leaving is told after this plus presence.leave_grace"},
    {"webhooks", "max_queue", T_UINT, C(webhooks.max_queue), 1, 10000000, "10000", 0,
     "events waiting for the backend; beyond it new ones are dropped and counted"},
    {"webhooks", "max_backoff", T_DURATION, C(webhooks.max_backoff_ms), 100, HOUR, "30s", 0,
     "ceiling of the retry backoff after a failed POST (starts at 500ms, doubles, jitter)"},
    {"webhooks", "max_attempts", T_UINT, C(webhooks.max_attempts), 1, 1000, "12", 0,
     "POSTs of one batch (each signed anew); then it is given up and counted"},
    {"webhooks", "events", T_EVENT_LIST, C(webhooks.events), 0, 0, "[]", 0,
     "events sent: channel_occupied, channel_vacated, member_added, member_removed ([]: all)"},
    {"", "log", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "JSON lines on stdout"},
    {"log", "level", T_LOG_LEVEL, C(log.level), 0, 0, "info", 0, "error, warn, info or debug"},
    {"log", "access", T_BOOL, C(log.access), 0, 0, "false", 0,
     "one line per answered request (at info level)"},
    {"", "redis", T_SECTION, C(redis.enabled), 0, 0, NULL, 0,
     "optional: Redis as the shared engine of several replicas (fan-out, history, ids)"},
    {"redis", "url", T_STRING, C(redis.url), 0, 0, "redis://127.0.0.1:6379", 0,
     "host:port or redis://[[user]:password@]host[:port][/db]"},
    {"redis", "username", T_STRING, C(redis.username), 0, 0, NULL, 0,
     "ACL user for AUTH (Redis 6+); default: the URL's, else none"},
    {"redis", "password", T_STRING, C(redis.password), 0, 0, NULL, 0,
     "AUTH password; use ${VAR} to take it from the environment"},
    {"redis", "database", T_UINT, C(redis.database), 0, 1000, "0", 0,
     "SELECTed database (a /db in the URL wins)"},
    {"redis", "key_prefix", T_STRING, C(redis.key_prefix), 0, 0, "sidepush:", 0,
     "prefix of every key and pub/sub channel, so deployments can share a Redis"},
    {"redis", "connect_timeout", T_DURATION, C(redis.connect_timeout_ms), 10, HOUR, "2s", 0,
     "resolve, connect and authenticate within this, else retry"},
    {"redis", "timeout", T_DURATION, C(redis.timeout_ms), 10, HOUR, "5s", 0,
     "a command unanswered this long: the connection is dropped and remade"},
    {"redis", "reconnect_max", T_DURATION, C(redis.reconnect_max_ms), 10, HOUR, "5s", 0,
     "ceiling of the reconnect backoff (which starts at 100ms, doubles, with jitter)"},
    {"redis", "subscribe_wait", T_DURATION, C(redis.subscribe_wait_ms), 10, HOUR, "10s", 0,
     "a new subscriber waits this long for Redis, then gets 503 (SSE: a retry hint)"},
    {"redis", "poll_lease", T_DURATION, C(redis.poll_lease_ms), 100, HOUR, "5s", 0,
     "one replica polls a poll route's channel under a lease this long; takeover after it"},
    {"redis", "replica_timeout", T_DURATION, C(redis.replica_timeout_ms), 300, HOUR, "10s", 0,
     "a replica silent this long (killed) has its members and occupancy removed by another"},
    {"redis", "required_for_ready", T_BOOL, C(redis.required_for_ready), 0, 0, "false", 0,
     "report not ready (readiness_path 503) while Redis is unreachable"},
    {"", "routes", T_ROUTES, NO_OFFSET, 0, 0, NULL, 0,
     "endpoints sidepush answers itself; the first match wins, the rest is proxied"},
};

static const struct key route_keys[] = {
    {"", "path", T_PATH, R(path), 0, 0, NULL, F_REQUIRED,
     "path template, {name} captures one segment, e.g. /events/{channel}"},
    {"", "subscribe", T_SECTION, R(has_subscribe), 0, 0, NULL, 0, "a subscription endpoint"},
    {"subscribe", "transports", T_TRANSPORTS, R(subscribe.transports), 0, 0,
     "[sse, websocket, longpoll]", 0, "which of sse, websocket, longpoll are offered"},
    {"subscribe", "channel", T_STRING, R(subscribe.channel), 0, 0, "{channel}", 0,
     "channel name(s) built from the path's captures; a,b subscribes to both"},
    {"subscribe", "start", T_START, R(subscribe.start), 0, 0, "newest", 0,
     "without a cursor: newest (only new messages) or oldest (history first)"},
    {"subscribe", "sse", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "Server-Sent Events"},
    {"subscribe.sse", "keepalive", T_DURATION, R(subscribe.sse.keepalive_ms), 1 * SEC, HOUR, "15s",
     0, "a comment line after this much silence, so proxies keep the stream"},
    {"subscribe.sse", "retry", T_DURATION, R(subscribe.sse.retry_ms), 0, HOUR, "3s", 0,
     "reconnect delay sent to the browser (retry:)"},
    {"subscribe", "longpoll", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "long-poll"},
    {"subscribe.longpoll", "timeout", T_DURATION, R(subscribe.longpoll.timeout_ms), 1 * SEC, HOUR,
     "55s", 0, "a held request is answered 204 after this"},
    {"subscribe.longpoll", "max_messages", T_UINT, R(subscribe.longpoll.max_messages), 1, 10000,
     "100", 0, "messages per response; the rest come with the next request"},
    {"subscribe", "websocket", T_SECTION, NO_OFFSET, 0, 0, NULL, 0, "WebSocket"},
    {"subscribe.websocket", "envelope", T_BOOL, R(subscribe.websocket.envelope), 0, 0, "false", 0,
     "send {\"id\",\"channel\",\"event\",\"data\"} instead of the bare data"},
    {"subscribe.websocket", "ping_interval", T_DURATION, R(subscribe.websocket.ping_interval_ms),
     1 * SEC, HOUR, "25s", 0, "server pings; no pong by the next one closes the connection"},
    {"subscribe.websocket", "heartbeat", T_OPT_STRING, R(subscribe.websocket.heartbeat), 0, 0,
     "ping", 0, "a client text message answered with \"pong\" (browsers cannot ping); \"\" off"},
    {"subscribe.websocket", "forward", T_STRING, R(subscribe.websocket.forward), 0, 0, NULL, 0,
     "backend path template client messages are POSTed to; unset: not forwarded"},
    {"subscribe.websocket", "max_message_size", T_SIZE, R(subscribe.websocket.max_message_size), 1,
     64 * MiB, "64KiB", 0, "larger client messages close with 1009"},
    {"subscribe", "presence", T_BOOL, R(subscribe.presence), 0, 0, "false", 0,
     "track members (user ids from authorize) and send sidepush-join/-leave/-members"},
    {"", "authorize", T_SECTION, R(has_authorize), 0, 0, NULL, 0,
     "ask the backend whether a client may subscribe"},
    {"authorize", "url", T_STRING, R(authorize.url), 0, 0, NULL, F_REQUIRED,
     "backend path template (or absolute URL) asked with GET; 2xx allows"},
    {"authorize", "cache", T_DURATION, R(authorize.cache_ms), 0, 24 * HOUR, "30s", 0,
     "answers (allow and deny) are reused this long per credentials and channels"},
    {"", "poll", T_SECTION, R(has_poll), 0, 0, NULL, 0, "a backend-polling endpoint"},
    {"poll", "url", T_STRING, R(poll.url), 0, 0, NULL, F_REQUIRED,
     "backend path template (or absolute URL) polled for changes"},
    {"poll", "interval", T_DURATION, R(poll.interval_ms), 100, 24 * HOUR, "2s", 0,
     "time between polls"},
    {"poll", "event", T_STRING, R(poll.event), 0, 0, "message", 0, "SSE event name of changes"},
    {"poll", "linger", T_DURATION, R(poll.linger_ms), 0, HOUR, "30s", 0,
     "keep polling this long after the last subscriber left"},
    {"poll", "initial", T_BOOL, R(poll.initial), 0, 0, "true", 0,
     "a new subscriber without a cursor gets the current state at once"},
    {"poll", "diff", T_BOOL, R(poll.diff), 0, 0, "false", 0,
     "send RFC 7396 merge patches between JSON bodies instead of whole bodies"},
    {"poll", "error_event", T_OPT_STRING, R(poll.error_event), 0, 0, "", 0,
     "event sent when the backend starts failing; \"\" sends none"},
    {"poll", "max_backoff", T_DURATION, R(poll.max_backoff_ms), 1 * SEC, 24 * HOUR, "60s", 0,
     "cap of the exponential backoff after errors"},
    {"poll", "per_client", T_BOOL, R(poll.per_client), 0, 0, "false", 0,
     "one poller per client credentials (forward_headers) instead of one shared"},
    {"poll", "forward_headers", T_STRING_LIST, R(poll.forward_headers), 0, 0, "[]", 0,
     "client headers sent with per-client polls, e.g. [Authorization, Cookie]"},
};

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
                                        "member_removed"};

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
                   "'%s' is not channel_occupied, channel_vacated, member_added or "
                   "member_removed",
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

    if (sp_config_parse_redis_url(url, &host, &port, &user, &password, &db, err, errlen) < 0)
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

    if (sp_config_parse_redis_url(c->redis.url, &host, &port, &user, &password, &db, err, errlen) <
        0)
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
    if (r->has_subscribe && r->subscribe.presence && !r->has_authorize)
        REPORT(w, node,
               "subscribe.presence needs authorize: members are the user ids its answers name");
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
        struct walker rw = {w->file, w->diags, route_keys, COUNT(route_keys), r, c};

        r->owner = c;
        r->line = item->line;
        r->col = item->col;
        apply_defaults(route_keys, COUNT(route_keys), r);
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

static void check_config(struct walker *w, const struct sp_ynode *root)
{
    struct sp_config *c = w->config;

    char err[256];
    if (c->redis.enabled && redis_url_apply(c, err, sizeof(err)) < 0)
        REPORT(w, root, "%s", err); /* the default URL; a bad given one was reported already */
    if (c->publish_auth.hmac_secret != NULL && !webhook_secret_valid(c->publish_auth.hmac_secret))
        REPORT(w, root, "publish.auth.hmac_secret must be base64 (optionally after whsec_)");
    if (c->webhooks.secret != NULL && !webhook_secret_valid(c->webhooks.secret))
        REPORT(w, root, "webhooks.secret must be base64 (optionally after whsec_)");

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

/* ---- Redis addresses -------------------------------------------------------- */

static int parse_port(const char *text, unsigned *port)
{
    char *end;
    unsigned long n = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || n == 0 || n > 65535)
        return -1;
    *port = (unsigned)n;
    return 0;
}

int sp_config_parse_redis_url(const char *text, char **host, unsigned *port, char **user,
                              char **password, long *db, char *err, size_t errlen)
{
    char *copy = strdup(text);
    char *rest, *at, *slash, *colon;

    *host = *user = *password = NULL;
    *port = 6379;
    *db = -1;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rest = copy;
    if (strncmp(rest, "redis://", 8) == 0) {
        rest += 8;
        slash = strchr(rest, '/');
        if (slash != NULL) {
            char *end;
            *slash = '\0';
            *db = slash[1] ? strtol(slash + 1, &end, 10) : -1;
            if (slash[1] &&
                (*end != '\0' || *db < 0 || *db > 1000 || slash[1] < '0' || slash[1] > '9'))
                goto bad;
        }
        at = strrchr(rest, '@');
        if (at != NULL) {
            *at = '\0';
            colon = strchr(rest, ':');
            if (colon != NULL) {
                *colon = '\0';
                *password = strdup(colon + 1);
            }
            if (rest[0] != '\0')
                *user = strdup(rest);
            rest = at + 1;
        }
    } else if (strstr(rest, "://") != NULL) {
        snprintf(err, errlen, "redis.url '%s': only redis:// URLs (TLS is not supported)", text);
        goto fail;
    }
    if (rest[0] == '[') { /* [v6]:port */
        char *close = strchr(rest, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            goto bad;
        *close = '\0';
        if (close[1] == ':' && parse_port(close + 2, port) < 0)
            goto bad;
        rest++;
    } else if ((colon = strrchr(rest, ':')) != NULL) {
        *colon = '\0';
        if (parse_port(colon + 1, port) < 0)
            goto bad;
    }
    if (rest[0] == '\0' || strpbrk(rest, " /@?#") != NULL)
        goto bad;
    *host = strdup(rest);
    if (*host == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    free(copy);
    return 0;
bad:
    snprintf(err, errlen,
             "redis.url '%s' must be host[:port] or redis://[[user]:password@]host[:port][/db]",
             text);
fail:
    free(*host);
    free(*user);
    free(*password);
    *host = *user = *password = NULL;
    free(copy);
    return -1;
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
    apply_defaults(config_keys, COUNT(config_keys), c);
    sp_yaml_load(file, text, len, env, env_ctx, &root, diags, &c->sources);
    struct walker w = {file, diags, config_keys, COUNT(config_keys), c, c};
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
        free_strings(route_keys, COUNT(route_keys), &config->routes[i]);
        sp_tmpl_free(config->routes[i].tmpl);
    }
    free(config->routes);
    free_strings(config_keys, COUNT(config_keys), config);
    free(config->redis.host);
    free(config->file);
    sp_sources_clear(&config->sources);
    free(config);
}

static void print_keys(FILE *out, const struct key *keys, size_t n, const char *indent)
{
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &keys[i];
        fprintf(out, "%s%s%s%s: %s%s  # %s\n", indent, k->section, k->section[0] ? "." : "",
                k->name, k->def ? k->def : "", (k->flags & F_REQUIRED) ? "(required)" : "", k->doc);
    }
}

void sp_config_print_reference(FILE *out)
{
    fprintf(out, "# top-level keys (section.key: default  # meaning)\n");
    print_keys(out, config_keys, COUNT(config_keys), "");
    fprintf(out, "# keys of each entry in routes:\n");
    print_keys(out, route_keys, COUNT(route_keys), "  ");
}
