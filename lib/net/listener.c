#include "net/listener.h"

#include <errno.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sp_listener {
    struct evconnlistener *l;
    sp_listener_accept accept;
    void *ctx;
    const struct sp_log *log;
    bool accepting;
};

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *peer,
                      int len, void *arg)
{
    struct sp_listener *l = arg;
    l->accept(l->ctx, l, fd, peer, len);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct sp_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();

    sp_log_error(l->log, "accept_error", "%s", evutil_socket_error_to_string(err));
}

static struct sp_listener *listen_on(struct event_base *base, const struct sp_address *addr,
                                     bool reuseport, sp_listener_accept accept, void *ctx,
                                     const struct sp_log *log, char *err, size_t errlen)
{
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
    struct sp_listener *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *l = (struct sp_listener){NULL, accept, ctx, log, true};
    if (reuseport)
        flags |= LEV_OPT_REUSEABLE_PORT;
    l->l = evconnlistener_new_bind(base, on_accept, l, flags, 4096,
                                   (const struct sockaddr *)&addr->addr, (int)addr->len);
    if (l->l == NULL) {
        char text[80];
        sp_address_format(addr, text, sizeof(text));
        snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(errno));
        free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->l, on_accept_error);
    return l;
}

struct sp_listener *sp_listener_new(struct event_base *base, const struct sp_address *addr,
                                    sp_listener_accept accept, void *ctx, const struct sp_log *log,
                                    char *err, size_t errlen)
{
    return listen_on(base, addr, false, accept, ctx, log, err, errlen);
}

struct sp_listener *sp_listener_new_shared(struct event_base *base, const struct sp_address *addr,
                                           sp_listener_accept accept, void *ctx,
                                           const struct sp_log *log, char *err, size_t errlen)
{
    return listen_on(base, addr, true, accept, ctx, log, err, errlen);
}

int sp_listener_address(const struct sp_listener *l, struct sp_address *out)
{
    socklen_t len = sizeof(out->addr);

    if (getsockname(evconnlistener_get_fd(l->l), (struct sockaddr *)&out->addr, &len) < 0)
        return -1;
    out->len = len;
    return 0;
}

bool sp_listener_accepting(const struct sp_listener *l)
{
    return l != NULL && l->accepting;
}

void sp_listener_free(struct sp_listener *l)
{
    if (l == NULL)
        return;
    evconnlistener_free(l->l);
    free(l);
}

void sp_listener_cap(struct sp_listener *l, size_t open, uint64_t max, const char *cap_key)
{
    bool below = open < max;

    if (l == NULL || below == l->accepting)
        return;
    l->accepting = below;
    if (below) {
        evconnlistener_enable(l->l);
    } else {
        evconnlistener_disable(l->l);
        if (cap_key != NULL)
            sp_log_warn(l->log, "connection_limit", "%s (%llu) reached", cap_key,
                        (unsigned long long)max);
    }
}
