#include "net/mailbox.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"

#define PER_SENDER 20000

struct note {
    struct sp_mail mail;
    int sender, n;
    int *last; /* the receiver's: last n seen from each sender */
    int *bad, *ran;
};

static void note_run(struct sp_mail *mail)
{
    struct note *m = (struct note *)mail;

    if (m->n != m->last[m->sender] + 1)
        (*m->bad)++;
    m->last[m->sender] = m->n;
    (*m->ran)++;
    free(m);
}

static void mail_free(struct sp_mail *mail)
{
    free(mail);
}

static void note_drop(struct sp_mail *mail)
{
    struct note *m = (struct note *)mail;
    (*m->bad) += 1000000; /* counted apart: see the drop test */
    free(m);
}

struct sender {
    struct sp_mailbox *mb;
    int id;
    int *last, *bad, *ran;
};

static void *send_all(void *arg)
{
    struct sender *s = arg;

    for (int i = 0; i < PER_SENDER; i++) {
        struct note *m = malloc(sizeof(*m));
        *m = (struct note){.sender = s->id, .n = i, .last = s->last, .bad = s->bad, .ran = s->ran};
        sp_mailbox_post(s->mb, &m->mail, note_run, note_drop);
    }
    return NULL;
}

static void stop_when_done(evutil_socket_t fd, short what, void *arg)
{
    struct event_base *base = arg;
    event_base_loopbreak(base);
}

/* Two threads post; the loop runs each one's mail in its order, all of it. */
static void test_order_across_threads(void)
{
    struct event_base *base = event_base_new();
    struct sp_mailbox *mb = sp_mailbox_new(base);
    int last[2] = {-1, -1}, bad = 0, ran = 0;
    struct sender s[2] = {{mb, 0, last, &bad, &ran}, {mb, 1, last, &bad, &ran}};
    pthread_t t[2];
    struct event *tick = event_new(base, -1, EV_PERSIST, stop_when_done, base);
    struct timeval ms = {0, 1000};

    event_add(tick, &ms);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, send_all, &s[i]);
    for (int spins = 0; ran < 2 * PER_SENDER && spins < 100000; spins++)
        event_base_loop(base, EVLOOP_ONCE);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    sp_mailbox_run(mb);
    is_int(ran, 2 * PER_SENDER, "every mail ran");
    is_int(bad, 0, "each sender's mail ran in the order it was posted");
    event_free(tick);
    sp_mailbox_free(mb);
    event_base_free(base);
}

/* What a mail makes active (the flusher, in a worker) runs before the next
 * mail: a burst of deliveries is written out one at a time. */
struct turn {
    struct sp_mail mail;
    struct event *flush;
    char *log;
};

static void turn_run(struct sp_mail *mail)
{
    struct turn *t = (struct turn *)mail;
    strcat(t->log, "m");
    event_active(t->flush, EV_TIMEOUT, 0);
    free(t);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    strcat(arg, "f");
}

static void test_flush_between_mails(void)
{
    struct event_base *base = event_base_new();
    struct sp_mailbox *mb = sp_mailbox_new(base);
    char log[32] = "";
    struct event *flush = event_new(base, -1, 0, on_flush, log);

    for (int i = 0; i < 3; i++) {
        struct turn *t = malloc(sizeof(*t));
        *t = (struct turn){.flush = flush, .log = log};
        sp_mailbox_post(mb, &t->mail, turn_run, mail_free);
    }
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    is_str(log, "mfmfmf", "each mail's flush runs before the next mail");
    event_free(flush);
    sp_mailbox_free(mb);
    event_base_free(base);
}

