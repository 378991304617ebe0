#include "core/base64.h"

#include <openssl/evp.h>
#include <stdlib.h>

int sp_base64_decode(const char *text, size_t len, char **out, size_t *out_len)
{
    size_t pad = 0;

    if (len % 4 != 0)
        return -1;
    if (len > 0 && text[len - 1] == '=')
        pad++;
    if (len > 1 && text[len - 2] == '=')
        pad++;
    char *buf = malloc(len / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    int n = len ? EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        free(buf);
        return -1;
    }
    *out_len = (size_t)n - pad;
    buf[*out_len] = '\0';
    *out = buf;
    return 0;
}

size_t sp_base64_encode(const void *data, size_t len, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}
