/* Signed subscriber tokens (subscribe.token): a JWT the client brings in
 * "Authorization: Bearer", a query parameter or a cookie, verified here
 * without asking the backend (core/jwt.h), so a reconnect storm after a
 * deploy costs the app nothing.
 *
 * The token must list the subscription's channels in its channels claim:
 * each entry a channel name, or a prefix ending in "*" ("orders.*" covers
 * "orders.42" and "orders.42.items"; "*" covers all). Its sub names the
 * member for presence, with the info claim as its info; its exp ends the
 * stream (each transport in its own way: see push/README.md).
 *
 * Keys: the route's secret and PEM keys (read at load), and its JWK Set,
 * which each worker fetches for itself on first use, again every
 * jwks_refresh, and at once (at most every 10 s) when a token names a kid
 * the set does not hold: a key rotated in at the issuer is taken without
 * waiting for the refresh. A request waits while its route's set is
 * fetched.
 *
 * Refusals are 401 with a JSON reason that tells an attacker nothing he
 * did not send ("invalid token", "token expired"), or 403 when a valid
 * token does not cover the channels; each is counted by reason. */
#ifndef SP_BACKEND_TOKEN_H
#define SP_BACKEND_TOKEN_H

#include "backend/authorize.h"

struct sp_tokens;

/* Counted per worker and summed. */
struct sp_token_stats {
    uint64_t accepted;
    uint64_t refused[9]; /* by reason: see sp_token_reasons */
    uint64_t jwks_fetches, jwks_failures;
};
/* The label of each refused[] entry. */
extern const char *const sp_token_reasons[9];

/* b must outlive the returned object; its fetches run on b's loop. NULL
 * on allocation failure. */
struct sp_tokens *sp_tokens_new(const struct sp_backend *b, const struct sp_log *log);
/* Waiting requests are dropped (their clients are gone by then). Accepts NULL. */
void sp_tokens_free(struct sp_tokens *t);
const struct sp_token_stats *sp_tokens_stats(const struct sp_tokens *t);

/* A request on a route with subscribe.token. False when it carries no
 * token (the caller asks the backend, or refuses). Else it is answered
 * here, or allowed runs (now, or once the route's JWK Set is fetched) with
 * the token's identity and expiry. */
bool sp_token_check(struct sp_tokens *t, const struct sp_route_config *route,
                    const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                    struct sp_http_conn *conn, const struct sp_http_request *req,
                    sp_auth_allowed allowed, void *ctx);

#endif
