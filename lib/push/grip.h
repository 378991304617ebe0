/* GRIP holds (Pushpin's protocol), subscribers of the channels a proxied
 * backend named in Grip-Channel: a stream hold sends the backend's response,
 * then the http-stream content of every publish; a response hold waits for
 * a publish's http-response or Grip-Timeout. See grip.md. */
#ifndef SP_PUSH_GRIP_H
#define SP_PUSH_GRIP_H

#include "push/transport.h"

struct sp_http_conn;
struct sp_proxy_hook;

extern const struct sp_transport_ops sp_grip_transport;

/* Through the proxy's response hook (ctx: the kind's state), a backend's
 * Grip-* answer becomes a hold (grip_head.c). */
extern const struct sp_proxy_hook sp_grip_proxy_hook;

/* A proxied response that asks sidepush to hold the client: Grip-Hold,
 * Grip-Channel, Grip-Timeout, Grip-Keep-Alive, read. Valid during the
 * sp_grip_hold call only. */
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

/* A proxied response asked to hold its client; state is the kind's (see
 * sp_push_grip_hold). */
void sp_grip_hold(void *state, struct sp_http_conn *conn, const struct sp_grip_hold *hold);

#endif
