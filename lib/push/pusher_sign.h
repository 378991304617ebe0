/* Pusher Channels' signatures (protocol 7): a private or presence channel's
 * subscription auth, a user's sign-in, and a signed HTTP API request. Pure
 * functions over strings (no I/O, no clock: the caller passes the time),
 * every comparison in constant time. See
 * pusher.com/docs/channels/library_auth_reference/auth-signatures and
 * .../rest-api. */
#ifndef SP_PUSH_PUSHER_SIGN_H
#define SP_PUSH_PUSHER_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slice.h"

/* auth is "<key>:<hex HMAC-SHA256(secret, socket_id ":" channel)>", with
 * ":" channel_data appended to what is signed for a presence channel
 * (channel_data NULL: a private one). */
bool sp_pusher_channel_auth_valid(const char *key, const char *secret, const char *socket_id,
                                  const char *channel, const char *channel_data, const char *auth);

/* pusher:signin: the same over socket_id "::user::" user_data. */
bool sp_pusher_user_auth_valid(const char *key, const char *secret, const char *socket_id,
                               const char *user_data, const char *auth);

/* Does spec ("a" or "a,b,c") name a channel that Pusher clients reach
 * only with a signature (private-, presence-: the prefixes
 * private-encrypted- and the cache ones start with)? A native route must
 * not hand such a channel to anyone unauthorized. */
bool sp_pusher_spec_protected(const char *spec);

/* Why an API request is refused; each maps to Pusher's status (401, or 400
 * for a query that cannot be read). */
enum sp_pusher_request_error {
    SP_PUSHER_REQUEST_OK = 0,
    SP_PUSHER_REQUEST_BAD_QUERY = -1,     /* 400 */
    SP_PUSHER_REQUEST_UNSIGNED = -2,      /* 401: auth_key, auth_timestamp or signature missing */
    SP_PUSHER_REQUEST_UNKNOWN_KEY = -3,   /* 401 */
    SP_PUSHER_REQUEST_STALE = -4,         /* 401: auth_timestamp outside the tolerance */
    SP_PUSHER_REQUEST_BODY_MD5 = -5,      /* 401: body_md5 missing or not the body's */
    SP_PUSHER_REQUEST_BAD_SIGNATURE = -6, /* 401 */
};

/* Checks a request to the HTTP API: method and path as the client sent
 * them, its raw query (every parameter but auth_signature is signed: names
 * lower-cased, sorted, percent-decoded, joined "k=v&..."), and its body.
 * now_s and tolerance_s are seconds. Returns SP_PUSHER_REQUEST_OK or an
 * error, with *why (static text) for the answer. */
int sp_pusher_request_check(const char *key, const char *secret, struct sp_slice method,
                            struct sp_slice path, struct sp_slice query, const void *body,
                            size_t len, uint64_t now_s, uint64_t tolerance_s, const char **why);

/* The string a request signs, for tests and for a client of sidepush's own:
 * METHOD "\n" path "\n" canonical query. Returns its length, or -1 when the
 * query cannot be read or out is too small. */
int sp_pusher_string_to_sign(struct sp_slice method, struct sp_slice path, struct sp_slice query,
                             char *out, size_t size);

#endif
