#include "core/clock.h"

#include <sys/random.h>
#include <time.h>

uint64_t sp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct timeval sp_timeval_ms(uint64_t ms)
{
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
}

void sp_random_base36(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

    for (size_t i = 0; i < n; i++)
        out[i] = digits[sp_random() % 36];
    out[n] = '\0';
}

uint64_t sp_retire_at(uint64_t now, uint64_t age_ms)
{
    if (age_ms == 0)
        return UINT64_MAX;
    return now + age_ms - (uint64_t)sp_random() % (age_ms / 10 + 1);
}

uint32_t sp_random(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)sp_now_ms();
    return r;
}
