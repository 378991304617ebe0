#include "core/utf8.h"

/* Table 3-7 of the Unicode standard, byte by byte. The state keeps the
 * continuation bytes still due and the range the next one must fall in, so
 * overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points
 * past U+10FFFF (F4 90.., F5..FF) are refused at the byte that makes them so.
 */

#define UTF8_INVALID 0xffffffffu

bool sp_utf8_feed(uint32_t *state, const uint8_t *p, size_t len)
{
    uint32_t need = *state & 0xff, lo = (*state >> 8) & 0xff, hi = (*state >> 16) & 0xff;

    if (*state == UTF8_INVALID)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        if (need > 0) {
            if (b < lo || b > hi)
                goto invalid;
            need--;
            lo = 0x80;
            hi = 0xbf;
            continue;
        }
        if (b < 0x80)
            continue;
        lo = 0x80;
        hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0)
                lo = 0xa0;
            else if (b == 0xed)
                hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0)
                lo = 0x90;
            else if (b == 0xf4)
                hi = 0x8f;
        } else {
            goto invalid;
        }
    }
    *state = need == 0 ? 0 : (need | lo << 8 | hi << 16);
    return true;

invalid:
    *state = UTF8_INVALID;
    return false;
}
