/* Long-lived client connections (SSE, WebSocket) once their HTTP request is
 * done: a socket, a read event, and an output buffer that is written in one
 * go per loop turn.
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
    /* Bytes from the client (NULL: reading only watches for the close). */
    void (*readable)(void *ctx, const uint8_t *data, size_t len);
    /* The stream ended by itself; it is freed after this returns. */
    void (*closed)(void *ctx, enum sp_stream_end why);
};

/* Takes ownership of fd (non-blocking). initial, if not NULL, is output
 * already due (moved out, e.g. an earlier pipelined response). max_unsent
 * caps unsent bytes. Returns NULL (and closes fd) on failure. */
struct sp_stream *sp_stream_new(struct sp_flusher *f, evutil_socket_t fd, struct evbuffer *initial,
                                size_t max_unsent, const struct sp_stream_ops *ops, void *ctx);

/* Queues a copy of len bytes. Returns 0, or -1 if that passes max_unsent
 * (nothing is queued; the caller decides how to end the stream). */
int sp_stream_write(struct sp_stream *s, const void *data, size_t len);
/* Queues data by reference: cleanup(data, len, arg) runs once it is sent or
 * dropped. On -1 (over max_unsent) cleanup is not called and nothing is
 * queued. */
int sp_stream_write_ref(struct sp_stream *s, const void *data, size_t len,
                        evbuffer_ref_cleanup_cb cleanup, void *arg);

size_t sp_stream_unsent(const struct sp_stream *s);
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
