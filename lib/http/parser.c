#include "http/parser.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- character classes (RFC 9110 §5.6.2) ----------------------------------- */

/* RFC 9110 tchar: DIGIT, ALPHA and !#$%&'*+-.^_`|~, as a bitmap of the
 * ASCII codes (every header name of every request is checked with it). */
static bool is_tchar(unsigned char c)
{
    static const uint64_t map[2] = {0x03ff6cfa00000000ULL, 0x57ffffffc7fffffeULL};
    return c < 128 && ((map[c >> 6] >> (c & 63)) & 1);
}

bool sp_http_token_valid(struct sp_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_tchar((unsigned char)s.ptr[i]))
            return false;
    }
    return true;
}

/* field-vchar / SP / HTAB / obs-text */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* ---- request head ------------------------------------------------------------ */

/* Finds the end of the line starting at p (LF, or CRLF). Sets *next past
 * the terminator. Returns the line length without it, SP_HTTP_INCOMPLETE,
 * or -400 for a bare CR in a line not yet ended. A CR inside an ended line
 * is left to the callers, whose character checks all refuse it (names are
 * tokens, values and targets exclude controls): one memchr per line
 * instead of a test per byte. */
static long line_end(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));

    if (nl == NULL) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        return cr != NULL && cr + 1 < end ? -400 : SP_HTTP_INCOMPLETE;
    }
    *next = nl + 1;
    return (nl > p && nl[-1] == '\r' ? nl - 1 : nl) - p;
}

static int parse_version(const char *p, size_t len, int *minor)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return -400;
    if (p[5] != '1')
        return -505;
    /* HTTP/1.2 and later minors are 1.1-compatible by definition. */
    *minor = p[7] == '0' ? 0 : 1;
    return 0;
}

static int parse_request_line(const char *p, size_t len, struct sp_http_request *req)
{
    const char *end = p + len;
    const char *sp1 = memchr(p, ' ', len);
    if (sp1 == NULL || sp1 == p)
        return -400;
    for (const char *q = p; q < sp1; q++) {
        if (!is_tchar((unsigned char)*q))
            return -400;
    }
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (sp2 == NULL || sp2 == target)
        return -400;
    for (const char *q = target; q < sp2; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return -400;
    }
    req->method = (struct sp_slice){p, (size_t)(sp1 - p)};
    req->target = (struct sp_slice){target, (size_t)(sp2 - target)};
    bool asterisk = req->target.len == 1 && target[0] == '*';
    if (target[0] != '/' && !(asterisk && sp_slice_eq(req->method, "OPTIONS")))
        return -400; /* origin-form only: sidepush is not a forward proxy */
    const char *qmark = memchr(target, '?', req->target.len);
    req->path = (struct sp_slice){target, qmark ? (size_t)(qmark - target) : req->target.len};
    req->query =
        qmark ? (struct sp_slice){qmark + 1, (size_t)(sp2 - qmark - 1)} : (struct sp_slice){sp2, 0};
    return parse_version(sp2 + 1, (size_t)(end - sp2 - 1), &req->minor_version);
}

static int parse_header_line(const char *p, size_t len, struct sp_http_header *h)
{
    const char *colon = memchr(p, ':', len);
    if (colon == NULL || colon == p)
        return -400;
    for (const char *q = p; q < colon; q++) {
        if (!is_tchar((unsigned char)*q))
            return -400; /* includes whitespace before the colon (RFC 9112 §5.1) */
    }
    const char *v = colon + 1;
    const char *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *q = v; q < end; q++) {
        if (!is_value_char((unsigned char)*q))
            return -400;
    }
    h->name = (struct sp_slice){p, (size_t)(colon - p)};
    h->value = (struct sp_slice){v, (size_t)(end - v)};
    return 0;
}

/* The field lines from p up to and including the empty line; *after is
 * past it. Returns 0, SP_HTTP_INCOMPLETE, -400 or -431. */
