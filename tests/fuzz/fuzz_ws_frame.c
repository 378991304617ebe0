/* The WebSocket frame reader on arbitrary client bytes, fed in pieces whose
 * sizes come from the input itself (so splits at every point get tried).
 * The first byte also chooses whether permessage-deflate was negotiated,
 * with which window and whether the client carries it over: the inflate
 * path, its limit and its window between messages get the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/wsframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_message(void *ctx, bool text, const uint8_t *d, size_t len)
{
    uint32_t st = 0;
    if (len > 4096)
        abort(); /* the reader's limit below */
    if (text && !(sp_utf8_feed(&st, d, len) && st == 0))
        abort(); /* text messages must have been validated */
}

static void on_control(void *ctx, const uint8_t *d, size_t len)
{
    if (len > 125)
        abort();
}

static void on_close(void *ctx, unsigned code, const char *reason, size_t len)
{
    if (code != 1005 && !sp_ws_close_code_valid(code))
        abort();
}

static const struct sp_ws_reader_events events = {on_message, on_control, on_control, on_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    struct sp_ws_reader *r = sp_ws_reader_new(4096, &events, NULL);
    if (r == NULL)
        return 0;
    if (data[0] & 0x80)
        sp_ws_reader_set_deflate(r, 8 + (data[0] >> 4 & 7), data[0] & 0x40);
    for (size_t pos = 1; pos < size; pos += step) {
        size_t n = size - pos < step ? size - pos : step;
        if (sp_ws_reader_feed(r, data + pos, n) != 0)
            break;
    }
    sp_ws_reader_free(r);
    return 0;
}
