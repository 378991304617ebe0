#include <stdlib.h>

#include "backend/poller.h"
#include "../tap.h"

static void check(const char *old, const char *new, const char *want, const char *what)
{
    char *got = sp_merge_patch(old, new);
    is_str(got, want, "%s", what);
    free(got);
}

int main(void)
{
    check("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":3}", "{\"b\":3}", "a changed member");
    check("{\"a\":1,\"b\":2}", "{\"a\":1}", "{\"b\":null}", "a removed member is null");
    check("{\"a\":1}", "{\"a\":1,\"c\":[1,2]}", "{\"c\":[1,2]}", "an added member");
    check("{\"o\":{\"x\":1,\"y\":2}}", "{\"o\":{\"x\":1,\"y\":5}}", "{\"o\":{\"y\":5}}",
          "nested objects patch recursively");
    check("{\"l\":[1,2,3]}", "{\"l\":[1,2]}", "{\"l\":[1,2]}", "arrays are replaced whole");
    check("{\"a\":1}", "{\"a\":1}", "{}", "equal documents: an empty patch");
    check("{\"a\":1}", "{\"a\":null}", NULL, "a null value cannot be patched: send whole");
    check("[1]", "[2]", NULL, "not objects: send whole");
    check("{\"a\":1}", "not json", NULL, "not JSON: send whole");
    return tap_done();
}
