/* Long-poll (and plain polling) subscribers.
 *
 * GET → 200 {"cursor", "missed", "messages": [...]} with every message after
 * the client's cursor (up to longpoll.max_messages), at once if there are
 * any; otherwise the request is held until one is published (200) or the
 * hold ends (204). A request that asks not to be held ("Prefer: wait=0" or
 * "?wait=0") gets 304 when there is nothing new. Every answer carries the
 * next cursor in the Sidepush-Cursor header (and ETag), so a loop of plain
 * fetch() calls neither misses nor repeats a message.
 *
 * A held request is not answered inside the publish that wakes it: it joins
 * a ready queue, answered a slice at a time at the end of the loop turn
 * (the flusher's model), with everything after its cursor by then. So a
 * publisher that publishes while 10,000 polls are being answered makes the
 * later answers carry several messages, not one each.
 *
 * Most answers are alike: every client at the head of a channel gets the
 * same new message(s). Such an answer's header lines and body are rendered
 * once and shared by reference (struct shared); a client adds only its own
 * CORS lines, and the server the status line and framing.
 */
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/slicer.h"
#include "push/longpoll.h"

struct longpoll_kind;

struct sp_longpoll {
    struct longpoll_kind *kind;
    struct sp_http_conn *conn;
    struct sp_subscription *subs;
    LIST_ENTRY(sp_longpoll) link;
    TAILQ_ENTRY(sp_longpoll) ready_link;
    bool ready; /* a message came: answer at the next slice */
    struct sp_cursor cursor;
    uint64_t max_messages;
    uint64_t expires_ms; /* the token's exp (monotonic ms), or UINT64_MAX */
    bool until_expiry;   /* held until then, not for the route's timeout */
};

/* Held requests answered per slice; the loop polls between slices. */
#define ANSWER_SLICE 256

/* Answers of up to SHARED_MAX messages (and not "missed") are shared; the
 * last SHARED_SLOTS of them are kept, since clients a publish or two behind
 * get the next one or two shapes. */
#define SHARED_MAX 8
#define SHARED_SLOTS 4

/* A rendered answer: header lines (Content-Type through ETag), then the
 * body. It holds a reference to each of its messages, which is its key and
 * keeps their addresses from being reused while it lives. */
struct shared {
    unsigned refs; /* the cache's and one per queued reference */
    size_t n;
    struct sp_msg *msgs[SHARED_MAX];
    size_t head_len, body_len;
    char bytes[];
};

/* A worker's long-polls, and what answers them: the queue of woken ones,
 * the slicer that answers it, the shared answers kept, and scratch
 * buffers. */
struct longpoll_kind {
    struct sp_kind_state base;
    LIST_HEAD(, sp_longpoll) all;    /* held */
    TAILQ_HEAD(, sp_longpoll) ready; /* held, woken, to be answered */
    struct sp_slicer *answerer;
    struct shared *slots[SHARED_SLOTS];
    unsigned next;
    struct evbuffer *head, *body; /* scratch for one answer, empty between answers */
};

static void shared_unref(struct shared *sh)
{
    if (sh == NULL || --sh->refs > 0)
        return;
    for (size_t i = 0; i < sh->n; i++)
        sp_msg_unref(sh->msgs[i]);
    free(sh);
}

static void shared_unref_cb(const void *data, size_t len, void *sh)
{
    (void)data;
    (void)len;
    shared_unref(sh);
}

static void answer_slice(void *kind);
static void longpoll_close(void *state);

static void *longpoll_open(struct sp_push *push)
{
    struct longpoll_kind *a = sp_kind_state_new(push, sizeof(*a));

    if (a == NULL)
        return NULL;
    TAILQ_INIT(&a->ready);
    a->answerer = sp_slicer_new(sp_push_base(push), answer_slice, a);
    a->head = evbuffer_new();
    a->body = evbuffer_new();
    if (a->answerer == NULL || a->head == NULL || a->body == NULL) {
        longpoll_close(a);
        return NULL;
    }
    return a;
}

/* Once every held request is gone (nothing is queued any more). */
static void answers_free(struct longpoll_kind *a)
{
    sp_slicer_free(a->answerer);
    for (int i = 0; i < SHARED_SLOTS; i++)
        shared_unref(a->slots[i]);
    if (a->head)
        evbuffer_free(a->head);
    if (a->body)
        evbuffer_free(a->body);
    free(a);
}

/* Cache-Control and the cursor (Sidepush-Cursor, ETag, Sidepush-Missed):
 * what every answer but an error carries, besides the client's CORS lines. */
