#include "push/webhook_sig.h"

#include "core/base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
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
    EVP_EncodeBlock((unsigned char *)out, mac, (int)mac_len);
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

int sp_webhook_verify(const char *secret, const char *id, const char *timestamp, const void *body,
                      size_t len, const char *signatures, int64_t now, uint64_t tolerance_s)
{
    char expected[64];
    char *end;

    if (id == NULL || timestamp == NULL || signatures == NULL || id[0] == '\0')
        return SP_WEBHOOK_MISSING;
    long long ts = strtoll(timestamp, &end, 10);
    if (*end != '\0' || timestamp[0] == '\0')
        return SP_WEBHOOK_STALE;
    long long skew = (long long)now - ts;
    if (skew < -(long long)tolerance_s || skew > (long long)tolerance_s)
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
