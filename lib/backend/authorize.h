/* Subscriber authorization (forward-auth): before a subscription is
 * accepted, the backend is asked (GET authorize.url with the client's
 * Cookie and Authorization, the original request target and the channel
 * names) whether this client may subscribe. 2xx allows; 401 and 403 are
 * passed to the client; anything else, or no answer within
 * backend.timeout, is 503. A verdict is cached under a digest of
 * everything the backend was sent, for as long as its Cache-Control or
 * authorize.cache says.
 *
 * What one client's check leaves for another: only that cached verdict and
 * identity, found again only by a request that would send the backend the
 * same bytes (the digest covers the route, the URL and every header line
 * sent: Cookie, Authorization, X-Original-URI, Sidepush-Channels), so no client ever gets a verdict
 * the backend gave someone else.
 *
 * A 2xx may name the subscriber, for presence: Sidepush-User (an id) and
 * Sidepush-User-Info (a JSON object) headers, or a JSON body {"user_id":
 * "..." or a number, "user_info": {...}}; the headers win. The identity is
 * cached with the verdict. An id that is empty, over 128 bytes or holds a
 * control character, or info that is not a JSON object of at most 4 KiB,
 * is the backend's mistake: the client gets 503 and the log says why. */
#ifndef SP_BACKEND_AUTHORIZE_H
#define SP_BACKEND_AUTHORIZE_H

#include "backend/request.h"
#include "http/server.h"
#include "push/push.h"

struct sp_auth;

/* b must outlive the returned object; its requests run on b's loop. With
 * share (another worker's), the verdict cache is share's, one for the
 * process. NULL on allocation failure. */
struct sp_auth *sp_auth_new(const struct sp_backend *b, struct sp_auth *share,
                            const struct sp_log *log);
/* Checks in flight are dropped (their clients are gone by then). Accepts NULL. */
void sp_auth_free(struct sp_auth *a);

/* The client may subscribe: carry on with the request. caps point into the
 * request, spec and who are the auth's own (valid during the call); who is
 * NULL when the backend named nobody. */
typedef void (*sp_auth_allowed)(void *ctx, const struct sp_route_config *route,
                                const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                                struct sp_http_conn *conn, const struct sp_http_request *req,
                                const struct sp_identity *who);

/* Answers from the cache or asks the backend; allowed runs (now or later)
 * only for an allowed client, every other outcome is answered here. */
void sp_auth_check(struct sp_auth *a, const struct sp_route_config *route,
                   const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                   struct sp_http_conn *conn, const struct sp_http_request *req,
                   sp_auth_allowed allowed, void *ctx);

#endif
