#include "push/webhook_sig.h"

#include "core/base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sp_webhook_error_text(int rc)
{
    switch (rc) {
    case SP_WEBHOOK_MISSING:
        return "webhook-id, webhook-timestamp and webhook-signature headers are required";
    case SP_WEBHOOK_STALE:
        return "webhook-timestamp is outside publish.auth.timestamp_tolerance";
    case SP_WEBHOOK_MISMATCH:
        return "webhook-signature does not match";
    case SP_WEBHOOK_BAD_SECRET:
        return "publish.auth.hmac_secret is not base64 (optionally after whsec_)";
    default:
        return "ok";
    }
}

/* The key of a secret: base64, with or without the "whsec_" prefix (as the
 * reference libraries read it). Returns 0 and *key (malloc'd), or -1. */
static int secret_key(const char *secret, char **key, size_t *len)
{
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;

    if (b64[0] == '\0' || sp_base64_decode(b64, strlen(b64), key, len) < 0)
        return -1;
    if (*len == 0) {
        free(*key);
        return -1;
    }
    return 0;
}

static int compute(const char *secret, const char *id, const char *timestamp, const void *body,
                   size_t len, char out[64])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *key;
    size_t key_len;

    if (secret_key(secret, &key, &key_len) < 0)
        return SP_WEBHOOK_BAD_SECRET;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t mac_size = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, (unsigned char *)key, key_len, params) &&
             EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)timestamp, strlen(timestamp)) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) && EVP_MAC_update(ctx, body, len) &&
             EVP_MAC_final(ctx, mac, &mac_size, sizeof(mac));
    mac_len = (unsigned int)mac_size;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    OPENSSL_cleanse(key, key_len);
    free(key);
    if (!ok)
        return SP_WEBHOOK_MISMATCH;
    sp_base64_encode(mac, mac_len, out);
    return 0;
}

int sp_webhook_sign(const char *secret, const char *id, const char *timestamp, const void *body,
                    size_t len, char *out, size_t size)
{
    char sig[64];
    int rc = compute(secret, id, timestamp, body, len, sig);
    if (rc < 0)
        return rc;
    snprintf(out, size, "v1,%s", sig);
    return 0;
}

/* Unix seconds as plain digits (no sign, no spaces) within tolerance_s of
 * now. The distance is taken in unsigned arithmetic, so no timestamp a
 * client sends can overflow it. */
static bool timestamp_fresh(const char *timestamp, int64_t now, uint64_t tolerance_s)
{
    uint64_t ts = 0;
    size_t n = strspn(timestamp, "0123456789");

    if (n == 0 || n > 19 || timestamp[n] != '\0')
        return false;
    for (size_t i = 0; i < n; i++)
        ts = ts * 10 + (uint64_t)(timestamp[i] - '0');
    if (now < 0)
        return false;
    uint64_t t = (uint64_t)now;
    uint64_t distance = ts > t ? ts - t : t - ts;
    return distance <= tolerance_s;
}

int sp_webhook_verify(const char *secret, const char *id, const char *timestamp, const void *body,
                      size_t len, const char *signatures, int64_t now, uint64_t tolerance_s)
{
    char expected[64];

    if (id == NULL || timestamp == NULL || signatures == NULL || id[0] == '\0')
        return SP_WEBHOOK_MISSING;
    if (!timestamp_fresh(timestamp, now, tolerance_s))
        return SP_WEBHOOK_STALE;
    int rc = compute(secret, id, timestamp, body, len, expected);
    if (rc < 0)
        return rc;
    size_t want = strlen(expected);
    /* Several space-separated signatures may be sent (key rotation). */
    for (const char *p = signatures; *p != '\0';) {
        while (*p == ' ')
            p++;
        const char *stop = strchr(p, ' ');
        size_t n = stop ? (size_t)(stop - p) : strlen(p);
        if (n == want + 3 && strncmp(p, "v1,", 3) == 0 && CRYPTO_memcmp(p + 3, expected, want) == 0)
            return SP_WEBHOOK_OK;
        p += n;
    }
    return SP_WEBHOOK_MISMATCH;
}
