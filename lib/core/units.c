#include "core/units.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit {
    const char *name;
    uint64_t factor;
};

static const struct unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
};

static const struct unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"KiB", 1024},
    {"MiB", 1024 * 1024},
    {"GiB", 1024 * 1024 * 1024},
};

/* Reads the leading decimal digits of *p. Returns -1 if there are none or
 * the number does not fit in 64 bits. */
static int read_number(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        uint64_t digit = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *p = s;
    *out = v;
    return 0;
}

/* Matches the longest unit name at the start of p (so "ms" wins over "m"). */
static const struct unit *match_unit(const struct unit *units, size_t n, const char *p,
                                     size_t *matched)
{
    const struct unit *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(units[i].name);
        if (len >= best_len && strncmp(p, units[i].name, len) == 0 &&
            !isalpha((unsigned char)p[len])) {
            best = &units[i];
            best_len = len;
        }
    }
    *matched = best_len;
    return best;
}

int sp_parse_duration(const char *text, uint64_t *ms, char *err, size_t errlen)
{
    const char *p = text;
    uint64_t total = 0;

    if (*p == '\0') {
        snprintf(err, errlen, "empty duration");
        return -1;
    }
    if (strcmp(text, "0") == 0) { /* unambiguous without a unit */
        *ms = 0;
        return 0;
    }
    while (*p != '\0') {
        uint64_t n;
        size_t len;
        if (read_number(&p, &n) < 0) {
            snprintf(err, errlen, "invalid duration '%s' (expected e.g. 500ms, 30s, 5m)", text);
            return -1;
        }
        const struct unit *u = match_unit(duration_units, 5, p, &len);
        if (u == NULL || len == 0) {
            snprintf(err, errlen, "duration '%s' needs a unit: ms, s, m, h or d", text);
            return -1;
        }
        if (n > (UINT64_MAX - total) / u->factor) {
            snprintf(err, errlen, "duration '%s' is too large", text);
            return -1;
        }
        total += n * u->factor;
        p += len;
    }
    *ms = total;
    return 0;
}

int sp_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
    const char *p = text;
    uint64_t n;
    size_t len;

    if (read_number(&p, &n) < 0) {
        snprintf(err, errlen, "invalid size '%s' (expected e.g. 512, 64KiB, 1MiB)", text);
        return -1;
    }
    const struct unit *u =
        match_unit(size_units, sizeof(size_units) / sizeof(size_units[0]), p, &len);
    if (u == NULL || p[len] != '\0') {
        snprintf(err, errlen, "unknown size unit in '%s' (use B, KiB, MiB, GiB, KB, MB, GB)", text);
        return -1;
    }
    if (n > UINT64_MAX / u->factor) {
        snprintf(err, errlen, "size '%s' is too large", text);
        return -1;
    }
    *bytes = n * u->factor;
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    const char *p = s;

    if (read_number(&p, &v) < 0 || *p != '\0' || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int sp_parse_address(const char *text, struct sp_address *out, char *err, size_t errlen)
{
    char host[64];
    const char *port_text;
    uint16_t port;
    struct sp_address a;

    memset(&a, 0, sizeof(a));
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
            goto bad;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port_text = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host) ||
            memchr(text, ':', (size_t)(colon - text)) != NULL)
            goto bad;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    if (parse_port(port_text, &port) < 0) {
        snprintf(err, errlen, "invalid port in address '%s' (1-65535)", text);
        return -1;
    }

    struct sockaddr_in *v4 = (struct sockaddr_in *)&a.addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a.addr;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (strcmp(host, "localhost") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else if (text[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
    } else {
        goto bad;
    }
    if (a.addr.ss_family == AF_INET) {
        v4->sin_port = htons(port);
        a.len = sizeof(*v4);
    } else {
        v6->sin6_port = htons(port);
        a.len = sizeof(*v6);
    }
    *out = a;
    return 0;

bad:
    snprintf(err, errlen,
             "invalid address '%s' (expected IP:PORT, [IPv6]:PORT, localhost:PORT or :PORT)", text);
    return -1;
}

void sp_address_format(const struct sp_address *a, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (a->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->addr;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->addr;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(v4->sin_port));
    }
}

/* ---- address blocks ------------------------------------------------------------ */

int sp_parse_cidr(const char *text, struct sp_cidr *out, char *err, size_t errlen)
{
    char host[64];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    struct sp_cidr c = {0};
    uint64_t bits;

    if (hlen == 0 || hlen >= sizeof(host))
        goto bad;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, host, c.addr) == 1)
        c.family = AF_INET6;
    else
        goto bad;
    c.bits = c.family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (read_number(&p, &bits) < 0 || *p != '\0' || bits > c.bits)
            goto bad;
        c.bits = (unsigned)bits;
    }
    *out = c;
    return 0;

bad:
    snprintf(err, errlen,
             "invalid address block '%s' (expected 10.0.0.0/8, fd00::/8 or an address)", text);
    return -1;
}

static bool block_has(const struct sp_cidr *b, const unsigned char *addr)
{
    unsigned full = b->bits / 8, rest = b->bits % 8;

    if (memcmp(b->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (b->addr[full] & mask) == (addr[full] & mask);
}

bool sp_cidr_match(const struct sp_cidr *blocks, size_t n, const char *address)
{
    unsigned char v6[16], v4[4];
    bool is4 = inet_pton(AF_INET, address, v4) == 1;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (!is4 && inet_pton(AF_INET6, address, v6) != 1)
        return false;
    if (!is4 && memcmp(v6, mapped, sizeof(mapped)) == 0) {
        memcpy(v4, v6 + 12, 4);
        is4 = true;
    }
    for (size_t i = 0; i < n; i++) {
        if (blocks[i].family == (is4 ? AF_INET : AF_INET6) && block_has(&blocks[i], is4 ? v4 : v6))
            return true;
    }
    return false;
}
