/* A delay queue for grace periods: entries embedded in the caller's objects
 * (no allocation), each due at its own time, one timer for the whole queue
 * armed for the earliest. Occupancy's vacancy grace and presence's leave
 * grace use it: an entry is added when something goes, cancelled when it
 * comes back within the grace, and the due callback tells that it is gone.
 *
 * On the loop of the base given to sp_delay_new only.
 */
#ifndef SP_CORE_DELAY_H
#define SP_CORE_DELAY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

/* Embedded in the owner's struct; zeroed, it is not queued. */
struct sp_delay_entry {
    TAILQ_ENTRY(sp_delay_entry) link;
    uint64_t due_ms;
    bool queued;
};

/* The struct an entry is embedded in. */
#define SP_DELAY_OWNER(entry, type, member) ((type *)((char *)(entry)-offsetof(type, member)))

struct sp_delay;

/* due runs for each entry whose time came, taken off the queue first, so it
 * may free the entry's owner. NULL on allocation failure. */
typedef void (*sp_delay_due)(void *ctx, struct sp_delay_entry *entry);
struct sp_delay *sp_delay_new(struct event_base *base, sp_delay_due due, void *ctx);
/* Queued entries are dropped untold. Accepts NULL. */
void sp_delay_free(struct sp_delay *q);

/* Queues e (not queued now) to be due delay_ms from now, in time order with
 * the others. A delay of 0 runs due for it, and for every entry due by now,
 * before this returns. */
void sp_delay_add(struct sp_delay *q, struct sp_delay_entry *e, uint64_t delay_ms);
/* Takes e off the queue if it is queued; due never runs for it then. */
void sp_delay_cancel(struct sp_delay *q, struct sp_delay_entry *e);

#endif
