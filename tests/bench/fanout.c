/* fanout: a fan-out load tool for sidepush and Nchan.
 *
 * Opens N subscribers (SSE, WebSocket, long-poll, or Pusher protocol clients
 * over WebSocket: --mode pusher --pusher-channel C) to one channel, publishes
 * M messages (at a steady rate, as a burst over K connections, or serially:
 * one POST at a time, the next as soon as the previous is answered, as one
 * backend worker publishes), and reports connect time,
 * delivered vs expected, publish-to-delivery latency, deliveries per second,
 * and, read from /proc for the server processes named with --pid, RSS per
 * subscriber and CPU time per delivery. It prints figures; it asserts
 * nothing. Loopback only; every run is bounded by --timeout.
 *
 * Each message carries "@t=<ns> s=<seq>@": the publish time and sequence
 * number, found in the delivered bytes whatever the framing. --json pads it
 * with JSON rows (repeated keys, varied numbers: what apps publish) rather
 * than one repeated byte; --deflate offers WebSocket subscribers
 * permessage-deflate, inflates what comes compressed, and reports the bytes
 * on the wire per delivery.
 *
 * The publishers run on a thread and event loop of their own: a backend
 * worker that publishes is another process, and its next POST must not wait
 * for this tool to finish reading 10,000 answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum mode { SSE, WS, LONGPOLL, POLL, PUSHER };
enum server { SIDEPUSH, NCHAN };

struct opts {
    const char *host;
    int port;
    const char *path; /* subscribe path */
    int publish_port;
    const char *publish_path;
    enum mode mode;
    enum server server;
    int subscribers;
    int messages;
    int rate; /* messages per second; 0 = burst; -1 = serial (one at a time) */
    int size; /* bytes per message */
    int sources;
    int publishers;
    int timeout_s;
    int interval_ms; /* --mode poll: each client's GET period */
    bool external;   /* messages come from elsewhere: print READY, publish nothing */
    pid_t pids[8];
    int npids;
    int ports[8]; /* --port given more than once: subscribers take them in turn (replicas) */
    int nports;
    const char *pusher_channel; /* --mode pusher: what each client subscribes to */
    bool deflate;               /* offer permessage-deflate */
    bool json;                  /* JSON rows as padding */
};

struct sub {
    struct bench *b;
    int idx;
    struct bufferevent *bev;
    bool streaming;  /* response head seen (SSE/WS) */
    bool subscribed; /* --mode pusher: subscription_succeeded seen */
    uint8_t *seen;   /* bitmap of received sequence numbers */
    int received;
    /* long-poll */
    char cursor[128];
    char etag[128];
    char lastmod[80];
    struct event *poll_timer; /* --mode poll */
};

struct publisher {
    struct bench *b;
    struct bufferevent *bev;
    int inflight;
};

struct bench {
    struct opts o;
    struct event_base *base;
    struct sub *subs;
    struct publisher *pubs;
    int connected;
    int published;
    int answered;
    long long delivered_unique;
    long long duplicates;
    long long expected;
    uint32_t *lat_us; /* one per delivery */
    long long nlat;
    uint64_t t_first_publish, t_last_delivery;
    /* the publisher thread's: its loop, and the go it waits for */
    struct event_base *pub_base;
    pthread_t pub_thread;
    atomic_bool go;
    struct event *go_check;
    struct event *tick;
    struct event *deadline;
    char padding[65536];
    /* --deflate: one inflater for every subscriber (the server compresses
     * each message alone), and what the data frames cost on the wire */
    z_stream inflater;
    uint8_t inflated[131072];
    long long wire_bytes, deflated_frames;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- /proc ------------------------------------------------------------------------ */

static double proc_cpu_s(const struct opts *o)
{
    double total = 0;
    long tick = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < o->npids; i++) {
        char path[64], buf[2048];
        snprintf(path, sizeof(path), "/proc/%d/stat", o->pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                        &stime) == 2)
            total += (double)(utime + stime) / (double)tick;
    }
    return total;
}

static long proc_rss_kib(const struct opts *o)
{
    long total = 0;
    for (int i = 0; i < o->npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", o->pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f)) {
            long v;
            if (sscanf(line, "VmRSS: %ld", &v) == 1)
                total += v;
        }
        fclose(f);
    }
    return total;
}

