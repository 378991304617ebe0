/* Monotonic time for timeouts, expiries and latencies (never the wall clock,
 * which can jump), and a random number for jitter. */
#ifndef SP_CORE_CLOCK_H
#define SP_CORE_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t sp_now_ms(void);

/* A random 32-bit value from getrandom(), the clock if that fails: for
 * spreading retries and reconnects, not for secrets. */
uint32_t sp_random(void);

#endif
