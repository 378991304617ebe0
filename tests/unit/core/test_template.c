#include "core/template.h"

#include <stdlib.h>

#include "../tap.h"

static struct sp_tmpl *compile(const char *pattern)
{
    char err[256];
    struct sp_tmpl *t = NULL;
    if (sp_tmpl_compile(pattern, &t, err, sizeof(err)) < 0)
        printf("# compile '%s': %s\n", pattern, err);
    return t;
}

static void test_match(void)
{
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    struct sp_tmpl *t = compile("/events/{channel}");
    char out[64];

    ok(t != NULL, "compiles /events/{channel}");
    ok(sp_tmpl_match(t, "/events/news", 12, caps) && caps[0].len == 4 &&
           memcmp(caps[0].ptr, "news", 4) == 0,
       "captures one segment");
    ok(!sp_tmpl_match(t, "/events/", 8, caps), "an empty capture does not match");
    ok(!sp_tmpl_match(t, "/events/a/b", 11, caps), "a capture never spans '/'");
    ok(!sp_tmpl_match(t, "/event/a", 8, caps), "literal text must match");
    sp_tmpl_match(t, "/events/news", 12, caps);
    is_int(sp_tmpl_expand(t, "room-{channel}", caps, out, sizeof(out)), 9, "expand length");
    is_str(out, "room-news", "expands captures into a channel name");
    ok(sp_tmpl_expand(t, "{channel}", caps, out, 4) < 0, "expand reports a short buffer");
    sp_tmpl_free(t);

    t = compile("/orders/{id}/live");
    ok(sp_tmpl_match(t, "/orders/42/live", 15, caps) && caps[0].len == 2, "middle capture");
    ok(!sp_tmpl_match(t, "/orders/42/live/x", 17, caps), "trailing text does not match");
    sp_tmpl_free(t);

    t = compile("/u/user-{id}.json");
    ok(sp_tmpl_match(t, "/u/user-7.json", 14, caps) && caps[0].len == 1 && caps[0].ptr[0] == '7',
       "capture inside a segment stops at the following literal");
    sp_tmpl_free(t);

    t = compile("/a/{x}/b/{y}");
    ok(t && sp_tmpl_capture_count(t) == 2, "two captures");
    ok(sp_tmpl_match(t, "/a/1/b/2", 8, caps) && caps[1].ptr[0] == '2', "second capture");
    char err[128];
    ok(sp_tmpl_check_refs(t, "{x}-{y}", err, sizeof(err)) == 0, "refs to captures pass");
    ok(sp_tmpl_check_refs(t, "{z}", err, sizeof(err)) < 0, "a ref to no capture fails: %s", err);
    sp_tmpl_free(t);
}

static void test_bad_patterns(void)
{
    static const char *const bad[] = {"/a/{",
                                      "/a/}",
                                      "/a/{}",
                                      "/a/{x-y}",
                                      "/{a}{b}",
                                      "/{a}/{a}",
                                      "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        struct sp_tmpl *t = NULL;
        ok(sp_tmpl_compile(bad[i], &t, err, sizeof(err)) < 0 && t == NULL,
           "pattern '%s' is rejected: %s", bad[i], err);
    }
}

int main(void)
{
    test_match();
    test_bad_patterns();
    return tap_done();
}