static int parse_fields(const char *p, const char *end, struct sp_http_header *headers,
                        size_t max_headers, size_t *count, const char **after)
{
    const char *next;
    size_t n = 0;

    for (;;) {
        long len = line_end(p, end, &next);
        if (len < 0)
            return (int)len;
        if (len == 0)
            break;
        if (*p == ' ' || *p == '\t')
            return -400; /* obsolete line folding */
        if (n == max_headers)
            return -431;
        if (parse_header_line(p, (size_t)len, &headers[n]) < 0)
            return -400;
        n++;
        p = next;
    }
    *count = n;
    *after = next;
    return 0;
}

int sp_http_parse_request(const char *buf, size_t len, struct sp_http_request *req,
                          struct sp_http_header *headers, size_t max_headers)
{
    const char *p = buf, *end = buf + len, *next;
    struct sp_http_request r = {.headers = headers};
    long n;

    /* RFC 9112 §2.2: ignore empty lines before the request line. */
    while (p < end && (*p == '\r' || *p == '\n')) {
        n = line_end(p, end, &next);
        if (n != 0)
            return n < 0 ? (int)n : -400;
        p = next;
    }
    n = line_end(p, end, &next);
    if (n < 0)
        return (int)n;
    int rc = parse_request_line(p, (size_t)n, &r);
    if (rc < 0)
        return rc;
    rc = parse_fields(next, end, headers, max_headers, &r.nheaders, &next);
    if (rc < 0)
        return rc;
    *req = r;
    return (int)(next - buf);
}

const struct sp_http_header *sp_http_find_header(const struct sp_http_request *req,
                                                 const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (sp_slice_caseeq(req->headers[i].name, name))
            return &req->headers[i];
    }
    return NULL;
}

/* The next element of a comma-separated list, without the spaces around
 * it; false at the end. Empty elements ("a,,b") are skipped. */
static bool next_element(const char **p, const char *end, struct sp_slice *elem)
{
    while (*p < end && (**p == ' ' || **p == '\t' || **p == ','))
        (*p)++;
    if (*p == end)
        return false;
    const char *start = *p;
    while (*p < end && **p != ',')
        (*p)++;
    const char *stop = *p;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    *elem = (struct sp_slice){start, (size_t)(stop - start)};
    return true;
}

bool sp_http_list_has_slice(struct sp_slice value, struct sp_slice token)
{
    const char *p = value.ptr;
    struct sp_slice e;

    while (next_element(&p, value.ptr + value.len, &e)) {
        if (e.len == token.len && strncasecmp(e.ptr, token.ptr, token.len) == 0)
            return true;
    }
    return false;
}

bool sp_http_list_has_token(struct sp_slice value, const char *token)
{
    return sp_http_list_has_slice(value, (struct sp_slice){token, strlen(token)});
}

bool sp_http_request_has_token(const struct sp_http_request *req, const char *name,
                               const char *token)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sp_http_header *h = &req->headers[i];
        if (sp_slice_caseeq(h->name, name) && sp_http_list_has_token(h->value, token))
            return true;
    }
    return false;
}

int sp_http_list_param_int(struct sp_slice value, const char *name, int64_t *out)
{
    size_t nlen = strlen(name);
    const char *p = value.ptr;
    struct sp_slice e;

    while (next_element(&p, value.ptr + value.len, &e)) {
        if (e.len <= nlen || strncasecmp(e.ptr, name, nlen) != 0 || e.ptr[nlen] != '=')
            continue;
        const char *v = e.ptr + nlen + 1, *stop = e.ptr + e.len;
        if (stop - v >= 2 && *v == '"' && stop[-1] == '"')
            v++, stop--;
        if (v == stop || stop - v > 18)
            return -1;
        int64_t n = 0;
        for (const char *c = v; c < stop; c++) {
            if (*c < '0' || *c > '9')
                return -1;
            n = n * 10 + (*c - '0');
        }
        *out = n;
        return 0;
    }
    return -1;
}