static void cursor_headers(struct evbuffer *h, const char *cursor, bool missed)
{
    evbuffer_add_printf(h,
                        "Cache-Control: no-store\r\n"
                        "Sidepush-Cursor: %s\r\n"
                        "ETag: \"%s\"\r\n",
                        cursor, cursor);
    if (missed)
        evbuffer_add(h, "Sidepush-Missed: 1\r\n", 20);
}

/* A 200's header lines (but CORS) into head and its body into body, the
 * messages' items by reference. seq: the cursor when there are none. */
static int render_answer(struct sp_push *push, struct evbuffer *head, struct evbuffer *body,
                         struct sp_msg **msgs, size_t n, bool missed, uint64_t seq)
{
    char cursor[SP_MSG_ID_MAX];

    sp_hub_format_id(sp_push_hub(push), n ? sp_msg_seq(msgs[n - 1]) : seq, cursor);
    evbuffer_add(head, "Content-Type: application/json\r\n", 32);
    cursor_headers(head, cursor, missed);
    return sp_msg_longpoll_body(body, cursor, missed, msgs, n);
}

/* Renders the answer for msgs (0 < n <= SHARED_MAX, not missed) into one
 * allocation, through the cache's scratch buffers. */
static struct shared *shared_render(struct longpoll_kind *cache, struct sp_msg **msgs, size_t n)
{
    struct shared *sh = NULL;

    if (render_answer(cache->base.push, cache->head, cache->body, msgs, n, false, 0) < 0)
        goto done;
    size_t head_len = evbuffer_get_length(cache->head);
    size_t body_len = evbuffer_get_length(cache->body);
    sh = malloc(sizeof(*sh) + head_len + body_len);
    if (sh == NULL)
        goto done;
    sh->refs = 1;
    sh->n = n;
    sh->head_len = head_len;
    sh->body_len = body_len;
    evbuffer_remove(cache->head, sh->bytes, head_len);
    evbuffer_remove(cache->body, sh->bytes + head_len, body_len);
    for (size_t i = 0; i < n; i++)
        sh->msgs[i] = sp_msg_ref(msgs[i]);
done:
    evbuffer_drain(cache->head, evbuffer_get_length(cache->head));
    evbuffer_drain(cache->body, evbuffer_get_length(cache->body));
    return sh;
}

/* The shared answer for msgs, rendered now if none of the kept ones is it.
 * NULL: not shareable, or out of memory (the caller renders its own). */
static struct shared *shared_answer(struct longpoll_kind *cache, struct sp_msg **msgs, size_t n,
                                    bool missed)
{
    if (n == 0 || n > SHARED_MAX || missed)
        return NULL;
    for (int i = 0; i < SHARED_SLOTS; i++) {
        struct shared *sh = cache->slots[i];
        if (sh != NULL && sh->n == n && memcmp(sh->msgs, msgs, n * sizeof(*msgs)) == 0)
            return sh;
    }
    struct shared *sh = shared_render(cache, msgs, n);
    if (sh == NULL)
        return NULL;
    unsigned slot = cache->next++ % SHARED_SLOTS;
    shared_unref(cache->slots[slot]);
    cache->slots[slot] = sh;
    return sh;
}

static void longpoll_free(struct sp_longpoll *lp)
{
    if (lp->ready)
        TAILQ_REMOVE(&lp->kind->ready, lp, ready_link);
    LIST_REMOVE(lp, link);
    lp->kind->base.count--;
    sp_subscription_close(lp->subs);
    free(lp);
}

/* Queues the shared answer in the scratch buffers. Returns 0 or -1. */
static int take_shared(struct longpoll_kind *cache, struct shared *sh)
{
    if (evbuffer_add_reference(cache->head, sh->bytes, sh->head_len, shared_unref_cb, sh) < 0)
        return -1;
    sh->refs++;
    if (evbuffer_add_reference(cache->body, sh->bytes + sh->head_len, sh->body_len, shared_unref_cb,
                               sh) < 0)
        return -1;
    sh->refs++;
    return 0;
}

/* 200 with the messages; takes the references in msgs. Shared or its own,
 * the answer is in the cache's scratch buffers by the time it goes out;
 * the client adds its CORS lines, the server the framing. */
