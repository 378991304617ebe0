/* A borrowed run of bytes: the one struct exposed by value across modules. */
#ifndef SP_CORE_SLICE_H
#define SP_CORE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct sp_slice {
    const char *ptr;
    size_t len;
};

static inline struct sp_slice sp_slice_from(const char *s)
{
    return (struct sp_slice){s, strlen(s)};
}

static inline bool sp_slice_eq(struct sp_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.ptr, s, n) == 0;
}

static inline bool sp_slice_caseeq(struct sp_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && strncasecmp(a.ptr, s, n) == 0;
}

#endif
