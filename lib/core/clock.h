/* Monotonic time for timeouts, expiries and latencies (never the wall clock,
 * which can jump), and a random number for jitter. */
#ifndef SP_CORE_CLOCK_H
#define SP_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t sp_now_ms(void);

/* A random 32-bit value from getrandom(), the clock if that fails: for
 * spreading retries and reconnects, not for secrets. */
uint32_t sp_random(void);

/* When something that began at now and may last age_ms should end: now +
 * age_ms less a random tenth of it, so connections made together (a
 * deploy's reconnect wave) do not all end together. UINT64_MAX when age_ms
 * is 0 (no limit). */
uint64_t sp_retire_at(uint64_t now, uint64_t age_ms);

/* ms as a struct timeval, for libevent's timers. */
struct timeval sp_timeval_ms(uint64_t ms);

/* n random characters of [0-9a-z] and a NUL (epochs, replica names):
 * out holds n + 1 bytes. */
void sp_random_base36(char *out, size_t n);

#endif
