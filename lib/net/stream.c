#include "net/stream.h"

#include "net/slicer.h"

#include <errno.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 16384

/* Every client socket of a worker has one, idle subscribers by the
 * thousand: fields are ordered so that it packs into 224 bytes. */
struct sp_stream {
    struct sp_flusher *flusher;
    struct event read_ev;
    struct event *write_ev; /* only while the socket is full */
    struct evbuffer *out;   /* only once something was written */
    const struct sp_stream_ops *ops;
    void *ctx;
    uint64_t last_write;
    TAILQ_ENTRY(sp_stream) pending_link;
    LIST_ENTRY(sp_stream) link;
    uint32_t max_unsent; /* limits are at most 1 GiB (4 GiB: as good as none) */
    uint32_t low_water;  /* drained() once a write leaves no more unsent */
    evutil_socket_t fd;
    bool pending;
    bool ending; /* close once flushed */
    bool dead;
};

static uint32_t cap32(size_t n)
{
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

TAILQ_HEAD(pending_list, sp_stream);
LIST_HEAD(stream_list, sp_stream);

struct sp_flusher {
    struct event_base *base;
    struct sp_slicer *slicer; /* flushes a slice of the pending streams at a time */
    struct pending_list pending;
    struct stream_list live;
    struct stream_list dead;
    size_t count;
    sp_stream_gone gone;
    void *gone_ctx;
};

/* ---- freeing ---------------------------------------------------------------------- */

static void stream_free(struct sp_stream *s)
{
    event_del(&s->read_ev);
    if (s->write_ev)
        event_free(s->write_ev);
    if (s->out)
        evbuffer_free(s->out); /* runs the cleanups of unsent references */
    if (s->fd >= 0)
        evutil_closesocket(s->fd);
    free(s);
}

static void kill_stream(struct sp_stream *s)
{
    struct sp_flusher *f = s->flusher;

    if (s->dead)
        return;
    s->dead = true;
    event_del(&s->read_ev);
    if (s->write_ev)
        event_del(s->write_ev);
    if (s->pending) {
        TAILQ_REMOVE(&f->pending, s, pending_link);
        s->pending = false;
    }
    LIST_REMOVE(s, link);
    LIST_INSERT_HEAD(&f->dead, s, link);
    sp_slicer_start(f->slicer); /* frees it at the end of the slice */
}

static void end_by_itself(struct sp_stream *s, enum sp_stream_end why)
{
    if (s->dead)
        return;
    kill_stream(s);
    if (!s->ending && s->ops != NULL && s->ops->closed)
        s->ops->closed(s->ctx, why);
}

/* ---- writing ------------------------------------------------------------------------- */

static void write_out(struct sp_stream *s);

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    write_out(arg);
}

static void wait_writable(struct sp_stream *s);

/* Writes as much as the socket takes; waits for writability if it is full.
 * The owner hears drained() once no more than its low-water mark is left. */
static void write_out(struct sp_stream *s)
{
    while (s->out && evbuffer_get_length(s->out) > 0) {
        int n = evbuffer_write(s->out, s->fd);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        if (n <= 0) {
            end_by_itself(s, SP_STREAM_ERROR);
            return;
        }
    }
    size_t left = s->out ? evbuffer_get_length(s->out) : 0;
    if (left == 0) {
        if (s->write_ev)
            event_del(s->write_ev);
        if (s->ending) {
            shutdown(s->fd, SHUT_WR);
            kill_stream(s);
            return;
        }
    } else {
        wait_writable(s);
    }
    if (!s->dead && !s->ending && left <= s->low_water && s->ops != NULL && s->ops->drained)
        s->ops->drained(s->ctx);
}

static void wait_writable(struct sp_stream *s)
{
    if (s->write_ev == NULL) {
        s->write_ev = event_new(s->flusher->base, s->fd, EV_WRITE | EV_PERSIST, on_writable, s);
        if (s->write_ev == NULL) {
            end_by_itself(s, SP_STREAM_ERROR);
            return;
        }
    }
    if (!event_pending(s->write_ev, EV_WRITE, NULL))
        event_add(s->write_ev, NULL);
}

