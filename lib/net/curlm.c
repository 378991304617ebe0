#include "net/curlm.h"

#include "core/clock.h"

#include <stdlib.h>
#include <sys/queue.h>

struct transfer {
    LIST_ENTRY(transfer) link;
    CURL *easy;
    sp_curlm_done done;
    void *ctx;
};

struct sp_curlm {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    LIST_HEAD(, transfer) transfers;
};

struct sock {
    struct event *ev;
};

static void check_done(struct sp_curlm *m)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        struct transfer *t = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
        curl_multi_remove_handle(m->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        if (t != NULL) {
            LIST_REMOVE(t, link);
            sp_curlm_done done = t->done;
            void *ctx = t->ctx;
            free(t);
            done(easy, result, ctx);
        }
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct sp_curlm *m = arg;
    int running;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    curl_multi_socket_action(m->multi, fd, action, &running);
    check_done(m);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sp_curlm *m = arg;
    int running;

    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(m);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct sp_curlm *m = userp;
    struct sock *s = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(m->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        curl_multi_assign(m->multi, fd, s);
    } else {
        event_free(s->ev);
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    s->ev = event_new(m->base, fd, kind, on_socket_event, m);
    if (s->ev == NULL)
        return -1;
    event_add(s->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct sp_curlm *m = userp;

    if (timeout_ms < 0) {
        event_del(m->timer);
        return 0;
    }
    struct timeval tv = sp_timeval_ms((uint64_t)timeout_ms);
    event_add(m->timer, &tv);
    return 0;
}

struct sp_curlm *sp_curlm_new(struct event_base *base)
{
    struct sp_curlm *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->base = base;
    LIST_INIT(&m->transfers);
    m->multi = curl_multi_init();
    m->timer = evtimer_new(base, on_timeout, m);
    if (m->multi == NULL || m->timer == NULL) {
        sp_curlm_free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    /* Idle keep-alive connections to the backend kept for reuse. */
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 256L);
    return m;
}

void sp_curlm_free(struct sp_curlm *m)
{
    if (m == NULL)
        return;
    while (!LIST_EMPTY(&m->transfers))
        sp_curlm_remove(m, LIST_FIRST(&m->transfers)->easy);
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);
    if (m->timer)
        event_free(m->timer);
    free(m);
}

int sp_curlm_add(struct sp_curlm *m, CURL *easy, sp_curlm_done done, void *ctx)
{
    struct transfer *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    t->easy = easy;
    t->done = done;
    t->ctx = ctx;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    if (curl_multi_add_handle(m->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(t);
        return -1;
    }
    LIST_INSERT_HEAD(&m->transfers, t, link);
    return 0;
}

void sp_curlm_remove(struct sp_curlm *m, CURL *easy)
{
    struct transfer *t = NULL;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(m->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    if (t != NULL) {
        LIST_REMOVE(t, link);
        free(t);
    }
}
