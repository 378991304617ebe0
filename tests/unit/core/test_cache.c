#include "core/cache.h"

#include <stdio.h>

#include "../tap.h"

int main(void)
{
    struct sp_cache *c = sp_cache_new(3);
    size_t len = 0;
    const char *v;

    ok(c != NULL, "new");
    is_int(sp_cache_put(c, "a", "one", 4, 100, 0, false), 0, "put a");
    v = sp_cache_get(c, "a", 50, &len);
    ok(v != NULL && strcmp(v, "one") == 0 && len == 4, "get a before it expires");
    ok(sp_cache_get(c, "a", 100, NULL) == NULL, "a is gone when it expires");
    is_int(sp_cache_count(c), 0, "and was dropped");

    is_int(sp_cache_put(c, "a", "1", 2, 1000, 0, false), 0, "a");
    is_int(sp_cache_put(c, "b", "2", 2, 1000, 0, false), 0, "b");
    is_int(sp_cache_put(c, "c", "3", 2, 1000, 0, false), 0, "c");
    is_int(sp_cache_put(c, "d", "4", 2, 1000, 0, false), SP_CACHE_FULL,
           "full of live entries: refused without eviction");
    is_int(sp_cache_put(c, "b", "two", 4, 1000, 0, false), 0, "replacing a key is not growth");
    v = sp_cache_get(c, "b", 1, NULL);
    ok(v != NULL && strcmp(v, "two") == 0, "the replaced value");
    is_int(sp_cache_put(c, "d", "4", 2, 1000, 0, true), 0, "with eviction: the oldest goes");
    ok(sp_cache_get(c, "a", 1, NULL) == NULL, "a (the oldest) was evicted");
    ok(sp_cache_get(c, "c", 1, NULL) != NULL && sp_cache_get(c, "d", 1, NULL) != NULL,
       "the others stay");
    is_int(sp_cache_put(c, "e", "5", 2, 2000, 1000, false), 0,
           "expired entries are swept by an insert, making room");
    is_int(sp_cache_count(c), 1, "only the new entry is left");
    sp_cache_del(c, "e");
    sp_cache_del(c, "missing");
    is_int(sp_cache_count(c), 0, "del");

    /* Keys of any length and empty values. */
    char key[5000];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    is_int(sp_cache_put(c, key, NULL, 0, 10, 0, false), 0, "a long key, no value");
    ok(sp_cache_get(c, key, 1, &len) != NULL && len == 0, "found whole");
    key[4000] = 'x';
    ok(sp_cache_get(c, key, 1, NULL) == NULL, "a key differing late is another key");
    sp_cache_free(c);
    sp_cache_free(NULL);
    return tap_done();
}
