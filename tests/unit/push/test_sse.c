/* The SSE kind over socketpairs, with the facade and the hub around it:
 * the head, events framed as the client's HTTP version says, replay from a
 * cursor, the missed signal, and a drain. */
#include "harness.h"

#include "../tap.h"

static const char *const config = "routes:\n"
                                  "  - path: /events/{channel}\n"
                                  "    subscribe: { channel: '{channel}' }\n";

static void test_stream_over_http_1_1(struct harness *h)
{
    char buf[8192];
    size_t len = 0;

    int fd = harness_client(h, h->clients);
    harness_send(fd, "GET /events/news HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "retry: ", NULL), "the stream opens");
    ok(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf &&
           strstr(buf, "Content-Type: text/event-stream; charset=utf-8\r\n") &&
           strstr(buf, "Cache-Control: no-cache\r\n") && strstr(buf, "X-Accel-Buffering: no\r\n") &&
           strstr(buf, "Transfer-Encoding: chunked\r\n"),
       "an event-stream head, chunked, never cached or buffered by a proxy");
    struct published p = harness_publish(h, "news", "update", "line one\nline two");
    is_int(p.rc, 0, "published");
    is_int((long long)p.res.subscribers, 1, "to the one subscriber");
    char want[256];
    const char *event = "id: %s\nevent: update\ndata: line one\ndata: line two\n\n";
    char text[200];
    snprintf(text, sizeof(text), event, p.res.id);
    snprintf(want, sizeof(want), "%zx\r\n%s\r\n", strlen(text), text);
    ok(harness_read(h, fd, buf, sizeof(buf), &len, want, NULL),
       "one event, one chunk, multi-line data split into data: lines");
    close(fd);
}

static void test_stream_over_http_1_0_and_replay(struct harness *h)
{
    char buf[8192];
    size_t len = 0;

    struct published first = harness_publish(h, "c", NULL, "one");
    struct published second = harness_publish(h, "c", NULL, "two");
    int fd = harness_client(h, h->clients);
    char req[256];
    snprintf(req, sizeof(req),
             "GET /events/c HTTP/1.0\r\nAccept: text/event-stream\r\nLast-Event-ID: %s\r\n\r\n",
             first.res.id);
    harness_send(fd, req);
    char want[128];
    snprintf(want, sizeof(want), "id: %s\ndata: two\n\n", second.res.id);
    ok(harness_read(h, fd, buf, sizeof(buf), &len, want, NULL),
       "resumes after Last-Event-ID with what came since");
    ok(strstr(buf, "data: one") == NULL, "and not what the client had");
    ok(strstr(buf, "HTTP/1.0 200 OK\r\n") == buf && strstr(buf, "chunked") == NULL &&
           strstr(buf, "Connection: close\r\n"),
       "HTTP/1.0: no chunks, the body ends with the connection");
    sp_push_drain(h->push, 0);
    bool eof = false;
    ok(harness_read(h, fd, buf, sizeof(buf), &len, NULL, &eof) && eof, "a drain ends the stream");
    ok(strstr(buf + strlen(want), "retry: ") != NULL, "with a retry hint first");
    close(fd);
}

static void test_missed_history(struct harness *h)
{
    char buf[8192];
    size_t len = 0;

    struct published first = harness_publish(h, "c", NULL, "one");
    harness_publish(h, "c", NULL, "two");
    harness_publish(h, "c", NULL, "three");
    int fd = harness_client(h, h->clients);
    char req[256];
    snprintf(
        req, sizeof(req),
        "GET /events/c?lastEventId=%s HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        first.res.id);
    harness_send(fd, req);
    bool got = harness_read(h, fd, buf, sizeof(buf), &len, "data: three", NULL);
    ok(got, "what history holds is replayed");
    if (!got)
        printf("# got: %s\n", buf);
    ok(strstr(buf, "event: sidepush-missed\n") != NULL && strstr(buf, "data: two") == NULL,
       "and the gap is told, not hidden");
    close(fd);
}

int main(void)
{
    harness_run(config, test_stream_over_http_1_1);
    harness_run(config, test_stream_over_http_1_0_and_replay);
    harness_run("channels: { history: 1 }\n"
                "routes:\n  - path: /events/{channel}\n    subscribe: {}\n",
                test_missed_history);
    return tap_done();
}
