/* Incremental UTF-8 validation (core/utf8). */
#include "core/utf8.h"

#include <string.h>

#include "../tap.h"

static void test_whole_texts(void)
{
    static const struct {
        const char *s;
        bool valid;
    } cases[] = {
        {"plain ascii", true},
        {"\xc3\xa9t\xc3\xa9", true},
        {"\xe2\x82\xac", true},
        {"\xf0\x9f\x98\x80", true},
        {"\xf4\x8f\xbf\xbf", true},
        {"\xc0\xaf", false},
        {"\xe0\x80\xaf", false},
        {"\xed\xa0\x80", false},
        {"\xf4\x90\x80\x80", false},
        {"\xf5\x80\x80\x80", false},
        {"\x80", false},
        {"\xc3", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t st = 0;
        bool valid = sp_utf8_feed(&st, (const uint8_t *)cases[i].s, strlen(cases[i].s)) && st == 0;
        ok(valid == cases[i].valid, "utf8 case %zu is %s", i, cases[i].valid ? "valid" : "invalid");
    }
}

/* Text that arrives in pieces: every split of a valid text is valid, and an
 * invalid byte is refused in the piece it comes in. */
static void test_pieces(void)
{
    const char *text = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    size_t len = strlen(text);
    bool all = true;

    for (size_t cut = 0; cut <= len; cut++) {
        uint32_t st = 0;
        all &= sp_utf8_feed(&st, (const uint8_t *)text, cut) &&
               sp_utf8_feed(&st, (const uint8_t *)text + cut, len - cut) && st == 0;
    }
    ok(all, "a valid text split at every point");
    uint32_t st = 0;
    ok(sp_utf8_feed(&st, (const uint8_t *)"\xe2\x82", 2) && st != 0,
       "an unfinished sequence waits");
    ok(!sp_utf8_feed(&st, (const uint8_t *)"A", 1), "a byte that breaks it is refused");
    ok(!sp_utf8_feed(&st, (const uint8_t *)"A", 1), "and it stays refused");
}

int main(void)
{
    test_whole_texts();
    test_pieces();
    return tap_done();
}
