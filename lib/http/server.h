/* HTTP/1.1 connections: head parsing, request bodies, keep-alive, pipelining
 * (one request at a time, answered in order), limits, and response framing.
 *
 * A handler receives each request with its connection and answers it with
 * sp_http_respond() or sp_http_begin()/sp_http_write()/sp_http_finish(). A
 * handler that answers later (the proxy) registers sp_http_ops so that it
 * hears about request body bytes, drained output and a vanished client.
 *
 * What a keep-alive connection carries from one request to the next: its
 * socket, its peer address and age, and the bytes the client already sent
 * after the request (its own next requests). Nothing else: the head, body,
 * handler ops and response state of a request end with its response. A
 * response that ends before its request body was read whole closes the
 * connection, so the rest of that body is never read as a request.
 */
#ifndef SP_HTTP_SERVER_H
#define SP_HTTP_SERVER_H

#include <event2/event.h>
#include <event2/util.h>
#include <stdint.h>

#include "core/log.h"
#include "http/parser.h"

struct evbuffer;
struct sp_http_server;
struct sp_http_conn;

struct sp_http_limits {
    uint64_t max_header_size;
    uint64_t max_headers;
    uint64_t max_body_size;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms; /* a request body stalling this long between reads: 408 */
    uint64_t idle_timeout_ms;
    uint64_t max_age_ms;    /* keep-alive: a connection this old closes after its answer */
    uint64_t output_buffer; /* unsent bytes before a producer is asked to pause */
    bool access_log;        /* a log line per response head */
};

typedef void (*sp_http_handler)(void *ctx, struct sp_http_conn *conn,
                                const struct sp_http_request *req);

/* Called with the handler's ctx; any may be NULL. After closed() the
 * connection is gone and must not be used. */
struct sp_http_ops {
    void (*body)(void *ctx);    /* more request body bytes, or its end */
    void (*drain)(void *ctx);   /* unsent output fell below the pause mark */
    void (*closed)(void *ctx);  /* client went away before the response ended */
    void (*expired)(void *ctx); /* the deadline of sp_http_expire_after passed */
};

struct sp_flusher;

/* flusher is the connection engine the server's connections run on (the
 * worker's, shared with the subscriptions it hands them to); it outlives
 * the server, and its gone callback hears every freed socket. */
struct sp_http_server *sp_http_server_new(struct event_base *base, struct sp_flusher *flusher,
                                          const struct sp_http_limits *limits,
                                          sp_http_handler handler, void *handler_ctx,
                                          const struct sp_log *log);
/* Closes every connection, then frees the server. Accepts NULL. */
void sp_http_server_free(struct sp_http_server *s);

/* Takes ownership of an accepted socket. Returns 0, or -1 (socket closed). */
int sp_http_server_adopt(struct sp_http_server *s, evutil_socket_t fd, const struct sockaddr *peer,
                         int peer_len);

/* Connections still the server's: not closed, not handed to a stream. */
size_t sp_http_server_connections(const struct sp_http_server *s);

/* New limits (a reload), for every connection from now on. */
void sp_http_server_set_limits(struct sp_http_server *s, const struct sp_http_limits *limits);

/* Shutting down: idle connections close now, busy ones after their current
 * response; no connection is kept alive from here on. */
void sp_http_server_drain(struct sp_http_server *s);

/* ---- per request --------------------------------------------------------------- */

void sp_http_set_ops(struct sp_http_conn *c, const struct sp_http_ops *ops, void *ctx);

/* Client address as text ("127.0.0.1", "::1"). */
const char *sp_http_peer(const struct sp_http_conn *c);

/* True if the request has body bytes to come (chunked, or a non-zero
 * Content-Length): such a connection cannot be detached. */
bool sp_http_has_body(const struct sp_http_conn *c);
enum sp_http_body_kind sp_http_body_kind(const struct sp_http_conn *c);
uint64_t sp_http_body_length(const struct sp_http_conn *c);
/* Decoded request body bytes received so far and not yet taken; the caller
 * drains what it uses, then calls sp_http_body_taken() to let more in. */
struct evbuffer *sp_http_body(struct sp_http_conn *c);
void sp_http_body_taken(struct sp_http_conn *c);
bool sp_http_body_complete(const struct sp_http_conn *c);

/* A whole response with Content-Length. content_type may be NULL. */
void sp_http_respond(struct sp_http_conn *c, int status, const char *content_type, const char *body,
                     size_t len);
