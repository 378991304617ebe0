/* The connection engine over real sockets (socketpairs): one slice per loop
 * turn, coalescing of what arrives between slices, round robin, order; and
 * what the HTTP server relies on: a stream handed to a new owner with its
 * output still queued, a half-close that keeps the stream writable, the
 * low-water mark, reading paused and woken, the socket taken out. */
#include "net/stream.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"

#define N (SP_FLUSH_SLICE + 44)

static const struct sp_stream_ops quiet_ops = {0};

/* What the peer has received so far, in one read. */
static ssize_t peer_read(int fd, char *buf, size_t size)
{
    ssize_t n = recv(fd, buf, size - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

static void test_slices(void)
{
    struct event_base *base = event_base_new();
    struct sp_flusher *f = sp_flusher_new(base, NULL, NULL);
    struct sp_stream *streams[N];
    int peers[N];
    char buf[64];

    for (int i = 0; i < N; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            return;
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        streams[i] = sp_stream_new(f, sv[0], 1 << 20, &quiet_ops, NULL);
        peers[i] = sv[1];
    }
    ok(sp_flusher_count(f) == N, "%d streams", N);

    for (int i = 0; i < N; i++)
        sp_stream_write(streams[i], "m1;", 3);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    int written = 0, first_unwritten = -1;
    for (int i = 0; i < N; i++) {
        bool got = peer_read(peers[i], buf, sizeof(buf)) > 0;
        written += got;
        if (!got && first_unwritten < 0)
            first_unwritten = i;
        if (got && strcmp(buf, "m1;") != 0)
            break;
    }
    is_int(written, SP_FLUSH_SLICE, "one loop turn writes one slice");
    is_int(first_unwritten, SP_FLUSH_SLICE, "in the order the streams queued output");

    /* The next publish arrives between slices. */
    for (int i = 0; i < N; i++)
        sp_stream_write(streams[i], "m2;", 3);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    peer_read(peers[SP_FLUSH_SLICE], buf, sizeof(buf));
    is_str(buf, "m1;m2;", "a stream not yet written gets both messages in one write");
    peer_read(peers[0], buf, sizeof(buf));
    is_str(buf, "m2;", "a stream written before comes after those that waited longer");
    peer_read(peers[N - 1], buf, sizeof(buf));
    is_str(buf, "m1;m2;", "the last of the first round is served before the second round");

    for (int turn = 0; turn < 10; turn++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    bool all = true;
    for (int i = 0; i < N; i++) {
        ssize_t n = peer_read(peers[i], buf, sizeof(buf));
        /* Those read above hold nothing more; the first slice got m1 before. */
        if (i == 0 || i == SP_FLUSH_SLICE || i == N - 1)
            all &= n <= 0;
        else
            all &= strcmp(buf, i < SP_FLUSH_SLICE ? "m2;" : "m1;m2;") == 0;
    }
    ok(all, "every stream ends with every message, once, in order");
    ok(sp_stream_unsent(streams[0]) == 0 && sp_stream_unsent(streams[N - 1]) == 0,
       "nothing left unsent");

    sp_flusher_free(f);
    for (int i = 0; i < N; i++)
        close(peers[i]);
    event_base_free(base);
}

/* ---- one owner, then another ------------------------------------------------------------ */

/* What a stream's owner heard. */
struct heard {
    char read[64];
    int wakes, eofs, closes, drains;
    enum sp_stream_end why;
};

static void heard_readable(void *ctx, const uint8_t *data, size_t len)
{
    struct heard *h = ctx;

    if (data == NULL) {
        h->wakes++;
        return;
    }
    strncat(h->read, (const char *)data,
            len < sizeof(h->read) - strlen(h->read) - 1 ? len
                                                        : sizeof(h->read) - strlen(h->read) - 1);
}

static void heard_closed(void *ctx, enum sp_stream_end why)
{
    struct heard *h = ctx;

    h->closes++;
    h->why = why;
}

static void heard_eof(void *ctx)
{
    ((struct heard *)ctx)->eofs++;
}

static void heard_drained(void *ctx)
{
    ((struct heard *)ctx)->drains++;
}

static const struct sp_stream_ops full_ops = {heard_readable, heard_closed, heard_eof,
                                              heard_drained};
static const struct sp_stream_ops plain_ops = {.readable = heard_readable, .closed = heard_closed};

static void turns(struct event_base *base, int n)
{
    for (int i = 0; i < n; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static struct sp_stream *pair(struct sp_flusher *f, int *peer, const struct sp_stream_ops *ops,
                              void *ctx)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return NULL;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    *peer = sv[1];
    return sp_stream_new(f, sv[0], 1 << 20, ops, ctx);
}

static void test_hand_over(void)
{
    struct event_base *base = event_base_new();
    struct sp_flusher *f = sp_flusher_new(base, NULL, NULL);
    struct heard first = {0}, second = {0};
    char buf[64];
    int peer;
    struct sp_stream *s = pair(f, &peer, &full_ops, &first);

    send(peer, "GET", 3, 0);
    turns(base, 1);
    is_str(first.read, "GET", "the first owner reads the request");
    evbuffer_add(sp_stream_output(s), "head;", 5);
    sp_stream_set_ops(s, 8, &plain_ops, &second);
    ok(sp_stream_write(s, "message;", 8) < 0, "the new owner's cap counts what is queued");
    sp_stream_set_ops(s, 64, &plain_ops, &second);
    ok(sp_stream_write(s, "message;", 8) == 0, "a write within the cap");
    send(peer, "frame", 5, 0);
    turns(base, 1);
    peer_read(peer, buf, sizeof(buf));
    is_str(buf, "head;message;", "what the first owner queued goes first, in the same write");
    is_str(second.read, "frame", "the new owner reads from now on");
    is_str(first.read, "GET", "the first owner hears nothing more");

    close(peer);
    turns(base, 2);
    is_int(second.closes, 1, "without an eof op, the client's close ends the stream");
    is_int(second.why, SP_STREAM_EOF, "as an EOF");
    is_int(sp_flusher_count(f), 0, "and the engine freed it");
    sp_flusher_free(f);
    event_base_free(base);
}

static void test_half_close(void)
{
    struct event_base *base = event_base_new();
    struct sp_flusher *f = sp_flusher_new(base, NULL, NULL);
    struct heard h = {0};
    char buf[64];
    int peer;
    struct sp_stream *s = pair(f, &peer, &full_ops, &h);

    send(peer, "POST", 4, 0);
    shutdown(peer, SHUT_WR);
    turns(base, 2);
    is_int(h.eofs, 1, "a half-close is told once");
    is_int(h.closes, 0, "and does not end the stream");
    sp_stream_write(s, "answer", 6);
    turns(base, 1);
    peer_read(peer, buf, sizeof(buf));
    is_str(buf, "answer", "the answer still goes out");
    ok(h.drains >= 1, "drained once nothing is left (low-water mark 0)");
    sp_stream_end(s);
    turns(base, 1);
    ok(recv(peer, buf, sizeof(buf), 0) == 0, "ended: the client sees EOF");
    is_int(h.closes, 0, "an end the owner asked for is not told back");
    close(peer);
    sp_flusher_free(f);
    event_base_free(base);
}

static void test_reading_and_waking(void)
{
    struct event_base *base = event_base_new();
    struct sp_flusher *f = sp_flusher_new(base, NULL, NULL);
    struct heard h = {0};
    int peer;
    struct sp_stream *s = pair(f, &peer, &full_ops, &h);

    ok(sp_stream_set_reading(s, false) == 0, "reading off");
    send(peer, "later", 5, 0);
    turns(base, 2);
    is_str(h.read, "", "nothing is read while reading is off");
    sp_stream_wake(s);
    is_int(h.wakes, 0, "a wake never calls back at once");
    turns(base, 1);
    is_int(h.wakes, 1, "but on the next turn, with no data");
    sp_stream_set_reading(s, true);
    turns(base, 1);
    is_str(h.read, "later", "reading on: what waited is read");

    struct evbuffer *unsent = evbuffer_new();
    sp_stream_write(s, "queued", 6);
    evutil_socket_t fd = sp_stream_take_socket(s, unsent);
    turns(base, 1);
    is_int(evbuffer_get_length(unsent), 6, "taking the socket hands over what was queued");
    is_int(sp_flusher_count(f), 0, "the stream is gone");
    ok(send(fd, "x", 1, 0) == 1, "and the socket is still open, the caller's");
    evbuffer_free(unsent);
    close(fd);
    close(peer);
    sp_flusher_free(f);
    event_base_free(base);
}

int main(void)
{
    test_slices();
    test_hand_over();
    test_half_close();
    test_reading_and_waking();
    return tap_done();
}
