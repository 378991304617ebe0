#include "core/digest.h"

#include <openssl/evp.h>
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

static void to_hex(const unsigned char *md, char out[SP_SHA256_HEX])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
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