/* {"error": message, "status": status} with the status's reason. */
void sp_http_respond_error(struct sp_http_conn *c, int status, const char *message);
/* 405 with the Allow header RFC 9110 §15.5.6 requires, e.g. "GET, HEAD". */
void sp_http_respond_not_allowed(struct sp_http_conn *c, const char *allow, const char *message);

/* Appends "name: value\r\n" to a response's header lines. Refuses a name
 * that is not a token and a value with a control byte (CR, LF, NUL...; HTAB
 * is fine): returns -1 and adds nothing, so no value a publisher, a backend
 * or a client supplied can split a response head. */
int sp_http_add_header(struct evbuffer *lines, const char *name, const char *value,
                       size_t value_len);

/* Starts a streamed response. header_lines holds "Name: value\r\n" lines
 * (no framing headers; may be NULL). content_length < 0 means unknown: the
 * body is sent chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0. */
void sp_http_begin(struct sp_http_conn *c, int status, const char *reason,
                   struct evbuffer *header_lines, int64_t content_length);
void sp_http_write(struct sp_http_conn *c, const void *data, size_t len);
/* Moves all of buf into the response body (no copy of reference chains). */
void sp_http_write_buffer(struct sp_http_conn *c, struct evbuffer *buf);
/* Ends the response; the connection then serves its next request. */
void sp_http_finish(struct sp_http_conn *c);
/* Ends the response by closing the connection (a broken stream). */
void sp_http_abort(struct sp_http_conn *c);
/* Bytes queued for the client and not yet sent. */
size_t sp_http_unsent(const struct sp_http_conn *c);

/* A held request's deadline (a long-poll's hold): ms from now, ops->expired
 * runs unless the response has begun. It reuses the connection's own timer
 * (idle while a request is handled), so holding costs no timer of its own. */
void sp_http_expire_after(struct sp_http_conn *c, uint64_t ms);

/* How a stream's body is framed once its head is out. */
enum sp_http_stream {
    SP_HTTP_STREAM_CHUNKED, /* HTTP/1.1: chunks (Transfer-Encoding: chunked) */
    SP_HTTP_STREAM_CLOSE,   /* HTTP/1.0: until the connection closes */
    SP_HTTP_STREAM_UPGRADE, /* 101: another protocol follows */
};

struct sp_stream;

/* Answers with the head of a response whose body outlives the HTTP
 * exchange (SSE, GRIP streams) or switches protocols (WebSocket), and hands
 * the connection's stream over: the status line (reason NULL: the standard
 * one), headers (CRLF-ended lines, or NULL) and the framing header the
 * request's version allows are queued on it, behind output still due (an
 * earlier pipelined answer). Bytes read past the request head move to in
 * (may be NULL). upgrade: a 101 (headers carry Upgrade and Connection).
 * *framing says how the body must be framed from here on. Only for a
 * request with no body, from its handler, before a response began.
 *
 * Returns the stream, which the caller owns from now on and must give its
 * ops at once (sp_stream_set_ops) or end; c is gone. Returns NULL with
 * nothing sent (the caller still answers on c). */
struct sp_stream *sp_http_begin_stream(struct sp_http_conn *c, int status, const char *reason,
                                       struct evbuffer *headers, bool upgrade, struct evbuffer *in,
                                       enum sp_http_stream *framing);

/* Framing of a chunked body, for renderings made once and shared by many
 * streams (channel/msg.c). */
#define SP_HTTP_CHUNK_HEAD_MAX 24
/* Writes "<hex len>\r\n" into buf; returns its length. */
size_t sp_http_chunk_head(char buf[SP_HTTP_CHUNK_HEAD_MAX], size_t len);
#define SP_HTTP_CHUNK_TAIL "\r\n"

/* A piece of a stream's body, framed as sp_http_begin_stream said: one
 * chunk when chunked (nothing for an empty piece, which would end the
 * body), as it is otherwise. Returns 0, or -1 past the stream's limit. */
int sp_http_stream_write(struct sp_stream *out, enum sp_http_stream framing, const void *data,
                         size_t len);
/* The end of a stream's body: the last chunk when chunked, then the stream
 * ends once written (sp_stream_end). */
void sp_http_stream_end(struct sp_stream *out, enum sp_http_stream framing);
bool sp_http_response_started(const struct sp_http_conn *c);

/* The request being answered (valid until the response ends). */
const struct sp_http_request *sp_http_request(const struct sp_http_conn *c);

#endif
