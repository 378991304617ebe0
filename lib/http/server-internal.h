/* The HTTP server's connection, shared by its two files: server.c (request
 * heads and bodies, timers, keep-alive, deferred free) and response.c (every
 * form of answer). The socket, its reading and its writes are the
 * connection engine's (net/stream.h). http/ only. */
#ifndef SP_HTTP_SERVER_INTERNAL_H
#define SP_HTTP_SERVER_INTERNAL_H

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <sys/queue.h>

#include "http/server.h"

enum conn_state {
    ST_HEAD,    /* waiting for a request head */
    ST_BODY,    /* request dispatched, body still arriving */
    ST_HANDLED, /* request body complete, response under way */
};

/* What a connection's input may hold past a head's worth before reading
 * pauses. */
#define READ_CHUNK 4096

/* No bufferevent: a connection is a stream of the worker's connection
 * engine (the socket, one read event, the output and its end-of-turn
 * write), the input and the request under way. A held long-poll then costs
 * no more than it must, and a read is one recv(), without the FIONREAD
 * ioctl evbuffer_read() adds to each. */
struct sp_http_conn {
    struct sp_http_server *server;
    struct sp_stream *stream; /* NULL once closed or handed over */
    struct evbuffer *in;      /* from the first bytes; NULL while a request is held */
    bool eof;                 /* the client half-closed: never read again */
    uint64_t retire_ms;       /* limits.max_age_ms: the answer after this closes the connection */
    struct event timer;       /* header deadline or keep-alive idle limit */
    LIST_ENTRY(sp_http_conn) link;
    enum conn_state state;
    bool dead; /* freed at the end of this loop turn */
    bool response_begun;
    bool response_chunked;
    bool response_no_body; /* HEAD, 1xx, 204, 304 */
    bool close_after;      /* no keep-alive after this response */
    bool response_done;
    bool body_paused; /* stopped reading while the handler catches up */
    bool head_clock;  /* the header deadline is running for this head */

    /* The current request: head bytes copied out of the input buffer, and the
     * header array, live in one allocation freed when the exchange ends. */
    char *head;
    struct sp_http_request req;
    enum sp_http_body_kind body_kind;
    uint64_t body_length;
    uint64_t body_left; /* Content-Length bytes still to come */
    uint64_t body_seen;
    bool body_done;
    struct sp_chunked chunked;
    struct evbuffer *body;

    const struct sp_http_ops *ops;
    void *ops_ctx;
    char peer[INET6_ADDRSTRLEN];
};

LIST_HEAD(conn_list, sp_http_conn);

struct sp_http_server {
    struct event_base *base;
    struct sp_http_limits limits;
    struct sp_flusher *flusher; /* the worker's connection engine */
    sp_http_handler handler;
    void *handler_ctx;
    const struct sp_log *log;
    const struct timeval *header_timeout; /* libevent common timeouts */
    const struct timeval *body_timeout;
    const struct timeval *idle_timeout;
    struct conn_list live;
    struct conn_list dead;
    struct event *reaper;
    size_t count; /* live: not closed, not handed over */
    bool draining;
};

static inline size_t input_length(const struct sp_http_conn *c)
{
    return c->in ? evbuffer_get_length(c->in) : 0;
}

/* The output buffer, c's stream joining the end-of-turn writes. */
struct evbuffer *http_conn_out(struct sp_http_conn *c);
/* Closes now (the handler hears closed()); freed at the end of the turn. */
void http_conn_close(struct sp_http_conn *c);
/* Hands c's stream over (a subscription takes it) and retires c. */
struct sp_stream *http_conn_release(struct sp_http_conn *c);
/* The response's last byte is queued: keep-alive or close. */
void http_response_complete(struct sp_http_conn *c);

#endif