/* ---- deliveries -------------------------------------------------------------------- */

static void finish(struct bench *b);

static void record(struct sub *s, uint64_t t_pub, int seq, uint64_t t_now)
{
    struct bench *b = s->b;
    if (seq < 0 || seq >= b->o.messages)
        return;
    if (s->seen[seq / 8] & (1u << (seq % 8))) {
        b->duplicates++;
        return;
    }
    s->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
    s->received++;
    b->delivered_unique++;
    b->lat_us[b->nlat++] = (uint32_t)((t_now - t_pub) / 1000);
    b->t_last_delivery = t_now;
    if (b->delivered_unique == b->expected)
        finish(b);
}

/* Finds every "@t=<ns> s=<seq>@" marker in p[0..len); returns bytes consumed
 * (a partial marker at the end is left for next time). */
static size_t scan_markers(struct sub *s, const char *p, size_t len)
{
    uint64_t t = now_ns();
    size_t pos = 0, keep_from = len;
    while (pos < len) {
        const char *m = memmem(p + pos, len - pos, "@t=", 3);
        if (m == NULL) {
            keep_from = len > 2 ? len - 2 : 0; /* a marker may start in the tail */
            break;
        }
        const char *end = memchr(m + 3, '@', (size_t)(p + len - (m + 3)));
        if (end == NULL) {
            keep_from = (size_t)(m - p);
            break;
        }
        unsigned long long tp;
        int seq;
        if (sscanf(m + 3, "%llu s=%d", &tp, &seq) == 2)
            record(s, tp, seq, t);
        pos = (size_t)(end + 1 - p);
        keep_from = pos;
    }
    return keep_from;
}

/* ---- subscribers --------------------------------------------------------------------- */

static int sub_port(const struct sub *s)
{
    return s->b->o.ports[s->idx % s->b->o.nports];
}

