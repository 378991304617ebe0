/* Parsing of the value types used in configuration: durations, sizes and
 * listen addresses. Pure functions; outputs are written only on success. */
#ifndef SP_CORE_UNITS_H
#define SP_CORE_UNITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* "500ms", "30s", "5m", "2h", "1m30s". A bare number without a unit is an
 * error, because "30" could mean seconds or milliseconds. Returns 0 and sets
 * *ms, or -1 with a message in err. */
int sp_parse_duration(const char *text, uint64_t *ms, char *err, size_t errlen);

/* "512", "512B", "64KiB", "1MiB", "2GiB", "10KB", "1MB" (KB/MB/GB are powers
 * of 1000, KiB/MiB/GiB powers of 1024). Returns 0 and sets *bytes, or -1. */
int sp_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen);

/* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80", "localhost:8080", ":8080"
 * (all IPv4 interfaces). Numeric only apart from "localhost": resolving names
 * at start-up would make the listen address depend on DNS. */
struct sp_address {
    struct sockaddr_storage addr;
    socklen_t len;
};
int sp_parse_address(const char *text, struct sp_address *out, char *err, size_t errlen);

/* Formats an address as "host:port" ("[v6]:port"). */
void sp_address_format(const struct sp_address *a, char *buf, size_t size);

/* An address block: "10.0.0.0/8", "fd00::/8", or one address ("127.0.0.1",
 * "::1"), which is the block of that address alone. */
struct sp_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
};
int sp_parse_cidr(const char *text, struct sp_cidr *out, char *err, size_t errlen);
/* Does the numeric address text ("10.1.2.3", "::1") fall in one of the n
 * blocks? An IPv4-mapped IPv6 address is matched as its IPv4 address. */
bool sp_cidr_match(const struct sp_cidr *blocks, size_t n, const char *address);

#endif
