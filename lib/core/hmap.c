#include "core/hmap.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    const char *key;
    uint64_t hash;
    void *value;
};

struct sp_hmap {
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

uint64_t sp_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

struct sp_hmap *sp_hmap_new(void)
{
    struct sp_hmap *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void sp_hmap_free(struct sp_hmap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct entry **find(const struct sp_hmap *m, const char *key, uint64_t hash)
{
    struct entry **pp = &m->buckets[hash & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->hash == hash && strcmp((*pp)->key, key) == 0)
            return pp;
    }
    return pp;
}

void *sp_hmap_get(const struct sp_hmap *m, const char *key)
{
    struct entry *e = *find(m, key, sp_hash(key));
    return e ? e->value : NULL;
}

static void grow(struct sp_hmap *m)
{
    size_t n = m->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* keep working, only slower */
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int sp_hmap_put(struct sp_hmap *m, const char *key, void *value)
{
    uint64_t hash = sp_hash(key);
    struct entry **pp = find(m, key, hash);

    if (*pp) {
        (*pp)->key = key;
        (*pp)->value = value;
        return 0;
    }
    struct entry *e = malloc(sizeof(*e));
    if (e == NULL)
        return -1;
    *e = (struct entry){NULL, key, hash, value};
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *sp_hmap_del(struct sp_hmap *m, const char *key)
{
    struct entry **pp = find(m, key, sp_hash(key));
    struct entry *e = *pp;

    if (e == NULL)
        return NULL;
    void *value = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return value;
}

size_t sp_hmap_count(const struct sp_hmap *m)
{
    return m->count;
}

void sp_hmap_each(struct sp_hmap *m, void (*fn)(const char *key, void *value, void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next; /* fn may delete e */
            fn(e->key, e->value, ctx);
            e = next;
        }
    }
}