static void send_subscribe(struct sub *s)
{
    struct bench *b = s->b;
    struct evbuffer *out = bufferevent_get_output(s->bev);

    evbuffer_add_printf(out, "GET %s", b->o.path);
    if (b->o.mode == LONGPOLL && b->o.server == SIDEPUSH && s->cursor[0])
        evbuffer_add_printf(out, "%scursor=%s", strchr(b->o.path, '?') ? "&" : "?", s->cursor);
    evbuffer_add_printf(out, " HTTP/1.1\r\nHost: %s:%d\r\n", b->o.host, sub_port(s));
    if (b->o.mode == SSE)
        evbuffer_add_printf(out, "Accept: text/event-stream\r\n");
    if (b->o.mode == WS || b->o.mode == PUSHER)
        evbuffer_add_printf(out, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    if ((b->o.mode == WS || b->o.mode == PUSHER) && b->o.deflate)
        evbuffer_add_printf(out, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    if (b->o.mode == LONGPOLL && b->o.server == NCHAN && s->etag[0])
        evbuffer_add_printf(out, "If-None-Match: %s\r\nIf-Modified-Since: %s\r\n", s->etag,
                            s->lastmod);
    evbuffer_add_printf(out, "\r\n");
}

static bool read_head(struct sub *s, struct evbuffer *in, int *status, long *clen, bool *chunked)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        return false;
    size_t hlen = (size_t)end.pos + 4;
    char *head = malloc(hlen + 1);
    evbuffer_remove(in, head, hlen);
    head[hlen] = '\0';
    *status = atoi(head + 9);
    *clen = -1;
    *chunked = false;
    for (char *line = strstr(head, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            *clen = atol(h + 15);
        else if (strncasecmp(h, "Transfer-Encoding: chunked", 26) == 0)
            *chunked = true;
        else if (strncasecmp(h, "Sidepush-Cursor: ", 17) == 0)
            sscanf(h + 17, "%127[^\r]", s->cursor);
        else if (strncasecmp(h, "Etag: ", 6) == 0)
            sscanf(h + 6, "%127[^\r]", s->etag);
        else if (strncasecmp(h, "Last-Modified: ", 15) == 0)
            sscanf(h + 15, "%79[^\r]", s->lastmod);
    }
    free(head);
    return true;
}

static void on_stream(struct sub *s, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    const char *p = (const char *)evbuffer_pullup(in, -1);
    size_t used = scan_markers(s, p, len);
    evbuffer_drain(in, used);
}

/* A client's text frame, masked with a zero key (the payload as it is). */
static void ws_send_text(struct sub *s, const char *text)
{
    size_t len = strlen(text);
    uint8_t head[8] = {0x81, (uint8_t)(0x80 | (len < 126 ? len : 126))};
    size_t hlen = 2;

    if (len >= 126) {
        head[2] = (uint8_t)(len >> 8);
        head[3] = (uint8_t)len;
        hlen = 4;
    }
    memset(head + hlen, 0, 4);
    bufferevent_write(s->bev, head, hlen + 4);
    bufferevent_write(s->bev, text, len);
}

/* --mode pusher: subscribe once the connection is established, count the
 * subscriber once it is, answer pings. */
static void pusher_frame(struct sub *s, const char *p, size_t len)
{
    char text[512];

    if (!s->subscribed && memmem(p, len, "pusher:connection_established", 29) != NULL) {
        snprintf(text, sizeof(text),
                 "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}",
                 s->b->o.pusher_channel);
        ws_send_text(s, text);
    } else if (!s->subscribed && memmem(p, len, "subscription_succeeded", 22) != NULL) {
        s->subscribed = true;
        s->b->connected++;
    } else if (memmem(p, len, "\"pusher:ping\"", 13) != NULL) {
        ws_send_text(s, "{\"event\":\"pusher:pong\",\"data\":{}}");
    }
}

/* A permessage-deflate payload into b->inflated; *len its inflated length. */
static int inflate_message(struct bench *b, const uint8_t *p, size_t plen, size_t *len)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    z_stream *z = &b->inflater;

    if (z->zalloc == NULL && inflateInit2(z, -15) != Z_OK)
        return -1;
    inflateReset(z);
    z->next_out = b->inflated;
    z->avail_out = sizeof(b->inflated);
    z->next_in = (Bytef *)p;
    z->avail_in = (uInt)plen;
    int rc = inflate(z, Z_SYNC_FLUSH);
    z->next_in = (Bytef *)tail;
    z->avail_in = 4;
    if (rc == Z_OK || rc == Z_BUF_ERROR)
        rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
        fprintf(stderr, "bad compressed frame\n");
        return -1;
    }
    b->deflated_frames++;
    *len = sizeof(b->inflated) - z->avail_out;
    return 0;
}

static void ws_frames(struct sub *s, struct evbuffer *in)
{
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len < 2)
            return;
        uint8_t *p = evbuffer_pullup(in, len < 14 ? (ssize_t)len : 14);
        uint64_t plen = p[1] & 0x7f;
        size_t hlen = 2;
        if (plen == 126) {
            if (len < 4)
                return;
            plen = ((uint64_t)p[2] << 8) | p[3];
            hlen = 4;
        } else if (plen == 127) {
            if (len < 10)
                return;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            hlen = 10;
        }
        if (len < hlen + plen)
            return;
        int op = p[0] & 0x0f;
        uint8_t *frame = evbuffer_pullup(in, (ssize_t)(hlen + plen));
        if (op == 0x9) { /* ping: answer with a masked pong */
            uint8_t pong[2 + 4 + 125] = {0x8a, (uint8_t)(0x80 | plen), 0, 0, 0, 0};
            memcpy(pong + 6, frame + hlen, plen);
            bufferevent_write(s->bev, pong, 6 + plen);
        } else if (op == 0x1 || op == 0x2) {
            const char *payload = (const char *)frame + hlen;
            size_t n = plen;
            s->b->wire_bytes += (long long)(hlen + plen);
            if (frame[0] & 0x40 && inflate_message(s->b, frame + hlen, plen, &n) == 0)
                payload = (const char *)s->b->inflated;
            if (s->b->o.mode == PUSHER)
                pusher_frame(s, payload, n);
            scan_markers(s, payload, n);
        }
        evbuffer_drain(in, hlen + plen);
    }
}

/* When in holds a whole response (head and Content-Length body): its body
 * length, with the head's in *hlen; else -1. */
