/* A string-keyed hash map (chained, power-of-two buckets). It stores the
 * caller's key pointer, so the key must live as long as its entry. */
#ifndef SP_CORE_HMAP_H
#define SP_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct sp_hmap;

struct sp_hmap *sp_hmap_new(void);
/* Frees the map, not the keys or values. */
void sp_hmap_free(struct sp_hmap *m);

void *sp_hmap_get(const struct sp_hmap *m, const char *key);
/* Adds or replaces. Returns 0, or -1 on allocation failure. */
int sp_hmap_put(struct sp_hmap *m, const char *key, void *value);
/* Returns the removed value, or NULL. */
void *sp_hmap_del(struct sp_hmap *m, const char *key);
size_t sp_hmap_count(const struct sp_hmap *m);

/* Calls fn for every entry; fn may delete the entry it is given. */
void sp_hmap_each(struct sp_hmap *m, void (*fn)(const char *key, void *value, void *ctx),
                  void *ctx);

uint64_t sp_hash(const char *s);

#endif