int sp_http_parse_content_length(struct sp_slice v, uint64_t *out)
{
    uint64_t n = 0;

    if (v.len == 0 || v.len > 19)
        return -400;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -400;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    *out = n;
    return 0;
}

int sp_http_request_framing(const struct sp_http_request *req, enum sp_http_body_kind *kind,
                            uint64_t *length)
{
    const struct sp_http_header *cl = NULL, *te = NULL;
    size_t hosts = 0;
    uint64_t n = 0;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sp_http_header *h = &req->headers[i];
        if (sp_slice_caseeq(h->name, "Host")) {
            hosts++;
        } else if (sp_slice_caseeq(h->name, "Content-Length")) {
            uint64_t v;
            if (sp_http_parse_content_length(h->value, &v) < 0 || (cl != NULL && v != n))
                return -400;
            cl = h;
            n = v;
        } else if (sp_slice_caseeq(h->name, "Transfer-Encoding")) {
            if (te != NULL)
                return -400;
            te = h;
        }
    }
    if (hosts > 1 || (req->minor_version == 1 && hosts == 0))
        return -400;
    if (te != NULL) {
        if (cl != NULL || req->minor_version == 0)
            return -400;
        if (!sp_slice_caseeq(te->value, "chunked"))
            return -501;
        *kind = SP_HTTP_BODY_CHUNKED;
        *length = 0;
        return 0;
    }
    *kind = (cl != NULL && n > 0) ? SP_HTTP_BODY_LENGTH : SP_HTTP_BODY_NONE;
    *length = n;
    return 0;
}

/* ---- response head ------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "HTTP/1.x SP 3DIGIT [SP reason]" (a missing SP before an empty reason is
 * tolerated, as RFC 9112 §4 asks of recipients). */
static int parse_status_line(const char *p, size_t len, struct sp_http_response *resp)
{
    if (len < 12 || p[8] != ' ' || !is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]) ||
        (len > 12 && p[12] != ' '))
        return -502;
    if (parse_version(p, 8, &resp->minor_version) < 0)
        return -502;
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp->status < 100)
        return -502;
    const char *reason = len > 12 ? p + 13 : p + len;
    for (const char *q = reason; q < p + len; q++) {
        if (!is_value_char((unsigned char)*q))
            return -502;
    }
    resp->reason = (struct sp_slice){reason, (size_t)(p + len - reason)};
    return 0;
}

int sp_http_parse_response(const char *buf, size_t len, struct sp_http_response *resp,
                           struct sp_http_header *headers, size_t max_headers)
{
    const char *p = buf, *end = buf + len, *next;
    struct sp_http_response r = {.headers = headers};
    long n = line_end(p, end, &next);

    if (n < 0)
        return n == SP_HTTP_INCOMPLETE ? (int)n : -502;
    if (parse_status_line(p, (size_t)n, &r) < 0)
        return -502;
    int rc = parse_fields(next, end, headers, max_headers, &r.nheaders, &next);
    if (rc < 0)
        return rc == SP_HTTP_INCOMPLETE || rc == -431 ? rc : -502;
    *resp = r;
    return (int)(next - buf);
}

/* The one element of a comma-separated list, or an empty slice when it has
 * none or several. */
static struct sp_slice only_element(struct sp_slice value)
{
    const char *p = value.ptr, *end = value.ptr + value.len;
    struct sp_slice elem, only = {value.ptr, 0};
    size_t count = 0;

    while (next_element(&p, end, &elem)) {
        only = elem;
        count++;
    }
    return count == 1 ? only : (struct sp_slice){value.ptr, 0};
}

