/* permessage-deflate (RFC 7692) without I/O: choosing an offer from a
 * client's Sec-WebSocket-Extensions, and compressing a message once so that
 * every peer that negotiated compression can be sent the same bytes.
 * Inflating a peer's messages is the frame reader's (wsframe.h), which owns
 * the message buffer and its size limit.
 */
#ifndef SP_HTTP_WSDEFLATE_H
#define SP_HTTP_WSDEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

/* zlib cannot deflate with a 256-byte window (RFC 7692's 8 bits). */
#define SP_WS_DEFLATE_MIN_BITS 9
#define SP_WS_DEFLATE_MAX_BITS 15
/* The longest answer sp_ws_deflate_negotiate writes, with its NUL. */
#define SP_WS_DEFLATE_ANSWER_MAX 128

/* What was agreed with one peer. sidepush always takes
 * server_no_context_takeover: each message it sends is compressed alone, so
 * the compressed bytes can be shared and no peer holds a deflate state. */
struct sp_ws_deflate {
    uint8_t server_bits;    /* sidepush's window may be at most this: 9..15 */
    uint8_t client_bits;    /* the peer's window is at most this: 8..15 (15 unless it said) */
    bool client_no_context; /* the peer compresses each message alone */
};

/* Reads one Sec-WebSocket-Extensions field value (a list of offers) and
 * takes the first permessage-deflate offer sidepush can meet. Offers with an
 * unknown, repeated or invalid parameter are declined, as RFC 7692 §5 asks,
 * and so is server_max_window_bits=8; a malformed field declines them all.
 * On acceptance writes *out and the response's field value into answer
 * (SP_WS_DEFLATE_ANSWER_MAX bytes) and returns true; otherwise writes
 * nothing and returns false: the handshake goes on without compression. */
bool sp_ws_deflate_negotiate(struct sp_slice offers, struct sp_ws_deflate *out,
                             char answer[SP_WS_DEFLATE_ANSWER_MAX]);

/* The smallest window (9..15 bits) that reaches across a whole message of
 * len bytes: deflating with it finds every match a larger one would, and any
 * peer whose window is at least this large can inflate the result. */
int sp_ws_deflate_fit_bits(size_t len);

/* Compresses one message alone with a window of window_bits (9..15), as a
 * permessage-deflate payload: a raw deflate stream ended by a sync flush,
 * without its final 00 00 ff ff (RFC 7692 §7.2.1). Returns a malloc'd buffer
 * the caller frees and its length in *out_len, or NULL when out of memory. */
uint8_t *sp_ws_deflate_message(const void *data, size_t len, int window_bits, size_t *out_len);

#endif
