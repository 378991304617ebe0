/* Base64 decoding on OpenSSL's EVP_DecodeBlock, with the padding handled
 * (EVP_DecodeBlock counts padding bytes as data). */
#ifndef SP_CORE_BASE64_H
#define SP_CORE_BASE64_H

#include <stddef.h>

/* Decodes len characters of text. Returns 0 and *out (malloc'd, NUL-terminated
 * after *out_len bytes), or -1 if text is not base64. */
int sp_base64_decode(const char *text, size_t len, char **out, size_t *out_len);

#endif
