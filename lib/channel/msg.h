/* A published message: stored once, shared by reference among the channel's
 * history and every subscriber's output, and rendered at most once per wire
 * format (SSE event, WebSocket frame, long-poll JSON item).
 */
#ifndef SP_CHANNEL_MSG_H
#define SP_CHANNEL_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"

#define SP_MSG_ID_MAX 48

struct sp_msg;

enum sp_msg_format {
    SP_FMT_SSE,          /* "id: …\nevent: …\ndata: …\n\n" */
    SP_FMT_SSE_CHUNKED,  /* the same inside one HTTP/1.1 chunk */
    SP_FMT_WS,           /* a text frame with the data verbatim */
    SP_FMT_WS_ENVELOPE,  /* a text frame with {"id","channel","event","data"} */
    SP_FMT_JSON,         /* {"id","channel","event","data"} for long-poll bodies */
    SP_FMT_GRIP_CONTENT, /* GRIP http-stream content (empty if none), for HTTP/1.0 streams */
    SP_FMT_GRIP_STREAM,  /* the same as one HTTP chunk */
    SP_FMT_PUSHER,       /* a text frame with Pusher's {"event","channel","data":"…","id"} */
    SP_FMT_COUNT,
};

/* Creates a message with one reference (the caller's). event may be NULL.
 * Copies channel, event and data. Returns NULL on allocation failure. */
struct sp_msg *sp_msg_new(const char *channel, uint64_t seq, const char *id, const char *event,
                          const void *data, size_t len, uint64_t created_ms);
struct sp_msg *sp_msg_ref(struct sp_msg *m);
void sp_msg_unref(struct sp_msg *m);

uint64_t sp_msg_seq(const struct sp_msg *m);
const char *sp_msg_id(const struct sp_msg *m);
const char *sp_msg_channel(const struct sp_msg *m);
const char *sp_msg_event(const struct sp_msg *m); /* NULL if none */
struct sp_slice sp_msg_data(const struct sp_msg *m);
uint64_t sp_msg_created(const struct sp_msg *m);

/* The message in format fmt, rendered on first use and kept for the
 * message's life. An empty slice means out of memory. */
struct sp_slice sp_msg_render(struct sp_msg *m, enum sp_msg_format fmt);

/* How a subscriber takes its messages: a format and, for the WebSocket
 * formats (SP_FMT_WS, SP_FMT_WS_ENVELOPE, SP_FMT_PUSHER), the window its
 * permessage-deflate allows (9..15 bits; 0: not negotiated) and the payload
 * size under which a message goes uncompressed. */
struct sp_wire {
    enum sp_msg_format fmt;
    uint8_t deflate_bits;
    uint32_t deflate_min;
};
#define SP_WIRE(f) ((struct sp_wire){.fmt = (f)})

/* The message as the wire takes it. A compressed frame is rendered on first
 * use, once per message and window class, and shared like every other
 * rendering: no subscriber ever compresses. *raw_len is the uncompressed
 * frame's length when the answer is a compressed frame, else 0. An empty
 * slice means out of memory. */
struct sp_slice sp_msg_render_wire(struct sp_msg *m, struct sp_wire w, size_t *raw_len);

/* GRIP (Pushpin) formats of the message, a json_t * object, or NULL. The
 * message takes a reference. */
void sp_msg_set_grip(struct sp_msg *m, void *formats);
void *sp_msg_grip(const struct sp_msg *m);

/* The connection that published the message and must not get it back (a
 * Pusher socket_id: Laravel's toOthers()), or NULL. Set before the message
 * is shared. Returns 0, or -1 out of memory. */
int sp_msg_set_origin(struct sp_msg *m, const char *origin);
const char *sp_msg_origin(const struct sp_msg *m);

/* For evbuffer_add_reference(): releases the reference taken for it. */
void sp_msg_unref_cb(const void *data, size_t len, void *msg);

/* A long-poll answer's body: {"cursor","missed","messages":[items]} and a
 * newline, each item the message's SP_FMT_JSON rendering appended by
 * reference (shared with every other poller). Returns 0 or -1 (out of
 * memory: out may hold part of it). */
struct evbuffer;
int sp_msg_longpoll_body(struct evbuffer *out, const char *cursor, bool missed,
                         struct sp_msg *const *msgs, size_t n);

/* Bytes the message holds, renders included (for metrics and limits). */
size_t sp_msg_size(const struct sp_msg *m);

#endif
