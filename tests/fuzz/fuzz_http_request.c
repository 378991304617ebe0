/* The request-head parser and the chunked decoder on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "http/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sp_http_header headers[32];
    struct sp_http_request req;
    enum sp_http_body_kind kind;
    uint64_t length;
    const char *text = (const char *)data;

    int rc = sp_http_parse_request(text, size, &req, headers, 32);
    if (rc > 0) {
        if ((size_t)rc > size || req.nheaders > 32)
            abort();
        for (size_t i = 0; i < req.nheaders; i++) {
            const struct sp_http_header *h = &req.headers[i];
            if (h->name.ptr < text || h->name.ptr + h->name.len > text + rc ||
                h->value.ptr < text || h->value.ptr + h->value.len > text + rc)
                abort(); /* every slice stays inside the head */
        }
        sp_http_request_framing(&req, &kind, &length);
        text += rc;
        size -= (size_t)rc;
    }
    /* Whatever follows the head (or all of it) is tried as a chunked body. */
    struct sp_chunked d = {0};
    size_t pos = 0;
    while (pos < size) {
        size_t data_len;
        bool done;
        int skip = sp_chunked_next(&d, text + pos, size - pos, &data_len, &done);
        if (skip < 0 || done || (skip == 0 && data_len == 0))
            break;
        if ((size_t)skip + data_len > size - pos)
            abort();
        pos += (size_t)skip + data_len;
    }
    return 0;
}
