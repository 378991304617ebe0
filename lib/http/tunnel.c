#include "http/tunnel.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/event_struct.h>

#include "core/clock.h"

struct tunnel;

/* One direction's source: what it reads is written to the other side. */
struct side {
    struct tunnel *t;
    struct bufferevent *bev;
    struct side *peer;
    bool eof;          /* it closed its sending half */
    uint64_t *counter; /* bytes copied from it */
};

struct tunnel {
    LIST_ENTRY(tunnel) link;
    struct sp_tunnels *owner;
    struct side client, backend;
    /* Bytes moved either way (read, or a side's output drained): the idle
     * timeout is the tunnel's, not a side's, and runs while both sides are
     * stalled full too, when neither is read. */
    uint64_t last_byte_ms;
    struct event idle; /* assigned, not allocated */
};

struct sp_tunnels {
    struct event_base *base;
    size_t buffer_size;
    uint64_t idle_ms;
    LIST_HEAD(, tunnel) live;
    struct sp_tunnel_stats stats;
    void (*gone)(void *ctx);
    void *gone_ctx;
};

static void tunnel_free(struct tunnel *t)
{
    struct sp_tunnels *owner = t->owner;

    LIST_REMOVE(t, link);
    owner->stats.open--;
    event_del(&t->idle);
    if (t->client.bev)
        bufferevent_free(t->client.bev);
    if (t->backend.bev)
        bufferevent_free(t->backend.bev);
    free(t);
    if (owner->gone)
        owner->gone(owner->gone_ctx);
}

/* Armed for what is left of the idle time since the last byte moved. */
static void arm_idle(struct tunnel *t)
{
    uint64_t idle = t->owner->idle_ms, since = sp_now_ms() - t->last_byte_ms;
    struct timeval tv = sp_timeval_ms(since < idle ? idle - since : 0);

    if (idle == 0)
        event_del(&t->idle);
    else
        event_add(&t->idle, &tv);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct tunnel *t = arg;

    if (t->owner->idle_ms > 0 && sp_now_ms() - t->last_byte_ms >= t->owner->idle_ms)
        tunnel_free(t);
    else
        arm_idle(t);
}

/* A side that closed its half, once all it sent reached the other: the
 * other side's sending half is closed too; both closed, the tunnel ends. */
static void settle(struct tunnel *t)
{
    struct side *sides[2] = {&t->client, &t->backend};

    for (int i = 0; i < 2; i++) {
        struct side *s = sides[i];
        if (s->eof && evbuffer_get_length(bufferevent_get_output(s->peer->bev)) == 0)
            shutdown(bufferevent_getfd(s->peer->bev), SHUT_WR);
    }
    if (t->client.eof && t->backend.eof &&
        evbuffer_get_length(bufferevent_get_output(t->client.bev)) == 0 &&
        evbuffer_get_length(bufferevent_get_output(t->backend.bev)) == 0)
        tunnel_free(t);
}

static void copy(struct side *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(s->peer->bev);

    size_t n = evbuffer_get_length(in);

    if (n > 0)
        s->t->last_byte_ms = sp_now_ms();
    *s->counter += n;
    evbuffer_add_buffer(out, in);
    /* The other side is slow: stop reading this one until it drains. */
    if (evbuffer_get_length(out) >= s->t->owner->buffer_size)
        bufferevent_disable(s->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    copy(arg);
}

/* What this side was sent drained: the side feeding it may read again. */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct side *s = arg;

    s->t->last_byte_ms = sp_now_ms();
    if (!s->peer->eof)
        bufferevent_enable(s->peer->bev, EV_READ);
    settle(s->t);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct side *s = arg;

    if (what & BEV_EVENT_EOF) {
        copy(s);
        s->eof = true;
        bufferevent_disable(bev, EV_READ);
        settle(s->t);
        return;
    }
    if (what & BEV_EVENT_ERROR)
        tunnel_free(s->t); /* reset: both go */
}

static void side_init(struct tunnel *t, struct side *s, struct bufferevent *bev, struct side *peer,
                      uint64_t *counter)
{
    *s = (struct side){t, bev, peer, false, counter};
    bufferevent_setcb(bev, on_read, on_write, on_event, s);
    /* The low write mark stays 0: a side is read again once its peer's
     * output is empty. */
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int sp_tunnel_open(struct sp_tunnels *owner, evutil_socket_t client_fd, struct evbuffer *to_client,
                   struct evbuffer *from_client, struct bufferevent *backend)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    struct bufferevent *client =
        t ? bufferevent_socket_new(owner->base, client_fd, BEV_OPT_CLOSE_ON_FREE) : NULL;

    if (client == NULL) {
        evutil_closesocket(client_fd);
        bufferevent_free(backend);
        free(t);
        return -1;
    }
    t->owner = owner;
    t->last_byte_ms = sp_now_ms();
    evtimer_assign(&t->idle, owner->base, on_idle, t);
    arm_idle(t);
    LIST_INSERT_HEAD(&owner->live, t, link);
    owner->stats.open++;
    owner->stats.opened++;
    side_init(t, &t->client, client, &t->backend, &owner->stats.bytes_to_backend);
    side_init(t, &t->backend, backend, &t->client, &owner->stats.bytes_to_client);
    if (to_client)
        evbuffer_add_buffer(bufferevent_get_output(client), to_client);
    if (from_client) {
        owner->stats.bytes_to_backend += evbuffer_get_length(from_client);
        evbuffer_add_buffer(bufferevent_get_output(backend), from_client);
    }
    /* The backend may have spoken first, in the same read as its 101. */
    if (evbuffer_get_length(bufferevent_get_input(backend)) > 0)
        copy(&t->backend);
    return 0;
}

struct sp_tunnels *sp_tunnels_new(struct event_base *base, size_t buffer_size, uint64_t idle_ms,
                                  void (*gone)(void *ctx), void *gone_ctx)
{
    struct sp_tunnels *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->base = base;
    t->buffer_size = buffer_size ? buffer_size : 64 * 1024;
    t->idle_ms = idle_ms;
    t->gone = gone;
    t->gone_ctx = gone_ctx;
    LIST_INIT(&t->live);
    return t;
}

void sp_tunnels_set(struct sp_tunnels *owner, size_t buffer_size, uint64_t idle_ms)
{
    struct tunnel *t;

    owner->buffer_size = buffer_size ? buffer_size : 64 * 1024;
    owner->idle_ms = idle_ms;
    /* The backpressure mark is read at every copy; the idle timers are armed
     * for the old timeout and are re-armed for the new one. */
    LIST_FOREACH (t, &owner->live, link)
        arm_idle(t);
}

void sp_tunnels_free(struct sp_tunnels *t)
{
    if (t == NULL)
        return;
    t->gone = NULL; /* freeing: nobody to tell */
    while (!LIST_EMPTY(&t->live))
        tunnel_free(LIST_FIRST(&t->live));
    free(t);
}

const struct sp_tunnel_stats *sp_tunnels_stats(const struct sp_tunnels *t)
{
    return &t->stats;
}