void sp_stream_write_now(struct sp_stream *s)
{
    struct sp_flusher *f = s->flusher;

    if (s->dead || !s->pending || s->ending || s->out == NULL ||
        (s->write_ev != NULL && event_pending(s->write_ev, EV_WRITE, NULL)))
        return;
    /* What is left, or an error, stays the flusher's at the end of the turn. */
    if (evbuffer_write(s->out, s->fd) > 0 && evbuffer_get_length(s->out) == 0) {
        TAILQ_REMOVE(&f->pending, s, pending_link);
        s->pending = false;
    }
}

static void flush(void *arg)
{
    struct sp_flusher *f = arg;
    struct sp_stream *s;

    size_t written = 0;

    /* Round robin: a stream that gets more output after its write joins the
     * tail, behind every stream that was already waiting. */
    while (written < SP_FLUSH_SLICE && (s = TAILQ_FIRST(&f->pending)) != NULL) {
        TAILQ_REMOVE(&f->pending, s, pending_link);
        s->pending = false;
        if (s->write_ev == NULL || !event_pending(s->write_ev, EV_WRITE, NULL))
            write_out(s);
        written++;
    }
    if (!TAILQ_EMPTY(&f->pending))
        sp_slicer_more(f->slicer);
    while ((s = LIST_FIRST(&f->dead)) != NULL) {
        LIST_REMOVE(s, link);
        stream_free(s);
        f->count--;
        if (f->gone)
            f->gone(f->gone_ctx);
    }
}

static void mark_pending(struct sp_stream *s)
{
    struct sp_flusher *f = s->flusher;

    if (s->pending)
        return;
    s->pending = true;
    sp_slicer_start(f->slicer);
    TAILQ_INSERT_TAIL(&f->pending, s, pending_link);
}

static int ensure_out(struct sp_stream *s, size_t len)
{
    if (s->dead)
        return -1;
    if (s->out == NULL && (s->out = evbuffer_new()) == NULL)
        return -1;
    if (evbuffer_get_length(s->out) + len > s->max_unsent)
        return -1;
    return 0;
}

int sp_stream_write(struct sp_stream *s, const void *data, size_t len)
{
    if (ensure_out(s, len) < 0 || evbuffer_add(s->out, data, len) < 0)
        return -1;
    s->last_write = sp_now_ms();
    mark_pending(s);
    return 0;
}

int sp_stream_write_ref(struct sp_stream *s, const void *data, size_t len,
                        evbuffer_ref_cleanup_cb cleanup, void *arg)
{
    if (ensure_out(s, len) < 0 || evbuffer_add_reference(s->out, data, len, cleanup, arg) < 0)
        return -1;
    s->last_write = sp_now_ms();
    mark_pending(s);
    return 0;
}

struct evbuffer *sp_stream_output(struct sp_stream *s)
{
    if (s->out == NULL)
        s->out = evbuffer_new(); /* NULL only out of memory: the caller fails */
    if (!s->dead)
        mark_pending(s);
    return s->out;
}

size_t sp_stream_unsent(const struct sp_stream *s)
{
    return s->out ? evbuffer_get_length(s->out) : 0;
}

void sp_stream_set_low_water(struct sp_stream *s, size_t low)
{
    s->low_water = cap32(low);
}

uint64_t sp_stream_last_write(const struct sp_stream *s)
{
    return s->last_write;
}

void sp_stream_end(struct sp_stream *s)
{
    if (s->dead || s->ending)
        return;
    s->ending = true;
    event_del(&s->read_ev);
    mark_pending(s); /* the flusher sends the rest, then closes */
}

