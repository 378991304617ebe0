/* SHA-256 digests as lowercase hex, for keys built from untrusted input of
 * any length (cache and de-duplication keys). */
#ifndef SP_CORE_DIGEST_H
#define SP_CORE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define SP_SHA256_HEX (64 + 1)

struct sp_digest;

/* NULL when libcrypto cannot allocate. */
struct sp_digest *sp_digest_new(void);
/* Adds one field; each is length-prefixed, so ("a", "bc") and ("ab", "c")
 * differ. A NULL field (absent) differs from an empty one. */
void sp_digest_field(struct sp_digest *d, const void *data, size_t len);
/* Adds bytes as they are (no prefix: the caller frames them). */
void sp_digest_update(struct sp_digest *d, const void *data, size_t len);
/* Writes 64 hex digits and a NUL, frees d. Accepts NULL (writes zeros:
 * callers must treat a failed allocation before using the key). */
void sp_digest_finish(struct sp_digest *d, char out[SP_SHA256_HEX]);

/* One-shot: the digest of data alone (no length prefix). */
void sp_sha256_hex(const void *data, size_t len, char out[SP_SHA256_HEX]);

/* MD5, only where a protocol names it (Pusher's body_md5). */
#define SP_MD5_HEX (32 + 1)
void sp_md5_hex(const void *data, size_t len, char out[SP_MD5_HEX]);

/* HMAC-SHA256 of the parts, one after the other, as lowercase hex. Returns
 * 0, or -1 when libcrypto fails (out untouched). */
struct sp_hmac_part {
    const void *data;
    size_t len;
};
int sp_hmac_sha256_hex(const void *key, size_t key_len, const struct sp_hmac_part *parts,
                       size_t nparts, char out[SP_SHA256_HEX]);

/* a and b are both len characters and equal, compared in constant time (for
 * signatures an attacker chose one of). */
bool sp_hex_equal(const char *a, const char *b, size_t len);

#endif
