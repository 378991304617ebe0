#include "core/cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "core/hmap.h"

struct entry {
    TAILQ_ENTRY(entry) link; /* insertion order */
    uint64_t expires_ms;
    size_t len;
    char *key; /* points into data, after the value */
    unsigned char data[];
};

TAILQ_HEAD(entry_list, entry);

struct sp_cache {
    struct sp_hmap *map;
    struct entry_list order;
    size_t count, max;
};

struct sp_cache *sp_cache_new(size_t max_entries)
{
    struct sp_cache *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->map = sp_hmap_new()) == NULL) {
        free(c);
        return NULL;
    }
    TAILQ_INIT(&c->order);
    c->max = max_entries > 0 ? max_entries : 1;
    return c;
}

static void drop(struct sp_cache *c, struct entry *e)
{
    TAILQ_REMOVE(&c->order, e, link);
    sp_hmap_del(c->map, e->key);
    c->count--;
    free(e);
}

void sp_cache_free(struct sp_cache *c)
{
    struct entry *e;

    if (c == NULL)
        return;
    while ((e = TAILQ_FIRST(&c->order)) != NULL)
        drop(c, e);
    sp_hmap_free(c->map);
    free(c);
}

const void *sp_cache_get(struct sp_cache *c, const char *key, uint64_t now_ms, size_t *len)
{
    struct entry *e = sp_hmap_get(c->map, key);

    if (e == NULL)
        return NULL;
    if (e->expires_ms <= now_ms) {
        drop(c, e);
        return NULL;
    }
    if (len != NULL)
        *len = e->len;
    return e->data;
}

void sp_cache_del(struct sp_cache *c, const char *key)
{
    struct entry *e = sp_hmap_get(c->map, key);

    if (e != NULL)
        drop(c, e);
}

/* Drops expired entries from the oldest on, stopping at the first live one:
 * bounded work per insert, and with one lifetime for all entries (a replay
 * store) insertion order is expiry order, so nothing expired lingers. */
static void sweep(struct sp_cache *c, uint64_t now_ms)
{
    struct entry *e;

    for (int i = 0; i < 16 && (e = TAILQ_FIRST(&c->order)) != NULL && e->expires_ms <= now_ms; i++)
        drop(c, e);
}

void sp_cache_expire(struct sp_cache *c, uint64_t now_ms)
{
    struct entry *e;

    while ((e = TAILQ_FIRST(&c->order)) != NULL && e->expires_ms <= now_ms)
        drop(c, e);
}

int sp_cache_put(struct sp_cache *c, const char *key, const void *value, size_t len,
                 uint64_t expires_ms, uint64_t now_ms, bool evict)
{
    size_t klen = strlen(key);
    struct entry *e;

    sweep(c, now_ms);
    sp_cache_del(c, key);
    if (c->count >= c->max) {
        if (!evict)
            return SP_CACHE_FULL;
        drop(c, TAILQ_FIRST(&c->order));
    }
    e = malloc(sizeof(*e) + len + klen + 1);
    if (e == NULL)
        return SP_CACHE_NO_MEMORY;
    e->expires_ms = expires_ms;
    e->len = len;
    if (len > 0)
        memcpy(e->data, value, len);
    e->key = (char *)e->data + len;
    memcpy(e->key, key, klen + 1);
    if (sp_hmap_put(c->map, e->key, e) < 0) {
        free(e);
        return SP_CACHE_NO_MEMORY;
    }
    TAILQ_INSERT_TAIL(&c->order, e, link);
    c->count++;
    return 0;
}

size_t sp_cache_count(const struct sp_cache *c)
{
    return c->count;
}
