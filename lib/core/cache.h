/* A bounded map of string keys to small values that expire: verdict caches,
 * replay stores. Entries leave when they expire (checked on every lookup,
 * and swept from the oldest on every insert) or, when the map is full and
 * the caller allows it, oldest first. No I/O; time is the caller's. */
#ifndef SP_CORE_CACHE_H
#define SP_CORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_cache;

enum sp_cache_error {
    SP_CACHE_NO_MEMORY = -1,
    SP_CACHE_FULL = -2, /* max_entries live ones, and eviction was not allowed */
};

/* NULL on allocation failure. */
struct sp_cache *sp_cache_new(size_t max_entries);
/* Accepts NULL. */
void sp_cache_free(struct sp_cache *c);

/* The value stored under key, or NULL if absent or expired at now_ms (an
 * expired entry is dropped). The pointer lives until the next put or del. */
const void *sp_cache_get(struct sp_cache *c, const char *key, uint64_t now_ms, size_t *len);

/* Stores a copy of value under key until expires_ms, replacing an older
 * entry. When the map is full of live entries, evict drops the oldest;
 * without it the put fails with SP_CACHE_FULL. Returns 0 or an error. */
int sp_cache_put(struct sp_cache *c, const char *key, const void *value, size_t len,
                 uint64_t expires_ms, uint64_t now_ms, bool evict);

void sp_cache_del(struct sp_cache *c, const char *key);
/* Drops expired entries from the oldest on, up to the first live one (all
 * expired ones when every entry has the same lifetime): a periodic sweep. */
void sp_cache_expire(struct sp_cache *c, uint64_t now_ms);
/* Live and not yet swept entries. */
size_t sp_cache_count(const struct sp_cache *c);

#endif
