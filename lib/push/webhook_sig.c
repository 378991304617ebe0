#include "push/webhook_sig.h"

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

/* The key bytes of a secret: base64, with or without the "whsec_" prefix
 * (as the reference libraries read it). Returns the length, or -1. */
static int secret_key(const char *secret, unsigned char *key, size_t size)
{
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    size_t len = strlen(b64);
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > size)
        return -1;
    int n = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -1;
    n -= (b64[len - 1] == '=') + (len > 1 && b64[len - 2] == '=');
    return n;
}

static int compute(const char *secret, const char *id, const char *timestamp, const void *body,
                   size_t len, char out[64])
{
    unsigned char key[256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int key_len = secret_key(secret, key, sizeof(key));

    if (key_len < 0)
        return SP_WEBHOOK_BAD_SECRET;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t mac_size = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, (size_t)key_len, params) &&
             EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)timestamp, strlen(timestamp)) &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) && EVP_MAC_update(ctx, body, len) &&
             EVP_MAC_final(ctx, mac, &mac_size, sizeof(mac));
    mac_len = (unsigned int)mac_size;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    OPENSSL_cleanse(key, sizeof(key));
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

int sp_webhook_secret_valid(const char *secret)
{
    unsigned char key[256];
    int n = secret_key(secret, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    return n > 0;
}