int sp_http_response_framing(const struct sp_http_response *resp, bool head_request,
                             enum sp_http_body_kind *kind, uint64_t *length)
{
    const struct sp_http_header *cl = NULL, *te = NULL;
    uint64_t n = 0;

    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct sp_http_header *h = &resp->headers[i];
        if (sp_slice_caseeq(h->name, "Content-Length")) {
            if (cl != NULL || sp_http_parse_content_length(h->value, &n) < 0)
                return -502;
            cl = h;
        } else if (sp_slice_caseeq(h->name, "Transfer-Encoding")) {
            if (te != NULL)
                return -502; /* one field, so its last coding is plain to see */
            te = h;
        }
    }
    if (cl != NULL && te != NULL)
        return -502;
    bool bodiless = resp->status < 200 || resp->status == 204 || resp->status == 304;
    /* A 304 may give the representation's length; a 1xx or 204 with a
     * non-zero one, or any of them chunked, says there is a body after all. */
    if (bodiless && (te != NULL || (cl != NULL && n > 0 && resp->status != 304)))
        return -502;
    /* Only chunked itself: sidepush decodes no other coding, and passing
     * "gzip, chunked" on would hand the client gzip bytes it was never told
     * of (nginx answers 502 too). */
    if (te != NULL && !sp_slice_caseeq(only_element(te->value), "chunked"))
        return -502;
    if (bodiless || head_request) {
        *kind = SP_HTTP_BODY_NONE;
        *length = 0;
    } else if (te != NULL) {
        *kind = SP_HTTP_BODY_CHUNKED;
        *length = 0;
    } else if (cl != NULL) {
        *kind = n > 0 ? SP_HTTP_BODY_LENGTH : SP_HTTP_BODY_NONE;
        *length = n;
    } else {
        *kind = SP_HTTP_BODY_CLOSE;
        *length = 0;
    }
    return 0;
}

/* ---- chunked ----------------------------------------------------------------- */

enum {
    CH_SIZE = 0, /* hex digits */
    CH_EXT,      /* ";ext=val" up to CRLF, ignored */
    CH_SIZE_LF,  /* after CR of the size line */
    CH_DATA,     /* chunk bytes */
    CH_DATA_CR,  /* CRLF after chunk data */
    CH_DATA_LF,
    CH_TRAILER, /* start of a trailer line (or the final CRLF) */
    CH_TRAILER_LINE,
    CH_TRAILER_LF,
    CH_FINAL_LF,
    CH_DONE,
};

#define MAX_LINE 4096

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One framing byte; returns 0 or SP_CHUNKED_ERROR. */
static int chunked_step(struct sp_chunked *d, char c)
{
    switch (d->state) {
    case CH_SIZE: {
        int h = hex_value(c);
        if (h >= 0) {
            if (++d->digits > 15)
                return SP_CHUNKED_ERROR; /* keeps remaining far from overflow */
            d->remaining = d->remaining * 16 + (uint64_t)h;
            return 0;
        }
        if (d->digits == 0)
            return SP_CHUNKED_ERROR;
        if (c == ';' || c == ' ' || c == '\t') {
            d->state = CH_EXT;
            d->line_len = 0;
            return 0;
        }
        if (c == '\r') {
            d->state = CH_SIZE_LF;
            return 0;
        }
        return SP_CHUNKED_ERROR;
    }
    case CH_EXT:
        if (c == '\r') {
            d->state = CH_SIZE_LF;
            return 0;
        }
        if (++d->line_len > MAX_LINE || c == '\n' || (!is_value_char((unsigned char)c)))
            return SP_CHUNKED_ERROR;
        return 0;
    case CH_SIZE_LF:
        if (c != '\n')
            return SP_CHUNKED_ERROR;
        d->digits = 0;
        d->state = d->remaining > 0 ? CH_DATA : CH_TRAILER;
        return 0;
    case CH_DATA_CR:
        if (c != '\r')
            return SP_CHUNKED_ERROR;
        d->state = CH_DATA_LF;
        return 0;
    case CH_DATA_LF:
        if (c != '\n')
            return SP_CHUNKED_ERROR;
        d->state = CH_SIZE;
        return 0;
    case CH_TRAILER:
        if (c == '\r') {
            d->state = CH_FINAL_LF;
            return 0;
        }
        d->state = CH_TRAILER_LINE;
        d->line_len = 0;
        return chunked_step(d, c);
    case CH_TRAILER_LINE:
        if (c == '\r') {
            d->state = CH_TRAILER_LF;
            return 0;
        }
        if (++d->line_len > MAX_LINE || c == '\n' || !is_value_char((unsigned char)c))
            return SP_CHUNKED_ERROR;
        return 0;
    case CH_TRAILER_LF:
        if (c != '\n')
            return SP_CHUNKED_ERROR;
        d->state = CH_TRAILER;
        return 0;
    case CH_FINAL_LF:
        if (c != '\n')
            return SP_CHUNKED_ERROR;
        d->state = CH_DONE;
        return 0;
    default:
        return SP_CHUNKED_ERROR;
    }
}

