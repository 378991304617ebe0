/* sidepush's configuration: typed, validated, every default in one table.
 *
 * sp_config_load() is the single path used by --check-config, start-up and
 * every reload (SIGHUP, a changed file): it either returns a fully valid
 * configuration or none.
 */
#ifndef SP_CONFIG_CONFIG_H
#define SP_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/yaml_tree.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/template.h"
#include "core/units.h"

enum sp_transport {
    SP_TRANSPORT_SSE = 1 << 0,
    SP_TRANSPORT_WEBSOCKET = 1 << 1,
    SP_TRANSPORT_LONGPOLL = 1 << 2,
};

enum sp_start {
    SP_START_NEWEST = 0, /* a client without a cursor gets only new messages */
    SP_START_OLDEST,     /* ... or the channel's whole history first */
};

struct sp_strlist {
    char **items;
    size_t count;
};

/* A route's subscribe.token. */
struct sp_token_config {
    bool enabled;
    char *secret;      /* HS256, or NULL */
    char *public_keys; /* PEM text, or NULL */
    char *jwks_url;    /* or NULL */
    uint64_t jwks_refresh_ms;
    char *issuer, *audience; /* or NULL: not checked */
    uint64_t leeway_ms;
    char *query, *cookie; /* "" off */
    char *channels_claim, *info_claim;
    struct sp_jwt_keys *keys; /* from secret and public_keys, made at load */
};

/* A route's subscribe.channels value that was not given. */
#define SP_UNSET UINT64_MAX

/* What a channel keeps and takes: the channels section, or a route's
 * subscribe.channels over it. */
struct sp_channel_options {
    uint64_t history;
    uint64_t history_ttl_ms;
    uint64_t max_message_size;
    bool last_value; /* keeps its newest message only, which a new subscriber gets first */
};

struct sp_route_config {
    const struct sp_config *owner; /* what to hold while keeping this route */
    char *path;
    struct sp_tmpl *tmpl; /* compiled path */
    unsigned line, col;
    bool has_subscribe;
    bool has_poll;
    bool has_authorize;
    struct {
        char *url; /* backend path template or absolute URL */
        uint64_t cache_ms;
    } authorize;
    struct {
        unsigned transports; /* enum sp_transport bits */
        char *channel;
        enum sp_start start;
        bool patterns; /* names ending in .* :* -* subscribe to every channel under them */
        struct {
            bool set;
            uint64_t history, history_ttl_ms,
                max_message_size; /* SP_UNSET: the channels section's */
            bool last_value;      /* mode: last_value */
        } channels;
        bool presence;
        struct sp_token_config token;
        struct {
            uint64_t keepalive_ms;
            uint64_t retry_ms;
        } sse;
        struct {
            uint64_t timeout_ms;
            uint64_t max_messages;
        } longpoll;
        struct {
            bool envelope;
            uint64_t ping_interval_ms;
            char *heartbeat; /* "" disables */
            char *forward;   /* NULL: client messages are not forwarded */
            uint64_t max_message_size;
            bool compression;              /* permessage-deflate when the client offers it */
            uint64_t compression_min_size; /* smaller messages go uncompressed */
        } websocket;
    } subscribe;
    struct {
        char *url;
        uint64_t interval_ms;
        char *event;
        uint64_t linger_ms;
        bool initial;
        bool diff;
        char *error_event; /* "" for none */
        uint64_t max_backoff_ms;
        bool per_client;
        struct sp_strlist forward_headers;
    } poll;
};