void sp_stream_close(struct sp_stream *s)
{
    s->ending = true; /* suppresses closed() */
    kill_stream(s);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_eof(struct sp_stream *s)
{
    if (s->ops == NULL || s->ops->eof == NULL) {
        end_by_itself(s, SP_STREAM_EOF);
        return;
    }
    event_del(&s->read_ev);
    s->ops->eof(s->ctx);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct sp_stream *s = arg;
    uint8_t buf[READ_CHUNK];

    if (!(what & EV_READ)) {
        if (s->ops != NULL && s->ops->readable)
            s->ops->readable(s->ctx, NULL, 0);
        return;
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
        if (s->ops != NULL && s->ops->readable)
            s->ops->readable(s->ctx, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n == 0)
        on_eof(s);
    else
        end_by_itself(s, SP_STREAM_ERROR);
}

int sp_stream_set_reading(struct sp_stream *s, bool on)
{
    if (s->dead)
        return -1;
    if (on == (bool)event_pending(&s->read_ev, EV_READ, NULL))
        return 0;
    return on ? event_add(&s->read_ev, NULL) : event_del(&s->read_ev);
}

void sp_stream_wake(struct sp_stream *s)
{
    if (!s->dead)
        event_active(&s->read_ev, EV_TIMEOUT, 0);
}

/* ---- setup ---------------------------------------------------------------------------------- */

struct sp_stream *sp_stream_new(struct sp_flusher *f, evutil_socket_t fd, size_t max_unsent,
                                const struct sp_stream_ops *ops, void *ctx)
{
    struct sp_stream *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    s->flusher = f;
    s->fd = fd;
    s->max_unsent = cap32(max_unsent);
    s->ops = ops;
    s->ctx = ctx;
    event_assign(&s->read_ev, f->base, fd, EV_READ | EV_PERSIST, on_readable, s);
    if (event_add(&s->read_ev, NULL) < 0) {
        stream_free(s);
        return NULL;
    }
    LIST_INSERT_HEAD(&f->live, s, link);
    f->count++;
    return s;
}

void sp_stream_set_ops(struct sp_stream *s, size_t max_unsent, const struct sp_stream_ops *ops,
                       void *ctx)
{
    s->max_unsent = cap32(max_unsent);
    s->low_water = 0;
    s->ops = ops;
    s->ctx = ctx;
    sp_stream_set_reading(s, true);
}

evutil_socket_t sp_stream_take_socket(struct sp_stream *s, struct evbuffer *unsent)
{
    evutil_socket_t fd = s->fd;

    if (s->out != NULL && unsent != NULL)
        evbuffer_add_buffer(unsent, s->out);
    s->fd = -1;
    sp_stream_close(s);
    return fd;
}

struct sp_flusher *sp_flusher_new(struct event_base *base, sp_stream_gone gone, void *gone_ctx)
{
    struct sp_flusher *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->base = base;
    f->gone = gone;
    f->gone_ctx = gone_ctx;
    TAILQ_INIT(&f->pending);
    LIST_INIT(&f->live);
    LIST_INIT(&f->dead);
    /* Started when the first stream of a loop turn queues output, the first
     * slice joins the end of the turn's active events, so it runs once they
     * have all run (not a higher priority: libevent stops a turn's batch
     * whenever a higher-priority event becomes active, which would re-poll
     * every ready socket once per subscription). */
    f->slicer = sp_slicer_new(base, flush, f);
    if (f->slicer == NULL) {
        sp_flusher_free(f);
        return NULL;
    }
    return f;
}

void sp_flusher_free(struct sp_flusher *f)
{
    struct sp_stream *s;

    if (f == NULL)
        return;
    while ((s = LIST_FIRST(&f->live)) != NULL)
        sp_stream_close(s);
    f->gone = NULL;
    if (f->slicer)
        flush(f);
    sp_slicer_free(f->slicer);
    free(f);
}

size_t sp_flusher_count(const struct sp_flusher *f)
{
    return f->count;
}
