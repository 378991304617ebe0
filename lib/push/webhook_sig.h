/* Standard Webhooks signatures (standardwebhooks.com): HMAC-SHA256 over
 * "<webhook-id>.<webhook-timestamp>.<body>", base64, sent as
 * "webhook-signature: v1,<sig> [v1,<sig2> ...]". Pure; no I/O. */
#ifndef SP_PUSH_WEBHOOK_SIG_H
#define SP_PUSH_WEBHOOK_SIG_H

#include <stddef.h>
#include <stdint.h>

enum sp_webhook_result {
    SP_WEBHOOK_OK = 0,
    SP_WEBHOOK_MISSING = -1,   /* a webhook-* header is absent */
    SP_WEBHOOK_STALE = -2,     /* timestamp outside the tolerance */
    SP_WEBHOOK_MISMATCH = -3,  /* no v1 signature matches */
    SP_WEBHOOK_BAD_SECRET = -4 /* the secret is not base64 */
};

/* secret: the key in base64, optionally prefixed "whsec_". now and
 * timestamp are Unix seconds. */
int sp_webhook_verify(const char *secret, const char *id, const char *timestamp, const void *body,
                      size_t len, const char *signatures, int64_t now, uint64_t tolerance_s);

/* Writes "v1,<base64>" for the given inputs into out (at least 64 bytes). */
int sp_webhook_sign(const char *secret, const char *id, const char *timestamp, const void *body,
                    size_t len, char *out, size_t size);

const char *sp_webhook_error_text(int rc);

#endif
