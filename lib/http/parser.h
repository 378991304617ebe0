/* HTTP/1.1 request heads and chunked bodies: pure parsers over the caller's
 * bytes, no I/O and no allocation, in the manner of picohttpparser.
 *
 * Strict by design (RFC 9112): a proxy that is lenient where its backend is
 * strict (or the reverse) is how request smuggling happens.
 */
#ifndef SP_HTTP_PARSER_H
#define SP_HTTP_PARSER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"

#define SP_HTTP_INCOMPLETE (-2)

struct sp_http_header {
    struct sp_slice name;
    struct sp_slice value; /* surrounding whitespace removed */
};

struct sp_http_request {
    struct sp_slice method;
    struct sp_slice target; /* as sent: path and query */
    struct sp_slice path;   /* target up to '?' */
    struct sp_slice query;  /* after '?', empty if none */
    int minor_version;      /* 0 or 1 */
    struct sp_http_header *headers;
    size_t nheaders;
};

/* Parses the request head at buf[0 .. len). headers is the caller's array of
 * max_headers entries; the slices in *req point into buf.
 * Returns the head's length in bytes when it is complete, SP_HTTP_INCOMPLETE
 * when more bytes are needed, or a negated HTTP status on error:
 * -400 malformed, -431 too many header fields, -505 HTTP version not
 * supported. *req is written only on success. */
int sp_http_parse_request(const char *buf, size_t len, struct sp_http_request *req,
                          struct sp_http_header *headers, size_t max_headers);

/* A Content-Length value: 1 to 19 digits, nothing else (no sign, no list,
 * no spaces: the caller trims the field's own). Returns 0 and *out, or -400. */
int sp_http_parse_content_length(struct sp_slice v, uint64_t *out);

/* True if s is a non-empty RFC 9110 token (a header field name). */
bool sp_http_token_valid(struct sp_slice s);

/* The first header named name (case-insensitive), or NULL. */
const struct sp_http_header *sp_http_find_header(const struct sp_http_request *req,
                                                 const char *name);

/* Does the request carry "Authorization: Bearer <token>"? Compared in
 * constant time, so the answer's timing tells nothing of the token. */
bool sp_http_bearer_is(const struct sp_http_request *req, const char *token);

/* True if the comma-separated header list value contains token
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
bool sp_http_list_has_token(struct sp_slice value, const char *token);

/* The same for a token that is itself a slice (a header's name). */
bool sp_http_list_has_slice(struct sp_slice value, struct sp_slice token);

/* True if any field named name (all of them, not only the first) lists
 * token: "Connection: keep-alive" then "Connection: close" means close. */
bool sp_http_request_has_token(const struct sp_http_request *req, const char *name,
                               const char *token);

/* The value of a "name=digits" element of a comma-separated list
 * ("no-cache, max-age=30"), quotes allowed. Returns 0 and *out, or -1 if
 * absent or not a number (then *out is untouched). */
int sp_http_list_param_int(struct sp_slice value, const char *name, int64_t *out);

enum sp_http_body_kind {
    SP_HTTP_BODY_NONE,
    SP_HTTP_BODY_LENGTH,
    SP_HTTP_BODY_CHUNKED,
    SP_HTTP_BODY_CLOSE, /* responses only: the body ends when the connection does */
};

/* Works out how the request's body is framed and checks the headers that
 * framing and routing depend on: Host present once (HTTP/1.1), Content-Length
 * a single decimal number, Transfer-Encoding exactly "chunked", never both.
 * Returns 0, or -400 (ambiguous or malformed) / -501 (unknown coding). */
int sp_http_request_framing(const struct sp_http_request *req, enum sp_http_body_kind *kind,
                            uint64_t *length);

/* ---- response heads (what the upstream client reads from the backend) -------- */

struct sp_http_response {
    int minor_version;      /* 0 or 1 */
    int status;             /* 100 to 999 */
    struct sp_slice reason; /* may be empty */
    struct sp_http_header *headers;
    size_t nheaders;
};

/* Parses the response head at buf[0 .. len), as sp_http_parse_request does a
 * request's, and as strictly: a bare CR, a NUL or other control byte, an
 * obs-folded line, whitespace before a colon, a status that is not three
 * digits, or a version other than HTTP/1.x is an error. Returns the head's
 * length, SP_HTTP_INCOMPLETE, or -502 (malformed; a proxy answers 502 and
 * forwards nothing) or -431 (more than max_headers fields). *resp is
 * written only on success. */
int sp_http_parse_response(const char *buf, size_t len, struct sp_http_response *resp,
                           struct sp_http_header *headers, size_t max_headers);

/* How the response's body is framed (RFC 9112 §6.3), for a request whose
 * method was HEAD or not: none for HEAD, 1xx, 204 and 304; chunked when
 * Transfer-Encoding is exactly chunked; a length from one
 * Content-Length; otherwise until the connection closes. A response that
 * could be read two ways is refused: both Content-Length and
 * Transfer-Encoding, more than one Content-Length field (even with equal
 * values) or a list in one, Transfer-Encoding other than chunked alone
 * ("gzip, chunked" too: no other coding is decoded), Transfer-Encoding on a 1xx, 204 or 304, or a
 * non-zero Content-Length on a 1xx or 204 (a 304 may carry the representation's). Returns 0, or
 * -502. */
int sp_http_response_framing(const struct sp_http_response *resp, bool head_request,
                             enum sp_http_body_kind *kind, uint64_t *length);

/* ---- chunked transfer coding ------------------------------------------------ */

struct sp_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned digits;
    size_t line_len; /* of a chunk extension or trailer line, bounded */
};

#define SP_CHUNKED_ERROR (-1)

/* Advances over chunk framing in in[0 .. len). Returns the number of framing
 * bytes consumed, then *data_len says how many body bytes follow them at
 * in[consumed] (the caller must take exactly those before calling again), and
 * *done is set once the last chunk and its trailers are read. A return of 0
 * with *data_len 0 and !*done means more input is needed. Returns
 * SP_CHUNKED_ERROR for malformed framing. */
int sp_chunked_next(struct sp_chunked *d, const char *in, size_t len, size_t *data_len, bool *done);

/* Finds name in a query string ("a=1&b=two") and percent-decodes its value
 * ('+' as space) into out. Returns the decoded length, SP_HTTP_QUERY_ABSENT,
 * or SP_HTTP_QUERY_BAD when the value is malformed (a bad % escape, %00) or
 * longer than size - 1, so a caller can refuse what it cannot read instead
 * of taking it for absent. */
#define SP_HTTP_QUERY_ABSENT (-1)
#define SP_HTTP_QUERY_BAD (-2)
int sp_http_query_get(struct sp_slice query, const char *name, char *out, size_t size);
/* Percent-decodes one name or value as sp_http_query_get does. */
int sp_http_query_decode(struct sp_slice in, char *out, size_t size);
/* The next pair of a query string, name and value still encoded (value
 * empty when there is no '='); rest moves past it. False at the end. */
bool sp_http_query_next(struct sp_slice *rest, struct sp_slice *name, struct sp_slice *value);

/* Reason phrase for a status code ("Not Found"); "Unknown" if none. */
const char *sp_http_reason(int status);

#endif
