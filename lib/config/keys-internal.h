/* The key table of the configuration, shared by the walker (config.c)
 * and its printed reference (keys.c, `sidepush --help-config`, which
 * config/README.md is generated from): config/ only. */
#ifndef SP_CONFIG_KEYS_INTERNAL_H
#define SP_CONFIG_KEYS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* One line per key: where it may appear (section), its type, bounds, default
 * and what it means. The walker (config.c) rejects unknown keys, wrong types and
 * wrong places from this table alone; `sidepush --help-config` prints it.
 */

enum type {
    T_SECTION,     /* a nested map; offset (if any) is a bool "present" flag */
    T_STRING,      /* char *, non-empty */
    T_PATH,        /* char *, starts with '/' */
    T_URL,         /* char *, http(s) URL checked by libcurl's URL parser */
    T_BACKEND_URL, /* char *, an http:// URL or unix:/path of a socket */
    T_BOOL,        /* bool: true or false */
    T_SWITCH,      /* bool: on or off */
    T_UINT,        /* uint64_t within [min, max] */
    T_DURATION,    /* uint64_t milliseconds within [min, max] */
    T_SIZE,        /* uint64_t bytes within [min, max] */
    T_ADDRESS,     /* struct sp_address */
    T_LOG_LEVEL,   /* enum sp_log_level */
    T_TRANSPORTS,  /* unsigned bits from a list of sse, websocket, longpoll */
    T_START,       /* enum sp_start: newest or oldest */
    T_MODE,        /* bool last_value: history or last_value */
    T_OPT_STRING,  /* char *, may be empty */
    T_STRING_LIST, /* struct sp_strlist from a list of strings */
    T_CIDR_LIST,   /* struct sp_strlist of address blocks, each checked */
    T_EVENT_LIST,  /* struct sp_strlist of webhook event names, each checked */
    T_ROUTES,      /* the routes list, walked with route_keys[] */
    T_WORKERS,     /* uint64_t: "auto" (0) or a count within [min, max] */
};

enum { F_REQUIRED = 1 };

struct key {
    const char *section; /* "" for the top level, "a.b" for nested maps */
    const char *name;
    enum type type;
    size_t offset; /* into struct sp_config, or sp_route_config for route keys */
    uint64_t min, max;
    const char *def; /* default, written as it would be in YAML; NULL: none */
    unsigned flags;
    const char *doc;
};

/* Where a key's value goes, and units for bounds and defaults. */
#define C(field) offsetof(struct sp_config, field)
#define R(field) offsetof(struct sp_route_config, field)
#define NO_OFFSET ((size_t)-1)
#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * 1024 * 1024)
#define SEC 1000ULL
#define HOUR (3600ULL * 1000)

extern const struct key sp_config_keys[]; /* top level and sections */
extern const size_t sp_config_nkeys;
extern const struct key sp_route_keys[]; /* each entry of routes */
extern const size_t sp_route_nkeys;

#endif
