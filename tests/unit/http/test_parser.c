#include "http/parser.h"

#include <stdlib.h>

#include "../tap.h"

#define MAXH 16

static int parse(const char *text, struct sp_http_request *req, struct sp_http_header *h)
{
    return sp_http_parse_request(text, strlen(text), req, h, MAXH);
}

static void test_valid(void)
{
    struct sp_http_header h[MAXH];
    struct sp_http_request r;
    const char *text = "GET /a/b?x=1&y=2 HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "X-Empty:\r\n"
                       "X-Spaces:   padded value \t \r\n"
                       "Set-Cookie: a=1\r\n"
                       "Set-Cookie: b=2\r\n"
                       "\r\n"
                       "BODY";
    int rc = parse(text, &r, h);

    is_int(rc, (int)(strlen(text) - 4), "a complete head returns its length");
    ok(sp_slice_eq(r.method, "GET"), "method");
    ok(sp_slice_eq(r.target, "/a/b?x=1&y=2"), "target");
    ok(sp_slice_eq(r.path, "/a/b"), "path stops at '?'");
    ok(sp_slice_eq(r.query, "x=1&y=2"), "query");
    is_int(r.minor_version, 1, "HTTP/1.1");
    is_int(r.nheaders, 5, "five headers, repeated ones kept");
    ok(sp_slice_eq(h[1].value, ""), "empty value");
    ok(sp_slice_eq(h[2].value, "padded value"), "optional whitespace trimmed");
    ok(sp_slice_eq(h[4].value, "b=2"), "second Set-Cookie kept in order");
    ok(sp_http_find_header(&r, "host") != NULL, "lookup is case-insensitive");

    is_int(parse("GET / HTTP/1.0\n\n", &r, h), 16, "bare LF line endings are accepted");
    is_int(r.minor_version, 0, "HTTP/1.0");
    is_int(parse("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r, h), 29,
           "a leading empty line is ignored");
    is_int(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r, h), 31, "OPTIONS *");
    ok(parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n", &r, h) > 0 && r.minor_version == 1,
       "HTTP/1.9 is treated as 1.1");
}

static void test_incremental(void)
{
    struct sp_http_header h[MAXH];
    struct sp_http_request r;
    const char *text = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    size_t len = strlen(text);
    int incomplete = 0;

    for (size_t i = 0; i < len; i++)
        incomplete += sp_http_parse_request(text, i, &r, h, MAXH) == SP_HTTP_INCOMPLETE;
    is_int(incomplete, (int)len, "every proper prefix is incomplete, never an error");
    is_int(sp_http_parse_request(text, len, &r, h, MAXH), (int)len, "the whole head parses");
}

static void test_malformed(void)
{
    static const struct {
        const char *text;
        int status;
    } cases[] = {
        {"GET  / HTTP/1.1\r\n\r\n", -400},
        {"GET / HTTP/1.1 \r\n\r\n", -400},
        {"G(T / HTTP/1.1\r\n\r\n", -400},
        {"GET http://example.com/ HTTP/1.1\r\n\r\n", -400},
        {"GET * HTTP/1.1\r\n\r\n", -400},
        {"GET /\x01 HTTP/1.1\r\n\r\n", -400},
        {"GET / HTTP/1.1\rHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", -400},
        {"GET / HTTP/1\r\n\r\n", -400},
        {"GET / HTTPS/1.1\r\n\r\n", -400},
        {"GET / HTTP/2.0\r\n\r\n", -505},
        {"GET / HTTP/0.9\r\n\r\n", -505},
        {"GET /\r\n\r\n", -400},
    };
    struct sp_http_header h[MAXH];
    struct sp_http_request r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].text;
        size_t len = strlen(t);
        if (i == 12)
            len = 24; /* the NUL byte case: length past the embedded NUL */
        int rc = sp_http_parse_request(t, len, &r, h, MAXH);
        ok(rc == cases[i].status, "malformed case %zu gives %d (got %d)", i, cases[i].status, rc);
    }

    char many[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i <= MAXH; i++)
        strcat(many, "X-A: b\r\n");
    strcat(many, "\r\n");
    is_int(parse(many, &r, h), -431, "more header fields than allowed: 431");
}

