/* The response-head parser and response framing on arbitrary bytes (what a
 * sloppy or hostile backend can send the upstream client). */
#include <stdint.h>
#include <stdlib.h>

#include "http/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_http_header headers[32];
    struct sp_http_response resp;
    enum sp_http_body_kind kind;
    uint64_t length;
    const char *text = (const char *)data;

    int rc = sp_http_parse_response(text, size, &resp, headers, 32);
    if (rc <= 0)
        return 0;
    if ((size_t)rc > size || resp.nheaders > 32 || resp.status < 100 || resp.status > 999)
        abort();
    if (resp.reason.len > 0 &&
        (resp.reason.ptr < text || resp.reason.ptr + resp.reason.len > text + rc))
        abort();
    for (size_t i = 0; i < resp.nheaders; i++) {
        const struct sp_http_header *h = &resp.headers[i];
        if (h->name.ptr < text || h->name.ptr + h->name.len > text + rc || h->value.ptr < text ||
            h->value.ptr + h->value.len > text + rc)
            abort(); /* every slice stays inside the head */
        for (size_t j = 0; j < h->value.len; j++) {
            unsigned char c = (unsigned char)h->value.ptr[j];
            if (c == '\r' || c == '\n' || c == '\0')
                abort(); /* nothing that could split a forwarded header */
        }
    }
    for (int head = 0; head < 2; head++) {
        if (sp_http_response_framing(&resp, head, &kind, &length) == 0 && head &&
            kind != SP_HTTP_BODY_NONE)
            abort(); /* a response to HEAD never has a body */
    }
    return 0;
}
