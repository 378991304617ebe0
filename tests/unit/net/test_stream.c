/* The flusher over real sockets (socketpairs): one slice per loop turn,
 * coalescing of what arrives between slices, round robin, order. */
#include "net/stream.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"

#define N (SP_FLUSH_SLICE + 44)

static const struct sp_stream_ops ops = {NULL, NULL};

/* What the peer has received so far, in one read. */
static ssize_t peer_read(int fd, char *buf, size_t size)
{
    ssize_t n = recv(fd, buf, size - 1, MSG_DONTWAIT);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

int main(void)
{
    struct event_base *base = event_base_new();
    struct sp_flusher *f = sp_flusher_new(base, NULL, NULL);
    struct sp_stream *streams[N];
    int peers[N];
    char buf[64];

    for (int i = 0; i < N; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            return 1;
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        streams[i] = sp_stream_new(f, sv[0], NULL, 1 << 20, &ops, NULL);
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
    return tap_done();
}