static int framing(const char *text, enum sp_http_body_kind *kind, uint64_t *len)
{
    struct sp_http_header h[MAXH];
    struct sp_http_request r;
    if (parse(text, &r, h) < 0)
        return -1;
    return sp_http_request_framing(&r, kind, len);
}

static void test_framing(void)
{
    enum sp_http_body_kind kind;
    uint64_t len;

    ok(framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &kind, &len) == 0 && kind == SP_HTTP_BODY_NONE,
       "no body");
    ok(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", &kind, &len) == 0 &&
           kind == SP_HTTP_BODY_LENGTH && len == 42,
       "Content-Length body");
    ok(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &kind, &len) == 0 &&
           kind == SP_HTTP_BODY_NONE,
       "Content-Length: 0 is no body");
    ok(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &kind, &len) ==
               0 &&
           kind == SP_HTTP_BODY_CHUNKED,
       "chunked body");
    ok(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
               &kind, &len) == 0,
       "identical repeated Content-Length is accepted");
    is_int(framing("GET / HTTP/1.1\r\n\r\n", &kind, &len), -400, "HTTP/1.1 without Host");
    is_int(framing("GET / HTTP/1.0\r\n\r\n", &kind, &len), 0, "HTTP/1.0 without Host is fine");
    is_int(framing("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &kind, &len), -400,
           "two Host headers");
    is_int(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                   &kind, &len),
           -400, "conflicting Content-Length");
    is_int(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", &kind, &len), -400,
           "negative Content-Length");
    is_int(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", &kind, &len), -400,
           "list Content-Length");
    is_int(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                   &kind, &len),
           -400, "overflowing Content-Length");
    is_int(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n",
                   &kind, &len),
           -400, "both Content-Length and Transfer-Encoding (smuggling)");
    is_int(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &kind,
                   &len),
           -501, "unsupported transfer coding");
    is_int(framing("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &kind, &len), -400,
           "chunked in HTTP/1.0");
}

/* Decodes all of text, fed in pieces of step bytes. Returns the body length,
 * or -1 on error, -2 if it never finished. */
static long dechunk(const char *text, size_t len, size_t step, char *body)
{
    struct sp_chunked d = {0};
    size_t pos = 0, avail = 0, out = 0;

    while (pos < len) {
        avail = avail + step > len - pos ? len - pos : avail + step;
        size_t data_len;
        bool done;
        int skip = sp_chunked_next(&d, text + pos, avail, &data_len, &done);
        if (skip < 0)
            return -1;
        memcpy(body + out, text + pos + skip, data_len);
        out += data_len;
        pos += (size_t)skip + data_len;
        avail -= (size_t)skip + data_len;
        if (done)
            return (long)out;
    }
    return -2;
}

static void test_chunked(void)
{
    static const char good[] = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
    char body[64];

    for (size_t step = 1; step <= sizeof(good); step++) {
        memset(body, 0, sizeof(body));
        long n = dechunk(good, sizeof(good) - 1, step, body);
        if (n != 12 || memcmp(body, "hello, world", 12) != 0) {
            ok(0, "chunked decode with %zu-byte pieces", step);
            return;
        }
    }
    ok(1, "chunked body decodes identically whatever the piece size");
    is_int(dechunk("A\r\n0123456789\r\n0\r\n\r\n", 21, 100, body), 10, "hex sizes");
    is_int(dechunk("0\r\n\r\n", 5, 100, body), 0, "empty body");
    is_int(dechunk("x\r\n", 3, 100, body), -1, "non-hex size");
    is_int(dechunk("5\r\nhelloX\r\n", 11, 100, body), -1, "missing CRLF after data");
    is_int(dechunk("5\nhello\r\n", 10, 100, body), -1, "bare LF after size");
    is_int(dechunk("1000000000000000\r\n", 18, 100, body), -1, "oversized chunk size");
    is_int(dechunk("\r\n", 2, 100, body), -1, "empty size");
    is_int(dechunk("5\r\nhel", 6, 100, body), -2, "truncated data is incomplete");
}

