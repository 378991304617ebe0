/* The upstream HTTP/1.1 client: sidepush's own connections to the backend,
 * on libevent bufferevents, read with the project's strict parser: the
 * reverse proxy's transport (lib/http/README.md).
 *
 * A pool belongs to one worker's loop and keeps idle keep-alive connections
 * to one backend (TCP or a Unix socket). An exchange sends a request head
 * (and the body the caller streams after it), reads the response head,
 * checks its framing, and hands the body over decoded from whatever framing
 * it came in (Content-Length, chunked with trailers dropped, or until
 * close). A pooled connection that turns out closed before any byte of the
 * answer is retried once on a fresh one when that is safe: an idempotent
 * request without a body, sent again whole.
 *
 * What survives from one exchange (one user) to the next on a pooled
 * connection: the socket and its request count, nothing else. A
 * connection goes back to the pool only when its request was written
 * completely (head and every body byte the caller announced), its response
 * was read completely by its framing with no byte past it, the response
 * announced no body it did not send (HEAD, 204 and 304 with a length or
 * chunked), and neither side asked to close; a 1xx other than 101 is
 * interim and never ends an exchange. An idle connection on which any byte
 * or an EOF arrives (a late body, a close) is closed, and an exchange takes
 * its connection only after the loop turn's other callbacks ran, so one on
 * which the turn's poll saw such a byte is closed by then, at no syscall of
 * its own (a peek per request cost 7 % of the proxy's throughput).
 */
#ifndef SP_HTTP_UPSTREAM_H
#define SP_HTTP_UPSTREAM_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/units.h"
#include "http/parser.h"

struct sp_upstream_options {
    struct sp_address address; /* TCP; ignored when unix_path is set */
    const char *unix_path;     /* a Unix socket, or NULL (copied) */
    size_t max_idle;           /* idle connections kept (0: none, every exchange connects) */
    uint64_t idle_timeout_ms;  /* an idle connection is closed after this */
    uint64_t max_requests;     /* per connection, then it is closed (0: no limit) */
    uint64_t connect_timeout_ms;
    uint64_t head_timeout_ms; /* request written to response head */
    uint64_t body_timeout_ms; /* between response body bytes (0: none) */
    size_t max_head_size;
    size_t max_headers;
};

struct sp_upstream_pool;
struct sp_upstream;

/* NULL on allocation failure. */
struct sp_upstream_pool *sp_upstream_pool_new(struct event_base *base,
                                              const struct sp_upstream_options *opts);
/* Closes the idle connections; exchanges still running finish on their
 * own connections (which then close), and the pool goes with the last of
 * them (a reload replaces a pool this way). Accepts NULL. */
void sp_upstream_pool_free(struct sp_upstream_pool *pool);

struct sp_upstream_stats {
    uint64_t connects;      /* connections opened */
    uint64_t reuses;        /* exchanges on a pooled connection */
    uint64_t retries;       /* on a fresh connection after a pooled one closed */
    uint64_t idle;          /* connections idle now */
    uint64_t bad_responses; /* refused as malformed or ambiguous */
    uint64_t stale;         /* idle connections closed on a stray byte or the backend's EOF */
    uint64_t unpooled;      /* closed after an answer because reuse was not safe */
};
const struct sp_upstream_stats *sp_upstream_pool_stats(const struct sp_upstream_pool *pool);

/* What happens to an exchange, in order: head once, body any number of
 * times, then done; or error instead, at any point (nothing after it). The
 * exchange is gone after done or error: never use it then. No op may
 * cancel its own exchange (return, and cancel from elsewhere). */
struct sp_upstream_ops {
    /* resp (its slices valid during the call) with the body's framing. */
    void (*head)(void *ctx, const struct sp_http_response *resp, enum sp_http_body_kind kind,
                 uint64_t length);
    /* Body bytes, decoded; take what you keep (the buffer is emptied after). */
    void (*body)(void *ctx, struct evbuffer *data);
    void (*done)(void *ctx);
    /* status: 502 (unreachable, closed, malformed) or 504 (a timeout);
     * bad_response: the backend answered something malformed or ambiguous. */
    void (*error)(void *ctx, int status, bool bad_response, const char *why);
    /* The request body written so far was sent: more may be written. May be NULL. */
    void (*drained)(void *ctx);
    /* For an upgrade request, after head() with a 101: the connection is
     * the caller's now (bufferevent_free it), its input holding whatever
     * the backend sent past the head. The exchange is gone (no done). */
    void (*upgraded)(void *ctx, struct bufferevent *bev);
};

/* Starts an exchange: request_head is the whole head ("GET / HTTP/1.1\r\n
 * ...\r\n\r\n"), moved out of the caller's buffer; flags as above. It takes
 * a connection (and sends) at the end of this loop turn's callbacks; body
 * written before waits with it. NULL on allocation failure (ops are never
 * called then); a connection that cannot be made is an error() later. */
enum sp_upstream_flags {
    SP_UPSTREAM_RETRY_SAFE = 1, /* may be sent twice: an idempotent method without a body */
    SP_UPSTREAM_HEAD = 2,       /* a HEAD: its answer has no body */
    SP_UPSTREAM_UPGRADE = 4,    /* asks to switch protocols: a 101 goes to ops->upgraded */
    SP_UPSTREAM_BODY = 8,       /* a body follows: the request ends with sp_upstream_write(last) */
};

struct sp_upstream *sp_upstream_start(struct sp_upstream_pool *pool, struct evbuffer *request_head,
                                      unsigned flags, const struct sp_upstream_ops *ops, void *ctx);

/* Request body bytes (moved out of data), framed as the head announced;
 * last: they end the body. Until the last byte is written the connection
 * cannot be pooled, whatever the backend answered. An upload in progress
 * restarts the head timeout. Returns the bytes still unsent. */
size_t sp_upstream_write(struct sp_upstream *u, struct evbuffer *data, bool last);

/* The request bytes written and not yet sent: a caller writes more only
 * while this is under its bound, so a backend that stops reading holds the
 * client back instead of filling memory. */
size_t sp_upstream_unsent(const struct sp_upstream *u);

/* Stops (true) or resumes reading the response body: the caller's own
 * output is full. The body timeout does not run while paused (the client
 * is slow, not the backend). */
void sp_upstream_pause(struct sp_upstream *u, bool paused);

/* Drops the exchange; its connection is closed (its state is unknown).
 * No op is called after. */
void sp_upstream_cancel(struct sp_upstream *u);

#endif