int sp_chunked_next(struct sp_chunked *d, const char *in, size_t len, size_t *data_len, bool *done)
{
    size_t i = 0;

    *data_len = 0;
    *done = false;
    while (i < len && d->state != CH_DATA && d->state != CH_DONE) {
        if (chunked_step(d, in[i]) < 0)
            return SP_CHUNKED_ERROR;
        i++;
    }
    if (d->state == CH_DONE) {
        *done = true;
        return (int)i;
    }
    if (d->state == CH_DATA && i < len) {
        uint64_t avail = len - i;
        uint64_t take = avail < d->remaining ? avail : d->remaining;
        *data_len = (size_t)take;
        d->remaining -= take;
        if (d->remaining == 0)
            d->state = CH_DATA_CR;
    }
    return (int)i;
}

/* ---- query strings -------------------------------------------------------------- */

static int decode_component(const char *p, size_t len, char *out, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? hex_value(p[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(p[i + 2]) : -1;
            if (hi < 0 || lo < 0 || hi * 16 + lo == 0)
                return SP_HTTP_QUERY_BAD;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= size)
            return SP_HTTP_QUERY_BAD;
        out[n++] = c;
    }
    out[n] = '\0';
    return (int)n;
}

int sp_http_query_decode(struct sp_slice in, char *out, size_t size)
{
    return decode_component(in.ptr, in.len, out, size);
}

bool sp_http_query_next(struct sp_slice *rest, struct sp_slice *name, struct sp_slice *value)
{
    const char *p = rest->ptr, *end = rest->ptr + rest->len;

    while (p < end && *p == '&')
        p++; /* empty pairs ("a=1&&b=2") are nothing */
    if (p >= end) {
        *rest = (struct sp_slice){end, 0};
        return false;
    }
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    *name = (struct sp_slice){p, (size_t)((eq ? eq : stop) - p)};
    *value = eq ? (struct sp_slice){eq + 1, (size_t)(stop - eq - 1)} : (struct sp_slice){stop, 0};
    *rest = (struct sp_slice){stop, (size_t)(end - stop)};
    return true;
}

int sp_http_query_get(struct sp_slice query, const char *name, char *out, size_t size)
{
    struct sp_slice rest = query, key, value;

    while (sp_http_query_next(&rest, &key, &value)) {
        if (sp_slice_eq(key, name))
            return decode_component(value.ptr, value.len, out, size);
    }
    return SP_HTTP_QUERY_ABSENT;
}

/* ---- reason phrases ---------------------------------------------------------- */

const char *sp_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

bool sp_http_bearer_is(const struct sp_http_request *req, const char *token)
{
    const struct sp_http_header *h = sp_http_find_header(req, "Authorization");
    size_t len = strlen(token);

    return h != NULL && h->value.len == 7 + len && strncasecmp(h->value.ptr, "Bearer ", 7) == 0 &&
           CRYPTO_memcmp(h->value.ptr + 7, token, len) == 0;
}