/* Mail still queued when the mailbox goes is dropped, not run nor leaked. */
static void test_free_drops(void)
{
    struct event_base *base = event_base_new();
    struct sp_mailbox *mb = sp_mailbox_new(base);
    int last[1] = {-1}, bad = 0, ran = 0;

    for (int i = 0; i < 3; i++) {
        struct note *m = malloc(sizeof(*m));
        *m = (struct note){.sender = 0, .n = i, .last = last, .bad = &bad, .ran = &ran};
        sp_mailbox_post(mb, &m->mail, note_run, note_drop);
    }
    sp_mailbox_free(mb);
    ok(ran == 0 && bad == 3 * 1000000, "all three were dropped, none ran");
    event_base_free(base);
}

/* ---- asks ------------------------------------------------------------------------------ */

struct question {
    struct sp_ask ask;
    pthread_t asker_thread, there_thread, back_thread;
    int n, answer;
    bool dropped;
    struct event_base *stop; /* the asker's loop, stopped once answered */
};

static void ask_there(struct sp_ask *ask)
{
    struct question *q = (struct question *)ask;
    q->there_thread = pthread_self();
    q->answer = q->n * 2;
    sp_ask_answer(ask);
}

static void ask_back(struct sp_ask *ask)
{
    struct question *q = (struct question *)ask;
    q->back_thread = pthread_self();
    event_base_loopbreak(q->stop);
}

static void ask_dropped(struct sp_ask *ask)
{
    ((struct question *)ask)->dropped = true;
}

static void *run_loop(void *base)
{
    event_base_dispatch(base); /* the mailbox's event keeps it running */
    return NULL;
}

struct stop_mail {
    struct sp_mail mail;
    struct event_base *base;
};

static void stop_run(struct sp_mail *mail)
{
    event_base_loopbreak(((struct stop_mail *)mail)->base); /* on that loop's own thread */
}

/* The question is worked out on the asked loop's thread, the answer comes
 * back on the asker's, by one mail making both trips. */
static void test_ask_round_trip(void)
{
    struct event_base *mine = event_base_new(), *theirs = event_base_new();
    struct sp_mailbox *asker = sp_mailbox_new(mine), *asked = sp_mailbox_new(theirs);
    struct question q = {.asker_thread = pthread_self(), .n = 21, .stop = mine};
    struct stop_mail stop = {.base = theirs};
    pthread_t t;

    pthread_create(&t, NULL, run_loop, theirs);
    sp_ask_post(&q.ask, asked, asker, ask_there, ask_back, ask_dropped);
    event_base_dispatch(mine);
    sp_mailbox_post(asked, &stop.mail, stop_run, NULL);
    pthread_join(t, NULL);
    ok(q.answer == 42 && !q.dropped, "the asked loop answered");
    ok(pthread_equal(q.there_thread, t) && pthread_equal(q.back_thread, q.asker_thread),
       "worked out on the asked thread, answered on the asker's");
    sp_mailbox_free(asker);
    sp_mailbox_free(asked);
    event_base_free(mine);
    event_base_free(theirs);
}

/* An ask in a mailbox freed at exit (either way) is dropped, not lost. */
static void test_ask_dropped(void)
{
    struct event_base *base = event_base_new();
    struct sp_mailbox *a = sp_mailbox_new(base), *b = sp_mailbox_new(base);
    struct question q = {.n = 1, .stop = base};

    sp_ask_post(&q.ask, b, a, ask_there, ask_back, ask_dropped);
    sp_mailbox_free(b);
    ok(q.dropped && q.answer == 0, "asked loop gone: dropped, never worked out");
    q.dropped = false;
    b = sp_mailbox_new(base);
    sp_ask_post(&q.ask, b, a, ask_there, ask_back, ask_dropped);
    sp_mailbox_run(b); /* answered: the answer waits in a */
    sp_mailbox_free(a);
    ok(q.dropped && q.answer == 2, "asker gone with the answer waiting: dropped");
    sp_mailbox_free(b);
    event_base_free(base);
}

int main(void)
{
    test_order_across_threads();
    test_flush_between_mails();
    test_free_drops();
    test_ask_round_trip();
    test_ask_dropped();
    return tap_done();
}
