#include "core/delay.h"

#include <stdlib.h>

#include "core/clock.h"

TAILQ_HEAD(entry_queue, sp_delay_entry);

struct sp_delay {
    struct entry_queue queue; /* by due_ms */
    struct event *timer;
    sp_delay_due due;
    void *ctx;
};

static void arm(struct sp_delay *q)
{
    struct sp_delay_entry *first = TAILQ_FIRST(&q->queue);
    uint64_t now = sp_now_ms();

    if (first == NULL) {
        evtimer_del(q->timer);
        return;
    }
    struct timeval tv = sp_timeval_ms(first->due_ms > now ? first->due_ms - now : 0);
    evtimer_add(q->timer, &tv);
}

static void expire(evutil_socket_t fd, short what, void *arg)
{
    struct sp_delay *q = arg;
    uint64_t now = sp_now_ms();
    struct sp_delay_entry *e;

    while ((e = TAILQ_FIRST(&q->queue)) != NULL && e->due_ms <= now) {
        TAILQ_REMOVE(&q->queue, e, link);
        e->queued = false;
        q->due(q->ctx, e);
    }
    arm(q);
}

struct sp_delay *sp_delay_new(struct event_base *base, sp_delay_due due, void *ctx)
{
    struct sp_delay *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    TAILQ_INIT(&q->queue);
    q->due = due;
    q->ctx = ctx;
    q->timer = evtimer_new(base, expire, q);
    if (q->timer == NULL) {
        free(q);
        return NULL;
    }
    return q;
}

void sp_delay_free(struct sp_delay *q)
{
    if (q == NULL)
        return;
    event_free(q->timer);
    free(q);
}

void sp_delay_add(struct sp_delay *q, struct sp_delay_entry *e, uint64_t delay_ms)
{
    struct sp_delay_entry *after;

    e->due_ms = sp_now_ms() + delay_ms;
    e->queued = true;
    /* From the back: with one grace for all (the usual case) this is the tail;
     * a grace shortened by a reload places its entries before older ones. */
    for (after = TAILQ_LAST(&q->queue, entry_queue); after != NULL && after->due_ms > e->due_ms;
         after = TAILQ_PREV(after, entry_queue, link))
        ;
    if (after == NULL)
        TAILQ_INSERT_HEAD(&q->queue, e, link);
    else
        TAILQ_INSERT_AFTER(&q->queue, after, e, link);
    if (delay_ms == 0)
        expire(-1, 0, q);
    else if (TAILQ_FIRST(&q->queue) == e)
        arm(q);
}

void sp_delay_cancel(struct sp_delay *q, struct sp_delay_entry *e)
{
    if (!e->queued)
        return;
    bool first = TAILQ_FIRST(&q->queue) == e;
    TAILQ_REMOVE(&q->queue, e, link);
    e->queued = false;
    if (first)
        arm(q);
}