static void test_list_tokens(void)
{
    ok(sp_http_list_has_token(sp_slice_from("keep-alive, Upgrade"), "upgrade"), "token in list");
    ok(!sp_http_list_has_token(sp_slice_from("keep-alive-ish"), "keep-alive"), "no prefix match");
    ok(sp_http_list_has_token(sp_slice_from(" close "), "close"), "whitespace around token");
}

static void test_query_and_params(void)
{
    char out[8];
    int64_t v = -1;

    is_int(sp_http_query_get(sp_slice_from("a=1&cursor=x%2Dy"), "cursor", out, sizeof(out)), 3,
           "decoded value");
    is_str(out, "x-y", "percent-decoded");
    is_int(sp_http_query_get(sp_slice_from("a=1"), "cursor", out, sizeof(out)),
           SP_HTTP_QUERY_ABSENT, "absent");
    is_int(sp_http_query_get(sp_slice_from("cursor=%zz"), "cursor", out, sizeof(out)),
           SP_HTTP_QUERY_BAD, "a bad escape is not absence");
    is_int(sp_http_query_get(sp_slice_from("cursor=%4"), "cursor", out, sizeof(out)),
           SP_HTTP_QUERY_BAD, "a cut escape");
    is_int(sp_http_query_get(sp_slice_from("cursor=a%00b"), "cursor", out, sizeof(out)),
           SP_HTTP_QUERY_BAD, "a NUL escape would cut the value short");
    is_int(sp_http_query_get(sp_slice_from("cursor=12345678"), "cursor", out, sizeof(out)),
           SP_HTTP_QUERY_BAD, "too long for the buffer is not absence");

    ok(sp_http_list_param_int(sp_slice_from("private, max-age=30"), "max-age", &v) == 0 && v == 30,
       "max-age in a list");
    ok(sp_http_list_param_int(sp_slice_from("max-age=\"7\""), "max-age", &v) == 0 && v == 7,
       "quoted");
    ok(sp_http_list_param_int(sp_slice_from("s-max-age=5"), "max-age", &v) < 0, "not a prefix");
    ok(sp_http_list_param_int(sp_slice_from("max-age=-1"), "max-age", &v) < 0, "digits only");
    ok(sp_http_list_param_int(sp_slice_from("max-age"), "max-age", &v) < 0, "no value");
    ok(sp_http_token_valid(sp_slice_from("X-Name")), "a token");
    ok(!sp_http_token_valid(sp_slice_from("X Name")) && !sp_http_token_valid(sp_slice_from("")),
       "not a token");
}

/* ---- response heads ----------------------------------------------------------------- */

static int response(const char *text, struct sp_http_response *r, struct sp_http_header *h)
{
    return sp_http_parse_response(text, strlen(text), r, h, 8);
}

