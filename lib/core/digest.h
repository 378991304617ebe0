/* SHA-256 digests as lowercase hex, for keys built from untrusted input of
 * any length (cache and de-duplication keys). */
#ifndef SP_CORE_DIGEST_H
#define SP_CORE_DIGEST_H

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

#endif
