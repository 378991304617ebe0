/* The connection engine: every client socket of a worker, from its first
 * request head to its last subscription message. A stream is a socket, a
 * read event, and an output buffer that is written in one go per loop turn.
 * The HTTP server drives one per connection (sp_stream_new at accept) and
 * hands it over whole when a request becomes a subscription (SSE, WebSocket,
 * a GRIP stream): the kind sets its own ops with sp_stream_set_ops, and what
 * the server had queued (the response head) goes out first, in the same
 * writev as the first message.
 *
 * Writes do not touch the socket. A stream with new output joins its
 * flusher's pending list, and the flusher (redis's handleClientsWithPending
 * Writes) writes each pending stream with one writev once the loop turn's
 * other events have run. A burst of messages to one subscriber therefore
 * costs one system call, and a stream only asks epoll for writability when
 * its socket is actually full.
 *
 * A flush writes at most SP_FLUSH_SLICE streams, then lets the loop poll
 * before the next slice (round robin over the pending streams): a long
 * fan-out lets the next publish in, and a subscriber not yet written then
 * gets both messages in one writev.
 */
#ifndef SP_NET_STREAM_H
#define SP_NET_STREAM_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

/* Streams written per slice of a flush. While 10,000 subscribers are being
 * written, the next publish, a health check, a proxied request are read and
 * handled between slices, and a subscriber not yet written gets every
 * message queued by then in its one writev: the fan-out coalesces under
 * load (redis caps a client's writes per event, NET_MAX_WRITES_PER_EVENT,
 * for the same reason). */
#define SP_FLUSH_SLICE 256

struct sp_flusher;
struct sp_stream;

typedef void (*sp_stream_gone)(void *ctx);

struct sp_flusher *sp_flusher_new(struct event_base *base, sp_stream_gone gone, void *gone_ctx);
/* Closes every stream (no callbacks), then frees. Accepts NULL. */
void sp_flusher_free(struct sp_flusher *f);
size_t sp_flusher_count(const struct sp_flusher *f);

enum sp_stream_end {
    SP_STREAM_EOF = 1,   /* the client closed */
    SP_STREAM_ERROR = 2, /* reading or writing failed */
};

struct sp_stream_ops {
    /* Bytes from the client (NULL: reading only watches for the close).
     * data NULL and len 0: woken by sp_stream_wake. */
    void (*readable)(void *ctx, const uint8_t *data, size_t len);
    /* The stream ended by itself; it is freed after this returns. */
    void (*closed)(void *ctx, enum sp_stream_end why);
    /* Optional: the client half-closed. Reading has stopped and the stream
     * stays open for what is still to be written. Without it, EOF ends the
     * stream (closed(SP_STREAM_EOF)). */
    void (*eof)(void *ctx);
    /* Optional: a write left no more than the low-water mark unsent. */
    void (*drained)(void *ctx);
};

/* Takes ownership of fd (non-blocking) and starts reading. max_unsent caps
 * what sp_stream_write queues. Returns NULL (and closes fd) on failure. */
struct sp_stream *sp_stream_new(struct sp_flusher *f, evutil_socket_t fd, size_t max_unsent,
                                const struct sp_stream_ops *ops, void *ctx);
/* A new owner: its ops and context from now on, and its cap on unsent
 * bytes. Output already queued stays queued; reading resumes. */
void sp_stream_set_ops(struct sp_stream *s, size_t max_unsent, const struct sp_stream_ops *ops,
                       void *ctx);
/* Ends the stream without closing its socket, which the caller owns from
 * now on (a tunnel joins it to the backend). Unsent output is moved to
 * unsent. No callbacks run afterwards. */
evutil_socket_t sp_stream_take_socket(struct sp_stream *s, struct evbuffer *unsent);

/* Queues a copy of len bytes. Returns 0, or -1 if that passes max_unsent
 * (nothing is queued; the caller decides how to end the stream). */
int sp_stream_write(struct sp_stream *s, const void *data, size_t len);
/* Queues data by reference: cleanup(data, len, arg) runs once it is sent or
 * dropped. On -1 (over max_unsent) cleanup is not called and nothing is
 * queued. */
int sp_stream_write_ref(struct sp_stream *s, const void *data, size_t len,
                        evbuffer_ref_cleanup_cb cleanup, void *arg);

/* The output buffer itself, uncapped, for a producer that writes a response
 * in pieces (the HTTP server); the stream is written at the end of the turn. */
struct evbuffer *sp_stream_output(struct sp_stream *s);

size_t sp_stream_unsent(const struct sp_stream *s);
/* drained() is called after a write leaves at most low bytes unsent (0 by
 * default). */
void sp_stream_set_low_water(struct sp_stream *s, size_t low);
/* Reading on or off (the HTTP server stops while a handler catches up).
 * Returns 0, or -1 if the read event could not be changed. */
int sp_stream_set_reading(struct sp_stream *s, bool on);
/* readable(ctx, NULL, 0) on a later loop turn: input already buffered by
 * the owner is served outside the callback chain that made room for it. */
void sp_stream_wake(struct sp_stream *s);
/* A new stream's opening goes out now rather than at the end of the loop
 * turn: in a storm of thousands of connections per turn, openings held
 * until the flush are thousands of buffers at once, and the holes they
 * leave keep the memory resident. One write either way; never calls back. */
void sp_stream_write_now(struct sp_stream *s);
/* Monotonic milliseconds of the last queued write (for keep-alives). */
uint64_t sp_stream_last_write(const struct sp_stream *s);

/* Sends what is queued, then closes. No callbacks run afterwards. */
void sp_stream_end(struct sp_stream *s);
/* Closes now, dropping unsent output. No callbacks run afterwards. */
void sp_stream_close(struct sp_stream *s);

#endif
