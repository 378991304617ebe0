/* The publish API over socketpairs: a raw publish and a JSON one answered
 * 202 with the id, clear JSON errors, channel information and deletion,
 * and the bearer token. */
#include "harness.h"

#include "../tap.h"

static const char *const config = "publish: { auth: { bearer_token: s3cret } }\n"
                                  "routes:\n"
                                  "  - path: /events/{channel}\n"
                                  "    subscribe: {}\n";

#define AUTH "Authorization: Bearer s3cret\r\n"

/* One exchange on a fresh publisher connection: the whole answer. */
static void ask(struct harness *h, const char *request, char *buf, size_t size)
{
    int fd = harness_client(h, h->publishers);
    size_t len = 0;
    bool eof = false;

    buf[0] = '\0';
    harness_send(fd, request);
    harness_read(h, fd, buf, size, &len, "}\n", &eof);
    close(fd);
}

static void test_publish_api(struct harness *h)
{
    char buf[4096];

    ask(h, "POST /publish/c HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: 5\r\n\r\nhello", buf,
        sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 202 ") == buf && strstr(buf, "\"id\":\"") &&
           strstr(buf, "\"subscribers\":0"),
       "a raw publish: 202 with its id");
    ask(h,
        "POST /publish HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Type: application/json\r\n"
        "Content-Length: 30\r\n\r\n{\"channel\":\"c\",\"data\":\"world\"}",
        buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 202 ") == buf, "a JSON publish: 202");
    ask(h, "GET /channels/c HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 200 ") == buf && strstr(buf, "\"messages\":2"),
       "channel information counts both");
    ask(h, "POST /publish/c HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 401 ") == buf && strstr(buf, "WWW-Authenticate: Bearer\r\n") &&
           strstr(buf, "\"error\":"),
       "no token: 401 with a JSON reason");
    ask(h, "POST /publish/b%20d HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: 1\r\n\r\nx", buf,
        sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 400 ") == buf && strstr(buf, "invalid channel name"),
       "a bad channel name: 400 saying so");
    ask(h, "POST /publish HTTP/1.1\r\nHost: t\r\n" AUTH "Content-Length: 3\r\n\r\n{x}", buf,
        sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 400 ") == buf, "bad JSON: 400");
    ask(h, "DELETE /channels/c HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 200 ") == buf && strstr(buf, "\"closed\":0"), "deleted");
    ask(h, "GET /channels/c HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", buf, sizeof(buf));
    ok(strstr(buf, "HTTP/1.1 404 ") == buf, "and gone");
}

int main(void)
{
    harness_run(config, test_publish_api);
    return tap_done();
}
