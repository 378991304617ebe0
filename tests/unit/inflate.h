/* For tests of permessage-deflate: zlib, not sidepush, inflates what
 * sidepush compressed, so a shared mistake cannot pass. */
#ifndef SP_TEST_INFLATE_H
#define SP_TEST_INFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* Inflates a permessage-deflate payload (the 00 00 ff ff tail added back)
 * with a window of bits into out. Returns the inflated length, or -1. */
static inline long test_inflate(const void *z, size_t zlen, int bits, void *out, size_t cap)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    z_stream s = {0};
    long n = -1;

    if (inflateInit2(&s, -bits) != Z_OK)
        return -1;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    s.next_in = (Bytef *)z;
    s.avail_in = (uInt)zlen;
    int rc = inflate(&s, Z_SYNC_FLUSH);
    if (rc == Z_OK || rc == Z_BUF_ERROR) {
        s.next_in = (Bytef *)tail;
        s.avail_in = 4;
        rc = inflate(&s, Z_SYNC_FLUSH);
        if (rc == Z_OK || rc == Z_BUF_ERROR)
            n = (long)s.total_out;
    }
    inflateEnd(&s);
    return n;
}

#endif
