/* The reverse proxy: every request no route claims is streamed to the
 * backend over sidepush's own HTTP/1.1 client (http/upstream.h, a pool per
 * worker) and the answer streamed back, in both directions with
 * backpressure, so neither body is ever held whole in memory.
 */
#ifndef SP_HTTP_PROXY_H
#define SP_HTTP_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/log.h"
#include "http/server.h"

/* A proxied response that asks sidepush to hold the client (GRIP,
 * Pushpin's protocol): Grip-Hold, Grip-Channel, Grip-Timeout,
 * Grip-Keep-Alive. Valid during the handler call only. */
struct sp_grip_hold {
    bool stream;          /* Grip-Hold: stream; else response */
    const char *channels; /* "a,b": Grip-Channel names (their parameters ignored) */
    int status;
    const char *reason;
    struct evbuffer *headers; /* "Name: value\r\n" lines, without Grip-* and framing */
    struct evbuffer *body;
    uint64_t timeout_ms;   /* Grip-Timeout */
    const char *keepalive; /* Grip-Keep-Alive data, decoded; NULL if none */
    size_t keepalive_len;
    uint64_t keepalive_ms;
};

typedef void (*sp_grip_handler)(void *ctx, struct sp_http_conn *conn,
                                const struct sp_grip_hold *hold);

struct sp_proxy_options {
    sp_grip_handler grip; /* NULL: Grip-Hold responses pass through as they are */
    void *grip_ctx;
    const char *backend_url; /* base; the request target is appended */
    uint64_t connect_timeout_ms;
    uint64_t response_timeout_ms; /* no response head by then: 504 */
    bool preserve_host;
    uint64_t buffer_size; /* unsent bytes either way before pausing the producer */
    uint64_t keepalive;   /* idle backend connections kept (the pool) */
    uint64_t keepalive_timeout_ms;
    uint64_t keepalive_requests; /* per connection; 0: no limit */
    uint64_t body_timeout_ms;    /* between response body bytes; 0: none */
    uint64_t tunnel_idle_ms;     /* an upgraded connection idle this long is closed; 0: never */
    uint64_t request_buffer;     /* bodies up to this are read whole before the backend is asked */
    const char *const *trusted_proxies; /* address blocks whose X-Forwarded-Proto is kept */
    size_t ntrusted_proxies;
    void (*tunnel_gone)(void *ctx); /* a tunnel ended (connection caps); may be NULL */
    void *tunnel_gone_ctx;
};

struct sp_proxy;

#include "metrics/metrics.h"

struct sp_proxy_stats {
    uint64_t by_class[6];        /* [1..5]: responses by status class; [0]: failures (502/504) */
    struct sp_histogram latency; /* request start to response complete */
    /* The upstream pool: connections opened, requests on a kept one, retries
     * after a kept one was found closed, answers refused as malformed */
    uint64_t upstream_connects, upstream_reuses, upstream_retries, upstream_bad;
    /* kept connections closed when taken (stray bytes, EOF), and answers after
     * which a connection was not kept because reuse was not safe */
    uint64_t upstream_stale, upstream_unpooled;
    /* Upgraded connections tunnelled to the backend */
    uint64_t tunnels_open, tunnels_opened;
    uint64_t tunnel_bytes_to_backend, tunnel_bytes_to_client;
};
/* The proxy's figures now, copied into *out. */
void sp_proxy_stats(const struct sp_proxy *p, struct sp_proxy_stats *out);
/* Upgraded connections open now (they count against the connection cap). */
size_t sp_proxy_tunnels(struct sp_proxy *p);

/* Copies opts; resolves opts->backend_url (http:// or unix:). Returns NULL
 * on allocation failure or an unusable URL. */
struct sp_proxy *sp_proxy_new(struct event_base *base, const struct sp_proxy_options *opts,
                              const struct sp_log *log);
/* Can backend_url be proxied to: an http:// URL whose host resolves now, or
 * unix:? Returns 0, or -1 with the reason in err. Nothing is kept. */
int sp_proxy_check_backend(const char *backend_url, char *err, size_t errlen);

/* New options (a reload) for the requests that start from now on. Returns
 * 0, or -1 (the old ones stay, whole: nothing of the new is applied). */
int sp_proxy_reconfigure(struct sp_proxy *p, const struct sp_proxy_options *opts);

/* Transfers in flight must have ended (their connections closed) first. */
void sp_proxy_free(struct sp_proxy *p);

/* Forwards req; answers conn when the backend does (or 502/504). */
void sp_proxy_handle(struct sp_proxy *p, struct sp_http_conn *conn,
                     const struct sp_http_request *req);

/* True for headers that describe one connection, not the message (RFC 9110
 * §7.6.1), and so are never forwarded. */
bool sp_proxy_is_hop_header(struct sp_slice name);

/* True for the names sidepush itself sends the backend (Sidepush-*,
 * X-Original-URI), which a client's request never carries through. */
bool sp_proxy_is_own_header(struct sp_slice name);

#endif
