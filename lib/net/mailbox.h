/* Work handed to one event loop from any thread: a queue under a mutex,
 * woken by one eventfd the loop reads. It is the only way anything crosses
 * between worker threads (h2o's multithread receivers, relayd's imsg as
 * threads): a worker's connections and timers are touched by its own
 * thread alone.
 *
 * Mail is intrusive: the sender embeds a struct sp_mail in what it sends,
 * so posting allocates nothing and cannot fail. Mail from one thread runs
 * in the order it was posted.
 *
 * Nothing of one piece of mail survives it: a mail is posted once, and its
 * run (or drop) owns it from then on; the mailbox keeps no reference and
 * never reuses one for another request.
 */
#ifndef SP_NET_MAILBOX_H
#define SP_NET_MAILBOX_H

#include <event2/event.h>

struct sp_mail;
typedef void (*sp_mail_fn)(struct sp_mail *mail);

struct sp_mail {
    struct sp_mail *next; /* the mailbox's */
    sp_mail_fn run;       /* on the mailbox's loop; owns the mail from then on */
    sp_mail_fn drop;      /* instead of run when the mailbox is freed first */
};

struct sp_mailbox;

/* NULL on failure (no memory, or no eventfd). */
struct sp_mailbox *sp_mailbox_new(struct event_base *base);
/* On the mailbox's thread, once no other thread can post: mail still
 * queued is dropped. Accepts NULL. */
void sp_mailbox_free(struct sp_mailbox *mb);

/* From any thread: mail->run(mail) runs on the mailbox's loop soon. */
void sp_mailbox_post(struct sp_mailbox *mb, struct sp_mail *mail, sp_mail_fn run, sp_mail_fn drop);

/* ---- a question to another loop, answered on the asker's -------------------------------
 *
 * The round trip threads need again and again: the question is mailed to
 * the loop that owns the answer, worked out there (now, or when that
 * loop's own work completes), and the answer mailed back to the asker's
 * loop. One mail makes both trips. Whether the asker still wants it (its
 * client may have left) only the asker's thread knows: it marks that in
 * its own struct, which embeds this one first, and back() reads it. */
struct sp_ask;
typedef void (*sp_ask_fn)(struct sp_ask *ask);

struct sp_ask {
    struct sp_mail mail;
    struct sp_mailbox *asker;
    sp_ask_fn there; /* on the asked loop; ends in sp_ask_answer, now or later */
    sp_ask_fn back;  /* on the asker's loop with the answer; owns ask from then on */
    sp_ask_fn drop;  /* instead, when a mailbox is freed with ask in it: frees it */
};

/* From the asker's loop: ask->there(ask) runs on to's loop soon. */
void sp_ask_post(struct sp_ask *ask, struct sp_mailbox *to, struct sp_mailbox *asker,
                 sp_ask_fn there, sp_ask_fn back, sp_ask_fn drop);
/* On the asked loop, once: ask->back(ask) runs on the asker's loop soon. */
void sp_ask_answer(struct sp_ask *ask);

/* Runs everything queued now, to the end (the loop itself runs one mail
 * and then what that made active; this is for tests and for callers with
 * no loop running). */
void sp_mailbox_run(struct sp_mailbox *mb);

#endif
