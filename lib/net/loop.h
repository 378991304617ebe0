/* The event loop: its priorities, and work done a slice at a time.
 *
 * libevent runs, each turn, only the most urgent priority that has active
 * events. sidepush uses that for one thing: the request a client sends right
 * after a long-poll answer (its next poll) waits at SP_PRIO_DEFERRED while
 * a fan-out is being answered, so every held client is answered before the
 * first of them is held again; everything else (publishes, proxied
 * requests, health checks, Redis, polls of the backend) stays at
 * SP_PRIO_NORMAL and keeps its turn between the fan-out's slices.
 * SP_PRIO_URGENT is unused; it is there so that libevent's default priority
 * (the middle one) is SP_PRIO_NORMAL.
 */
#ifndef SP_NET_LOOP_H
#define SP_NET_LOOP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

enum sp_prio { SP_PRIO_URGENT, SP_PRIO_NORMAL, SP_PRIO_DEFERRED, SP_PRIO_COUNT };

/* An event_base with the priorities above. NULL on failure. */
struct event_base *sp_loop_new(void);

/* Gives ev the priority if it is not active now. A base made without
 * priorities (a unit test's) keeps one for all. */
void sp_loop_set_priority(struct event *ev, enum sp_prio prio);

/* A slicer runs one batch job (a fan-out) a slice at a time: the first slice
 * at the end of the loop turn that started it, each next one after the loop
 * has polled again, so what arrived meanwhile (the next publish) is read and
 * joins the job. Slices run at SP_PRIO_NORMAL; after SP_SLICER_YIELD_MS of
 * them in a row, one runs at SP_PRIO_DEFERRED, so deferred requests wait
 * that long at most. */
#define SP_SLICER_YIELD_MS 100

struct sp_slicer;
typedef void (*sp_slice_fn)(void *arg);

struct sp_slicer *sp_slicer_new(struct event_base *base, sp_slice_fn slice, void *arg);
/* Accepts NULL. Runs no slice. */
void sp_slicer_free(struct sp_slicer *s);
/* There is work: a slice runs at the end of this loop turn unless one is
 * already due. */
void sp_slicer_start(struct sp_slicer *s);
/* From a slice that left work: the next slice runs after the loop polls. */
void sp_slicer_more(struct sp_slicer *s);

#endif
