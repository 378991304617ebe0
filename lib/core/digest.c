#include "core/digest.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

/* struct sp_digest is never defined: a digest is its EVP_MD_CTX. */

struct sp_digest *sp_digest_new(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return (struct sp_digest *)ctx;
}

void sp_digest_field(struct sp_digest *d, const void *data, size_t len)
{
    char prefix[24];
    int n = data == NULL ? snprintf(prefix, sizeof(prefix), "-\n")
                         : snprintf(prefix, sizeof(prefix), "%zu:", len);

    EVP_DigestUpdate((EVP_MD_CTX *)d, prefix, (size_t)n);
    if (data != NULL && len > 0)
        EVP_DigestUpdate((EVP_MD_CTX *)d, data, len);
}

void sp_digest_update(struct sp_digest *d, const void *data, size_t len)
{
    if (len > 0)
        EVP_DigestUpdate((EVP_MD_CTX *)d, data, len);
}

static void hex_of(const unsigned char *md, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static void to_hex(const unsigned char *md, char out[SP_SHA256_HEX])
{
    hex_of(md, 32, out);
}

void sp_digest_finish(struct sp_digest *d, char out[SP_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    memset(md, 0, sizeof(md));
    if (d != NULL)
        EVP_DigestFinal_ex((EVP_MD_CTX *)d, md, &len);
    EVP_MD_CTX_free((EVP_MD_CTX *)d);
    to_hex(md, out);
}

void sp_sha256_hex(const void *data, size_t len, char out[SP_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    memset(md, 0, sizeof(md));
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    to_hex(md, out);
}

void sp_md5_hex(const void *data, size_t len, char out[SP_MD5_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    memset(md, 0, sizeof(md));
    EVP_Digest(data, len, md, &n, EVP_md5(), NULL);
    hex_of(md, 16, out);
}

int sp_hmac_sha256_hex(const void *key, size_t key_len, const struct sp_hmac_part *parts,
                       size_t nparts, char out[SP_SHA256_HEX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, key_len, params);

    for (size_t i = 0; ok && i < nparts; i++)
        ok = parts[i].len == 0 || EVP_MAC_update(ctx, parts[i].data, parts[i].len);
    ok = ok && EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) && mac_len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    if (!ok)
        return -1;
    to_hex(mac, out);
    return 0;
}

bool sp_hex_equal(const char *a, const char *b, size_t len)
{
    return strlen(a) == len && strlen(b) == len && CRYPTO_memcmp(a, b, len) == 0;
}