static long complete_response(struct evbuffer *in, size_t *hlen)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        return -1;
    *hlen = (size_t)end.pos + 4;
    char *head = (char *)evbuffer_pullup(in, (ssize_t)*hlen);
    if (head == NULL)
        return -1;
    char *cl = memmem(head, *hlen, "Content-Length:", 15);
    if (cl == NULL)
        cl = memmem(head, *hlen, "content-length:", 15);
    long need = cl ? atol(cl + 15) : 0;
    return evbuffer_get_length(in) < *hlen + (size_t)need ? -1 : need;
}

/* Long-poll: one response at a time, then the next request. */
static void longpoll_read(struct sub *s, struct evbuffer *in)
{
    for (;;) {
        int status;
        long clen;
        bool chunked;
        size_t hlen;
        long need = complete_response(in, &hlen);
        if (need < 0)
            return;
        read_head(s, in, &status, &clen, &chunked);
        char *body = malloc((size_t)need + 1);
        evbuffer_remove(in, body, (size_t)need);
        body[need] = '\0';
        if (status == 200)
            scan_markers(s, body, (size_t)need);
        free(body);
        if (s->b->o.mode == POLL) {
            struct timeval tv = {s->b->o.interval_ms / 1000, (s->b->o.interval_ms % 1000) * 1000};
            evtimer_add(s->poll_timer, &tv);
        } else {
            send_subscribe(s);
        }
    }
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sub *s = arg;
    if (s->bev)
        send_subscribe(s);
}

static void on_sub_read(struct bufferevent *bev, void *arg)
{
    struct sub *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (s->b->o.mode == LONGPOLL || s->b->o.mode == POLL) {
        longpoll_read(s, in);
        return;
    }
    if (!s->streaming) {
        int status;
        long clen;
        bool chunked;
        if (!read_head(s, in, &status, &clen, &chunked))
            return;
        if (status != 200 && status != 101) {
            fprintf(stderr, "subscriber %d: status %d\n", s->idx, status);
            return;
        }
        s->streaming = true;
        if (s->b->o.mode != PUSHER) /* a Pusher client counts once subscribed */
            s->b->connected++;
    }
    if (s->b->o.mode == WS || s->b->o.mode == PUSHER)
        ws_frames(s, in);
    else
        on_stream(s, in);
}

static void on_sub_event(struct bufferevent *bev, short what, void *arg)
{
    struct sub *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (s->b->o.mode == LONGPOLL || s->b->o.mode == POLL)
            s->b->connected++;
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fprintf(stderr, "subscriber %d: connection lost\n", s->idx);
    bufferevent_free(bev);
    s->bev = NULL;
}

static int open_sub(struct bench *b, struct sub *s)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

    if (fd < 0)
        return -1;
    /* Spread client sockets over 127.0.0.2.. to pass the ephemeral-port limit. */
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(s->idx % b->o.sources));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    inet_pton(AF_INET, b->o.host, &dst.sin_addr);
    dst.sin_port = htons((uint16_t)sub_port(s));
    s->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->bev, on_sub_read, NULL, on_sub_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&dst, sizeof(dst)) < 0)
        return -1;
    if (b->o.mode == POLL) {
        /* Plain pollers start at random phases, as real clients do. */
        s->poll_timer = evtimer_new(b->base, on_poll_timer, s);
        struct timeval tv = {0, 0};
        long phase = random() % (b->o.interval_ms ? b->o.interval_ms : 1);
        tv.tv_sec = phase / 1000;
        tv.tv_usec = (phase % 1000) * 1000;
        evtimer_add(s->poll_timer, &tv);
        return 0;
    }
    send_subscribe(s);
    return 0;
}

/* ---- publishing ------------------------------------------------------------------------ */

static void publish_one(struct bench *b);

static void on_pub_read(struct bufferevent *bev, void *arg)
{
    struct publisher *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t hlen;
        long need = complete_response(in, &hlen);
        if (need < 0)
            return;
        int status = atoi((const char *)evbuffer_pullup(in, 12) + 9);
        if (status < 200 || status > 299)
            fprintf(stderr, "publish answered %d\n", status);
        evbuffer_drain(in, hlen + (size_t)need);
        p->inflight--;
        p->b->answered++;
        if (p->b->o.rate < 0 && p->b->published < p->b->o.messages)
            publish_one(p->b); /* serial: the next once this one is answered */
        if (p->b->answered == p->b->o.messages)
            event_base_loopexit(p->b->pub_base, NULL);
    }
}

