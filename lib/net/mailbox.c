#include "net/mailbox.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct sp_mailbox {
    pthread_mutex_t lock;
    struct sp_mail *head, **tail; /* under lock */
    bool woken;                   /* under lock: the eventfd is written and not yet read */
    struct sp_mail *taken;        /* the loop's own: taken from the queue, not yet run */
    int fd;
    struct event *readable;
};

/* Takes what is queued, once what was taken before has all run (so mail
 * keeps its order). */
static void take(struct sp_mailbox *mb)
{
    uint64_t count;
    ssize_t n = read(mb->fd, &count, sizeof(count));
    (void)n;

    pthread_mutex_lock(&mb->lock);
    mb->taken = mb->head;
    mb->head = NULL;
    mb->tail = &mb->head;
    mb->woken = false;
    pthread_mutex_unlock(&mb->lock);
}

/* One mail, then what it made active (the worker's flusher) before the
 * next: a burst of publishes is written out one message at a time, so no
 * subscriber is handed the whole burst unwritten (and cut at its unsent
 * limit for it). The mailbox re-activates itself behind the flusher. */
static bool run_one(struct sp_mailbox *mb)
{
    if (mb->taken == NULL)
        take(mb);
    struct sp_mail *m = mb->taken;
    if (m == NULL)
        return false;
    mb->taken = m->next;
    m->run(m);
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct sp_mailbox *mb = arg;

    if (run_one(mb) && mb->taken != NULL)
        event_active(mb->readable, EV_READ, 0);
}

struct sp_mailbox *sp_mailbox_new(struct event_base *base)
{
    struct sp_mailbox *mb = calloc(1, sizeof(*mb));

    if (mb == NULL)
        return NULL;
    mb->tail = &mb->head;
    mb->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->fd < 0 || pthread_mutex_init(&mb->lock, NULL) != 0) {
        if (mb->fd >= 0)
            close(mb->fd);
        free(mb);
        return NULL;
    }
    mb->readable = event_new(base, mb->fd, EV_READ | EV_PERSIST, on_readable, mb);
    if (mb->readable == NULL || event_add(mb->readable, NULL) < 0) {
        sp_mailbox_free(mb);
        return NULL;
    }
    return mb;
}

void sp_mailbox_free(struct sp_mailbox *mb)
{
    if (mb == NULL)
        return;
    if (mb->readable)
        event_free(mb->readable);
    for (int i = 0; i < 2; i++) {
        struct sp_mail **list = i == 0 ? &mb->taken : &mb->head;
        while (*list != NULL) {
            struct sp_mail *m = *list;
            *list = m->next;
            if (m->drop)
                m->drop(m);
        }
    }
    close(mb->fd);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

void sp_mailbox_post(struct sp_mailbox *mb, struct sp_mail *mail, sp_mail_fn run, sp_mail_fn drop)
{
    bool wake;

    mail->next = NULL;
    mail->run = run;
    mail->drop = drop;
    pthread_mutex_lock(&mb->lock);
    *mb->tail = mail;
    mb->tail = &mail->next;
    /* A burst of mail costs one write and one wake-up. */
    wake = !mb->woken;
    mb->woken = true;
    pthread_mutex_unlock(&mb->lock);
    if (wake) {
        uint64_t one = 1;
        ssize_t n = write(mb->fd, &one, sizeof(one));
        (void)n; /* only fails when the counter is already non-zero: awake anyway */
    }
}

/* struct sp_ask begins with its mail. */
static void ask_there(struct sp_mail *mail)
{
    struct sp_ask *ask = (struct sp_ask *)mail;
    ask->there(ask);
}

static void ask_back(struct sp_mail *mail)
{
    struct sp_ask *ask = (struct sp_ask *)mail;
    ask->back(ask);
}

static void ask_drop(struct sp_mail *mail)
{
    struct sp_ask *ask = (struct sp_ask *)mail;
    ask->drop(ask);
}

void sp_ask_post(struct sp_ask *ask, struct sp_mailbox *to, struct sp_mailbox *asker,
                 sp_ask_fn there, sp_ask_fn back, sp_ask_fn drop)
{
    ask->asker = asker;
    ask->there = there;
    ask->back = back;
    ask->drop = drop;
    sp_mailbox_post(to, &ask->mail, ask_there, ask_drop);
}

void sp_ask_answer(struct sp_ask *ask)
{
    sp_mailbox_post(ask->asker, &ask->mail, ask_back, ask_drop);
}

void sp_mailbox_run(struct sp_mailbox *mb)
{
    while (run_one(mb))
        ;
}
