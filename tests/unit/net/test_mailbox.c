#include "net/mailbox.h"

#include <event2/event.h>
#include <pthread.h>
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

int main(void)
{
    test_order_across_threads();
    test_flush_between_mails();
    test_free_drops();
    return tap_done();
}