static void on_pub_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fprintf(stderr, "publisher connection lost\n");
}

static void publish_one(struct bench *b)
{
    struct publisher *p = &b->pubs[b->published % b->o.publishers];
    char marker[64];
    int seq = b->published++;
    uint64_t t = now_ns();

    if (b->t_first_publish == 0)
        b->t_first_publish = t;
    int mlen = snprintf(marker, sizeof(marker), "@t=%" PRIu64 " s=%d@", t, seq);
    int pad = b->o.size > mlen ? b->o.size - mlen : 0;
    struct evbuffer *out = bufferevent_get_output(p->bev);
    evbuffer_add_printf(out,
                        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %d\r\n\r\n",
                        b->o.publish_path, b->o.host, b->o.publish_port, mlen + pad);
    evbuffer_add(out, marker, (size_t)mlen);
    evbuffer_add(out, b->padding, (size_t)pad);
    p->inflight++;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    if (b->published < b->o.messages)
        publish_one(b);
    if (b->published == b->o.messages)
        event_del(b->tick);
}

static void start_publishing(struct bench *b)
{
    if (b->o.rate == 0) {
        while (b->published < b->o.messages)
            publish_one(b);
        return;
    }
    if (b->o.rate < 0) {
        publish_one(b);
        return;
    }
    struct timeval tv = {0, 1000000 / b->o.rate};
    b->tick = event_new(b->pub_base, -1, EV_PERSIST, on_tick, b);
    event_add(b->tick, &tv);
}

/* The publisher thread polls for the go every millisecond until it comes. */
static void on_go_check(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;

    if (!atomic_load(&b->go))
        return;
    event_del(b->go_check);
    start_publishing(b);
}

static void *publisher_main(void *arg)
{
    struct bench *b = arg;
    struct timeval ms = {0, 1000}, limit = {b->o.timeout_s + 5, 0};

    b->go_check = event_new(b->pub_base, -1, EV_PERSIST, on_go_check, b);
    event_add(b->go_check, &ms);
    event_base_loopexit(b->pub_base, &limit);
    event_base_dispatch(b->pub_base);
    return NULL;
}

