/* JSON Web Tokens (RFC 7519) as subscribers present them, verified with
 * OpenSSL (HS256, RS256, ES256) and read with jansson. Pure: no I/O and no
 * clock; the caller passes the keys and the time.
 *
 * A key serves exactly one algorithm, fixed when it is added: a secret
 * HS256, an RSA public key RS256, a P-256 public key ES256. A token is
 * checked only against keys of the algorithm its header names, so an RSA
 * public key can never be taken for an HMAC secret (key confusion), and
 * "none" or any other algorithm is refused before a key is looked at. */
#ifndef SP_CORE_JWT_H
#define SP_CORE_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sp_jwt_error {
    SP_JWT_OK = 0,
    SP_JWT_MALFORMED = -1, /* not three base64url parts of JSON */
    SP_JWT_ALGORITHM = -2, /* none, or one no key serves */
    SP_JWT_NO_KEY = -3,    /* no key of its algorithm (and kid) */
    SP_JWT_SIGNATURE = -4,
    SP_JWT_EXPIRED = -5, /* exp passed (or none given) */
    SP_JWT_NOT_YET = -6, /* nbf, or iat, in the future */
    SP_JWT_ISSUER = -7,
    SP_JWT_AUDIENCE = -8,
};

/* A short name of the error, for metrics labels ("expired", ...). */
const char *sp_jwt_error_name(int err);

struct sp_jwt_keys;

struct sp_jwt_keys *sp_jwt_keys_new(void);
/* Accepts NULL. */
void sp_jwt_keys_free(struct sp_jwt_keys *keys);
/* An HS256 secret (its bytes as given). Returns 0, or -1 (no memory). */
int sp_jwt_keys_add_secret(struct sp_jwt_keys *keys, const char *secret, size_t len);
/* One or more PEM public keys (RSA: RS256; EC P-256: ES256). Returns the
 * number added, or -1 with *why (static text). */
int sp_jwt_keys_add_pem(struct sp_jwt_keys *keys, const char *pem, const char **why);
/* A JWK Set ({"keys":[...]}): its RSA and P-256 signing keys, each with its
 * kid. Keys of other types or uses are skipped. Returns the number added,
 * or -1 with *why. */
int sp_jwt_keys_add_jwks(struct sp_jwt_keys *keys, const char *json, size_t len, const char **why);
size_t sp_jwt_keys_count(const struct sp_jwt_keys *keys);

struct sp_jwt_check {
    uint64_t now_s;
    uint64_t leeway_s;    /* allowed clock skew for exp, nbf and iat */
    const char *issuer;   /* iss must equal it, or NULL */
    const char *audience; /* aud (a string or an array) must hold it, or NULL */
};

/* Verifies token (its signature with keys, then its time and the iss and
 * aud asked for; exp is required). Returns SP_JWT_OK and *claims (the
 * payload; the caller drops it), or an error. */
int sp_jwt_verify(const struct sp_jwt_keys *keys, const char *token, size_t len,
                  const struct sp_jwt_check *check, json_t **claims);

#endif