static void answer_messages(struct sp_longpoll *lp, struct sp_msg **msgs, size_t n, bool missed)
{
    struct longpoll_kind *cache = lp->kind;
    struct sp_push *push = cache->base.push;
    struct shared *sh = shared_answer(cache, msgs, n, missed);
    int rc = sh ? take_shared(cache, sh)
                : render_answer(push, cache->head, cache->body, msgs, n, missed, lp->cursor.seq);

    if (rc == 0) {
        sp_push_stats(push)->delivered += n;
        sp_push_cors(push, sp_http_request(lp->conn), cache->head);
        sp_http_begin(lp->conn, 200, NULL, cache->head, (int64_t)evbuffer_get_length(cache->body));
        sp_http_write_buffer(lp->conn, cache->body);
        sp_http_finish(lp->conn);
    } else {
        sp_http_respond_error(lp->conn, 500, "out of memory");
    }
    /* empty whatever a failure or a connection gone meanwhile left */
    evbuffer_drain(cache->head, evbuffer_get_length(cache->head));
    evbuffer_drain(cache->body, evbuffer_get_length(cache->body));
    for (size_t i = 0; i < n; i++)
        sp_msg_unref(msgs[i]);
}

/* 204 (the hold ended) or 304 (nothing new, not held), with the cursor. */
static void answer_empty(struct sp_longpoll *lp, int status)
{
    struct sp_push *push = lp->kind->base.push;
    struct evbuffer *h = lp->kind->head;
    char cursor[SP_MSG_ID_MAX];
    const struct sp_cursor *cur = &lp->cursor;

    sp_hub_format_id(sp_push_hub(push), cur->present && cur->this_epoch ? cur->seq : 0, cursor);
    cursor_headers(h, cursor, false);
    sp_push_cors(push, sp_http_request(lp->conn), h);
    if (sp_push_draining(push)) /* poll again (elsewhere) in a moment, with this cursor */
        evbuffer_add_printf(h, "Retry-After: %u\r\n", 1 + sp_random() % 5);
    sp_http_begin(lp->conn, status, NULL, h, 0);
    sp_http_finish(lp->conn);
    evbuffer_drain(h, evbuffer_get_length(h));
}

/* ---- held requests -------------------------------------------------------------------- */

static void on_deliver(void *owner, struct sp_msg *msg)
{
    struct sp_longpoll *lp = owner;
    struct longpoll_kind *kind = lp->kind;

    if (lp->ready)
        return; /* already queued: its answer will carry this one too */
    lp->ready = true;
    sp_slicer_start(kind->answerer);
    TAILQ_INSERT_TAIL(&kind->ready, lp, ready_link);
}

/* Answers one woken request with what is after its cursor now. */
static void answer_woken(struct sp_longpoll *lp)
{
    struct sp_msg *backlog[1024];
    bool missed = false;
    size_t max = lp->max_messages < 1024 ? lp->max_messages : 1024;
    int n = sp_subscription_backlog(lp->subs, &lp->cursor, backlog, max, &missed);

    if (n == 0 && !missed)
        return; /* gone from history already (a tiny history): keep holding */
    sp_http_set_ops(lp->conn, NULL, NULL);
    if (n < 0)
        sp_http_respond_error(lp->conn, 500, "out of memory");
    else
        answer_messages(lp, backlog, (size_t)n, missed);
    longpoll_free(lp);
}

static void answer_slice(void *arg)
{
    struct longpoll_kind *a = arg;
    struct sp_longpoll *lp;

    for (int i = 0; i < ANSWER_SLICE && (lp = TAILQ_FIRST(&a->ready)) != NULL; i++) {
        TAILQ_REMOVE(&a->ready, lp, ready_link);
        lp->ready = false;
        answer_woken(lp);
    }
    if (!TAILQ_EMPTY(&a->ready))
        sp_slicer_more(a->answerer);
}

static void on_deleted(void *owner)
{
    struct sp_longpoll *lp = owner;

    sp_http_set_ops(lp->conn, NULL, NULL);
    sp_http_respond_error(lp->conn, 410, "channel deleted");
    longpoll_free(lp);
}

static void on_timeout(void *arg)
{
    struct sp_longpoll *lp = arg;

    sp_http_set_ops(lp->conn, NULL, NULL);
    if (lp->until_expiry)
        sp_http_respond_error(lp->conn, 401, "token expired");
    else
        answer_empty(lp, 204);
    longpoll_free(lp);
}

static void on_client_gone(void *ctx)
{
    longpoll_free(ctx);
}

static const struct sp_http_ops held_ops = {NULL, NULL, on_client_gone, on_timeout};

/* ---- start ---------------------------------------------------------------------------------- */

