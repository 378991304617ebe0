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
#include "http/parser.h"
#include "http/server.h"

/* A hook on the backend's final response heads, for a protocol that takes
 * a response over (GRIP: push/grip_head.c). Headers whose names start
 * with header_prefix are the hook's, never the client's; head() says
 * whether to hold the response, and a held response's body then goes to
 * body() and, once complete, the client to done() instead of through. */
struct sp_proxy_hook {
    const char *header_prefix;
    /* NULL: pass the response through. Else the hold (resp is valid during
     * the call only). */
    void *(*head)(void *ctx, const struct sp_http_response *resp);
    /* Body bytes of a held response, moved out of data. */
    void (*body)(void *hold, struct evbuffer *data);
    /* The response is complete: the hook answers conn (lines: the client's
     * header lines, without the hook's and the framing) and frees hold. */
    void (*done)(void *hold, struct sp_http_conn *conn, int status, const char *reason,
                 struct evbuffer *lines);
    /* The exchange ended otherwise (an error, the client left): frees hold. */
    void (*cancel)(void *hold);
};

struct sp_proxy_options {
    const struct sp_proxy_hook *hook; /* or NULL: every response passes through */
    void *hook_ctx;
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
