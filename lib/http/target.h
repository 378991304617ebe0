/* Where the reverse proxy sends requests: backend.url ("http://host[:port]
 * [/prefix]" or "unix:/path") resolved into the address the upstream pool
 * connects to, the path that prefixes every target and the Host value.
 * Resolved whole, so a reload whose backend does not resolve changes nothing. */
#ifndef SP_HTTP_TARGET_H
#define SP_HTTP_TARGET_H

#include <stddef.h>

#include "core/units.h"

struct sp_http_target {
    struct sp_address address; /* TCP; unset for a Unix socket */
    const char *unix_path;     /* into the URL given, or NULL */
    char *base_path;           /* without a trailing '/' ("" for none) */
    char *host;                /* "host[:port]" ("localhost" for a Unix socket) */
};

/* Resolves url now (names in a sidecar's pod are stable). Returns 0, or -1
 * with the reason in err and nothing allocated. */
int sp_http_target_resolve(const char *url, struct sp_http_target *t, char *err, size_t errlen);
/* Frees what resolve allocated. */
void sp_http_target_clear(struct sp_http_target *t);

#endif