struct sp_config {
    atomic_uint refs; /* sp_config_hold, sp_config_release */
    char *file;
    struct sp_sources sources; /* the files read for ${file:}, to watch with file */
    struct sp_address listen;
    struct sp_address publish_listen;
    uint64_t shutdown_grace_ms;
    bool watch_config;
    uint64_t workers; /* 0: auto */
    struct {
        char *url;
        uint64_t connect_timeout_ms;
        uint64_t timeout_ms;
        bool preserve_host;
        uint64_t keepalive; /* idle connections kept per worker */
        uint64_t keepalive_timeout_ms;
        uint64_t keepalive_requests;       /* 0: no limit */
        uint64_t body_timeout_ms;          /* 0: none */
        uint64_t tunnel_idle_timeout_ms;   /* 0: none */
        uint64_t request_buffer;           /* bodies up to this are read whole first */
        struct sp_strlist trusted_proxies; /* address blocks */
    } backend;
    struct {
        char *bearer_token;
        char *hmac_secret;
        uint64_t timestamp_tolerance_ms;
    } publish_auth;
    struct {
        uint64_t max_body_size;
        uint64_t max_connections; /* publish_listen's own cap */
    } publish;
    struct {
        struct sp_strlist allow_origins;
        bool allow_credentials;
        uint64_t max_age_ms;
    } cors;
    struct {
        uint64_t history;
        uint64_t history_ttl_ms;
        uint64_t max_message_size;
    } channels;
    struct {
        char *liveness_path;
        char *readiness_path;
    } health;
    struct {
        uint64_t leave_grace_ms;
        uint64_t max_members;
        uint64_t announce_limit;
    } presence;
    struct {
        bool enabled;
        char *url;
        char *secret;
        uint64_t batch_ms;
        uint64_t vacated_grace_ms;
        uint64_t max_queue;
        uint64_t max_backoff_ms;
        uint64_t max_attempts;    /* per batch, then given up */
        struct sp_strlist events; /* names sent; empty: all but client_event */
        bool pusher_signature;    /* X-Pusher-Key and X-Pusher-Signature too */
    } webhooks;
    struct {
        char *path;
        bool has_listen;
        struct sp_address listen;     /* optional admin listener */
        uint64_t max_connections;     /* its own cap */
        struct sp_strlist drain_from; /* address blocks; empty: loopback */
        struct sp_strlist allow_from; /* metrics on listen: address blocks; empty: loopback */
        char *drain_token;
    } metrics;
    struct {
        uint64_t max_connections;
        uint64_t max_header_size;
        uint64_t max_headers;
        uint64_t max_body_size;
        uint64_t header_timeout_ms;
        uint64_t body_timeout_ms; /* between request body reads */
        uint64_t idle_timeout_ms;
        uint64_t proxy_buffer_size;
        uint64_t subscriber_max_unsent;
        uint64_t max_channels_per_connection;
        uint64_t max_connection_age_ms;    /* 0: none */
        uint64_t max_connections_per_user; /* 0: no cap */
    } limits;
    struct {
        enum sp_log_level level;
        bool access;
    } log;
    struct {
        bool enabled; /* the section is present: publishes and history go through Redis */
        char *url;    /* as written */
        char *host;   /* parsed from url */
        unsigned port;
        char *username;
        char *password; /* redis.password, else the URL's */
        uint64_t database;
        char *key_prefix;
        uint64_t connect_timeout_ms;
        uint64_t timeout_ms;
        uint64_t reconnect_max_ms;
        uint64_t subscribe_wait_ms;
        uint64_t poll_lease_ms;
        uint64_t replica_timeout_ms;
        bool required_for_ready;
        bool tls;                    /* a rediss:// url */
        struct sp_strlist sentinels; /* host[:port] of each; empty: url names the server */
        char *sentinel_master;
        char *sentinel_password;
        uint64_t wait_replicas; /* WAIT for this many replicas before a publish's 202 */
        uint64_t wait_timeout_ms;
        struct {
            bool set; /* the redis.tls section */
            char *ca_file, *cert_file, *key_file, *server_name;
            bool verify_hostname;
        } tls_files;
    } redis;
    struct {
        bool enabled; /* the section is present: the Pusher Channels protocol is spoken */
        char *app_id;
        char *key;
        char *secret;
        uint64_t activity_timeout_ms;
        uint64_t pong_timeout_ms;
        uint64_t max_event_size;
        bool compression;              /* permessage-deflate when the client offers it */
        uint64_t compression_min_size; /* smaller messages go uncompressed */
        uint64_t max_channels_per_event;
        uint64_t max_batch_events;
        uint64_t max_channels_per_connection;
        uint64_t timestamp_tolerance_ms;
        uint64_t max_presence_members;
        uint64_t max_user_info;
        uint64_t max_connections;
        uint64_t cache_ttl_ms;
        bool client_events;
        bool subscription_count;
        uint64_t client_event_rate;
    } pusher;
    struct sp_route_config *routes;
    size_t nroutes;
};

/* Loads and validates a configuration from text (len bytes). file names it
 * in diagnostics. Returns 0 and *out (one reference, the caller's: see
 * sp_config_release), or -1 after
 * appending one "FILE:LINE:COL: message" per problem to diags. env may be
 * NULL to use the process environment. */
int sp_config_parse(const char *file, const char *text, size_t len, sp_env_lookup env,
                    void *env_ctx, struct sp_config **out, struct sp_diags *diags);

/* Reads path and calls sp_config_parse(). */
int sp_config_load(const char *path, struct sp_config **out, struct sp_diags *diags);

/* The options of the channels route r owns (its subscribe.channels over the
 * channels section; a poll route's: the section's). */
struct sp_channel_options sp_route_channels(const struct sp_config *c,
                                            const struct sp_route_config *r);
/* Calls warn with a message (and the position of the later route) for
 * each subscribe route with its own subscribe.channels whose channel
 * template can make a name an earlier route's (with other options) makes
 * too: a name belongs to the first route whose template makes it, so those
 * options would not apply to it. Returns the count. */
size_t sp_config_channel_overlaps(const struct sp_config *c,
                                  void (*warn)(void *ctx, const char *text), void *ctx);

/* A configuration is shared by reference, across threads: whatever keeps
 * a pointer into one past the loop turn it got it in (a worker, a poller, a
 * WebSocket subscriber, a mail in flight) holds it, and a reload frees the
 * configuration it replaced once the last of them let go (relayd's
 * config_purge, by counting). Returns config. */
const struct sp_config *sp_config_hold(const struct sp_config *config);
/* Drops one reference; the last frees the configuration. Accepts NULL. */
void sp_config_release(const struct sp_config *config);

/* Parses a Redis address: "host", "host:port", "[v6]:port" or
 * "redis[s]://[[user]:password@]host[:port][/db]". Fills the malloc'd
 * *host (and *user, *password when given, else NULL), *port (default 6379),
 * *db (-1 when the URL names none) and *tls (rediss://). Returns 0, or -1
 * with err. */
int sp_config_parse_redis_url(const char *text, char **host, unsigned *port, char **user,
                              char **password, long *db, bool *tls, char *err, size_t errlen);

/* Writes every key with its type and default, as YAML comments (--help-config). */
void sp_config_print_reference(FILE *out);

#endif
