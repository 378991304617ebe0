/* Base64 on OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock, with the padding
 * handled (EVP_DecodeBlock counts padding bytes as data). */
#ifndef SP_CORE_BASE64_H
#define SP_CORE_BASE64_H

#include <stddef.h>

/* Decodes len characters of text. Returns 0 and *out (malloc'd, NUL-terminated
 * after *out_len bytes), or -1 if text is not base64. */
int sp_base64_decode(const char *text, size_t len, char **out, size_t *out_len);

/* Encodes len bytes into out, which holds SP_BASE64_LEN(len) bytes (NUL
 * included). Returns the text's length. */
#define SP_BASE64_LEN(len) (4 * (((len) + 2) / 3) + 1)
size_t sp_base64_encode(const void *data, size_t len, char *out);

#endif