static void open_publishers(struct bench *b)
{
    b->pub_base = event_base_new();
    b->pubs = calloc((size_t)b->o.publishers, sizeof(*b->pubs));
    for (int i = 0; i < b->o.publishers; i++) {
        struct sockaddr_in dst = {.sin_family = AF_INET};
        inet_pton(AF_INET, b->o.host, &dst.sin_addr);
        dst.sin_port = htons((uint16_t)b->o.publish_port);
        b->pubs[i].b = b;
        b->pubs[i].bev = bufferevent_socket_new(b->pub_base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(b->pubs[i].bev, on_pub_read, NULL, on_pub_event, &b->pubs[i]);
        bufferevent_enable(b->pubs[i].bev, EV_READ | EV_WRITE);
        bufferevent_socket_connect(b->pubs[i].bev, (struct sockaddr *)&dst, sizeof(dst));
    }
    pthread_create(&b->pub_thread, NULL, publisher_main, b);
}

/* ---- report ----------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu0;
static long rss_idle, rss_subscribed;
static uint64_t t_connect_start, t_connected;

static void finish(struct bench *b)
{
    event_base_loopexit(b->base, NULL);
}

static void report(struct bench *b)
{
    double cpu = proc_cpu_s(&b->o) - cpu0;
    double span = (double)(b->t_last_delivery - b->t_first_publish) / 1e9;
    static const char *const modes[] = {"sse", "websocket", "longpoll", "poll", "pusher"};

    qsort(b->lat_us, (size_t)b->nlat, sizeof(uint32_t), cmp_u32);
    uint32_t p50 = b->nlat ? b->lat_us[b->nlat / 2] : 0;
    uint32_t p99 = b->nlat ? b->lat_us[(b->nlat * 99) / 100] : 0;
    uint32_t max = b->nlat ? b->lat_us[b->nlat - 1] : 0;
    printf("{\"server\":\"%s\",\"mode\":\"%s\",\"subscribers\":%d,\"messages\":%d,"
           "\"pattern\":\"%s\",\"connect_s\":%.3f,\"expected\":%lld,\"delivered\":%lld,"
           "\"duplicates\":%lld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"deliveries_per_s\":%.0f,\"rss_per_sub_bytes\":%.0f,\"cpu_us_per_delivery\":%.3f,"
           "\"server_cpu_s\":%.3f,\"wire_bytes_per_delivery\":%.1f,\"deflated_frames\":%lld}\n",
           b->o.server == NCHAN ? "nchan" : "sidepush", modes[b->o.mode], b->o.subscribers,
           b->o.messages,
           b->o.rate > 0    ? "steady"
           : b->o.rate == 0 ? "burst"
                            : "serial",
           (double)(t_connected - t_connect_start) / 1e9, b->expected, b->delivered_unique,
           b->duplicates, p50 / 1000.0, p99 / 1000.0, max / 1000.0,
           span > 0 ? (double)b->delivered_unique / span : 0,
           b->o.subscribers ? (double)(rss_subscribed - rss_idle) * 1024.0 / b->o.subscribers : 0,
           b->delivered_unique ? cpu * 1e6 / (double)b->delivered_unique : 0, cpu,
           b->delivered_unique ? (double)b->wire_bytes / (double)b->delivered_unique : 0,
           b->deflated_frames);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    finish(arg);
}

static void run_until(struct bench *b, bool (*done)(struct bench *), double seconds)
{
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    while (!done(b) && now_ns() < end)
        event_base_loop(b->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(done(b) ? 0 : 1000);
}

static bool all_connected(struct bench *b)
{
    return b->connected >= b->o.subscribers;
}

static bool publishers_ready(struct bench *b)
{
    (void)b;
    return false;
}

/* Rows as an app publishes them: the same keys, varied values. */
static void json_padding(char *out, size_t cap)
{
    static const char *const status[] = {"shipped", "packed", "delivered", "returned"};
    char row[160];
    size_t n = 0;
    unsigned seed = 42;

    while (n < cap) {
        seed = seed * 1103515245u + 12345u;
        int len = snprintf(row, sizeof(row),
                           "{\"order_id\":%u,\"status\":\"%s\",\"carrier\":\"DHL\","
                           "\"updated_at\":\"2026-12-08T%02u:%02u:%02uZ\",\"total_cents\":%u},",
                           10000 + seed % 90000, status[seed >> 8 & 3], seed >> 10 & 15,
                           seed >> 14 & 31, seed >> 19 & 31, seed >> 3 & 65535);
        size_t take = (size_t)len < cap - n ? (size_t)len : cap - n;
        memcpy(out + n, row, take);
        n += take;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fanout --port P --path /sub --publish-port P --publish-path /pub\n"
            "  [--mode sse|ws|longpoll|pusher --pusher-channel C] [--server sidepush|nchan]\n"
            "  [--subscribers N]\n"
            "  [--messages M] [--rate R (0 = burst, -1 = serial)] [--size BYTES]\n"
            "  [--sources K]\n"
            "  [--publishers K] [--timeout S] [--pid PID ...] [--json] [--deflate]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct bench b;
    static const struct option longopts[] = {
        {"host", 1, 0, 'h'},         {"port", 1, 0, 'p'},         {"path", 1, 0, 'a'},
        {"publish-port", 1, 0, 'P'}, {"publish-path", 1, 0, 'A'}, {"mode", 1, 0, 'm'},
        {"server", 1, 0, 's'},       {"subscribers", 1, 0, 'n'},  {"messages", 1, 0, 'M'},
        {"rate", 1, 0, 'r'},         {"size", 1, 0, 'z'},         {"sources", 1, 0, 'S'},
        {"publishers", 1, 0, 'k'},   {"timeout", 1, 0, 't'},      {"pid", 1, 0, 'i'},
        {"interval-ms", 1, 0, 'I'},  {"external", 0, 0, 'E'},     {"pusher-channel", 1, 0, 'C'},
        {"deflate", 0, 0, 'D'},      {"json", 0, 0, 'J'},         {0, 0, 0, 0},
    };
    struct opts *o = &b.o;
    int c;

    *o =
        (struct opts){"127.0.0.1", 0,  NULL, 0,     NULL, SSE, SIDEPUSH, 1000, 100,  50,    128,  4,
                      8,           60, 2000, false, {0},  0,   {0},      0,    NULL, false, false};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            if (o->nports < 8)
                o->ports[o->nports++] = atoi(optarg);
            o->port = o->ports[0];
            break;
        case 'a':
            o->path = optarg;
            break;
        case 'P':
            o->publish_port = atoi(optarg);
            break;
        case 'A':
            o->publish_path = optarg;
            break;
        case 'm':
            o->mode = strcmp(optarg, "ws") == 0         ? WS
                      : strcmp(optarg, "pusher") == 0   ? PUSHER
                      : strcmp(optarg, "longpoll") == 0 ? LONGPOLL
                      : strcmp(optarg, "poll") == 0     ? POLL
                                                        : SSE;
            break;
        case 'I':
            o->interval_ms = atoi(optarg);
            break;
        case 'C':
            o->pusher_channel = optarg;
            break;
        case 'E':
            o->external = true;
            break;
        case 'D':
            o->deflate = true;
            break;
        case 'J':
            o->json = true;
            break;
        case 's':
            o->server = strcmp(optarg, "nchan") == 0 ? NCHAN : SIDEPUSH;
            break;
        case 'n':
            o->subscribers = atoi(optarg);
            break;
        case 'M':
            o->messages = atoi(optarg);
            break;
        case 'r':
            o->rate = atoi(optarg);
            break;
        case 'z':
            o->size = atoi(optarg);
            break;
        case 'S':
            o->sources = atoi(optarg) > 0 ? atoi(optarg) : 1;
            break;
        case 'k':
            o->publishers = atoi(optarg) > 0 ? atoi(optarg) : 1;
            break;
        case 't':
            o->timeout_s = atoi(optarg);
            break;
        case 'i':
            if (o->npids < 8)
                o->pids[o->npids++] = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (!o->port || !o->path || o->size > 60000 || (o->mode == PUSHER && !o->pusher_channel) ||
        (!o->external && (!o->publish_port || !o->publish_path)))
        usage();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (o->json)
        json_padding(b.padding, sizeof(b.padding));
    else
        memset(b.padding, 'x', sizeof(b.padding));
    b.base = event_base_new();
    b.subs = calloc((size_t)o->subscribers, sizeof(*b.subs));
    b.expected = (long long)o->subscribers * o->messages;
    b.lat_us = calloc((size_t)b.expected + 1, sizeof(uint32_t));

    rss_idle = proc_rss_kib(o);
    t_connect_start = now_ns();
    for (int i = 0; i < o->subscribers; i++) {
        b.subs[i] = (struct sub){.b = &b, .idx = i};
        b.subs[i].seen = calloc((size_t)o->messages / 8 + 1, 1);
        if (open_sub(&b, &b.subs[i]) < 0) {
            fprintf(stderr, "cannot open subscriber %d: %s\n", i, strerror(errno));
            return 1;
        }
        if (i % 200 == 199) /* let the server accept as we go */
            event_base_loop(b.base, EVLOOP_NONBLOCK);
    }
    run_until(&b, all_connected, o->timeout_s);
    t_connected = now_ns();
    if (!o->external)
        open_publishers(&b);
    run_until(&b, publishers_ready, o->mode == LONGPOLL ? 1.5 : 1.0); /* settle */
    rss_subscribed = proc_rss_kib(o);
    cpu0 = proc_cpu_s(o);
    if (o->external) {
        /* Whoever makes the changes stamps them; this side only listens. */
        printf("READY\n");
        fflush(stdout);
        b.t_first_publish = now_ns();
    } else {
        atomic_store(&b.go, true);
    }
    struct timeval limit = {o->timeout_s, 0};
    b.deadline = evtimer_new(b.base, on_deadline, &b);
    evtimer_add(b.deadline, &limit);
    event_base_dispatch(b.base);
    if (!o->external)
        pthread_join(b.pub_thread, NULL);
    report(&b);
    return 0;
}
