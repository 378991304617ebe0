/* A listening socket on the event loop with a connection cap: past the cap
 * it stops accepting and new connections wait in the kernel's listen
 * backlog until the owner says there is room again (nginx's
 * worker_connections does the same). */
#ifndef SP_NET_LISTENER_H
#define SP_NET_LISTENER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "core/units.h"

struct sp_listener;

/* A new connection: fd is the caller's now. */
typedef void (*sp_listener_accept)(void *ctx, struct sp_listener *l, evutil_socket_t fd,
                                   struct sockaddr *peer, int len);

/* Binds addr (SO_REUSEADDR, close-on-exec, backlog 4096) and accepts at
 * once. NULL with a message in err ("cannot listen on ...: reason"). log
 * gets accept errors (EMFILE and friends: the listener keeps going). */
struct sp_listener *sp_listener_new(struct event_base *base, const struct sp_address *addr,
                                    sp_listener_accept accept, void *ctx, const struct sp_log *log,
                                    char *err, size_t errlen);
/* One of several sockets bound to addr with SO_REUSEPORT, one per worker:
 * the kernel spreads new connections over them. As sp_listener_new. */
struct sp_listener *sp_listener_new_shared(struct event_base *base, const struct sp_address *addr,
                                           sp_listener_accept accept, void *ctx,
                                           const struct sp_log *log, char *err, size_t errlen);
/* The address the socket is bound to (port 0 made concrete). 0 or -1. */
int sp_listener_address(const struct sp_listener *l, struct sp_address *out);
/* False while paused at its cap (or for NULL). */
bool sp_listener_accepting(const struct sp_listener *l);

/* Closes the socket: new connections are refused. Accepts NULL. */
void sp_listener_free(struct sp_listener *l);

/* open of max connections are in use: accept below the cap, pause at it
 * (logged as connection_limit naming cap_key, once per crossing; NULL:
 * not logged). */
void sp_listener_cap(struct sp_listener *l, size_t open, uint64_t max, const char *cap_key);

#endif