static void test_response_heads(void)
{
    struct sp_http_header h[8];
    struct sp_http_response r;
    const char *ok200 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello";

    is_int(response(ok200, &r, h), (int)strlen(ok200) - 5, "a head's length, body excluded");
    ok(r.status == 200 && r.minor_version == 1 && sp_slice_eq(r.reason, "OK"), "status line");
    ok(r.nheaders == 2 && sp_slice_eq(h[1].value, "b"), "fields, whitespace trimmed");
    is_int(response("HTTP/1.0 404 Not Found\n\n", &r, h), 24, "bare LF lines, HTTP/1.0");
    ok(r.status == 404 && r.minor_version == 0 && sp_slice_eq(r.reason, "Not Found"),
       "reason with spaces");
    is_int(response("HTTP/1.1 204\r\n\r\n", &r, h), 16, "no reason and no space");
    ok(r.status == 204 && r.reason.len == 0, "empty reason");
    is_int(response("HTTP/1.1 200 OK\r\nA: b\r\n", &r, h), SP_HTTP_INCOMPLETE, "incomplete");
    is_int(response("HTTP/1.1 200 OK\r", &r, h), SP_HTTP_INCOMPLETE, "a CR at the end");

    /* Every split of a head is incomplete until its last byte. */
    bool incremental = true;
    for (size_t i = 0; i < strlen(ok200) - 5; i++)
        incremental &= sp_http_parse_response(ok200, i, &r, h, 8) == SP_HTTP_INCOMPLETE;
    ok(incremental, "every prefix of the head is incomplete");

    static const char *const bad[] = {
        "HTTP/1.1 200 OK\rX: y\r\n\r\n",         /* bare CR */
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",    /* bare CR in a value */
        "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", /* obs-fold */
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",      /* space before the colon */
        "HTTP/1.1 200 OK\r\nX\r\n\r\n",          /* no colon */
        "HTTP/1.1 20 OK\r\n\r\n",                /* two digits */
        "HTTP/1.1 2000 OK\r\n\r\n",              /* four */
        "HTTP/1.1 099 OK\r\n\r\n",               /* below 100 */
        "HTTP/2.0 200 OK\r\n\r\n",               /* not 1.x */
        "HTTP/1.1  200 OK\r\n\r\n",              /* two spaces */
        "http/1.1 200 OK\r\n\r\n",               /* case */
        "\r\nHTTP/1.1 200 OK\r\n\r\n",           /* a blank line first */
        "HTTP/1.1 200 O\x01K\r\n\r\n",           /* control byte in the reason */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(response(bad[i], &r, h), -502, "malformed response %zu refused", i);
    char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
    is_int(sp_http_parse_response(nul, sizeof(nul) - 1, &r, h, 8), -502, "NUL in a value");
    const char *two = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    is_int(sp_http_parse_response(two, strlen(two), &r, h, 1), -431, "more fields than room");
}

static int framing_of(const char *head, bool head_request, enum sp_http_body_kind *kind,
                      uint64_t *len)
{
    struct sp_http_header h[8];
    struct sp_http_response r;

    if (response(head, &r, h) < 0)
        return -1000;
    return sp_http_response_framing(&r, head_request, kind, len);
}

static void test_response_framing(void)
{
    enum sp_http_body_kind k;
    uint64_t n;

    ok(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false, &k, &n) == 0 &&
           k == SP_HTTP_BODY_LENGTH && n == 12,
       "Content-Length");
    ok(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, &k, &n) ==
           -502,
       "another coding before chunked: refused (nothing decodes it for the client)");
    ok(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", false, &k,
                  &n) == -502,
       "chunked twice: refused");
    ok(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n", false, &k, &n) == 0 &&
           k == SP_HTTP_BODY_CHUNKED,
       "chunked alone (any case, spaces around)");
    ok(framing_of("HTTP/1.1 200 OK\r\n\r\n", false, &k, &n) == 0 && k == SP_HTTP_BODY_CLOSE,
       "neither: until close");
    ok(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", true, &k, &n) == 0 &&
           k == SP_HTTP_BODY_NONE,
       "a HEAD request's response has no body");
    ok(framing_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n", false, &k, &n) == 0 &&
           k == SP_HTTP_BODY_NONE,
       "304 with the representation's length: no body");
    ok(framing_of("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, &k, &n) == 0 &&
           k == SP_HTTP_BODY_NONE,
       "204 with Content-Length: 0 (sloppy, harmless)");
    ok(framing_of("HTTP/1.1 101 Switching Protocols\r\n\r\n", false, &k, &n) == 0 &&
           k == SP_HTTP_BODY_NONE,
       "1xx: no body");
    static const char *const ambiguous[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++)
        is_int(framing_of(ambiguous[i], false, &k, &n), -502, "readable two ways: %zu refused", i);
}

int main(void)
{
    test_valid();
    test_incremental();
    test_malformed();
    test_framing();
    test_chunked();
    test_list_tokens();
    test_query_and_params();
    test_response_heads();
    test_response_framing();
    return tap_done();
}
