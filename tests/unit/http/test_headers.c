/* Response header lines (sp_http_add_header): nothing a sender supplies can
 * split a response head. */
#include "http/server.h"

#include <stdbool.h>

#include <event2/buffer.h>
#include <string.h>

#include "../tap.h"

static const char *text(struct evbuffer *b)
{
    evbuffer_add(b, "", 1);
    return (const char *)evbuffer_pullup(b, -1);
}

/* Authorization: Bearer, compared whole. */
static void test_bearer(void)
{
    static const struct {
        const char *head;
        bool match;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cret\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: bearer s3cret\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cre\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3cretX\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic s3cret\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sp_http_header headers[8];
        struct sp_http_request req;
        int n = sp_http_parse_request(cases[i].head, strlen(cases[i].head), &req, headers, 8);
        ok(n > 0 && sp_http_bearer_is(&req, "s3cret") == cases[i].match, "bearer case %zu", i);
    }
}

int main(void)
{
    test_bearer();
    struct evbuffer *b = evbuffer_new();

    ok(sp_http_add_header(b, "X-Grip", "a\tb c", 5) == 0, "a value with a tab and a space");
    is_str(text(b), "X-Grip: a\tb c\r\n", "written as one line");
    evbuffer_drain(b, evbuffer_get_length(b));
    static const struct {
        const char *name, *value;
    } refused[] = {
        {"X-A", "one\r\nSet-Cookie: session=evil"},
        {"X-A", "bare\rcr"},
        {"X-A", "bare\nlf"},
        {"X-A", "del\x7f"},
        {"X-A\r\nSet-Cookie", "evil"},
        {"X A", "space in the name"},
        {"", "empty name"},
        {"X:A", "colon in the name"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        ok(sp_http_add_header(b, refused[i].name, refused[i].value, strlen(refused[i].value)) < 0,
           "refused: %zu", i);
    ok(sp_http_add_header(b, "X-Nul", "a\0b", 3) < 0, "a NUL inside the value");
    ok(evbuffer_get_length(b) == 0, "nothing written for any of them");
    evbuffer_free(b);
    return tap_done();
}
