/* RFC 6455 framing without I/O: frame headers out, and a reader that turns
 * client bytes into whole messages and control frames, enforcing masking,
 * fragmentation rules, size limits and UTF-8 (wslay's division of labour).
 */
#ifndef SP_HTTP_WSFRAME_H
#define SP_HTTP_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"

#define SP_WS_MAX_HEADER 10 /* server frames are never masked */
#define SP_WS_RSV1 0x40     /* first header byte: a compressed message (RFC 7692) */

enum sp_ws_opcode {
    SP_WS_OP_CONT = 0x0,
    SP_WS_OP_TEXT = 0x1,
    SP_WS_OP_BINARY = 0x2,
    SP_WS_OP_CLOSE = 0x8,
    SP_WS_OP_PING = 0x9,
    SP_WS_OP_PONG = 0xA,
};

/* Close codes sidepush sends. */
enum {
    SP_WS_CLOSE_NORMAL = 1000,
    SP_WS_CLOSE_GOING_AWAY = 1001,
    SP_WS_CLOSE_PROTOCOL = 1002,
    SP_WS_CLOSE_UNSUPPORTED = 1003,
    SP_WS_CLOSE_BAD_DATA = 1007,
    SP_WS_CLOSE_POLICY = 1008,
    SP_WS_CLOSE_TOO_BIG = 1009,
    SP_WS_CLOSE_INTERNAL = 1011,
    SP_WS_CLOSE_RESTART = 1012, /* "service restart": reconnect (to another instance) */
};

/* Writes a server frame header for a payload of len bytes into out (at least
 * SP_WS_MAX_HEADER bytes). Returns the header's length. */
size_t sp_ws_frame_header(uint8_t *out, enum sp_ws_opcode op, bool fin, uint64_t len);

/* True for codes a peer may send in a close frame (RFC 6455 §7.4). */
bool sp_ws_close_code_valid(unsigned code);

struct sp_ws_reader;

struct sp_ws_reader_events {
    /* A complete data message (fragments joined, unmasked, text validated). */
    void (*message)(void *ctx, bool text, const uint8_t *data, size_t len);
    void (*ping)(void *ctx, const uint8_t *data, size_t len);
    void (*pong)(void *ctx, const uint8_t *data, size_t len);
    /* The peer's close: code 1005 when it sent none. */
    void (*close)(void *ctx, unsigned code, const char *reason, size_t len);
};

/* max_message bounds a data message (fragments together): past it the
 * reader fails with SP_WS_CLOSE_TOO_BIG. */
struct sp_ws_reader *sp_ws_reader_new(size_t max_message, const struct sp_ws_reader_events *ev,
                                      void *ctx);
void sp_ws_reader_free(struct sp_ws_reader *r);

/* permessage-deflate was negotiated: messages whose first frame has RSV1
 * are inflated with a window of window_bits (8..15), and the limit applies
 * to what they inflate to. Unless no_context, the peer's window carries
 * over, so up to 2^window_bits bytes of it are kept between messages. */
void sp_ws_reader_set_deflate(struct sp_ws_reader *r, int window_bits, bool no_context);

/* Consumes bytes, calling the events for every complete frame. Returns 0, or
 * the close code to fail the connection with (1002 protocol error, RSV1
 * where it may not be; 1007 bad UTF-8 or bad compressed data; 1009 too big,
 * compressed or inflated; 1011 out of memory). After a close event or an
 * error, feeding stops. */
int sp_ws_reader_feed(struct sp_ws_reader *r, const uint8_t *p, size_t len);

#endif
