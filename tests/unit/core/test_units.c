#include "core/units.h"

#include <stdint.h>

#include "../tap.h"

static uint64_t dur(const char *text, int *rc)
{
    char err[256];
    uint64_t ms = 12345;
    *rc = sp_parse_duration(text, &ms, err, sizeof(err));
    return ms;
}

static void test_durations(void)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"500ms", 500},   {"30s", 30000}, {"5m", 300000}, {"2h", 7200000},        {"1d", 86400000},
        {"1m30s", 90000}, {"0", 0},       {"0s", 0},      {"1h1m1s1ms", 3661001},
    };
    static const char *const bad[] = {"",
                                      "30",
                                      "s",
                                      "5 s",
                                      "5x",
                                      "-1s",
                                      "1.5s",
                                      "5ms5",
                                      "99999999999999999999s",
                                      "18446744073709551615d"};
    int rc;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t ms = dur(good[i].text, &rc);
        ok(rc == 0 && ms == good[i].ms, "duration '%s' = %llu ms", good[i].text,
           (unsigned long long)good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = dur(bad[i], &rc);
        ok(rc < 0 && ms == 12345, "duration '%s' is rejected, output untouched", bad[i]);
    }
}

static void test_sizes(void)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"512", 512},      {"512B", 512},           {"64KiB", 65536},
        {"1MiB", 1048576}, {"2GiB", 2147483648ULL}, {"10KB", 10000},
        {"1MB", 1000000},  {"1GB", 1000000000},     {"0", 0},
    };
    static const char *const bad[] = {"",       "KiB", "1 KiB", "1kib",          "1K",
                                      "1.5MiB", "-1",  "1MiBs", "20000000000GiB"};
    char err[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t b = 0;
        int rc = sp_parse_size(good[i].text, &b, err, sizeof(err));
        ok(rc == 0 && b == good[i].bytes, "size '%s' = %llu", good[i].text,
           (unsigned long long)good[i].bytes);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t b = 7;
        int rc = sp_parse_size(bad[i], &b, err, sizeof(err));
        ok(rc < 0 && b == 7 && err[0] != '\0', "size '%s' is rejected: %s", bad[i], err);
    }
}

static void test_addresses(void)
{
    static const struct {
        const char *text;
        const char *formatted;
    } good[] = {
        {"127.0.0.1:8080", "127.0.0.1:8080"},
        {"0.0.0.0:80", "0.0.0.0:80"},
        {"[::1]:8081", "[::1]:8081"},
        {"localhost:3000", "127.0.0.1:3000"},
        {":9000", "0.0.0.0:9000"},
        {"*:9000", "0.0.0.0:9000"},
    };
    static const char *const bad[] = {"127.0.0.1",      "127.0.0.1:0",  "127.0.0.1:65536",
                                      "127.0.0.1:http", "::1:80",       "[::1]80",
                                      "example.com:80", "300.1.1.1:80", "",
                                      "[::1]:"};
    char err[256], buf[80];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct sp_address a;
        int rc = sp_parse_address(good[i].text, &a, err, sizeof(err));
        if (rc == 0)
            sp_address_format(&a, buf, sizeof(buf));
        ok(rc == 0 && strcmp(buf, good[i].formatted) == 0, "address '%s' -> %s", good[i].text,
           good[i].formatted);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sp_address a;
        ok(sp_parse_address(bad[i], &a, err, sizeof(err)) < 0, "address '%s' is rejected: %s",
           bad[i], err);
    }
}

int main(void)
{
    test_durations();
    test_sizes();
    test_addresses();
    return tap_done();
}