/* The hold the client asked for, in ms: "Prefer: wait=N" (RFC 7240) or
 * "?wait=N" seconds; the route's timeout caps it. */
static uint64_t hold_ms(const struct sp_http_request *req, uint64_t cap)
{
    char text[24];
    const struct sp_http_header *prefer = sp_http_find_header(req, "Prefer");
    long wait = -1;

    if (prefer != NULL) {
        const char *w = memmem(prefer->value.ptr, prefer->value.len, "wait=", 5);
        if (w != NULL)
            wait = strtol(w + 5, NULL, 10);
    }
    if (wait < 0 && sp_http_query_get(req->query, "wait", text, sizeof(text)) > 0)
        wait = strtol(text, NULL, 10);
    if (wait < 0 || (uint64_t)wait * 1000 > cap)
        return cap;
    return (uint64_t)wait * 1000;
}

static void longpoll_start(void *state, const struct sp_route_config *route, const char *spec,
                           struct sp_http_conn *conn, const struct sp_http_request *req,
                           const struct sp_identity *who)
{
    struct longpoll_kind *kind = state;
    struct sp_push *push = kind->base.push;
    struct sp_longpoll *lp = calloc(1, sizeof(*lp));
    struct sp_msg *backlog[1024];
    bool missed = false;

    if (lp == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    lp->kind = kind;
    lp->conn = conn;
    lp->max_messages = route->subscribe.longpoll.max_messages;
    LIST_INSERT_HEAD(&kind->all, lp, link);
    kind->base.count++;
    if (sp_push_request_cursor(push, req, &lp->cursor) < 0) {
        sp_http_respond_error(conn, 400, "the cursor is not a message id sidepush issued");
        longpoll_free(lp);
        return;
    }
    if (!lp->cursor.present)
        lp->cursor = sp_push_start(push, route);
    int rc = sp_subscription_open(push, spec, on_deliver, on_deleted, lp,
                                  route->subscribe.presence ? who : NULL, who ? who->user_id : NULL,
                                  &lp->subs);
    if (rc < 0) {
        sp_http_respond_error(conn, sp_subscription_error_status(rc), sp_hub_error_text(rc));
        longpoll_free(lp);
        return;
    }
    size_t max = lp->max_messages < 1024 ? lp->max_messages : 1024;
    int n = sp_subscription_backlog(lp->subs, &lp->cursor, backlog, max, &missed);
    if (n < 0) {
        sp_http_respond_error(conn, 500, "out of memory");
        longpoll_free(lp);
        return;
    }
    if (n == 0 && (missed || lp->cursor.latest))
        lp->cursor = sp_hub_now(sp_push_hub(push)); /* nothing to give yet: resume from now */
    uint64_t hold = hold_ms(req, route->subscribe.longpoll.timeout_ms), now = sp_now_ms();
    lp->expires_ms = sp_identity_expiry(who);
    if (lp->expires_ms != UINT64_MAX && (lp->expires_ms <= now || lp->expires_ms - now < hold)) {
        hold = lp->expires_ms > now ? lp->expires_ms - now : 1; /* answered 401 then */
        lp->until_expiry = true;
    }
    if (n > 0 || missed) {
        answer_messages(lp, backlog, (size_t)n, missed);
        longpoll_free(lp);
    } else if (hold == 0) {
        answer_empty(lp, 304);
        longpoll_free(lp);
    } else {
        sp_http_set_ops(conn, &held_ops, lp);
        sp_http_expire_after(conn, hold);
    }
}

static void longpoll_close(void *state)
{
    struct longpoll_kind *kind = state;
    struct sp_longpoll *lp;

    while ((lp = LIST_FIRST(&kind->all)) != NULL) {
        sp_http_set_ops(lp->conn, NULL, NULL);
        sp_http_abort(lp->conn);
        longpoll_free(lp);
    }
    answers_free(kind);
}

static bool longpoll_drain_one(void *state)
{
    struct longpoll_kind *kind = state;
    struct sp_longpoll *lp = LIST_FIRST(&kind->all);

    if (lp == NULL)
        return false;
    sp_http_set_ops(lp->conn, NULL, NULL);
    answer_empty(lp, 204);
    longpoll_free(lp);
    return true;
}

const struct sp_transport_ops sp_longpoll_transport = {
    .label = "longpoll",
    .open = longpoll_open,
    .close = longpoll_close,
    .start = longpoll_start,
    .drain_one = longpoll_drain_one,
    .count = sp_kind_state_count,
};
