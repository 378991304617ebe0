/* The long-poll kind over socketpairs: plain polling (304 with the cursor),
 * a held request answered by a publish, and a drain's 204. */
#include "harness.h"

#include "../tap.h"

static const char *const config = "routes:\n"
                                  "  - path: /lp/{channel}\n"
                                  "    subscribe: { transports: [longpoll] }\n";

static void test_plain_poll_and_held(struct harness *h)
{
    char buf[8192];
    size_t len = 0;

    int fd = harness_client(h, h->clients);
    harness_send(fd, "GET /lp/c?wait=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "\r\n\r\n", NULL) &&
           strstr(buf, "HTTP/1.1 304 ") == buf && strstr(buf, "Sidepush-Cursor: "),
       "a poll that asks not to wait, with nothing new: 304 and the cursor");
    len = 0;
    harness_send(fd, "GET /lp/c HTTP/1.1\r\nHost: t\r\n\r\n");
    ok(!harness_read(h, fd, buf, sizeof(buf), &len, "HTTP/1.1", NULL), "a poll is held");
    struct published p = harness_publish(h, "c", "e", "data");
    char want[128];
    snprintf(want, sizeof(want), "Sidepush-Cursor: %s\r\n", p.res.id);
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "]}", NULL) &&
           strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, want),
       "a publish answers it, with the next cursor");
    ok(strstr(buf, "\"data\":\"data\"") && strstr(buf, "\"event\":\"e\""),
       "and the message as a JSON item");
    len = 0;
    harness_send(fd, "GET /lp/c HTTP/1.1\r\nHost: t\r\n\r\n");
    ok(!harness_read(h, fd, buf, sizeof(buf), &len, "HTTP/1.1", NULL),
       "the same keep-alive connection polls again, held");
    sp_push_drain(h->push, 0);
    ok(harness_read(h, fd, buf, sizeof(buf), &len, "\r\n\r\n", NULL) &&
           strstr(buf, "HTTP/1.1 204 ") == buf && strstr(buf, "Retry-After: "),
       "a drain answers a held poll 204 with Retry-After");
    close(fd);
}

int main(void)
{
    harness_run(config, test_plain_poll_and_held);
    return tap_done();
}
